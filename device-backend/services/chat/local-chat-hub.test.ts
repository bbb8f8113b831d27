// The hub through its host API alone: the policy read at each send (a config reload applies to the next
// one), and every refusal logged with both ends.
import { describe, expect, it } from 'vitest';
import type { CoreLogger } from '../../core/core-logger.js';
import type { ChatRule } from './chat-policy.js';
import { ChatError } from './chat-error.js';
import { LocalChatHub } from './local-chat-hub.js';

const enc = new TextEncoder();

function recordingLog(): CoreLogger & { entries: { msg: string; fields?: Record<string, unknown> }[] } {
  const entries: { msg: string; fields?: Record<string, unknown> }[] = [];
  const add = (msg: string, fields?: Record<string, unknown>): void => void entries.push(fields ? { msg, fields } : { msg });
  return { entries, info: add, warn: add, error: add };
}

describe('LocalChatHub policy', () => {
  it('reads the rules at each send: new rules apply to the next send', async () => {
    let rules: ChatRule[] = [];
    const hub = new LocalChatHub({ log: recordingLog(), policy: () => ({ rules }) });
    const got: string[] = [];
    hub.registerHost('b', (m) => void got.push(new TextDecoder().decode(m.data)));
    const a = hub.registerHost('a', () => {});
    expect(await a.send('b', enc.encode('one'))).toEqual({ ok: true, delivered: 1, refused: 0 });
    rules = [{ from: { name: 'a' }, to: { name: 'b' }, action: 'deny', note: 'a may not reach b' }];
    expect(await a.send('b', enc.encode('two'))).toMatchObject({ ok: false, code: 'NOT_ALLOWED' });
    expect(a.peers().map((p) => p.name)).not.toContain('b');
    expect(hub.explain({ vm: null, name: 'a', group: undefined }, { vm: null, name: 'b', group: undefined }).reason).toBe('rule 0 (a may not reach b): deny');
    rules = [];
    expect(await a.send('b', enc.encode('three'))).toMatchObject({ ok: true });
    expect(got).toEqual(['one', 'three']);
  });

  it('logs every refusal with both ends', async () => {
    const log = recordingLog();
    const hub = new LocalChatHub({ log, policy: { rules: [{ from: { name: 'a' }, to: { name: 'b' }, action: 'deny' }] } });
    hub.registerHost('b', () => {});
    const a = hub.registerHost('a', () => {});
    await a.send('b', enc.encode('x'));
    await a.send('nobody', enc.encode('x'));
    await a.call('b', enc.encode('x'), 1000);
    await a.send('b', new Uint8Array(70_000));
    const refusals = log.entries.filter((e) => e.msg === 'chat refused').map((e) => e.fields);
    expect(refusals).toEqual([
      expect.objectContaining({ from: '@host/a', to: '@host/b', code: 'NOT_ALLOWED' }),
      expect.objectContaining({ from: '@host/a', to: 'nobody', code: 'NO_PEER' }),
      expect.objectContaining({ from: '@host/a', to: '@host/b', code: 'NOT_ALLOWED' }),
      expect.objectContaining({ from: '@host/a', to: 'b', code: 'TOO_LARGE' }),
    ]);
    expect(hub.counters.get('refused_not_allowed')).toBe(2);
  });
});

describe('LocalChatHub host-side handlers', () => {
  it('a handler answers a call with a status, and refuses a message by throwing ChatError', async () => {
    const hub = new LocalChatHub({ log: recordingLog() });
    hub.registerHost('exec', (m) => {
      if (m.callId === 0) throw new ChatError('QUEUE_FULL', 'the listener is too slow');
      return { status: 3, data: enc.encode('three') };
    });
    const a = hub.registerHost('a', () => {});
    expect(await a.call('exec', enc.encode('x'), 1000)).toEqual({ ok: true, status: 3, data: enc.encode('three') });
    expect(await a.send('exec', enc.encode('x'))).toMatchObject({ ok: false, code: 'QUEUE_FULL', reason: 'the listener is too slow' });
  });
});
