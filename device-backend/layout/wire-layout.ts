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
  /** One `vmgmt vm exec` process: the agent forks it on EXEC_START; it streams the command's I/O (exec.c). */
  EXEC: 6,
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
  /** Core -> agent request: check a staged new driver binary (sha256, the version it reports) and start it;
   * the agent answers once it has checked, then the new agent reports in with AGENT_HELLO (takeover). */
  AGENT_UPDATE: 0x0202,
  /** Agent -> core request, after every claim: struct vmgmt_agent_hello + the agent's version. */
  AGENT_HELLO: 0x0203,
  /** Agent -> core request: an update the agent started was rolled back, struct vmgmt_agent_update_result + reason. */
  AGENT_UPDATE_RESULT: 0x0204,
  /** Core -> agent request (`vmgmt cp -r` from a VM): payload struct vmgmt_agent_copy with direction FROM_GUEST;
   * the agent lists the guest directory guest_path (not followed if a symlink) as vmgmt_dirent records
   * (types from lstat, each padded to 8 bytes) and writes them to host_path like a from-guest copy. */
  AGENT_LIST: 0x0205,
  /** Core -> agent request (`vmgmt cp -r` to a VM): payload struct vmgmt_agent_mkdir; the agent creates the
   * guest directory (an existing directory is OK; anything else there is EXISTS), answered at once. */
  AGENT_MKDIR: 0x0206,
  /** Chat mode (guest -> core requests). Payload struct vmgmt_chat_name: add a name to this channel. */
  CHAT_REGISTER: 0x0301,
  /** Payload struct vmgmt_chat_name: remove a name of this channel. */
  CHAT_UNREGISTER: 0x0302,
  /** Payload struct vmgmt_chat_send: a message to a name, the host or the sender's chat group. */
  CHAT_SEND: 0x0303,
  /** Payload struct vmgmt_chat_send: a send that waits for the callee's CHAT_REPLY; the answer carries it. */
  CHAT_CALL: 0x0304,
  /** Payload struct vmgmt_chat_reply: the answer to a call this channel received (CHAT_DELIVER with CALL). */
  CHAT_REPLY: 0x0305,
  /** Payload struct vmgmt_chat_list: the peers this channel may talk to, into the data slice. */
  CHAT_PEERS: 0x0306,
  /** Payload struct vmgmt_chat_watch: presence events (CHAT_PRESENCE pushes) on or off for this channel. */
  CHAT_WATCH: 0x0307,
  /** No payload: the guest freed receive-area space the core said it waits for (vmgmt_chat_rx.host_waiting). */
  CHAT_RX_FREED: 0x0308,
  /** Core -> guest push (request id 0): a message or call for a name of this channel, struct vmgmt_chat_deliver. */
  CHAT_DELIVER: 0x0381,
  /** Core -> guest push (request id 0): a peer joined or left, struct vmgmt_chat_presence. */
  CHAT_PRESENCE: 0x0382,
  /** Stats mode (guest -> core request). Payload struct vmgmt_stats_record (versioned, carries its size). */
  STATS_RECORD: 0x0401,
  /** Core -> guest push (request id 0): the interval the host wants records at, struct vmgmt_stats_config. */
  STATS_CONFIG: 0x0481,
  /** Core -> guest push (request id 0): the CPU share the host gives the VM now and why, struct vmgmt_stats_share. */
  STATS_SHARE: 0x0482,
  /** Calculation mode. Payload struct vmgmt_calc_begin + the function's name: a job on this channel. */
  CALC_BEGIN: 0x0501,
  /** Payload struct vmgmt_calc_io: the next input bytes, from the data slice, in order. */
  CALC_INPUT: 0x0502,
  /** Payload struct vmgmt_calc_job: all input given; the answer (vmgmt_calc_result) comes once the result is ready. */
  CALC_RUN: 0x0503,
  /** Payload struct vmgmt_calc_io: output bytes at `offset` into the data slice; the answer is vmgmt_calc_io_result. */
  CALC_OUTPUT: 0x0504,
  /** Payload struct vmgmt_calc_job: the job is done (also dropped on a channel reset). */
  CALC_END: 0x0505,
  /** Payload struct vmgmt_calc_list: the functions this VM may call, vmgmt_calc_entry records into the data slice. */
  CALC_LIST: 0x0506,
  /** Core -> agent request on the agent channel: fork an exec process for a session, struct vmgmt_exec_start. */
  EXEC_START: 0x0601,
  /** Exec mode (guest -> core). Payload struct vmgmt_exec_attach: this channel serves that session; the answer
   * (vmgmt_exec_spec) says where the command line lies in the data slice. */
  EXEC_ATTACH: 0x0602,
  /** Payload struct vmgmt_exec_io: output bytes at buf_offset of the slice; answered once the host has taken
   * them (the back-pressure: the guest reads its pipes only while it has answers). */
  EXEC_OUTPUT: 0x0603,
  /** Payload struct vmgmt_exec_io: ask for up to `length` stdin bytes at buf_offset; answered (vmgmt_exec_io_result)
   * when the host has some, or at end of input. */
  EXEC_INPUT: 0x0604,
  /** Payload struct vmgmt_exec_exit: the command ended; the last request of a session. */
  EXEC_EXIT: 0x0605,
  /** Core -> guest push (request id 0): send a signal to the command (timeout, client gone), struct vmgmt_exec_signal. */
  EXEC_SIGNAL: 0x0681,
  /** Core -> guest push (request id 0): the client's terminal size changed (--tty), struct vmgmt_exec_resize. */
  EXEC_RESIZE: 0x0682,
} as const;

/** Exec mode. */
export const EXEC_LIMITS = {
  /** Bytes of the command line (cwd, argv, env with their NULs) in the data slice. */
  MAX_SPEC_BYTES: 256 * 1024,
  MAX_ARGS: 4096,
} as const;

/** vmgmt_exec_start.flags and vmgmt_exec_spec.flags. */
export const EXEC_FLAG = {
  /** Run the command on a pseudo-terminal (stdout and stderr are one stream, stdout). */
  TTY: 1,
} as const;

/** vmgmt_exec_io.stream. */
export const EXEC_STREAM = { STDIN: 0, STDOUT: 1, STDERR: 2 } as const;

/** Calculation mode limits. */
export const CALC_LIMITS = {
  MAX_FUNCTION_NAME_BYTES: 64,
  /** Input and output of one job: 1 GiB. */
  MAX_JOB_BYTES: 1024 * 1024 * 1024,
  /** A host program's stderr kept for a CALC_PROGRAM_FAILED answer (what fits the slot of it is sent). */
  MAX_STDERR_BYTES: 1024,
  /** A function's one-line description in CALC_LIST. */
  MAX_DESCRIPTION_BYTES: 200,
  /** Arguments the guest gives a declared program (CALC_BEGIN argc), and their bytes with NULs (args_len). */
  MAX_ARGS: 32,
  MAX_ARGS_BYTES: 4096,
} as const;

/** vmgmt_calc_begin.flags. */
export const CALC_FLAG = {
  /** The input's size is not known up front (a pipe): input_size is 0, CALC_RUN ends the input. */
  STREAM_INPUT: 1,
} as const;

/** vmgmt_calc_entry.kind. */
export const CALC_KIND = {
  BUILTIN: 1,
  PROGRAM: 2,
} as const;

/** AGENT_COPY directions. */
export const AGENT_COPY_DIRECTION = {
  /** Read host_path with FILE_OPEN READ, write guest_path in the guest (temp + rename). */
  TO_GUEST: 1,
  /** Read guest_path in the guest, write host_path with FILE_OPEN WRITE + COMMIT. */
  FROM_GUEST: 2,
} as const;

/** AGENT_HELLO flags. */
export const AGENT_HELLO_FLAG = {
  /** This agent took the channels and interrupts over from an older one during an AGENT_UPDATE. */
  TAKEOVER: 0x1,
} as const;

/** Limits of the driver update (AGENT_UPDATE). */
export const AGENT_UPDATE_LIMITS = {
  MAX_VERSION_BYTES: 64,
  MAX_REASON_BYTES: 200,
  /** The largest driver binary the agent takes. */
  MAX_BINARY_BYTES: 64 * 1024 * 1024,
  /** report_in_ms and probation_ms: at most this. */
  MAX_DEADLINE_MS: 120000,
} as const;

/** Host paths an AGENT_COPY names start with this; they exist only for that copy. */
export const HOST_TRANSFER_PREFIX = '/@vmgmt-transfer/';

/** Chat names: 1..CHAT_LIMITS.MAX_NAME_BYTES bytes of a-z 0-9 . _ - (unique on the host). */
export const CHAT_NAME_PATTERN = /^[a-z0-9._-]{1,64}$/;
/** The host's own name as a chat peer (a guest sends to it like to any name). */
export const CHAT_HOST_NAME = 'host';
/** A CHAT_SEND/CHAT_CALL target starting with this is the sender's chat group (a broadcast): "@" alone. */
export const CHAT_BROADCAST_TARGET = '@';

export const CHAT_LIMITS = {
  MAX_NAME_BYTES: 64,
  /** Largest message or reply payload; above it TOO_LARGE. */
  MAX_MESSAGE_BYTES: 64 * 1024,
  /** Names one VM may hold at once (over all its channels). */
  MAX_NAMES_PER_VM: 32,
  /** Longest call timeout a guest may ask for. */
  MAX_CALL_TIMEOUT_MS: 300_000,
  /** Bytes at the start of a chat channel's data slice: struct vmgmt_chat_rx. */
  RX_CONTROL_BYTES: 64,
} as const;

/** vmgmt_chat_send.flags and vmgmt_chat_deliver.flags / vmgmt_chat_call_result.flags. */
export const CHAT_FLAG = {
  /** The data is in the channel's data slice at data_offset (else inline after the struct and strings). */
  IN_SLICE: 0x1,
  /** vmgmt_chat_deliver: a call; answer with CHAT_REPLY carrying call_id. */
  CALL: 0x2,
  /** vmgmt_chat_deliver: sent to the whole chat group (a broadcast), not to this name alone. */
  BROADCAST: 0x4,
} as const;

/** vmgmt_chat_presence.event. */
export const CHAT_PRESENCE_EVENT = { JOIN: 1, LEAVE: 2 } as const;

/** vmgmt_chat_presence.reason. */
export const CHAT_PRESENCE_REASON = {
  REGISTERED: 1,
  UNREGISTERED: 2,
  /** The channel holding the name was reset or reclaimed: the guest process is gone. */
  PROCESS_GONE: 3,
  /** The VM's device closed: the VM stopped or crashed. */
  VM_STOPPED: 4,
  /** A host-side name (registered through the hub's API) went away. */
  HOST_LEFT: 5,
  /** Cluster mode: the name's host stopped renewing its lease (cut off from the broker, or its daemon stopped). */
  HOST_UNREACHABLE: 6,
} as const;

/** vmgmt_chat_peer.flags. */
export const CHAT_PEER_FLAG = { HOST: 0x1, SAME_VM: 0x2 } as const;

/** Stats mode. */
export const STATS_LIMITS = {
  /** vmgmt_stats_record.version this core reads; a newer driver may send a larger record (the core reads the v1 part). */
  RECORD_VERSION: 1,
  /** Bytes of vmgmt_stats_record.reason. */
  MAX_REASON_BYTES: 48,
  /** Bytes of vmgmt_stats_share.reason. */
  MAX_SHARE_REASON_BYTES: 96,
  /** Declared demand 0..100; this value says "none declared". */
  DEMAND_NONE: 255,
  MIN_INTERVAL_MS: 100,
  MAX_INTERVAL_MS: 60_000,
  DEFAULT_INTERVAL_MS: 1000,
} as const;

/** vmgmt_stats_record.psi_present bits: which of /proc/pressure/{cpu,memory,io} the guest kernel has. */
export const STATS_PSI = { CPU: 0x1, MEMORY: 0x2, IO: 0x4 } as const;

/** vmgmt_stats_share.flags. */
export const STATS_SHARE_FLAG = {
  /** The host's scheduling policy is on (else the weight is the base weight, untouched). */
  POLICY_ON: 0x1,
  /** The weight is above the base weight: boost budget is being used. */
  BOOSTED: 0x2,
  /** The boost budget is used up: the VM is held at its base weight until it refills. */
  BUDGET_SPENT: 0x4,
  /** A hard cap (cap_percent) applies. */
  CAPPED: 0x8,
} as const;

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
  HOST_NO_SPACE: { code: 41, text: 'the host file system under the VM\'s root is full (no quota decided this: free space on the host)' },
  GUEST_NO_SPACE: { code: 42, text: 'the guest\'s file system is out of space' },
  STREAM_ORDER: { code: 43, text: 'this host transfer is streamed: it is read (or written) once, in file order, and has no hash' },
  CHAT_BAD_NAME: { code: 50, text: 'bad chat name: 1 to 64 bytes of a-z 0-9 . _ - (or a target that is not a name, host or @)' },
  CHAT_NAME_TAKEN: { code: 51, text: 'chat name already registered on this host (by this or another VM)' },
  CHAT_TOO_MANY_NAMES: { code: 52, text: 'this VM holds as many chat names as it may' },
  CHAT_NO_PEER: { code: 53, text: 'no such chat peer (no one holds that name), or not a name of this channel' },
  CHAT_NOT_ALLOWED: { code: 54, text: 'chat policy does not allow this sender to reach this peer' },
  CHAT_QUEUE_FULL: { code: 55, text: 'the receiver\'s chat queue is full (or this sender\'s share of it), or it did not take the message in time: retry later' },
  CHAT_TOO_LARGE: { code: 56, text: 'chat message larger than 64 KiB, or than the receiver\'s receive area' },
  CHAT_TIMED_OUT: { code: 57, text: 'the callee did not reply in time' },
  CHAT_NO_CALL: { code: 58, text: 'no such call waiting for a reply from this channel (unknown id, timed out, or the caller went away)' },
  CALC_NO_FUNCTION: { code: 70, text: 'no such calculation function on this host (vmgmt-guest calc --list shows the ones this VM may call)' },
  CALC_TOO_LARGE: { code: 71, text: 'calculation input or output larger than the host allows (1 GiB, or the function\'s own output limit)' },
  CALC_BUSY: { code: 72, text: 'busy: a calculation job is already open on this channel, or the host runs as many jobs of this function as it allows (for this VM or host-wide): retry later' },
  CALC_FAILED: { code: 73, text: 'the calculation failed on the host (for example input that is not valid gzip data)' },
  CALC_BAD_JOB: { code: 74, text: 'no such calculation job on this channel, or it is not in the step this request needs' },
  CALC_NOT_ALLOWED: { code: 75, text: 'this VM may not use this calculation function (the host\'s calc allow-list names neither the VM nor its group)' },
  CALC_TIMED_OUT: { code: 76, text: 'the host program did not finish within its time limit and was killed' },
  CALC_PROGRAM_FAILED: { code: 77, text: 'the host program failed (its exit status and the start of its error output follow)' },
  CALC_OUTPUT_BUDGET: { code: 78, text: 'the host holds as much calculation output for this VM as it may (calc.outputBudgetBytes): end other jobs first, or retry later' },
  CALC_BAD_ARGS: { code: 79, text: 'the calculation function does not take these arguments (built-ins take none; a host program takes as many as the host allows, each matching its pattern)' },
  CHAT_PEER_GONE: { code: 59, text: 'the receiver went away before the message reached it (not delivered)' },
  STATS_BAD_VERSION: { code: 60, text: 'stats record of an unknown version, or its size field is smaller than version 1 or differs from the message length' },
  STATS_OUT_OF_RANGE: { code: 61, text: 'stats record has a field out of range (demand above 100, available memory above total, a reserved field not zero, ...)' },
  STATS_COUNTER_BACKWARDS: { code: 62, text: 'stats record has a counter (CPU time, uptime or sequence) that went backwards' },
  EXEC_NO_SESSION: { code: 85, text: 'no exec session with this token on this host (it ended, timed out, or was never started)' },
  EXEC_BAD_STEP: { code: 86, text: 'exec request not valid now (the channel has not attached to a session, attached already, or the command exited)' },
  EXEC_SPAWN_FAILED: { code: 87, text: 'the guest agent could not start an exec process (fork failed, or no free channel)' },
  EXEC_TOO_LARGE: { code: 88, text: 'exec command line larger than the data slice or EXEC_LIMITS allow' },
  STATS_TOO_FREQUENT: { code: 63, text: 'stats records come faster than this VM may send them (see the interval the host pushed)' },
  CHAT_UNREACHABLE: { code: 64, text: 'the chat peer is on another host that cannot be reached now (cut off, or the cluster broker is down); for a send or call without an answer it is unknown whether it arrived' },
  UPDATE_BAD_DIGEST: { code: 80, text: 'the new driver binary in the guest does not have the sha256 the host sent (a corrupt or incomplete copy): nothing was changed' },
  UPDATE_BAD_VERSION: { code: 81, text: 'the new driver binary did not run with --version, or reported another version than the host expects: nothing was changed' },
  UPDATE_BUSY: { code: 82, text: 'an update of the guest agent is in progress already: wait for its outcome' },
  UPDATE_ROLLED_BACK: { code: 83, text: 'the new guest agent crashed or did not report in within its deadline: the old agent was restored and keeps serving' },
  UPDATE_FAILED: { code: 84, text: 'the guest could not carry out the update (bad request, staging, handover or install failed): the old agent keeps serving' },
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

export const AGENT_MKDIR_REQ = defineStruct('vmgmt_agent_mkdir', 'AGENT_MKDIR request payload; path_len bytes of the absolute guest path follow it.', 8, [
  ['mode', 'u32', 'permission bits of a new directory (0..0o7777)'],
  ['path_len', 'u32', 'bytes of the absolute guest path after this struct'],
]);

export const AGENT_UPDATE_REQ = defineStruct('vmgmt_agent_update', 'AGENT_UPDATE request payload; version_len bytes of the expected version, then path_len bytes of the staged binary\'s absolute guest path follow it.', 48, [
  ['sha256', 'u8', 'sha256 of the staged binary', 32],
  ['report_in_ms', 'u32', 'how long the new agent has to report in (AGENT_HELLO answered) before the old one is restored, 1..AGENT_UPDATE_LIMITS.MAX_DEADLINE_MS'],
  ['probation_ms', 'u32', 'after reporting in, a crash of the new agent within this long still rolls back, 0..MAX_DEADLINE_MS'],
  ['version_len', 'u32', 'bytes of the version the binary must report, 1..MAX_VERSION_BYTES'],
  ['path_len', 'u32', 'bytes of the staged binary\'s absolute path, 1..MAX_PATH_BYTES'],
]);

export const AGENT_HELLO_REQ = defineStruct('vmgmt_agent_hello', 'AGENT_HELLO request payload; version_len bytes of the agent\'s version follow it.', 24, [
  ['pid', 'u32', 'the agent\'s process id in the guest'],
  ['flags', 'u32', 'AGENT_HELLO_FLAG'],
  ['prev_pid', 'u32', 'TAKEOVER: the old agent\'s pid; else 0'],
  ['gap_us', 'u32', 'TAKEOVER: microseconds from the old agent stopping its interrupt relay to this hello; else 0'],
  ['version_len', 'u32', 'bytes of version, 1..AGENT_UPDATE_LIMITS.MAX_VERSION_BYTES'],
  ['reserved', 'u32', 'zero'],
]);

export const AGENT_UPDATE_RESULT_REQ = defineStruct('vmgmt_agent_update_result', 'AGENT_UPDATE_RESULT request payload; reason_len bytes of reason (UTF-8) follow it.', 16, [
  ['status', 'i32', 'STATUS code of the outcome: UPDATE_ROLLED_BACK or UPDATE_FAILED'],
  ['new_pid', 'u32', 'the new agent\'s pid (0 if it never started)'],
  ['reason_len', 'u32', 'bytes of reason, 0..AGENT_UPDATE_LIMITS.MAX_REASON_BYTES'],
  ['reserved', 'u32', 'zero'],
]);

export const CHAT_NAME_REQ = defineStruct('vmgmt_chat_name', 'CHAT_REGISTER and CHAT_UNREGISTER payload; name_len bytes of name follow.', 8, [
  ['name_len', 'u32', 'bytes of name after this struct, 1..64'],
  ['reserved', 'u32', 'must be zero'],
]);

export const CHAT_SEND_REQ = defineStruct('vmgmt_chat_send', 'CHAT_SEND and CHAT_CALL payload; from_len bytes of sender name, target_len bytes of target, then (without IN_SLICE) data_len bytes of data follow.', 32, [
  ['flags', 'u32', 'CHAT_FLAG: IN_SLICE only'],
  ['from_len', 'u16', '0: the channel\'s first name (or none); else one of the channel\'s names'],
  ['target_len', 'u16', 'bytes of target: a name, "host", or "@" for the sender VM\'s chat group (SEND only)'],
  ['data_len', 'u32', 'message bytes, at most 64 KiB'],
  ['data_offset', 'u32', 'IN_SLICE: where the data is in the sender\'s data slice'],
  ['timeout_ms', 'u32', 'CALL: how long to wait for the reply, 1..MAX_CALL_TIMEOUT_MS; SEND: zero'],
  ['reply_offset', 'u32', 'CALL: where in the caller\'s slice a reply too large for the answer slot goes'],
  ['reply_cap', 'u32', 'CALL: room at reply_offset, bytes (0: replies must fit the answer slot)'],
  ['reserved', 'u32', 'must be zero'],
]);

export const CHAT_CALL_RESULT = defineStruct('vmgmt_chat_call_result', 'Answer payload of an OK CHAT_CALL; without IN_SLICE data_len bytes of reply follow.', 16, [
  ['flags', 'u32', 'CHAT_FLAG.IN_SLICE when the reply was written at the request\'s reply_offset'],
  ['data_len', 'u32', 'reply bytes'],
  ['reply_status', 'i32', 'what the callee put in vmgmt_chat_reply.status (its own code: 0 by convention for success)'],
  ['reserved', 'u32', 'zero'],
]);

export const CHAT_SEND_RESULT = defineStruct('vmgmt_chat_send_result', 'Answer payload of an OK CHAT_SEND.', 8, [
  ['delivered', 'u32', 'receivers whose ring the message reached (1 for a name; the group\'s count for "@")'],
  ['refused', 'u32', 'broadcast: members not reached (policy, full queue, gone); zero otherwise'],
]);

export const CHAT_REPLY_REQ = defineStruct('vmgmt_chat_reply', 'CHAT_REPLY payload; without IN_SLICE data_len bytes of reply follow.', 24, [
  ['call_id', 'u32', 'from the CHAT_DELIVER of the call'],
  ['flags', 'u32', 'CHAT_FLAG: IN_SLICE only'],
  ['status', 'i32', 'the callee\'s own result code, passed to the caller as reply_status (0 by convention: success)'],
  ['data_len', 'u32', 'reply bytes, at most 64 KiB'],
  ['data_offset', 'u32', 'IN_SLICE: where the reply is in this channel\'s data slice'],
  ['reserved', 'u32', 'must be zero'],
]);

export const CHAT_LIST_REQ = defineStruct('vmgmt_chat_list', 'CHAT_PEERS payload.', 16, [
  ['buf_offset', 'u32', 'where the vmgmt_chat_peer entries go in the data slice'],
  ['buf_len', 'u32', 'room for entries, bytes'],
  ['cookie', 'u32', 'entry index to start at: 0, then next_cookie'],
  ['reserved', 'u32', 'must be zero'],
]);

export const CHAT_LIST_RESULT = defineStruct('vmgmt_chat_list_result', 'Answer payload of CHAT_PEERS.', 16, [
  ['count', 'u32', 'entries written'],
  ['bytes', 'u32', 'bytes of the buffer used'],
  ['next_cookie', 'u32', '0 when the listing is complete'],
  ['reserved', 'u32', 'zero'],
]);

export const CHAT_PEER = defineStruct('vmgmt_chat_peer', 'One CHAT_PEERS entry; vm_len bytes of VM name, then name_len bytes of name follow, then padding to 4 bytes.', 4, [
  ['vm_len', 'u8', 'bytes of VM name ("" for a host-side name)'],
  ['name_len', 'u8', 'bytes of chat name'],
  ['flags', 'u16', 'CHAT_PEER_FLAG'],
]);

export const CHAT_WATCH_REQ = defineStruct('vmgmt_chat_watch', 'CHAT_WATCH payload.', 8, [
  ['on', 'u32', '1: push CHAT_PRESENCE for peers this channel may talk to; 0: stop'],
  ['reserved', 'u32', 'must be zero'],
]);

export const CHAT_DELIVER_MSG = defineStruct('vmgmt_chat_deliver', 'CHAT_DELIVER payload, core-written: from_vm, from_name, to_name follow (from_vm_len + from_name_len + to_name_len bytes), then without IN_SLICE data_len bytes of data.', 24, [
  ['flags', 'u32', 'CHAT_FLAG: IN_SLICE, CALL, BROADCAST'],
  ['call_id', 'u32', 'CALL: the id to put in CHAT_REPLY; zero otherwise'],
  ['from_vm_len', 'u8', 'bytes of the sender VM\'s name as the core knows it ("" for the host)'],
  ['from_name_len', 'u8', 'bytes of the sender\'s registered name ("" when it sent without one)'],
  ['to_name_len', 'u8', 'bytes of the name of this channel it was sent to'],
  ['reserved', 'u8', 'zero'],
  ['data_len', 'u32', 'message bytes'],
  ['data_offset', 'u32', 'IN_SLICE: where the data is in this channel\'s receive area (slice offset)'],
  ['rx_end', 'u32', 'IN_SLICE: store this in vmgmt_chat_rx.guest_tail once the data is copied out'],
]);

export const CHAT_PRESENCE_MSG = defineStruct('vmgmt_chat_presence', 'CHAT_PRESENCE payload, core-written: vm_len bytes of VM name, then name_len bytes of name follow.', 8, [
  ['event', 'u8', 'CHAT_PRESENCE_EVENT'],
  ['reason', 'u8', 'CHAT_PRESENCE_REASON'],
  ['vm_len', 'u8', 'bytes of VM name ("" for the host)'],
  ['name_len', 'u8', 'bytes of chat name'],
  ['reserved', 'u32', 'zero'],
]);

export const CHAT_RX = defineStruct('vmgmt_chat_rx', 'At offset 0 of a chat channel\'s data slice: the receive area [64, slice/2) is written by the core; the second half of the slice is the guest\'s (sends, replies, peer lists).', 64, [
  ['host_head', 'u32', 'core-written: receive-area bytes handed out, free-running'],
  ['guest_tail', 'u32', 'guest-written: rx_end of the last IN_SLICE delivery it copied out'],
  ['host_waiting', 'u32', 'core-written: 1 while a delivery waits for space; the guest then sends CHAT_RX_FREED after freeing'],
  ['_pad', 'u8', 'reserved, zero', 52],
]);

export const STATS_RECORD = defineStruct('vmgmt_stats_record', 'STATS_RECORD payload, version 1. A newer driver may append fields (size grows, version grows); a core reads the fields it knows. CPU times are the guest\'s /proc/stat "cpu" line in USER_HZ ticks.', 208, [
  ['version', 'u16', 'STATS_LIMITS.RECORD_VERSION (1) or later'],
  ['size', 'u16', 'bytes of this record, equal to the message length; at least 208'],
  ['flags', 'u32', 'reserved, zero'],
  ['seq', 'u32', 'sender\'s record counter, grows by at least 1 per record'],
  ['interval_ms', 'u32', 'the interval the guest sends at (what the host pushed, or its default)'],
  ['uptime_ms', 'u64', 'guest CLOCK_BOOTTIME in ms; never goes backwards'],
  ['cpu_user', 'u64', 'ticks'],
  ['cpu_nice', 'u64', 'ticks'],
  ['cpu_system', 'u64', 'ticks'],
  ['cpu_idle', 'u64', 'ticks'],
  ['cpu_iowait', 'u64', 'ticks'],
  ['cpu_irq', 'u64', 'ticks'],
  ['cpu_softirq', 'u64', 'ticks'],
  ['cpu_steal', 'u64', 'ticks (always 0 under TCG)'],
  ['mem_total_kib', 'u64', 'MemTotal'],
  ['mem_available_kib', 'u64', 'MemAvailable, at most mem_total_kib'],
  ['load1_milli', 'u32', 'load average x 1000'],
  ['load5_milli', 'u32', 'load average x 1000'],
  ['load15_milli', 'u32', 'load average x 1000'],
  ['runnable', 'u32', 'procs_running from /proc/stat'],
  ['cpus', 'u32', 'online CPUs, 1..1024'],
  ['psi_present', 'u32', 'STATS_PSI bits: which pressure figures below are meaningful'],
  ['psi_cpu_some', 'u32', 'avg10 x 100 (0..10000)'],
  ['psi_mem_some', 'u32', 'avg10 x 100'],
  ['psi_mem_full', 'u32', 'avg10 x 100'],
  ['psi_io_some', 'u32', 'avg10 x 100'],
  ['psi_io_full', 'u32', 'avg10 x 100'],
  ['demand', 'u8', 'declared demand 0..100, or STATS_LIMITS.DEMAND_NONE (255)'],
  ['reserved', 'u8', 'zero'],
  ['reason_len', 'u16', 'bytes of reason used, 0..48 (UTF-8)'],
  ['demand_left_ms', 'u32', 'how long the declared demand still holds (0xffffffff: until changed)'],
  ['reserved2', 'u32', 'zero'],
  ['reason', 'u8', 'why the demand was declared (reason_len bytes; the rest zero)', 48],
]);

export const STATS_CONFIG_MSG = defineStruct('vmgmt_stats_config', 'STATS_CONFIG payload, core-written.', 8, [
  ['interval_ms', 'u32', 'send a record every interval_ms (STATS_LIMITS.MIN_INTERVAL_MS..MAX_INTERVAL_MS)'],
  ['reserved', 'u32', 'zero'],
]);

export const STATS_SHARE_MSG = defineStruct('vmgmt_stats_share', 'STATS_SHARE payload, core-written: what the host gives the VM now and why.', 128, [
  ['weight', 'u32', 'the CPU weight applied now (cgroup v2 cpu.weight scale, 1..10000; base 100 by default)'],
  ['base_weight', 'u32', 'the weight of the VM\'s definition'],
  ['cap_percent', 'u32', 'hard cap in percent of one host CPU; 0: none'],
  ['boost_left_ms', 'u32', 'boost budget left'],
  ['flags', 'u32', 'STATS_SHARE_FLAG'],
  ['reason_len', 'u32', 'bytes of reason used, 0..96'],
  ['demand', 'u8', 'the demand the decision used (255: none)'],
  ['_pad', 'u8', 'zero', 7],
  ['reason', 'u8', 'the decision in words (reason_len bytes)', 96],
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

export const CALC_BEGIN_REQ = defineStruct('vmgmt_calc_begin', 'CALC_BEGIN request payload; name_len bytes of the function name (a-z 0-9 . _ -) follow it.', 32, [
  ['name_len', 'u32', 'bytes of the function name, 1..CALC_LIMITS.MAX_FUNCTION_NAME_BYTES'],
  ['flags', 'u32', 'CALC_FLAG'],
  ['input_size', 'u64', 'bytes of input that CALC_INPUT will give, at most CALC_LIMITS.MAX_JOB_BYTES; 0 with CALC_FLAG.STREAM_INPUT'],
  ['argc', 'u32', 'arguments for the function, at most CALC_LIMITS.MAX_ARGS (built-ins take none)'],
  ['args_len', 'u32', 'bytes of the arguments in the slice: argc NUL-terminated strings, at most CALC_LIMITS.MAX_ARGS_BYTES; 0 when argc is 0'],
  ['args_offset', 'u32', 'where the arguments start in the data slice'],
  ['reserved', 'u32', 'zero'],
]);

export const CALC_JOB_REQ = defineStruct('vmgmt_calc_job', 'CALC_RUN and CALC_END request payload, and the CALC_BEGIN answer.', 8, [
  ['job', 'u32', 'the job id CALC_BEGIN answered'],
  ['reserved', 'u32', 'zero'],
]);

export const CALC_IO_REQ = defineStruct('vmgmt_calc_io', 'CALC_INPUT and CALC_OUTPUT request payload.', 24, [
  ['job', 'u32', 'the job id'],
  ['length', 'u32', 'bytes to give (INPUT) or to take (OUTPUT)'],
  ['offset', 'u64', 'INPUT: bytes given so far (input goes in order); OUTPUT: where in the output to read'],
  ['buf_offset', 'u32', 'where in the channel data slice the bytes come from (INPUT) or go (OUTPUT)'],
  ['reserved', 'u32', 'zero'],
]);

export const CALC_IO_RESP = defineStruct('vmgmt_calc_io_result', 'CALC_INPUT and CALC_OUTPUT answer payload.', 8, [
  ['bytes', 'u32', 'bytes taken (INPUT) or copied into the slice (OUTPUT; 0 past the end)'],
  ['reserved', 'u32', 'zero'],
]);

export const CALC_RESULT = defineStruct('vmgmt_calc_result', 'CALC_RUN answer payload.', 8, [
  ['output_size', 'u64', 'bytes of output, read with CALC_OUTPUT'],
]);

export const CALC_FAILURE = defineStruct('vmgmt_calc_failure', 'Payload of a CALC_INPUT or CALC_RUN answer with status CALC_PROGRAM_FAILED; stderr_len bytes of the program\'s stderr follow it.', 16, [
  ['exit_code', 'i32', 'the program\'s exit status; -1 when a signal ended it'],
  ['signal', 'u32', 'the signal that ended it (9 for SIGKILL, e.g. the memory limit); 0 when it exited'],
  ['stderr_len', 'u32', 'bytes of stderr that follow: its first ones, at most CALC_LIMITS.MAX_STDERR_BYTES'],
  ['stderr_total', 'u32', 'bytes the program wrote to stderr in all (saturates at 2^32-1)'],
]);

export const CALC_LIST_REQ = defineStruct('vmgmt_calc_list', 'CALC_LIST payload.', 16, [
  ['buf_offset', 'u32', 'where the vmgmt_calc_entry records go in the data slice'],
  ['buf_len', 'u32', 'room for records, bytes'],
  ['cookie', 'u32', 'entry index to start at: 0, then next_cookie'],
  ['reserved', 'u32', 'must be zero'],
]);

export const CALC_LIST_RESULT = defineStruct('vmgmt_calc_list_result', 'Answer payload of CALC_LIST.', 16, [
  ['count', 'u32', 'entries written'],
  ['bytes', 'u32', 'bytes of the buffer used'],
  ['next_cookie', 'u32', '0 when the listing is complete'],
  ['reserved', 'u32', 'zero'],
]);

export const CALC_ENTRY = defineStruct('vmgmt_calc_entry', 'One CALC_LIST record; name_len bytes of name, then desc_len bytes of description (UTF-8, one line) follow, then padding to 4 bytes.', 8, [
  ['name_len', 'u8', 'bytes of the function name'],
  ['kind', 'u8', 'CALC_KIND: built-in or host program'],
  ['desc_len', 'u16', 'bytes of description, at most CALC_LIMITS.MAX_DESCRIPTION_BYTES'],
  ['reserved', 'u32', 'zero'],
]);

export const EXEC_START_REQ = defineStruct('vmgmt_exec_start', 'EXEC_START request payload (on the agent channel).', 24, [
  ['token', 'u8', 'the session: random bytes the exec process gives back in EXEC_ATTACH', 16],
  ['flags', 'u32', 'EXEC_FLAG'],
  ['reserved', 'u32', 'zero'],
]);

export const EXEC_ATTACH_REQ = defineStruct('vmgmt_exec_attach', 'EXEC_ATTACH request payload.', 16, [
  ['token', 'u8', 'the token of the EXEC_START that started this process', 16],
]);

export const EXEC_SPEC = defineStruct('vmgmt_exec_spec', 'EXEC_ATTACH answer: the command line is at offset 0 of the data slice: cwd NUL, argc args each NUL, envc NAME=VALUE each NUL.', 24, [
  ['spec_bytes', 'u32', 'bytes of the command line in the slice, at most EXEC_LIMITS.MAX_SPEC_BYTES'],
  ['argc', 'u32', '1..EXEC_LIMITS.MAX_ARGS'],
  ['envc', 'u32', 'environment entries added to the agent\'s'],
  ['flags', 'u32', 'EXEC_FLAG'],
  ['rows', 'u16', '--tty: terminal rows (0: leave the default)'],
  ['cols', 'u16', '--tty: terminal columns'],
  ['reserved', 'u32', 'zero'],
]);

export const EXEC_IO_REQ = defineStruct('vmgmt_exec_io', 'EXEC_OUTPUT and EXEC_INPUT request payload.', 16, [
  ['stream', 'u32', 'EXEC_STREAM: STDOUT or STDERR for EXEC_OUTPUT, STDIN for EXEC_INPUT'],
  ['length', 'u32', 'OUTPUT: bytes at buf_offset; INPUT: the most the host may put there'],
  ['buf_offset', 'u32', 'where in the channel data slice'],
  ['reserved', 'u32', 'zero'],
]);

export const EXEC_IO_RESP = defineStruct('vmgmt_exec_io_result', 'EXEC_INPUT answer payload.', 8, [
  ['bytes', 'u32', 'stdin bytes the host put at buf_offset'],
  ['eof', 'u32', '1: the input ended (after these bytes)'],
]);

export const EXEC_EXIT_REQ = defineStruct('vmgmt_exec_exit', 'EXEC_EXIT request payload.', 8, [
  ['exit_code', 'i32', 'the exit status (0..255), or -1 when a signal ended the command'],
  ['signal', 'i32', 'the signal that ended it, or 0'],
]);

export const EXEC_SIGNAL_MSG = defineStruct('vmgmt_exec_signal', 'EXEC_SIGNAL push payload.', 8, [
  ['signal', 'u32', 'a signal number (SIGTERM 15, SIGKILL 9, SIGINT 2, ...)'],
  ['reserved', 'u32', 'zero'],
]);

export const EXEC_RESIZE_MSG = defineStruct('vmgmt_exec_resize', 'EXEC_RESIZE push payload.', 8, [
  ['rows', 'u16', 'terminal rows'],
  ['cols', 'u16', 'terminal columns'],
  ['reserved', 'u32', 'zero'],
]);

/** Every wire struct, in the order the C header declares them: the generator and the layout tests use this list. */
export const WIRE_STRUCTS = [
  HEADER, CHANNEL, RING, MSG_HEADER, SET_MODE_REQ,
  FILE_PATH_REQ, FILE_OPEN_REQ, FILE_INFO, FILE_IO_REQ, FILE_IO_RESP, FILE_HANDLE_REQ, FILE_LIST_REQ, FILE_LIST_RESP, DIRENT,
  AGENT_COPY_REQ, AGENT_MKDIR_REQ,
  AGENT_UPDATE_REQ, AGENT_HELLO_REQ, AGENT_UPDATE_RESULT_REQ,
  CHAT_NAME_REQ, CHAT_SEND_REQ, CHAT_CALL_RESULT, CHAT_SEND_RESULT, CHAT_REPLY_REQ, CHAT_LIST_REQ, CHAT_LIST_RESULT, CHAT_PEER, CHAT_WATCH_REQ, CHAT_DELIVER_MSG, CHAT_PRESENCE_MSG, CHAT_RX,
  STATS_RECORD, STATS_CONFIG_MSG, STATS_SHARE_MSG,
  CALC_BEGIN_REQ, CALC_JOB_REQ, CALC_IO_REQ, CALC_IO_RESP, CALC_RESULT, CALC_FAILURE, CALC_LIST_REQ, CALC_LIST_RESULT, CALC_ENTRY,
  EXEC_START_REQ, EXEC_ATTACH_REQ, EXEC_SPEC, EXEC_IO_REQ, EXEC_IO_RESP, EXEC_EXIT_REQ, EXEC_SIGNAL_MSG, EXEC_RESIZE_MSG,
] as const;
