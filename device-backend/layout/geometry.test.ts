import { describe, expect, it } from 'vitest';
import { channelOffset, computeGeometry, DEFAULT_GEOMETRY, slotsOffset } from './geometry.js';

describe('computeGeometry', () => {
  it('lays channels after the header page and the data window after the channels', () => {
    const r = computeGeometry(DEFAULT_GEOMETRY);
    if (!r.ok) throw new Error(r.reason);
    const g = r.geometry;
    expect(g.channelsOffset).toBe(4096);
    expect(g.channelStrideBytes % 4096).toBe(0);
    expect(slotsOffset(g, 0, 'c2g') + g.ringSlots * g.slotSizeBytes).toBeLessThanOrEqual(channelOffset(g, 1));
    expect(g.dataOffset).toBeGreaterThanOrEqual(channelOffset(g, g.channelCount));
    expect(g.dataOffset + g.dataSizeBytes).toBe(g.regionSizeBytes);
  });

  it.each([
    [{ regionSizeBytes: 3 * 1024 * 1024 }, /power of two/],
    [{ ringSlots: 3 }, /ring slots/],
    [{ slotSizeBytes: 100 }, /multiple of 64/],
    [{ channelCount: 0 }, /channel count/],
    [{ vectors: 0 }, /vector count/],
    [{ regionSizeBytes: 64 * 1024, channelCount: 64 }, /no data window/],
  ])('refuses %o with a reason', (bad, reason) => {
    const r = computeGeometry({ ...DEFAULT_GEOMETRY, ...bad });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it.each([
    [{ regionSizeBytes: 3 * 1024 * 1024 }, 'regionSizeBytes'],
    [{ ringSlots: 3 }, 'ringSlots'],
    [{ slotSizeBytes: 100 }, 'slotSizeBytes'],
    [{ channelCount: 0 }, 'channelCount'],
    [{ vectors: 0 }, 'vectors'],
    [{ regionSizeBytes: 64 * 1024, channelCount: 64 }, 'regionSizeBytes'],
  ])('names the option to change for %o', (bad, field) => {
    expect(computeGeometry({ ...DEFAULT_GEOMETRY, ...bad })).toMatchObject({ ok: false, field });
  });
});
