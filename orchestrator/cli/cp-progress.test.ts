import { describe, expect, it } from 'vitest';
import { formatProgressLine, formatSize, ProgressRenderer } from './cp-progress.js';

describe('formatSize', () => {
  it('uses bytes below 1 KiB, then one decimal in binary units', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(1023)).toBe('1023 B');
    expect(formatSize(1024)).toBe('1.0 KiB');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(5 * 1024 * 1024)).toBe('5.0 MiB');
    expect(formatSize(3 * 1024 ** 3 + 1024 ** 3 / 10)).toBe('3.1 GiB');
    expect(formatSize(2 * 1024 ** 5)).toBe('2048.0 TiB');
  });
});

describe('formatProgressLine', () => {
  it('shows stage, bar, percent, bytes and rate', () => {
    expect(formatProgressLine({ stage: 'upload', bytes: 2 * 1024 * 1024, totalBytes: 5 * 1024 * 1024, elapsedMs: 500, columns: 80 })).toBe(
      'upload   [############....................]   40%  2.0 MiB / 5.0 MiB  4.0 MiB/s',
    );
  });

  it('counts an empty transfer as done and shows - for the rate at time zero', () => {
    expect(formatProgressLine({ stage: 'guest', bytes: 0, totalBytes: 0, elapsedMs: 0, columns: 60 })).toMatch(/^guest +\[#+\]  100%  0 B \/ 0 B  -$/);
  });

  it('fits the terminal: a shorter bar, then no bar, never longer than columns - 1', () => {
    const base = { stage: 'download', bytes: 512, totalBytes: 1024, elapsedMs: 1000 };
    for (const columns of [20, 40, 55, 60, 80, 200]) {
      const line = formatProgressLine({ ...base, columns });
      expect(line.length, `${columns}: ${line}`).toBeLessThanOrEqual(columns - 1);
    }
    expect(formatProgressLine({ ...base, columns: 200 })).toContain(`[${'#'.repeat(20)}${'.'.repeat(20)}]`);
    expect(formatProgressLine({ ...base, columns: 40 })).not.toContain('[');
  });
});

describe('ProgressRenderer', () => {
  it('redraws in place at most every 100 ms per stage, always draws the final update, ends the line', () => {
    let out = '';
    const r = new ProgressRenderer((t) => (out += t), 80);
    r.update('upload', 0, 100, 1000);
    r.update('upload', 10, 100, 1050);
    r.update('upload', 20, 100, 1100);
    r.update('upload', 100, 100, 1120);
    r.update('guest', 0, 100, 1130);
    r.update('guest', 100, 100, 1140, true);
    r.finish();
    const frames = out.split('\r').filter(Boolean);
    expect(frames.map((f) => f.split(/ +/)[0] + ' ' + (f.match(/(\d+)%/)?.[1] ?? '?'))).toEqual([
      'upload 0',
      'upload 20',
      'upload 100',
      'guest 0',
      'guest 100',
    ]);
    expect(frames.every((f) => f.includes('\x1b[K'))).toBe(true);
    expect(out.endsWith('\x1b[K\n')).toBe(true);
  });

  it('writes nothing at finish when nothing was drawn', () => {
    let out = '';
    new ProgressRenderer((t) => (out += t), 80).finish();
    expect(out).toBe('');
  });
});
