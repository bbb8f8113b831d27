// Region geometry: where the header, channels, rings and data window sit in BAR2. Pure.
import { CHANNEL_LAYOUT, HEADER, LIMITS, PAGE_BYTES, VECTOR } from './wire-layout.js';

export type Direction = 'g2c' | 'c2g';

export interface GeometryOptions {
  regionSizeBytes: number;
  channelCount: number;
  ringSlots: number;
  slotSizeBytes: number;
  vectors: number;
}

export interface Geometry extends GeometryOptions {
  channelsOffset: number;
  channelStrideBytes: number;
  dataOffset: number;
  dataSizeBytes: number;
  /** Each channel's share of the data window, page aligned. */
  dataSliceBytes: number;
}

export const DEFAULT_GEOMETRY: GeometryOptions = {
  regionSizeBytes: 64 * 1024 * 1024,
  channelCount: 8,
  ringSlots: 64,
  slotSizeBytes: 256,
  vectors: Object.keys(VECTOR).length,
};

/** A refusal names the option to change: the one out of range, or the region when the parts do not fit. */
export type GeometryResult = { ok: true; geometry: Geometry } | { ok: false; field: keyof GeometryOptions; reason: string };

const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
const alignUp = (n: number, align: number): number => Math.ceil(n / align) * align;

export function computeGeometry(opts: GeometryOptions): GeometryResult {
  const { regionSizeBytes, channelCount, ringSlots, slotSizeBytes, vectors } = opts;
  if (!isPowerOfTwo(regionSizeBytes) || regionSizeBytes < LIMITS.MIN_REGION_BYTES || regionSizeBytes > LIMITS.MAX_REGION_BYTES) {
    return { ok: false, field: 'regionSizeBytes', reason: `region size ${regionSizeBytes} must be a power of two between ${LIMITS.MIN_REGION_BYTES} and ${LIMITS.MAX_REGION_BYTES} bytes` };
  }
  if (!Number.isInteger(channelCount) || channelCount < 1 || channelCount > LIMITS.MAX_CHANNELS) {
    return { ok: false, field: 'channelCount', reason: `channel count ${channelCount} must be 1..${LIMITS.MAX_CHANNELS}` };
  }
  if (!isPowerOfTwo(ringSlots) || ringSlots < 2 || ringSlots > LIMITS.MAX_RING_SLOTS) {
    return { ok: false, field: 'ringSlots', reason: `ring slots ${ringSlots} must be a power of two between 2 and ${LIMITS.MAX_RING_SLOTS}` };
  }
  if (!Number.isInteger(slotSizeBytes) || slotSizeBytes % 64 !== 0 || slotSizeBytes < LIMITS.MIN_SLOT_BYTES || slotSizeBytes > LIMITS.MAX_SLOT_BYTES) {
    return { ok: false, field: 'slotSizeBytes', reason: `slot size ${slotSizeBytes} must be a multiple of 64 between ${LIMITS.MIN_SLOT_BYTES} and ${LIMITS.MAX_SLOT_BYTES}` };
  }
  if (!Number.isInteger(vectors) || vectors < 1 || vectors > LIMITS.MAX_VECTORS) {
    return { ok: false, field: 'vectors', reason: `vector count ${vectors} must be 1..${LIMITS.MAX_VECTORS}` };
  }
  const channelsOffset = alignUp(HEADER.sizeBytes, PAGE_BYTES);
  const channelStrideBytes = alignUp(CHANNEL_LAYOUT.SLOTS_G2C + 2 * ringSlots * slotSizeBytes, PAGE_BYTES);
  const dataOffset = alignUp(channelsOffset + channelCount * channelStrideBytes, 64 * 1024);
  if (dataOffset >= regionSizeBytes) {
    return { ok: false, field: 'regionSizeBytes', reason: `${channelCount} channels of ${channelStrideBytes} bytes leave no data window in a ${regionSizeBytes}-byte region; use a larger region` };
  }
  const dataSizeBytes = regionSizeBytes - dataOffset;
  const dataSliceBytes = Math.floor(dataSizeBytes / channelCount / PAGE_BYTES) * PAGE_BYTES;
  if (dataSliceBytes < PAGE_BYTES) {
    return { ok: false, field: 'regionSizeBytes', reason: `a ${regionSizeBytes}-byte region leaves less than a page of data window per channel for ${channelCount} channels; use a larger region` };
  }
  return { ok: true, geometry: { ...opts, channelsOffset, channelStrideBytes, dataOffset, dataSizeBytes, dataSliceBytes } };
}

export function channelOffset(g: Geometry, channel: number): number {
  return g.channelsOffset + channel * g.channelStrideBytes;
}

export function ringOffset(g: Geometry, channel: number, dir: Direction): number {
  return channelOffset(g, channel) + (dir === 'g2c' ? CHANNEL_LAYOUT.RING_G2C : CHANNEL_LAYOUT.RING_C2G);
}

export function slotsOffset(g: Geometry, channel: number, dir: Direction): number {
  const g2c = channelOffset(g, channel) + CHANNEL_LAYOUT.SLOTS_G2C;
  return dir === 'g2c' ? g2c : g2c + g.ringSlots * g.slotSizeBytes;
}

export function dataSliceOffset(g: Geometry, channel: number): number {
  return g.dataOffset + channel * g.dataSliceBytes;
}
