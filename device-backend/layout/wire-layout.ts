// The one definition of the management device's wire layout. TypeScript reads it directly; the C header
// guest-driver/include/vmgmt_layout.h is generated from it (generate-c-header.ts) and pins every offset
// with _Static_assert. docs/protocol.md explains it in prose.
import { defineStruct } from './struct-def.js';

export const VMGMT_MAGIC = 0x54474d56; // "VMGT" in little-endian byte order
export const VMGMT_VERSION_MAJOR = 1;
export const VMGMT_VERSION_MINOR = 0;

/** PCI identity of QEMU's ivshmem device (Red Hat / Qumranet vendor id). */
export const PCI_IDS = { VENDOR: 0x1af4, DEVICE: 0x1110 } as const;

/** BAR0 registers of ivshmem-doorbell, byte offsets. */
export const BAR0 = { INTR_MASK: 0, INTR_STATUS: 4, IV_POSITION: 8, DOORBELL: 12 } as const;

/** Doorbell vectors. The guest rings (peer 0, VECTOR_RING) after producing; the core rings the guest likewise. */
export const VECTOR = { RING: 0, CONFIG: 1 } as const;
export const MIN_VECTORS = 1;

/** Device status bits, written by the guest driver (virtio-style), except NEEDS_RESET which the core sets. */
export const DEVICE_STATUS = {
  ACKNOWLEDGE: 0x01,
  DRIVER: 0x02,
  DRIVER_OK: 0x04,
  FEATURES_OK: 0x08,
  NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Feature bits offered in header.host_features; the driver acknowledges a subset in guest_features. */
export const FEATURE = {
  /** Rings carry need_wakeup flags: producers ring the doorbell only when the consumer asked for it. */
  NOTIFY_SUPPRESSION: 1n << 0n,
} as const;
export const HOST_FEATURES = FEATURE.NOTIFY_SUPPRESSION;

/** Channel state, written by the core. */
export const CHANNEL_STATE = {
  /** Not yet reset by the core since it was claimed (or never claimed). */
  IDLE: 0,
  /** Reset done; rings empty; messages flow. */
  READY: 1,
  /** The core saw garbage; it processes nothing on this channel until the owner resets it. */
  NEEDS_RESET: 2,
} as const;

/** Message types. A response carries the request's type with RESPONSE_BIT set and the request's id. */
export const MSG_TYPE = {
  /** Echo: the response carries the request's payload back. */
  PING: 0x0001,
} as const;
export const MSG_RESPONSE_BIT = 0x8000;

/** Status codes carried in msg.status of responses. The driver prints `text` for each. */
export const STATUS = {
  OK: { code: 0, text: 'success' },
  UNKNOWN_TYPE: { code: 1, text: 'unknown message type' },
  BAD_LENGTH: { code: 2, text: 'message length larger than a ring slot allows' },
  RESERVED_NONZERO: { code: 3, text: 'reserved field is not zero' },
  BAD_INDEX: { code: 4, text: 'ring index out of range (moved backwards or further than the ring size)' },
  NEEDS_RESET: { code: 5, text: 'channel needs reset after a protocol error' },
  RING_FULL: { code: 6, text: 'response ring full: the guest is not consuming responses' },
  BAD_RESPONSE: { code: 7, text: 'response to a request that the core never sent' },
} as const;
export type StatusName = keyof typeof STATUS;
export type StatusCode = (typeof STATUS)[StatusName]['code'];

export const CACHE_LINE_BYTES = 64;
export const PAGE_BYTES = 4096;

export const HEADER = defineStruct('vmgmt_header', 'Device header at offset 0 of BAR2. Geometry is written by the core; the driver validates it against the BAR size before use.', 256, [
  ['magic', 'u32', 'VMGMT_MAGIC'],
  ['version_major', 'u16', 'incompatible changes bump this'],
  ['version_minor', 'u16', 'compatible additions bump this'],
  ['header_size', 'u32', 'sizeof(struct vmgmt_header)'],
  ['channel_count', 'u32', 'number of channels'],
  ['region_size', 'u64', 'size of BAR2 in bytes, a power of two'],
  ['host_features', 'u64', 'FEATURE bits the core offers'],
  ['guest_features', 'u64', 'FEATURE bits the driver accepted (subset of host_features)'],
  ['device_status', 'u32', 'DEVICE_STATUS bits; guest-written except NEEDS_RESET'],
  ['reset_request', 'u32', 'guest increments to request a device reset, then rings VECTOR_CONFIG'],
  ['reset_done', 'u32', 'core copies reset_request here when the reset is complete'],
  ['core_generation', 'u32', 'core increments each time it (re)attaches to this region'],
  ['channels_offset', 'u32', 'offset of channel 0 from the start of BAR2'],
  ['channel_stride', 'u32', 'bytes between consecutive channels'],
  ['ring_slots', 'u32', 'slots per ring, a power of two'],
  ['slot_size', 'u32', 'bytes per slot including the message header, a multiple of 64'],
  ['data_offset', 'u64', 'offset of the bulk data window'],
  ['data_size', 'u64', 'size of the bulk data window'],
  ['vectors', 'u32', 'number of doorbell vectors'],
  ['core_peer_id', 'u32', 'ivshmem peer id of the core (0): the Doorbell register target'],
]);

export const CHANNEL = defineStruct('vmgmt_channel', 'Control block at the start of each channel; one cache line.', CACHE_LINE_BYTES, [
  ['owner', 'u32', '0 when free; a guest claims it with compare-and-swap 0 -> nonzero token (its pid)'],
  ['generation', 'u32', 'guest increments on every claim, so a stale owner can tell it lost the channel'],
  ['reset_request', 'u32', 'guest increments to request a channel reset, then rings VECTOR_RING'],
  ['reset_done', 'u32', 'core copies reset_request here when the rings are empty and state is READY'],
  ['state', 'u32', 'CHANNEL_STATE, core-written'],
  ['last_status', 'i32', 'last error status the core raised on this channel (diagnostics)'],
  ['error_count', 'u32', 'protocol errors seen on this channel since the last reset'],
]);

export const RING = defineStruct('vmgmt_ring', 'Ring indices: producer line, then consumer line. Indices are free-running u32; slot = index & (ring_slots - 1).', 2 * CACHE_LINE_BYTES, [
  ['prod', 'u32', 'producer index: next slot the producer will fill (release-store after writing the slot)'],
  ['_pad_prod', 'u8', 'keeps the consumer line on its own cache line', CACHE_LINE_BYTES - 4],
  ['cons', 'u32', 'consumer index: next slot the consumer will read'],
  ['need_wakeup', 'u32', 'consumer sets 1 before it sleeps; producer rings the doorbell only if 1'],
]);

export const MSG_HEADER = defineStruct('vmgmt_msg', 'Header at the start of every ring slot; the payload follows.', 16, [
  ['type', 'u16', 'MSG_TYPE, with MSG_RESPONSE_BIT on responses'],
  ['flags', 'u16', 'reserved, must be zero'],
  ['length', 'u32', 'payload bytes after this header, at most slot_size - 16'],
  ['request_id', 'u32', 'chosen by the requester, echoed in the response'],
  ['status', 'i32', 'STATUS code in responses; zero in requests'],
]);

/** Fixed offsets inside a channel block; the slot arrays' offsets depend on the geometry. */
export const CHANNEL_LAYOUT = {
  CTL: 0,
  RING_G2C: CHANNEL.sizeBytes,
  RING_C2G: CHANNEL.sizeBytes + RING.sizeBytes,
  SLOTS_G2C: CHANNEL.sizeBytes + 2 * RING.sizeBytes,
} as const;

export const LIMITS = {
  MIN_REGION_BYTES: 64 * 1024,
  MAX_REGION_BYTES: 1024 * 1024 * 1024,
  MAX_CHANNELS: 64,
  MAX_RING_SLOTS: 1024,
  MIN_SLOT_BYTES: 64,
  MAX_SLOT_BYTES: 4096,
  MAX_VECTORS: 8,
} as const;
