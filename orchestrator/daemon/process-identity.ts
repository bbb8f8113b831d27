// Telling our QEMU from a process that reuses its pid: start time and the VM's UUID on its command line.
import { readFileSync } from 'node:fs';

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or undefined if the pid is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export type IdentityCheck = { same: true } | { same: false; why: string };

export function checkProcessIdentity(pid: number, startTime: string, uuid: string): IdentityCheck {
  const now = processStartTime(pid);
  if (now === undefined) return { same: false, why: `pid ${pid} no longer exists` };
  if (now !== startTime) return { same: false, why: `pid ${pid} was reused by another process (start time ${now}, recorded ${startTime})` };
  let cmdline: string[];
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return { same: false, why: `pid ${pid} exited while being checked` };
  }
  const at = cmdline.indexOf('-uuid');
  if (at < 0 || cmdline[at + 1] !== uuid) return { same: false, why: `pid ${pid} is not the QEMU with uuid ${uuid}` };
  return { same: true };
}
