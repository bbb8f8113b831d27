// What the host sees of a VM's QEMU process: CPU seconds (user + system, all threads) from /proc/PID/stat
// and resident memory from /proc/PID/status. Parsers are pure (tested by feeding text); the reader is thin
// and answers null for a process that is gone.
import { readFileSync } from 'node:fs';

/** Linux reports process CPU time in ticks of 1/USER_HZ s; USER_HZ is 100 on x86-64. */
export const USER_HZ = 100;

export interface ProcessFigures {
  cpuSeconds: number;
  rssBytes: number;
}

/** utime + stime in seconds from the text of /proc/PID/stat; null when the text is not one. */
export function parseCpuSeconds(statText: string): number | null {
  // The command name (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
  const close = statText.lastIndexOf(')');
  if (close < 0) return null;
  const fields = statText.slice(close + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return (utime + stime) / USER_HZ;
}

/** VmRSS in bytes from the text of /proc/PID/status; null when it has none (a zombie). */
export function parseRssBytes(statusText: string): number | null {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(statusText);
  return m ? Number(m[1]) * 1024 : null;
}

export function readProcessFigures(pid: number): ProcessFigures | null {
  try {
    const cpuSeconds = parseCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const rssBytes = parseRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return cpuSeconds === null || rssBytes === null ? null : { cpuSeconds, rssBytes };
  } catch {
    return null;
  }
}
