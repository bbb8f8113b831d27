import { describe, expect, it } from 'vitest';
import { decodeEvent } from './api-contract.js';
import { ApiEventHub, type EventSink } from './event-hub.js';

/** A sink whose client reads nothing until told: every frame stays buffered. */
function sink(): EventSink & { frames: string[]; ended: boolean; drain(): void } {
  let buffered = 0;
  const s = {
    frames: [] as string[],
    ended: false,
    write(f: string) {
      s.frames.push(f);
      buffered += f.length;
    },
    bufferedBytes: () => buffered,
    end() {
      s.ended = true;
    },
    drain() {
      buffered = 0;
    },
  };
  return s;
}

const events = (frames: string[]) =>
  frames.map((f) => {
    const data = f.split('\n').find((l) => l.startsWith('data: '))!.slice(6);
    const d = decodeEvent(data);
    if (!d.ok) throw new Error(d.reason);
    return d.event;
  });

const presence = { event: 'join', reason: 'registered', peer: { vm: 'a', name: 'bob' } } as const;

describe('ApiEventHub', () => {
  it('opens with stream.open, numbers events, and sends each kind only to who asked', () => {
    const hub = new ApiEventHub({ nowIso: () => '2026-12-01T00:00:00.000Z' });
    const all = sink();
    const onlyMessages = sink();
    hub.subscribe(['chat.presence', 'chat.message'], all);
    hub.subscribe(['chat.message'], onlyMessages, 'ops');
    hub.publish('chat.presence', presence);
    const got = events(all.frames);
    expect(got.map((e) => [e.id, e.kind])).toEqual([[1, 'stream.open'], [3, 'chat.presence']]);
    expect(got[1]).toEqual({ id: 3, kind: 'chat.presence', at: '2026-12-01T00:00:00.000Z', data: presence });
    expect(all.frames[1]).toBe(`id: 3\nevent: chat.presence\ndata: ${JSON.stringify(got[1])}\n\n`);
    expect(events(onlyMessages.frames).map((e) => e.kind)).toEqual(['stream.open']);
    expect(events(onlyMessages.frames)[0]!.data).toEqual({ kinds: ['chat.message'], as: 'ops', maxBufferedBytes: 1024 * 1024, vms: null, resume: null });
  });

  it('drops a client that falls behind with a final stream.dropped, and never buffers past the bound', () => {
    const hub = new ApiEventHub({ maxBufferedBytes: 2000 });
    const slow = sink();
    const fast = sink();
    const closed: string[] = [];
    hub.subscribe(['chat.presence'], slow).onClose((r) => closed.push(r));
    hub.subscribe(['chat.presence'], fast);
    for (let i = 0; i < 100; i++) {
      hub.publish('chat.presence', presence);
      fast.drain();
    }
    const got = events(slow.frames);
    expect(got.at(-1)).toMatchObject({ kind: 'stream.dropped', data: { maxBufferedBytes: 2000 } });
    expect(slow.frames.slice(0, -1).join('').length).toBeLessThanOrEqual(2000);
    expect(slow.ended).toBe(true);
    expect(closed).toEqual(['dropped']);
    expect(hub.subscriberCount).toBe(1);
    expect(events(fast.frames).filter((e) => e.kind === 'chat.presence')).toHaveLength(100);
    expect(hub.counters.dropped).toBe(1);
  });

  it('ends every stream with stream.end when the daemon stops', () => {
    const hub = new ApiEventHub();
    const s = sink();
    hub.subscribe(['chat.message'], s);
    hub.endAll('the daemon is stopping');
    expect(events(s.frames).at(-1)).toMatchObject({ kind: 'stream.end', data: { reason: 'the daemon is stopping' } });
    expect(hub.subscriberCount).toBe(0);
  });

  it('a client skips kinds it does not know', () => {
    expect(decodeEvent(JSON.stringify({ id: 1, kind: 'vm.future', at: 'x', data: {} }))).toMatchObject({ ok: false, kind: 'unknown-kind' });
    expect(decodeEvent(JSON.stringify({ id: 1, kind: 'chat.message', at: 'x', data: {} }))).toMatchObject({ ok: false, kind: 'invalid' });
  });

  const state = (vm: string, to: 'running' | 'stopped') => ({ vm, state: to, previous: to === 'running' ? ('starting' as const) : ('stopping' as const), reason: 'test' });

  it('sends only the VMs a stream asked for', () => {
    const hub = new ApiEventHub();
    const onlyA = sink();
    hub.subscribe(['vm.state', 'chat.presence'], onlyA, { vms: ['a'] });
    hub.publish('vm.state', state('a', 'running'));
    hub.publish('vm.state', state('b', 'running'));
    hub.publish('chat.presence', { ...presence, peer: { vm: null, name: 'ops' } });
    hub.publish('chat.presence', presence);
    expect(events(onlyA.frames).map((e) => [e.kind, e.kind === 'vm.state' ? e.data.vm : e.kind === 'chat.presence' ? e.data.peer.vm : null])).toEqual([
      ['stream.open', null],
      ['vm.state', 'a'],
      ['chat.presence', 'a'],
    ]);
  });

  it('a stream that resumes after the last id it saw gets what it missed, then what is new', () => {
    const hub = new ApiEventHub({ firstId: 1000 });
    const first = sink();
    const sub = hub.subscribe(['vm.state'], first);
    hub.publish('vm.state', state('a', 'running'));
    const lastSeen = events(first.frames).at(-1)!.id;
    sub.close();
    hub.publish('vm.state', state('a', 'stopped'));
    hub.publish('vm.state', state('b', 'running'));
    const again = sink();
    hub.subscribe(['vm.state'], again, { afterId: lastSeen, vms: ['a'] });
    hub.publish('vm.state', state('a', 'running'));
    const got = events(again.frames);
    expect(got[0]).toMatchObject({ kind: 'stream.open', data: { resume: { afterId: lastSeen, replayed: 1, complete: true } } });
    expect(got.slice(1).map((e) => (e.kind === 'vm.state' ? `${e.data.vm} ${e.data.state}` : e.kind))).toEqual(['a stopped', 'a running']);
    expect(got.slice(1).every((e) => e.id > lastSeen)).toBe(true);
  });

  it('the replay buffer is bounded, and a resume past what it still holds says it is not complete', () => {
    const hub = new ApiEventHub({ replayEvents: 5 });
    for (let i = 0; i < 20; i++) hub.publish('vm.state', state('a', i % 2 ? 'running' : 'stopped'));
    expect(hub.replayCount).toBe(5);
    const late = sink();
    hub.subscribe(['vm.state'], late, { afterId: 3 });
    const got = events(late.frames);
    expect(got[0]).toMatchObject({ data: { resume: { afterId: 3, replayed: 5, complete: false } } });
    expect(got.slice(1).map((e) => e.id)).toEqual([16, 17, 18, 19, 20]);
    // An id this hub never gave (another daemon process's) cannot be resumed either.
    const other = sink();
    hub.subscribe(['vm.state'], other, { afterId: 9_999_999 });
    expect(events(other.frames)[0]).toMatchObject({ data: { resume: { replayed: 0, complete: false } } });
    const byBytes = new ApiEventHub({ replayBytes: 1000 });
    for (let i = 0; i < 50; i++) byBytes.publish('vm.state', state('a', 'running'));
    expect(byBytes.replayCount).toBeLessThan(10);
  });

  it('replays a message to host only to streams without a name of their own', () => {
    const hub = new ApiEventHub();
    const msg = { from: { vm: 'a', name: 'x' }, to: 'host', broadcast: false, callId: null, text: 'hi', dataBase64: 'aGk=' };
    hub.publish('chat.message', msg, (s) => s.as === undefined);
    const named = sink();
    hub.subscribe(['chat.message'], named, { as: 'ops', afterId: 0 });
    const plain = sink();
    hub.subscribe(['chat.message'], plain, { afterId: 0 });
    expect(events(named.frames).map((e) => e.kind)).toEqual(['stream.open']);
    expect(events(plain.frames).map((e) => e.kind)).toEqual(['stream.open', 'chat.message']);
  });
});
