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
    expect(events(onlyMessages.frames)[0]!.data).toEqual({ kinds: ['chat.message'], as: 'ops', maxBufferedBytes: 1024 * 1024 });
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
    expect(decodeEvent(JSON.stringify({ id: 1, kind: 'vm.state', at: 'x', data: {} }))).toMatchObject({ ok: false, kind: 'unknown-kind' });
    expect(decodeEvent(JSON.stringify({ id: 1, kind: 'chat.message', at: 'x', data: {} }))).toMatchObject({ ok: false, kind: 'invalid' });
  });
});
