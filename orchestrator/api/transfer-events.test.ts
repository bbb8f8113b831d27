import { describe, expect, it } from 'vitest';
import { decodeTransferEvent } from './api-contract.js';
import { encodeTransferEvent, ProgressThrottle } from './transfer-events.js';

describe('transfer events', () => {
  it('encode as one JSON line and decode back', () => {
    const events = [
      { event: 'progress', stage: 'upload', bytes: 5, totalBytes: 10 },
      { event: 'done', bytes: 10 },
      { event: 'ready', bytes: 10, download: `/v1/transfers/${'0'.repeat(32)}` },
      { event: 'error', code: 'AGENT_UNAVAILABLE', message: 'no agent', details: { a: 1 } },
    ] as const;
    for (const e of events) {
      const line = encodeTransferEvent(e);
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toContain('\n');
      expect(decodeTransferEvent(line.slice(0, -1))).toEqual({ ok: true, event: e });
    }
  });

  it('say why a line is not an event', () => {
    expect(decodeTransferEvent('{"event":"progress"')).toMatchObject({ ok: false, reason: expect.stringMatching(/^not JSON/) });
    expect(decodeTransferEvent('{"event":"progress","stage":"disk","bytes":1,"totalBytes":2}')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^not a transfer event: stage/),
    });
    expect(decodeTransferEvent('{"event":"done","bytes":-1}')).toMatchObject({ ok: false });
    expect(decodeTransferEvent('{"event":"ready","bytes":1,"download":"/etc/passwd"}')).toMatchObject({ ok: false });
    expect(decodeTransferEvent('{"event":"error","code":"X","message":"m"}')).toEqual({
      ok: true,
      event: { event: 'error', code: 'X', message: 'm', details: {} },
    });
  });
});

describe('ProgressThrottle', () => {
  it('passes the first update, then one per interval, and the final one once', () => {
    const t = new ProgressThrottle(100);
    const passed = [0, 10, 50, 99, 100, 150, 199, 250].filter((ms) => t.take(ms, ms, 1000));
    expect(passed).toEqual([0, 100, 250]);
    expect(t.take(260, 1000, 1000)).toBe(true);
    expect(t.take(261, 1000, 1000, true)).toBe(false);
  });

  it('forces a final update within the interval, and handles empty transfers', () => {
    const t = new ProgressThrottle(100);
    expect(t.take(0, 10, 20)).toBe(true);
    expect(t.take(5, 15, 20, true)).toBe(true);
    const empty = new ProgressThrottle(100);
    expect(empty.take(0, 0, 0)).toBe(true);
    expect(empty.take(1, 0, 0, true)).toBe(false);
  });
});
