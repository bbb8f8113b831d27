import { describe, expect, it } from 'vitest';
import type { LogFields } from './core-logger.js';
import { rateLimitedLogger } from './rate-limited-logger.js';

function setup() {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  let now = 0;
  const sink = {
    info: (message: string, fields?: LogFields) => lines.push({ level: 'info', message, ...(fields ? { fields } : {}) }),
    warn: (message: string, fields?: LogFields) => lines.push({ level: 'warn', message, ...(fields ? { fields } : {}) }),
    error: (message: string, fields?: LogFields) => lines.push({ level: 'error', message, ...(fields ? { fields } : {}) }),
  };
  const log = rateLimitedLogger(sink, { linesPerWindow: 3, windowMs: 1000, nowMs: () => now });
  return { lines, log, advance: (ms: number) => (now += ms) };
}

describe('rateLimitedLogger', () => {
  it('passes the first lines of a message per window, says so on the last, and drops the rest', () => {
    const { lines, log } = setup();
    for (let i = 0; i < 10; i++) log.warn('guest protocol error', { channel: i });
    expect(lines.map((l) => l.fields?.channel)).toEqual([0, 1, 2]);
    expect(lines[2]!.fields?.rateLimited).toMatch(/counted, not logged/);
    expect(lines[0]!.fields?.rateLimited).toBeUndefined();
  });

  it('counts each message on its own', () => {
    const { lines, log } = setup();
    for (let i = 0; i < 5; i++) {
      log.warn('a');
      log.info('b');
    }
    expect(lines.filter((l) => l.message === 'a')).toHaveLength(3);
    expect(lines.filter((l) => l.message === 'b')).toHaveLength(3);
  });

  it('opens a new window after windowMs and reports what the last one dropped', () => {
    const { lines, log, advance } = setup();
    for (let i = 0; i < 7; i++) log.info('device reset by the guest');
    advance(999);
    log.info('device reset by the guest');
    expect(lines).toHaveLength(3);
    advance(1);
    log.info('device reset by the guest', { resetRequest: 9 });
    expect(lines.at(-1)).toEqual({ level: 'info', message: 'device reset by the guest', fields: { resetRequest: 9, droppedBefore: 5 } });
    advance(1000);
    log.info('device reset by the guest');
    expect(lines.at(-1)!.fields).toEqual({});
  });

  it('never drops errors', () => {
    const { lines, log } = setup();
    for (let i = 0; i < 10; i++) log.error('management core failed');
    expect(lines).toHaveLength(10);
  });
});
