// What the density benchmark reads from /proc: CPU time of processes and of the host, memory of processes,
// and how much of a memfd region is allocated. Parsers are pure (tested by feeding text); readers are thin.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/** Linux reports process CPU time in clock ticks of 1/USER_HZ s; USER_HZ is 100 on x86-64. */
export const USER_HZ = 100;

/** utime + stime of a process (all its threads) in ticks, from the text of /proc/PID/stat. */
export function parseProcessCpuTicks(statText: string): number {
  // The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const close = statText.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/PID/stat line: ${statText.slice(0, 80)}`);
  const fields = statText.slice(close + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`no utime/stime in /proc/PID/stat: ${statText.slice(0, 120)}`);
  return utime + stime;
}

export interface HostCpuTicks {
  /** Every state but idle and iowait. */
  busy: number;
  total: number;
}

/** The first ("cpu ") line of /proc/stat: busy and total ticks over all CPUs. */
export function parseHostCpuTicks(procStatText: string): HostCpuTicks {
  const line = procStatText.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('no "cpu " line in /proc/stat');
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export interface ProcessMemory {
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  shmemBytes: number;
}

/** VmRSS, RssAnon, RssFile, RssShmem from the text of /proc/PID/status. */
export function parseProcessMemory(statusText: string): ProcessMemory {
  const kib = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(statusText);
    if (!m) throw new Error(`no ${name} in /proc/PID/status`);
    return Number(m[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), anonBytes: kib('RssAnon'), fileBytes: kib('RssFile'), shmemBytes: kib('RssShmem') };
}

export function processCpuTicks(pid: number): number {
  return parseProcessCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

export function hostCpuTicks(): HostCpuTicks {
  return parseHostCpuTicks(readFileSync('/proc/stat', 'utf8'));
}

export function processMemory(pid: number): ProcessMemory {
  return parseProcessMemory(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/**
 * Bytes allocated to each memfd a process holds whose name starts with `prefix` (the daemon's device
 * regions are `memfd:vmgmt-NAME`): what the regions cost the host, whichever process touched the pages.
 */
export function memfdAllocatedBytes(pid: number, prefix: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^\/memfd:(\S+) \(deleted\)$/.exec(target);
    if (!m || !m[1]!.startsWith(prefix) || found.has(m[1]!)) continue;
    try {
      found.set(m[1]!, statSync(`/proc/${pid}/fd/${fd}`).blocks * 512);
    } catch {
      // closed meanwhile
    }
  }
  return found;
}

/** CPU use over an interval as a percentage of one core. */
export function percentOfOneCore(ticks: number, seconds: number): number {
  return (100 * ticks) / USER_HZ / seconds;
}
