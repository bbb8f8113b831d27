import { describe, expect, it } from 'vitest';
import { BootGate } from './boot-gate.js';

describe('BootGate', () => {
  it('lets `limit` boots go at once, the rest in order as turns end; a release counts once', async () => {
    let limit = 2;
    const gate = new BootGate(() => limit);
    const order: number[] = [];
    const turns = [0, 1, 2, 3, 4].map((i) => gate.turn().then((release) => (order.push(i), release)));
    const r0 = await turns[0]!;
    await turns[1];
    expect(order).toEqual([0, 1]);
    expect([gate.booting, gate.waiting]).toEqual([2, 3]);
    r0();
    r0();
    await turns[2];
    expect(order).toEqual([0, 1, 2]);
    expect([gate.booting, gate.waiting]).toEqual([2, 2]);
    // A larger limit (a config reload) lets more go at the next release.
    limit = 4;
    (await turns[1]!)();
    await Promise.all(turns);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(gate.booting).toBe(3);
  });
});
