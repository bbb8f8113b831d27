// The end of a log file, for `vmgmt vm logs` and for what a crashed VM's console said last.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

export function readTail(file: string, tailBytes: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  const start = Math.max(0, size - tailBytes);
  const buf = Buffer.alloc(size - start);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  return buf.toString('utf8');
}

/** The last `lines` non-empty lines of a file (from its last 8 KiB), carriage returns dropped. */
export function lastLines(file: string, lines: number): string {
  try {
    return readTail(file, 8192).replace(/\r/g, '').split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
