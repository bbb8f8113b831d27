import { open } from 'node:fs/promises';

export const QEMU_LOG_TAIL_BYTES = 4096;
export const QEMU_LOG_TAIL_LINES = 20;

/** Last lines of a log written since `fromOffset` (so an earlier run's output is not blamed). */
export async function readLogTail(path: string, fromOffset = 0): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(fromOffset, size - QEMU_LOG_TAIL_BYTES);
    if (size <= start) return '';
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString('utf8').trimEnd().split('\n').slice(-QEMU_LOG_TAIL_LINES).join('\n');
  } finally {
    await handle.close();
  }
}
