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

/** Modes a guest programs a channel into (SET_MODE); what follows on the channel goes to that mode's service. */
export const MODE = {
  NONE: 0,
  FILE: 1,
  STATS: 2,
  CHAT: 3,
  CALC: 4,
  /** The resident guest agent: file-mode commands, plus requests the host starts (AGENT_COPY). */
  AGENT: 5,
} as const;
export type ModeName = keyof typeof MODE;
export type Mode = (typeof MODE)[ModeName];

/** Message types. A response carries the request's type with RESPONSE_BIT set and the request's id. */
export const MSG_TYPE = {
  /** Echo: the response carries the request's payload back. Any mode. */
  PING: 0x0001,
  /** Payload struct vmgmt_set_mode. Only on a channel in MODE.NONE (reset the channel to change mode). */
  SET_MODE: 0x0002,
  /** File mode. Paths and bulk data live in the channel's data slice, referenced by (offset, length). */
  FILE_OPEN: 0x0101,
  FILE_READ: 0x0102,
  FILE_WRITE: 0x0103,
  FILE_CLOSE: 0x0104,
  FILE_STAT: 0x0105,
  FILE_LIST: 0x0106,
  FILE_MKDIR: 0x0107,
  FILE_REMOVE: 0x0108,
  FILE_HASH: 0x0109,
  /** Core -> agent request (on c2g; the answer comes back on g2c): copy a file between host and guest. */
  AGENT_COPY: 0x0201,
} as const;

/** AGENT_COPY directions. */
export const AGENT_COPY_DIRECTION = {
  /** Read host_path with FILE_OPEN READ, write guest_path in the guest (temp + rename). */
  TO_GUEST: 1,
  /** Read guest_path in the guest, write host_path with FILE_OPEN WRITE + COMMIT. */
  FROM_GUEST: 2,
} as const;

/** Host paths an AGENT_COPY names start with this; they exist only for that copy. */
export const HOST_TRANSFER_PREFIX = '/@vmgmt-transfer/';

/** FILE_OPEN flags. */
export const FILE_OPEN_FLAG = {
  /** Open an existing regular file for FILE_READ. */
  READ: 0x1,
  /** Create a file for FILE_WRITE; it replaces the target only on FILE_CLOSE with COMMIT (temp + rename). */
  WRITE: 0x2,
} as const;

/** FILE_CLOSE flags. */
export const FILE_CLOSE_FLAG = {
  /** For a WRITE handle: fsync and rename into place. Without it the written data is discarded. */
  COMMIT: 0x1,
} as const;

/** FILE_REMOVE flags. */
export const FILE_REMOVE_FLAG = { DIR: 0x1 } as const;

/** File types in vmgmt_file_info.type and vmgmt_dirent.type. */
export const FILE_TYPE = { FILE: 1, DIR: 2, SYMLINK: 3, OTHER: 4 } as const;

/** Longest path a guest may send, in bytes of UTF-8. */
export const MAX_PATH_BYTES = 4096;
export const MSG_RESPONSE_BIT = 0x8000;

/** Status codes carried in msg.status of responses. The driver prints `text` for each. */
export const STATUS = {
  OK: { code: 0, text: 'success' },
  UNKNOWN_TYPE: { code: 1, text: 'unknown message type' },
  BAD_LENGTH: { code: 2, text: 'wrong message length: larger than a ring slot, or not the size the message type needs' },
  RESERVED_NONZERO: { code: 3, text: 'reserved field is not zero' },
  BAD_INDEX: { code: 4, text: 'ring index out of range (moved backwards or further than the ring size)' },
  NEEDS_RESET: { code: 5, text: 'channel needs reset after a protocol error' },
  RING_FULL: { code: 6, text: 'response ring full: the guest is not consuming responses' },
  BAD_RESPONSE: { code: 7, text: 'response to a request that the core never sent' },
  UNKNOWN_MODE: { code: 8, text: 'unknown mode' },
  MODE_UNAVAILABLE: { code: 9, text: 'mode not available for this VM on this host' },
  WRONG_MODE: { code: 10, text: 'command not allowed in the channel\'s mode (set the mode first, or reset the channel to change it)' },
  BAD_BUFFER: { code: 11, text: 'buffer offset or length outside the channel\'s data slice' },
  INTERNAL_ERROR: { code: 12, text: 'the host failed while handling the request (a daemon bug, logged on the host): retry, or report it' },
  NO_FILE_ROOT: { code: 20, text: 'this VM has no host file root configured' },
  BAD_PATH: { code: 21, text: 'path is empty, too long, not UTF-8, or contains a NUL byte' },
  PATH_ESCAPES: { code: 22, text: 'path leaves the VM\'s host root (absolute, .., a symlink or a mount point pointing out)' },
  NOT_FOUND: { code: 23, text: 'no such file or directory' },
  NOT_REGULAR: { code: 24, text: 'not a regular file (a directory, fifo, device or socket)' },
  NOT_DIRECTORY: { code: 25, text: 'not a directory' },
  READ_ONLY: { code: 26, text: 'the VM\'s host root is read-only' },
  QUOTA_EXCEEDED: { code: 27, text: 'the VM\'s quota for bytes in its host root would be exceeded' },
  FILE_TOO_LARGE: { code: 28, text: 'file larger than this VM may store' },
  TOO_MANY_OPEN: { code: 29, text: 'too many open files for this VM' },
  BAD_HANDLE: { code: 30, text: 'no such open file handle on this channel' },
  WRONG_HANDLE_KIND: { code: 31, text: 'handle not opened for this operation (read vs write)' },
  EXISTS: { code: 32, text: 'already exists' },
  NOT_EMPTY: { code: 33, text: 'directory not empty' },
  IS_DIRECTORY: { code: 34, text: 'is a directory' },
  PERMISSION_DENIED: { code: 35, text: 'permission denied on the host' },
  WRITE_PAST_SIZE: { code: 36, text: 'write goes past the size declared when the file was opened' },
  IO_ERROR: { code: 37, text: 'host I/O error' },
  UNSAFE_NAME: { code: 38, text: 'name has a control character, a newline or a leading \'-\' (this VM may not create such names)' },
  HARD_LINKED: { code: 39, text: 'file has more than one hard link (this VM may not use hard-linked files)' },
  TOO_MANY_ENTRIES: { code: 40, text: 'the VM\'s limit on files and directories in its host root would be exceeded' },
} as const;
export type MsgTypeName = keyof typeof MSG_TYPE;
export type MsgType = (typeof MSG_TYPE)[MsgTypeName];
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
  ['data_slice_size', 'u32', 'bytes of the data window per channel: channel N owns [data_offset + N * data_slice_size, + data_slice_size)'],
]);

export const SET_MODE_REQ = defineStruct('vmgmt_set_mode', 'SET_MODE request payload.', 8, [
  ['mode', 'u32', 'MODE'],
  ['reserved', 'u32', 'must be zero'],
]);

/** A path in the channel's data slice; used by FILE_STAT, FILE_MKDIR (arg = mode) and FILE_REMOVE (arg = flags). */
export const FILE_PATH_REQ = defineStruct('vmgmt_file_path', 'Payload of FILE_STAT, FILE_MKDIR and FILE_REMOVE.', 16, [
  ['path_offset', 'u32', 'offset of the UTF-8 path in the channel data slice'],
  ['path_len', 'u32', 'bytes, 1..MAX_PATH_BYTES, no NUL'],
  ['arg', 'u32', 'FILE_MKDIR: permission bits; FILE_REMOVE: FILE_REMOVE_FLAG; FILE_STAT: zero'],
  ['reserved', 'u32', 'must be zero'],
]);

export const FILE_OPEN_REQ = defineStruct('vmgmt_file_open', 'FILE_OPEN request payload.', 24, [
  ['path_offset', 'u32', 'offset of the UTF-8 path in the channel data slice'],
  ['path_len', 'u32', 'bytes, 1..MAX_PATH_BYTES, no NUL'],
  ['flags', 'u32', 'FILE_OPEN_FLAG: exactly one of READ, WRITE'],
  ['mode', 'u32', 'WRITE: permission bits wanted (the host masks them)'],
  ['size', 'u64', 'WRITE: the size the file will have; checked against quotas up front'],
]);

export const FILE_INFO = defineStruct('vmgmt_file_info', 'Response payload of FILE_OPEN and FILE_STAT.', 32, [
  ['handle', 'u32', 'FILE_OPEN: the handle for READ/WRITE/CLOSE/HASH; FILE_STAT: zero'],
  ['type', 'u32', 'FILE_TYPE'],
  ['size', 'u64', 'bytes'],
  ['mtime_ns', 'u64', 'modification time, ns since the epoch'],
  ['mode', 'u32', 'permission bits'],
  ['reserved', 'u32', 'zero'],
]);

export const FILE_IO_REQ = defineStruct('vmgmt_file_io', 'FILE_READ and FILE_WRITE request payload.', 24, [
  ['handle', 'u32', 'from FILE_OPEN on this channel'],
  ['length', 'u32', 'bytes to read or write'],
  ['file_offset', 'u64', 'position in the file'],
  ['buf_offset', 'u32', 'where in the channel data slice the data goes (READ) or comes from (WRITE)'],
  ['reserved', 'u32', 'must be zero'],
]);

export const FILE_IO_RESP = defineStruct('vmgmt_file_io_result', 'FILE_READ and FILE_WRITE response payload.', 8, [
  ['bytes', 'u32', 'bytes read (0 at end of file) or written'],
  ['reserved', 'u32', 'zero'],
]);

export const FILE_HANDLE_REQ = defineStruct('vmgmt_file_handle', 'FILE_CLOSE and FILE_HASH request payload.', 8, [
  ['handle', 'u32', 'from FILE_OPEN on this channel'],
  ['flags', 'u32', 'FILE_CLOSE: FILE_CLOSE_FLAG; FILE_HASH: zero'],
]);

export const FILE_LIST_REQ = defineStruct('vmgmt_file_list', 'FILE_LIST request payload.', 24, [
  ['path_offset', 'u32', 'offset of the directory path in the channel data slice ("." for the root)'],
  ['path_len', 'u32', 'bytes'],
  ['buf_offset', 'u32', 'where the entries go in the data slice'],
  ['buf_len', 'u32', 'room for entries, bytes'],
  ['cookie', 'u32', '0 to start a listing, then next_cookie of the previous response (opaque: snapshot tag << 24 | entry index)'],
  ['reserved', 'u32', 'must be zero'],
]);

export const FILE_LIST_RESP = defineStruct('vmgmt_file_list_result', 'FILE_LIST response payload.', 16, [
  ['count', 'u32', 'entries written'],
  ['bytes', 'u32', 'bytes of the buffer used'],
  ['next_cookie', 'u32', 'cookie for the next call; 0 when the listing is complete'],
  ['reserved', 'u32', 'zero'],
]);

export const DIRENT = defineStruct('vmgmt_dirent', 'One FILE_LIST entry; name_len bytes of name follow, then padding to 8 bytes.', 24, [
  ['size', 'u64', 'bytes'],
  ['mtime_ns', 'u64', 'ns since the epoch'],
  ['mode', 'u32', 'permission bits'],
  ['type', 'u16', 'FILE_TYPE'],
  ['name_len', 'u16', 'bytes of UTF-8 name that follow'],
]);

export const FILE_HASH_RESP_BYTES = 32;

export const AGENT_COPY_REQ = defineStruct('vmgmt_agent_copy', 'AGENT_COPY request payload; host_path_len bytes of host path, then guest_path_len bytes of guest path follow it.', 16, [
  ['direction', 'u32', 'AGENT_COPY_DIRECTION'],
  ['host_path_len', 'u32', 'bytes of the host path (starts with HOST_TRANSFER_PREFIX) after this struct'],
  ['guest_path_len', 'u32', 'bytes of the absolute guest path after the host path'],
  ['reserved', 'u32', 'zero'],
]);

export const CHANNEL = defineStruct('vmgmt_channel', 'Control block at the start of each channel; one cache line.', CACHE_LINE_BYTES, [
  ['owner', 'u32', '0 when free; a guest claims it with compare-and-swap 0 -> nonzero token (its pid)'],
  ['generation', 'u32', 'guest increments on every claim, so a stale owner can tell it lost the channel'],
  ['reset_request', 'u32', 'guest increments to request a channel reset, then rings VECTOR_RING'],
  ['reset_done', 'u32', 'core copies reset_request here when the rings are empty and state is READY'],
  ['state', 'u32', 'CHANNEL_STATE, core-written'],
  ['last_status', 'i32', 'last error status the core raised on this channel (diagnostics)'],
  ['error_count', 'u32', 'protocol errors seen on this channel since the last reset'],
  ['mode', 'u32', 'MODE the channel is in, core-written after SET_MODE; MODE.NONE after a reset'],
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
  /** Requests a channel may have in flight at the core (answers still to come). */
  MAX_IN_FLIGHT_PER_CHANNEL: 32,
} as const;
