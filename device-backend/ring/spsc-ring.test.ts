import { describe, expect, it } from 'vitest';
import { RING } from '../layout/wire-layout.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { RingConsumer, RingProducer } from './spsc-ring.js';

const geometry = { ringOffset: 0, slotsOffset: RING.sizeBytes, slots: 4, slotSizeBytes: 64 };
function pair() {
  const mem = new GuestMemory(new ArrayBuffer(RING.sizeBytes + 4 * 64));
  return { mem, prod: new RingProducer(mem, geometry), cons: new RingConsumer(mem, geometry) };
}

describe('SPSC ring', () => {
  it('delivers messages in order and reports space', () => {
    const { prod, cons } = pair();
    expect(cons.peek()).toEqual({ kind: 'empty' });
    for (let i = 0; i < 4; i++) prod.push(new Uint8Array([i]));
    expect(prod.space()).toEqual({ kind: 'space', free: 0 });
    for (let i = 0; i < 4; i++) {
      const p = cons.peek();
      expect(p.kind === 'slot' && p.bytes[0]).toBe(i);
      cons.advance();
    }
    expect(cons.peek()).toEqual({ kind: 'empty' });
    expect(prod.space()).toEqual({ kind: 'space', free: 4 });
  });

  it('refuses to push into a full ring, whatever the caller believed, and writes nothing', () => {
    const { mem, prod } = pair();
    for (let i = 0; i < 4; i++) prod.push(new Uint8Array([i + 1]));
    const before = mem.copyOut(RING.sizeBytes, 4 * 64);
    expect(() => prod.push(new Uint8Array([0xff]))).toThrow(/ring full: no free slot at producer index 4/);
    expect(mem.copyOut(RING.sizeBytes, 4 * 64)).toEqual(before);
    expect(prod.index).toBe(4);
  });

  it('wraps the free-running u32 indices', () => {
    const { mem, prod, cons } = pair();
    mem.storeU32(RING.offsets.prod, 0xfffffffe);
    mem.storeU32(RING.offsets.cons, 0xfffffffe);
    prod.adoptPublishedIndex();
    cons.adoptPublishedIndex();
    for (let i = 0; i < 3; i++) prod.push(new Uint8Array([10 + i]));
    expect(prod.index).toBe(1);
    const seen: number[] = [];
    for (let p = cons.peek(); p.kind === 'slot'; p = cons.peek()) {
      seen.push(p.bytes[0]!);
      cons.advance();
    }
    expect(seen).toEqual([10, 11, 12]);
  });

  it('flags a producer index more than a ring ahead as corrupt', () => {
    const { mem, cons } = pair();
    mem.storeU32(RING.offsets.prod, 5);
    expect(cons.peek()).toMatchObject({ kind: 'corrupt' });
  });

  it('flags a producer index that moved backwards as corrupt', () => {
    const { mem, cons, prod } = pair();
    prod.push(new Uint8Array([1]));
    cons.peek();
    cons.advance();
    mem.storeU32(RING.offsets.prod, 0);
    expect(cons.peek()).toMatchObject({ kind: 'corrupt' });
  });

  it('flags a consumer index past the producer as corrupt', () => {
    const { mem, prod } = pair();
    mem.storeU32(RING.offsets.cons, 3);
    expect(prod.space()).toMatchObject({ kind: 'corrupt' });
  });

  it('does not trust its own published index: the shadow wins', () => {
    const { mem, prod, cons } = pair();
    prod.push(new Uint8Array([1]));
    cons.peek();
    cons.advance();
    mem.storeU32(RING.offsets.cons, 0); // the guest rewrites the consumer index
    expect(cons.peek()).toEqual({ kind: 'empty' });
  });
});
