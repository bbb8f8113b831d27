import { describe, expect, it } from 'vitest';
import { formatDemoFiles, formatDemoHeader, formatDemoPing, parseFileCopyLines } from './demo-report.js';

describe('demo report', () => {
  it('reads the put/get lines of vmgmt-guest file', () => {
    const out = 'put: bytes=67108864 ms=77 MBps=866.5 sha256=6f4879e0aa\nget: bytes=67108864 ms=205 MBps=327.4 sha256=6f4879e0aa\ndemo.bin\n';
    expect(parseFileCopyLines(out)).toEqual([
      { op: 'put', bytes: 67108864, ms: 77, mbps: 866.5, sha256: '6f4879e0aa' },
      { op: 'get', bytes: 67108864, ms: 205, mbps: 327.4, sha256: '6f4879e0aa' },
    ]);
  });

  it('lays the figures out in aligned lines, no table dump', () => {
    const header = formatDemoHeader({ accel: { accel: 'tcg', reason: 'tcg requested explicitly [cached 2026 in /x]', fromCache: true }, bootToReadyMs: 2230 });
    expect(header).toBe(
      '  accelerator  tcg (the cached answer of the KVM self-probe)\n  why          tcg requested explicitly\n  guest ready  2.23 s after QEMU started',
    );
    const ping = formatDemoPing({ n: 1000, minUs: 9.6, medianUs: 183.6, p99Us: 315.3, maxUs: 909.5, wait: 'relay' }, { messages: 1000, doorbells: 1001, notificationsSent: 1000, protocolErrors: 0 });
    expect(ping).toContain('  min 9.6 µs   median 183.6 µs   p99 315.3 µs   max 909.5 µs');
    expect(ping).not.toMatch(/\(index\)|Values/);
    const files = formatDemoFiles({ root: '/tmp/r', copies: parseFileCopyLines('put: bytes=67108864 ms=77 MBps=866.5 sha256=6f4879e0aabbccdd'), refusal: 'path leaves the root (status 22)' });
    expect(files.split('\n')).toEqual([
      'File mode: the guest reads and writes under one host directory (/tmp/r)',
      '  put 64 MiB guest -> host     77 ms    866.5 MB/s   sha256 6f4879e0aabb… checked',
      '  get ../etc/passwd         refused: path leaves the root (status 22)',
    ]);
  });
});
