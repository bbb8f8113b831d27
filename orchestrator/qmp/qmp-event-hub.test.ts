import { describe, expect, it } from 'vitest';
import { EventHub } from './qmp-event-hub.js';

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe('EventHub', () => {
  it('gives each subscriber every event published after it subscribed', async () => {
    const hub = new EventHub<number>();
    const early = hub.subscribe();
    hub.publish(1);
    const late = hub.subscribe();
    hub.publish(2);
    hub.publish(3);
    expect(await take(early, 3)).toEqual([1, 2, 3]);
    expect(await take(late, 2)).toEqual([2, 3]);
  });

  it('wakes a waiting consumer and ends all iterators on end()', async () => {
    const hub = new EventHub<string>();
    const sub = hub.subscribe();
    const waiting = sub.next();
    hub.publish('a');
    expect(await waiting).toEqual({ value: 'a', done: false });
    const pending = sub.next();
    hub.end();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await hub.subscribe().next()).toEqual({ value: undefined, done: true });
  });

  it('delivers queued events before reporting the end', async () => {
    const hub = new EventHub<number>();
    const sub = hub.subscribe();
    hub.publish(7);
    hub.end();
    const seen: number[] = [];
    for await (const v of sub) seen.push(v);
    expect(seen).toEqual([7]);
  });

  it('unsubscribes when a for-await loop breaks', async () => {
    const hub = new EventHub<number>();
    const sub = hub.subscribe();
    hub.publish(1);
    for await (const v of sub) {
      expect(v).toBe(1);
      break;
    }
    expect(hub.subscriberCount).toBe(0);
  });

  it('drops the oldest events of a consumer that stopped reading', async () => {
    const hub = new EventHub<number>({ maxQueued: 2 });
    const sub = hub.subscribe();
    for (let i = 0; i < 5; i++) hub.publish(i);
    hub.end();
    expect(await take(sub, 5)).toEqual([3, 4]);
  });
});
