// The checker the core fuzz relies on: each rule it enforces, so a broken checker cannot pass everything.
import { describe, expect, it } from 'vitest';
import { channelOffset, computeGeometry, dataSliceOffset, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, HEADER, RING } from '../layout/wire-layout.js';
import { AccessCheckedMemory, classify } from './access-checked-memory.js';

const r = computeGeometry({ regionSizeBytes: 256 * 1024, channelCount: 4, ringSlots: 8, slotSizeBytes: 256, vectors: 2 });
if (!r.ok) throw new Error(r.reason);
const g = r.geometry;
const fresh = () => new AccessCheckedMemory(new ArrayBuffer(g.regionSizeBytes), g);

describe('AccessCheckedMemory', () => {
  it('classifies every part of the region, and the gaps between them', () => {
    expect(classify(g, HEADER.offsets.reset_done, 4)).toEqual({ kind: 'header', field: 'reset_done' });
    expect(classify(g, channelOffset(g, 2) + CHANNEL.offsets.state, 4)).toEqual({ kind: 'ctl', channel: 2, field: 'state' });
    expect(classify(g, ringOffset(g, 1, 'c2g') + RING.offsets.cons, 4)).toEqual({ kind: 'ring', channel: 1, dir: 'c2g', field: 'cons' });
    expect(classify(g, slotsOffset(g, 3, 'g2c') + 2 * g.slotSizeBytes, g.slotSizeBytes)).toEqual({ kind: 'slot', channel: 3, dir: 'g2c', index: 2, atStart: true });
    expect(classify(g, dataSliceOffset(g, 1), g.dataSliceBytes)).toEqual({ kind: 'slice', channel: 1 });
    expect(classify(g, dataSliceOffset(g, 1), g.dataSliceBytes + 1).kind).toBe('outside');
    expect(classify(g, slotsOffset(g, 0, 'g2c') + 10, g.slotSizeBytes).kind).toBe('outside'); // straddles two slots
    expect(classify(g, HEADER.sizeBytes, 4).kind).toBe('outside');
    expect(classify(g, channelOffset(g, 0) + g.channelStrideBytes - 4, 4).kind).toBe('outside');
  });

  it('flags writes to guest-owned fields, except resetting them to 0', () => {
    const mem = fresh();
    mem.storeU32(ringOffset(g, 0, 'g2c') + RING.offsets.prod, 0);
    mem.storeU32(channelOffset(g, 0) + CHANNEL.offsets.owner, 0);
    expect(mem.violations).toEqual([]);
    mem.storeU32(ringOffset(g, 0, 'g2c') + RING.offsets.prod, 5);
    mem.storeU32(channelOffset(g, 0) + CHANNEL.offsets.reset_request, 1);
    mem.storeU32(HEADER.offsets.magic, 1);
    expect(mem.violations.length).toBe(3);
  });

  it('flags slot accesses other than copying out a whole g2c slot and writing a c2g slot', () => {
    const mem = fresh();
    mem.copyOut(slotsOffset(g, 1, 'g2c'), g.slotSizeBytes);
    mem.write(slotsOffset(g, 1, 'c2g'), new Uint8Array(16));
    expect(mem.violations).toEqual([]);
    mem.write(slotsOffset(g, 1, 'g2c'), new Uint8Array(16));
    mem.copyOut(slotsOffset(g, 1, 'c2g'), g.slotSizeBytes);
    expect(mem.violations.length).toBe(2);
  });

  it('allows a data slice only to a service handling that channel', () => {
    const mem = fresh();
    mem.copyOut(dataSliceOffset(g, 2), 8);
    expect(mem.violations.length).toBe(1);
    mem.serviceChannel = 2;
    mem.view(dataSliceOffset(g, 2) + 8, 8);
    expect(mem.violations.length).toBe(1);
    mem.copyOut(dataSliceOffset(g, 3), 8);
    mem.loadU32(channelOffset(g, 2));
    expect(mem.violations.length).toBe(3);
  });

  it('flags going back to a channel already left in the same pass, until a device reset is acknowledged', () => {
    const mem = fresh();
    mem.loadU32(channelOffset(g, 1));
    mem.loadU32(channelOffset(g, 2));
    mem.loadU32(channelOffset(g, 1));
    expect(mem.violations.length).toBe(1);
    mem.storeU32(HEADER.offsets.reset_done, 1);
    mem.loadU32(channelOffset(g, 0));
    mem.beginPass();
    mem.loadU32(channelOffset(g, 0));
    expect(mem.violations.length).toBe(1);
  });
});
