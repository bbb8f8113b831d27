import { describe, expect, it } from 'vitest';
import { parseCli } from './cli-args.js';
import { formatEventLine } from './event-format.js';

const parse = (...argv: string[]) => parseCli(argv, {});

describe('vmgmt events, top, dashboard', () => {
  it('parses each with its options', () => {
    expect(parse('events')).toMatchObject({ ok: true, command: { kind: 'events' } });
    expect(parse('events', '--vm', 'web-1', '--json')).toMatchObject({ ok: true, command: { kind: 'events', vm: 'web-1' }, globals: { json: true } });
    expect(parse('top', '--once', '--json')).toMatchObject({ ok: true, command: { kind: 'top', once: true } });
    expect(parse('dashboard')).toMatchObject({ ok: true, command: { kind: 'dashboard' } });
  });

  it('refuses what does not apply', () => {
    expect(parse('events', '--vm', 'Bad Name')).toMatchObject({ ok: false, message: expect.stringContaining('not a VM name') });
    expect(parse('top', '--json')).toMatchObject({ ok: false, message: expect.stringContaining('needs --once') });
    expect(parse('top', '--vm', 'a')).toMatchObject({ ok: false, message: expect.stringContaining('--vm does not apply') });
    expect(parse('dashboard', 'x')).toMatchObject({ ok: false, message: expect.stringContaining('takes no arguments') });
  });

  it('prints one line per event', () => {
    const at = '2026-12-01T12:00:05.000Z';
    expect(formatEventLine({ id: 1, kind: 'vm.state', at, data: { vm: 'a', state: 'running', previous: 'starting', reason: 'QEMU started' } })).toBe('12:00:05 vm a: starting -> running (QEMU started)\n');
    expect(formatEventLine({ id: 2, kind: 'transfer', at, data: { vm: 'a', transferId: 3, direction: 'to-guest', guestPath: '/tmp/f', phase: 'done', bytes: 10, error: null } })).toBe('12:00:05 copy a #3 to-guest /tmp/f: done, 10 bytes\n');
    expect(formatEventLine({ id: 3, kind: 'stream.end', at, data: { reason: 'x' } })).toBeUndefined();
  });
});
