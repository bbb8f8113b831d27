// Writing and checking the device header at offset 0 of the region. Pure.
import type { Geometry } from '../layout/geometry.js';
import { HEADER, HOST_FEATURES, VMGMT_MAGIC, VMGMT_VERSION_MAJOR, VMGMT_VERSION_MINOR } from '../layout/wire-layout.js';
import type { GuestMemory } from '../memory/guest-memory.js';

const H = HEADER.offsets;

/** Lays out a fresh region: zero everything, then publish geometry and features. magic goes last. */
export function writeFreshHeader(mem: GuestMemory, g: Geometry): void {
  mem.fill(0, g.dataOffset);
  mem.storeU64(H.guest_features, 0n);
  mem.storeU32(H.core_generation, 1);
  writeCoreHeaderFields(mem, g);
}

/**
 * Writes every header field the core owns (geometry, features offered, version, reserved bytes zero),
 * magic last; leaves the guest's fields, the reset counters and core_generation alone. A device reset
 * calls this too, so a guest that scribbled over its header gets a usable device back.
 */
export function writeCoreHeaderFields(mem: GuestMemory, g: Geometry): void {
  mem.storeU32(H.header_size, HEADER.sizeBytes);
  mem.storeU32(H.channel_count, g.channelCount);
  mem.storeU64(H.region_size, BigInt(g.regionSizeBytes));
  mem.storeU64(H.host_features, HOST_FEATURES);
  mem.storeU32(H.channels_offset, g.channelsOffset);
  mem.storeU32(H.channel_stride, g.channelStrideBytes);
  mem.storeU32(H.ring_slots, g.ringSlots);
  mem.storeU32(H.slot_size, g.slotSizeBytes);
  mem.storeU64(H.data_offset, BigInt(g.dataOffset));
  mem.storeU64(H.data_size, BigInt(g.dataSizeBytes));
  mem.storeU32(H.vectors, g.vectors);
  mem.storeU32(H.core_peer_id, 0);
  mem.storeU32(H.data_slice_size, g.dataSliceBytes);
  const reservedEnd = H.data_slice_size + 4;
  mem.fill(reservedEnd, HEADER.sizeBytes - reservedEnd);
  // version_major and version_minor share one aligned 32-bit word.
  mem.storeU32(H.version_major, VMGMT_VERSION_MAJOR | (VMGMT_VERSION_MINOR << 16));
  mem.storeU32(H.magic, VMGMT_MAGIC);
}

/**
 * Checks that a region found again after a daemon restart carries the geometry we expect, so no index
 * or offset is trusted from a region laid out differently. Returns the reason it does not match.
 */
export function checkHeaderGeometry(mem: GuestMemory, g: Geometry): string | undefined {
  const expect: [string, number | bigint, number | bigint][] = [
    ['magic', mem.loadU32(H.magic), VMGMT_MAGIC],
    ['version', mem.loadU32(H.version_major) & 0xffff, VMGMT_VERSION_MAJOR],
    ['channel_count', mem.loadU32(H.channel_count), g.channelCount],
    ['region_size', mem.loadU64(H.region_size), BigInt(g.regionSizeBytes)],
    ['channels_offset', mem.loadU32(H.channels_offset), g.channelsOffset],
    ['channel_stride', mem.loadU32(H.channel_stride), g.channelStrideBytes],
    ['ring_slots', mem.loadU32(H.ring_slots), g.ringSlots],
    ['slot_size', mem.loadU32(H.slot_size), g.slotSizeBytes],
    ['data_offset', mem.loadU64(H.data_offset), BigInt(g.dataOffset)],
    ['data_slice_size', mem.loadU32(H.data_slice_size), g.dataSliceBytes],
  ];
  for (const [name, found, wanted] of expect) {
    if (found !== wanted) return `header field ${name} is ${found}, expected ${wanted}`;
  }
  return undefined;
}
