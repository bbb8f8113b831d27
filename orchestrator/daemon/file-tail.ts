// The end of a log file, for `vmgmt vm logs` and for what a crashed VM's console said last.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

/** Bytes start..end of a file. */
function readRange(file: string, start: number, end: number): Buffer {
  const buf = Buffer.alloc(end - start);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  return buf;
}

export function readTail(file: string, tailBytes: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  return readRange(file, Math.max(0, size - tailBytes), size).toString('utf8');
}

/** The last `lines` non-empty lines of a file (from its last 8 KiB), carriage returns dropped. */
export function lastLines(file: string, lines: number): string {
  try {
    return readTail(file, 8192).replace(/\r/g, '').split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * A piece of a log for `vm logs` and `vm logs -f`: its last tailBytes, or what it holds from fromByte on
 * (at most maxBytes; a fromByte past the end — the log was replaced — starts again at 0). The piece ends at
 * a whole UTF-8 character, so the next piece starts where this one's endByte says and nothing is split.
 */
export function readLogChunk(file: string, opts: { tailBytes: number; fromByte?: number; maxBytes: number }): { text: string; endByte: number } {
  if (!existsSync(file)) return { text: '', endByte: 0 };
  const size = statSync(file).size;
  let start = opts.fromByte === undefined ? Math.max(0, size - opts.tailBytes) : opts.fromByte > size ? 0 : opts.fromByte;
  const buf = readRange(file, start, Math.min(size, start + opts.maxBytes));
  let from = 0;
  // A tail that starts inside a character drops its continuation bytes.
  if (opts.fromByte === undefined) while (from < buf.length && from < 3 && (buf[from]! & 0xc0) === 0x80) from++;
  start += from;
  const cut = completeUtf8Length(buf.subarray(from));
  return { text: buf.subarray(from, from + cut).toString('utf8'), endByte: start + cut };
}

/** How many leading bytes form whole UTF-8 characters (an incomplete one at the end is left for later). */
export function completeUtf8Length(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}
