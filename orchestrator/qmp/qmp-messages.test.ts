import { describe, expect, it } from 'vitest';
import { formatQmpVersion, parseQmpMessage } from './qmp-messages.js';

describe('parseQmpMessage', () => {
  it('classifies a QEMU 7.2 greeting', () => {
    const result = parseQmpMessage({
      QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'Debian 1:7.2' }, capabilities: ['oob'] },
    });
    expect(result.ok).toBe(true);
    if (result.ok && result.message.kind === 'greeting') expect(formatQmpVersion(result.message.greeting.QMP.version)).toBe('7.2.22');
    else throw new Error('not a greeting');
  });

  it('classifies return, error and event messages', () => {
    expect(parseQmpMessage({ return: {}, id: 1 })).toEqual({ ok: true, message: { kind: 'return', reply: { return: {}, id: 1 } } });
    expect(parseQmpMessage({ id: 'x', error: { class: 'CommandNotFound', desc: 'nope' } })).toEqual({
      ok: true,
      message: { kind: 'error', reply: { id: 'x', error: { class: 'CommandNotFound', desc: 'nope' } } },
    });
    const event = { event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } };
    expect(parseQmpMessage(event)).toEqual({ ok: true, message: { kind: 'event', event } });
  });

  it('rejects malformed messages with a reason naming the problem', () => {
    const noClass = parseQmpMessage({ error: { desc: 'x' }, id: 1 });
    expect(noClass.ok).toBe(false);
    if (!noClass.ok) expect(noClass.reason).toMatch(/malformed error reply.*class/);
    const noTimestamp = parseQmpMessage({ event: 'STOP' });
    expect(noTimestamp.ok).toBe(false);
    if (!noTimestamp.ok) expect(noTimestamp.reason).toMatch(/malformed event.*timestamp/);
    expect(parseQmpMessage([1, 2])).toEqual({ ok: false, reason: 'expected a JSON object, got [1,2]' });
    const unknown = parseQmpMessage({ hello: 1 });
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) expect(unknown.reason).toContain('none of the keys');
  });
});
