// The control API's contract: every request and answer shape, as zod schemas, in one module. The server
// parses requests with it and checks what it sends against it (a shape that breaks the contract is a bug:
// logged, and answered as INTERNAL); the CLI checks what it receives against it (a mismatch is a
// BAD_RESPONSE naming the field, never a cast). The dashboard is to use it the same way. Pure: zod, the VM
// definition schema (daemon/vm-definition.ts, itself zod and the wire layout) and field-problems.ts; no I/O
// and no daemon internals.
//
// Answers are read tolerantly: fields the contract does not know are dropped, so a newer daemon may add
// fields without breaking an older CLI. Error codes are strings for the same reason; ERROR_CODES lists the
// ones this version sends.
import { z } from 'zod';
import { VM_NAME_PATTERN, vmDefinitionSchema, type VmDefinition, type VmDefinitionInput } from '../daemon/vm-definition.js';
import { describeProblems, type FieldProblem, zodProblems } from './field-problems.js';
import { CHAT_LIMITS, CHAT_NAME_PATTERN } from '../../device-backend/layout/wire-layout.js';

export { describeProblems, VM_NAME_PATTERN, vmDefinitionSchema };
export type { FieldProblem, VmDefinition, VmDefinitionInput };

// ---- Shared values -------------------------------------------------------------------------------------

export const VM_STATES = ['defined', 'starting', 'running', 'paused', 'stopping', 'stopped', 'crashed'] as const;
export type VmStateName = (typeof VM_STATES)[number];
/** The states of a VM with a QEMU process (the state machine's isActive): its logs may still grow. */
export const ACTIVE_VM_STATES: readonly VmStateName[] = ['starting', 'running', 'paused', 'stopping'];

export const LOG_SOURCES = ['console', 'qemu', 'daemon'] as const;
export type LogSource = (typeof LOG_SOURCES)[number];

export const ERROR_CODES = [
  'INVALID_REQUEST',
  'INVALID_DEFINITION',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'INVALID_STATE',
  'TIMEOUT',
  'QEMU_FAILED',
  'AGENT_UNAVAILABLE',
  'GUEST_REFUSED',
  /** The chat hub refused a send, call or reply: details.refusal is the chat code (NOT_ALLOWED, QUEUE_FULL, ...). */
  'CHAT_REFUSED',
  /** The dashboard listener: no token, or not this daemon's. */
  'UNAUTHORIZED',
  /** The dashboard listener: a Host or Origin that is not the listener's own (DNS rebinding, another site). */
  'FORBIDDEN',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The HTTP status of an error answer with each code (a few answers differ: 404 route, 405, 411, 413). */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400,
  INVALID_DEFINITION: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  INVALID_STATE: 409,
  TIMEOUT: 504,
  QEMU_FAILED: 502,
  AGENT_UNAVAILABLE: 503,
  GUEST_REFUSED: 422,
  CHAT_REFUSED: 409,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  INTERNAL: 500,
};

export const isErrorCode = (code: string): code is ErrorCode => (ERROR_CODES as readonly string[]).includes(code);

// ---- Requests ------------------------------------------------------------------------------------------

/** `POST /v1/vms/:name/start` and `/kill`: no body, or `{}`. */
export const emptyBodySchema = z.object({}).strict();

export const MAX_STOP_TIMEOUT_MS = 600_000;

/** `POST /v1/vms/:name/stop`. */
export const stopBodySchema = z.object({ timeoutMs: z.number().int().min(0).max(MAX_STOP_TIMEOUT_MS).optional() }).strict();
export type StopBody = z.infer<typeof stopBodySchema>;

/** Routes that take no query parameters. */
export const noQuerySchema = z.object({}).strict();

/** `DELETE /v1/vms/:name?force=`. */
export const removeQuerySchema = z.object({ force: z.enum(['true', 'false']).optional() }).strict();

/** `GET /v1/vms/:name/logs?source=&tailBytes=`. */
export const logsQuerySchema = z
  .object({
    source: z.enum(LOG_SOURCES).default('console'),
    tailBytes: z
      .string()
      .regex(/^[0-9]{1,12}$/, 'must be a positive whole number of bytes')
      .transform(Number)
      .pipe(z.number().int().min(1))
      .optional(),
    /** `vm logs -f`: what the log holds from this byte on (at most MAX_LOG_CHUNK_BYTES); the answer's LOG_END_HEADER says where to go on. */
    fromByte: z
      .string()
      .regex(/^[0-9]{1,15}$/, 'must be a whole number of bytes')
      .transform(Number)
      .optional(),
  })
  .strict();

/** The byte offset just past the text of a logs answer: the next `fromByte`. */
export const LOG_END_HEADER = 'x-vmgmt-log-end';
/** The VM's state when the logs answer was read: `vm logs -f` ends once it is neither active nor restarting. */
export const LOG_VM_STATE_HEADER = 'x-vmgmt-vm-state';
/** Present when the on-failure policy restarts the crashed VM: when (ISO time). */
export const LOG_RESTART_AT_HEADER = 'x-vmgmt-vm-restart-at';
export const MAX_LOG_CHUNK_BYTES = 1024 * 1024;

export const MAX_GUEST_PATH_BYTES = 4096;

/** A path in the guest: absolute, at most MAX_GUEST_PATH_BYTES of UTF-8, no NUL. */
export const guestPathSchema = z
  .string()
  .min(1, 'is empty: give an absolute path in the guest')
  .refine((p) => !p.includes('\0'), 'must not contain a NUL byte')
  .refine((p) => p.startsWith('/'), 'must be an absolute path (start with /)')
  .refine((p) => new TextEncoder().encode(p).byteLength <= MAX_GUEST_PATH_BYTES, `must be at most ${MAX_GUEST_PATH_BYTES} bytes`);

/** `POST /v1/vms/:name/files/push|pull?guestPath=`. */
export const transferQuerySchema = z.object({ guestPath: guestPathSchema }).strict();

/** `GET /v1/vms/:name/files/tree?guestPath=`: the guest tree `vmgmt cp -r` copies out. */
export const guestTreeSchema = z.object({
  guestPath: z.string(),
  /** Parents before their children; paths are relative, '/'-separated, every component checked by the host. */
  entries: z.array(
    z.object({
      path: z.string().min(1),
      kind: z.enum(['file', 'dir']),
      sizeBytes: z.number().int().min(0),
      mode: z.number().int().min(0).max(0o7777),
    }),
  ),
  /** What was skipped and why: symlinks, fifos, sockets, device nodes, names the host refuses. */
  warnings: z.array(z.string()),
});
export type GuestTreeAnswer = z.infer<typeof guestTreeSchema>;

/** `POST /v1/vms/:name/files/mkdir?guestPath=&mode=` (mode in octal, default 755). */
export const mkdirQuerySchema = z
  .object({ guestPath: guestPathSchema, mode: z.string().regex(/^[0-7]{1,4}$/, 'must be octal permission bits, e.g. 755').optional() })
  .strict();
export const mkdirResultSchema = z.object({ guestPath: z.string() });

/** Download ids are 128 random bits in hex. */
export const TRANSFER_ID_PATTERN = /^[0-9a-f]{32}$/;

// ---- Chat (docs/protocol.md §2.5.5: the host side of the chat hub) ---------------------------------------

/** Chat names and limits are the wire layout's: one truth for the guest, the hub and the API. */
export { CHAT_NAME_PATTERN };
export const MAX_CHAT_MESSAGE_BYTES = CHAT_LIMITS.MAX_MESSAGE_BYTES;
export const MAX_CHAT_CALL_TIMEOUT_MS = CHAT_LIMITS.MAX_CALL_TIMEOUT_MS;
export const DEFAULT_CHAT_CALL_TIMEOUT_MS = 30_000;

const chatName = z.string().regex(CHAT_NAME_PATTERN, `must be 1..${CHAT_LIMITS.MAX_NAME_BYTES} bytes of a-z 0-9 . _ -`);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A message's bytes: `text` (UTF-8) or `dataBase64`, exactly one, at most 64 KiB decoded. */
const chatPayloadFields = {
  text: z.string().optional(),
  dataBase64: z.string().regex(BASE64, 'must be base64').optional(),
};
function checkPayload(v: { text?: string | undefined; dataBase64?: string | undefined }, ctx: z.RefinementCtx): void {
  if ((v.text === undefined) === (v.dataBase64 === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['text'], message: 'give the message as exactly one of text or dataBase64' });
    return;
  }
  const bytes = v.text !== undefined ? new TextEncoder().encode(v.text).byteLength : Math.floor((v.dataBase64!.replace(/=+$/, '').length * 3) / 4);
  if (bytes > MAX_CHAT_MESSAGE_BYTES) ctx.addIssue({ code: 'custom', path: [v.text !== undefined ? 'text' : 'dataBase64'], message: `is ${bytes} bytes: at most ${MAX_CHAT_MESSAGE_BYTES}` });
}

/**
 * `POST /v1/chat/send`: `to` is a chat name (or `host`; `@`, a VM's chat group, is no target for the host,
 * which is in none); `as` is a host-side name this client registered with `GET /v1/events?as=` (default
 * `host`).
 */
export const chatSendBodySchema = z
  .object({ to: chatName, as: chatName.optional(), ...chatPayloadFields })
  .strict()
  .superRefine(checkPayload);
export type ChatSendBody = z.infer<typeof chatSendBodySchema>;

/** `POST /v1/chat/call`. */
export const chatCallBodySchema = z
  .object({
    to: chatName,
    as: chatName.optional(),
    timeoutMs: z.number().int().min(1).max(MAX_CHAT_CALL_TIMEOUT_MS).default(DEFAULT_CHAT_CALL_TIMEOUT_MS),
    ...chatPayloadFields,
  })
  .strict()
  .superRefine(checkPayload);
export type ChatCallBody = z.infer<typeof chatCallBodySchema>;

/** `POST /v1/chat/reply`: answers call `callId` delivered to the host-side name `as` (its event stream's). */
export const chatReplyBodySchema = z
  .object({
    as: chatName,
    callId: z.number().int().min(1).max(0xffffffff),
    status: z.number().int().min(-0x80000000).max(0x7fffffff).default(0),
    ...chatPayloadFields,
  })
  .strict()
  .superRefine(checkPayload);
export type ChatReplyBody = z.infer<typeof chatReplyBodySchema>;

/**
 * `GET /v1/chat/policy/check?from=&to=`: each end is `VM/NAME`, `@host/NAME`, `VM` (a VM's process without
 * a name), or a bare registered chat name when no VM has that name.
 */
const partySpec = z.string().min(1, 'is empty: give VM/NAME, @host/NAME, VM or a registered chat name').max(200);
export const chatPolicyQuerySchema = z.object({ from: partySpec, to: partySpec }).strict();

/** `GET /v1/events?kinds=&as=&vm=&after=`. */
export const eventsQuerySchema = z
  .object({
    /** Comma-separated EVENT_KINDS; default all. */
    kinds: z.string().optional(),
    /** Registers this host-side chat name for as long as the stream is open: its messages come on it. */
    as: chatName.optional(),
    /** Comma-separated VM names: only events about these VMs (events about no VM are left out too). */
    vm: z.string().optional(),
    /** Resume after this event id (as the `Last-Event-ID` header does): buffered events after it come first. */
    after: z.string().regex(/^[0-9]{1,16}$/, 'must be an event id (a whole number)').optional(),
  })
  .strict();

// ---- Answers -------------------------------------------------------------------------------------------

export const fieldProblemSchema = z.object({ path: z.string(), message: z.string() });

/** The body of every error answer, and of a transfer's error event. */
export const errorBodySchema = z.object({
  code: z.string().min(1),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).default({}),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** `GET /v1/health`. */
export const healthSchema = z.object({ ok: z.literal(true), version: z.string() });
export type HealthInfo = z.infer<typeof healthSchema>;

/** `GET /v1/host`: what the daemon decided about this host. */
export const hostInfoSchema = z.object({
  kvmProbe: z.object({
    /** The per-host cache file of the KVM self-probe (shared by every daemon and checkout on the host). */
    cachePath: z.string(),
    /** What the answer is keyed by, as of now; null when it cannot be worked out (why in `problem`). */
    key: z.record(z.string(), z.union([z.string(), z.number()])).nullable(),
    /** The cached answer when it is still valid for this key, else null (`stale` says why). */
    cached: z
      .object({ accel: z.enum(['tcg', 'kvm']), reason: z.string(), probedAt: z.string(), probeDurationMs: z.number() })
      .nullable(),
    stale: z.string().optional(),
    problem: z.string().optional(),
  }),
});
export type HostInfo = z.infer<typeof hostInfoSchema>;

export const vmExitInfoSchema = z.object({
  /** Null when the daemon was not running when QEMU ended: "exit status unknown". */
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  at: z.string(),
  reason: z.string(),
  /** `vm stop`: how the VM went down, and why when the power button was not enough. */
  stoppedBy: z.enum(['powerdown', 'quit', 'kill']).optional(),
  stopNote: z.string().optional(),
  /** A crash: the last lines the guest's console printed. */
  consoleTail: z.string().optional(),
});
export type VmExitInfo = z.infer<typeof vmExitInfoSchema>;

export const vmSummarySchema = z.object({
  name: z.string().regex(VM_NAME_PATTERN),
  uuid: z.string().min(1),
  state: z.enum(VM_STATES),
  pid: z.number().int().positive().nullable(),
  accel: z.enum(['tcg', 'kvm']).nullable(),
  startedAt: z.string().nullable(),
  restarts: z.number().int().min(0),
  lastExit: vmExitInfoSchema.nullable(),
  /** Why this accelerator: the KVM self-probe's answer, or that it was requested. */
  accelReason: z.string().nullable().optional(),
  /** When the on-failure restart policy gave up (maxRestarts reached); null or absent while it has not. */
  restartGaveUpAt: z.string().nullable().optional(),
});
export type VmSummary = z.infer<typeof vmSummarySchema>;

export const vmPathsSchema = z.object({
  runDir: z.string(),
  qmpSocket: z.string(),
  consoleSocket: z.string(),
  consoleLog: z.string(),
  qemuLog: z.string(),
  controlSocket: z.string(),
  ivshmemSocket: z.string(),
});
export type VmPaths = z.infer<typeof vmPathsSchema>;

const count = z.number().int().min(0);

export const vmDeviceInfoSchema = z.object({
  attached: z.boolean(),
  /** 'fresh' when the region was created by this daemon process, 'reattached' after a daemon restart. */
  origin: z.enum(['fresh', 'reattached']),
  regionSizeBytes: count,
  messages: count,
  protocolErrors: count,
  doorbells: count,
  /** Requests a service failed on (answered INTERNAL_ERROR). */
  serviceFailures: count.optional(),
  /** What each service counted (service → name → count): copies, bytes, refusals, claims. */
  services: z.record(z.string(), z.record(z.string(), count)).optional(),
  /** Channel resets the guest asked for, and device resets. */
  channelResets: count.optional(),
  deviceResets: count.optional(),
  /** Answers sent to the guest's requests by mode, type and status (wire names in lower case; `other` for values the layout does not name). */
  answers: z.array(z.object({ mode: z.string(), type: z.string(), status: z.string(), count })).optional(),
  /** Each channel's share of the counters above, and its mode now (every channel of the device, in order). */
  channels: z
    .array(z.object({ channel: count, mode: z.string(), messages: count, protocolErrors: count, resets: count, answers: z.array(z.object({ status: z.string(), count })) }))
    .optional(),
});
export type VmDeviceInfo = z.infer<typeof vmDeviceInfoSchema>;

/** The VM's network as the daemon sets it up: the mode, the MAC in use, forwards or the tap interface. */
export const vmNetworkInfoSchema = z.object({
  mode: z.enum(['none', 'user', 'bridge', 'tap']),
  mac: z.string().nullable(),
  forwards: z.array(z.object({ protocol: z.enum(['tcp', 'udp']), hostAddress: z.string(), hostPort: count, guestPort: count })).optional(),
  bridge: z.string().optional(),
  ifname: z.string().optional(),
});
/** The guest agent as it reported in (AGENT_HELLO), and the outcome of the last driver update. */
export const vmAgentInfoSchema = z.object({
  version: z.string(),
  pid: count,
  channel: count,
  since: z.string(),
  /** It took over from an older agent in an update. */
  takeover: z.boolean(),
  lastUpdate: z
    .object({
      at: z.string(),
      toVersion: z.string(),
      outcome: z.enum(['updated', 'refused', 'rolled-back', 'failed']),
      reason: z.string().optional(),
      gapMs: z.number().min(0).optional(),
    })
    .nullable(),
});
export type VmAgentInfo = z.infer<typeof vmAgentInfoSchema>;

/** `GET /v1/vms/:name`, and the answer of create, start, stop and kill. */
export const vmDetailsSchema = vmSummarySchema.extend({
  definition: vmDefinitionSchema,
  paths: vmPathsSchema,
  device: vmDeviceInfoSchema.nullable(),
  stateReason: z.string(),
  network: vmNetworkInfoSchema.optional(),
  /** Null while no agent has reported in (booting, or an agent older than AGENT_HELLO). */
  agent: vmAgentInfoSchema.nullable().optional(),
});
export type VmDetails = z.infer<typeof vmDetailsSchema>;

/** `GET /v1/vms`. */
export const vmListSchema = z.object({ vms: z.array(vmSummarySchema) });
export type VmList = z.infer<typeof vmListSchema>;

export const chatPeerSchema = z.object({ vm: z.string().nullable(), name: z.string() });
export type ChatPeer = z.infer<typeof chatPeerSchema>;

/** `GET /v1/chat/peers`: every name the host may talk to. */
export const chatPeersSchema = z.object({ peers: z.array(chatPeerSchema) });
export type ChatPeers = z.infer<typeof chatPeersSchema>;

/** `POST /v1/chat/send`: delivered means in the receiver's ring in guest memory (or handed to a host listener). */
export const chatSendResultSchema = z.object({ to: z.string(), delivered: count, refused: count });
export type ChatSendResult = z.infer<typeof chatSendResultSchema>;

/** A message's bytes in answers and events: base64 always, and text when they are valid UTF-8. */
export const chatDataSchema = z.object({ text: z.string().nullable(), dataBase64: z.string() });

/** The bytes of a message in an answer: base64 always, text when they are valid UTF-8. */
export function chatData(data: Uint8Array): { text: string | null; dataBase64: string } {
  let text: string | null;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    text = null;
  }
  return { text, dataBase64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}

/** `POST /v1/chat/call`: the callee's reply and its status (an --exec listener's exit code). */
export const chatCallResultSchema = chatDataSchema.extend({ to: z.string(), status: z.number().int() });
export type ChatCallResult = z.infer<typeof chatCallResultSchema>;

/** `POST /v1/chat/reply`. */
export const chatReplyResultSchema = z.object({ callId: z.number().int(), replied: z.literal(true) });

export const chatPartySchema = z.object({ vm: z.string().nullable(), name: z.string(), group: z.string().nullable() });
const chatSelectorSchema = z.object({ vm: z.string().optional(), name: z.string().optional(), group: z.string().optional() });

/** `GET /v1/chat/policy/check`: which rule (or default) decides, and why. */
export const chatPolicyCheckSchema = z.object({
  from: chatPartySchema,
  to: chatPartySchema,
  allowed: z.boolean(),
  decidedBy: z.discriminatedUnion('kind', [
    z.object({
      kind: z.literal('rule'),
      index: count,
      rule: z.object({ from: chatSelectorSchema, to: chatSelectorSchema, action: z.enum(['allow', 'deny']), note: z.string().optional() }),
    }),
    z.object({ kind: z.literal('default'), name: z.enum(['host', 'same-group', 'cross-group']) }),
  ]),
  reason: z.string(),
});
export type ChatPolicyCheck = z.infer<typeof chatPolicyCheckSchema>;

// ---- Statistics and CPU shares (stats mode, scheduler) ------------------------------------------------

/** `GET /v1/vms/:name/stats?limit=`: the newest `limit` samples (default 60, at most the hour kept). */
export const statsQuerySchema = z
  .object({
    limit: z
      .string()
      .regex(/^[0-9]{1,5}$/, 'must be a whole number of samples')
      .transform(Number)
      .pipe(z.number().int().min(0).max(3600))
      .optional(),
  })
  .strict();

const percent = z.number().min(0).max(100);
const psiFigure = z.number().int().min(0).max(10_000).nullable();

/** One accepted guest record (PSI in hundredths of a percent, avg10). */
export const statsSampleSchema = z.object({
  atMs: z.number().int(),
  seq: count,
  uptimeMs: count,
  cpu: z.object({ user: percent, system: percent, idle: percent, iowait: percent, steal: percent, busy: percent }).nullable(),
  memTotalKiB: count,
  memAvailableKiB: count,
  load: z.tuple([z.number().min(0), z.number().min(0), z.number().min(0)]),
  runnable: count,
  cpus: count,
  psi: z.object({ cpuSome: psiFigure, memSome: psiFigure, memFull: psiFigure, ioSome: psiFigure, ioFull: psiFigure }),
  demand: z.number().int().min(0).max(100).nullable(),
  demandReason: z.string(),
});
export type StatsSampleInfo = z.infer<typeof statsSampleSchema>;

/** What the host measured of the VM's vCPU threads over the scheduler's last period. */
export const hostFiguresSchema = z.object({
  atMs: z.number().int(),
  vcpuPercent: z.number().min(0),
  runDelayPercent: z.number().min(0),
  vcpuThreads: count,
});

/** The share the scheduler gives the VM now, and why. */
export const shareInfoSchema = z.object({
  atMs: z.number().int(),
  weight: z.number().int().min(1),
  baseWeight: z.number().int().min(1),
  capPercent: z.number().int().min(1).nullable(),
  boostLeftMs: z.number().min(0),
  flags: count,
  demand: z.number().int().min(0).max(100).nullable(),
  reason: z.string(),
  /** How it is applied on this host: cgroup-v1 cpu.shares, cgroup-v2 cpu.weight, setpriority, or none (and why). */
  mechanism: z.string(),
});
export type ShareInfo = z.infer<typeof shareInfoSchema>;

export const vmStatsSchema = z.object({
  name: z.string().regex(VM_NAME_PATTERN),
  state: z.enum(VM_STATES),
  intervalMs: z.number().int().min(1),
  policyEnabled: z.boolean(),
  accepted: count,
  refused: count,
  host: hostFiguresSchema.nullable(),
  share: shareInfoSchema.nullable(),
  samples: z.array(statsSampleSchema),
});
export type VmStats = z.infer<typeof vmStatsSchema>;

/** `GET /v1/stats`: every VM with its newest sample only. */
export const statsListSchema = z.object({ vms: z.array(vmStatsSchema) });
export type StatsList = z.infer<typeof statsListSchema>;

// ---- What the daemon sees of each VM now (`vmgmt top`, the dashboard; the metrics read the same) ------

/** One VM's figures now: cumulative counters (a client takes rates between two answers) and the newest sample. */
export const vmFiguresSchema = z.object({
  name: z.string().regex(VM_NAME_PATTERN),
  state: z.enum(VM_STATES),
  restarts: count,
  pid: z.number().int().positive().nullable(),
  /** The QEMU process: user + system CPU seconds of all its threads, and resident memory. */
  process: z.object({ cpuSeconds: z.number().min(0), rssBytes: count }).nullable(),
  /** The guest's newest stats record. */
  guest: z
    .object({
      atMs: z.number().int(),
      cpuBusyPercent: percent.nullable(),
      stealPercent: percent.nullable(),
      demand: z.number().int().min(0).max(100).nullable(),
      memTotalKiB: count,
      memAvailableKiB: count,
    })
    .nullable(),
  /** The scheduler's share now. */
  share: z.object({ weight: z.number().int().min(1), baseWeight: z.number().int().min(1), capPercent: z.number().int().min(1).nullable() }).nullable(),
  /** The vCPU threads' CPU over the scheduler's last period, percent of one host CPU. */
  hostVcpuPercent: z.number().min(0).nullable(),
  /** The management device: messages and doorbells, and bytes its services moved (file, agent copies, chat, calc). */
  device: z.object({ messages: count, doorbells: count, protocolErrors: count, bytes: count }).nullable(),
});
export type VmFigures = z.infer<typeof vmFiguresSchema>;

/** `GET /v1/figures`. */
export const vmFiguresListSchema = z.object({ atMs: z.number().int(), vms: z.array(vmFiguresSchema) });
export type VmFiguresList = z.infer<typeof vmFiguresListSchema>;

/** `GET /v1/dashboard`: where the dashboard and the metrics listen, and the token they need. */
export const dashboardInfoSchema = z.object({
  /** Open this: the token rides in the fragment, which the browser never sends. */
  url: z.string(),
  metricsUrl: z.string(),
  /** The file the token is in (mode 0600): Prometheus' `authorization.credentials_file`. */
  tokenFile: z.string(),
  token: z.string(),
  /** Whether /metrics needs the token (metrics.auth "token") or not ("none"). */
  metricsAuth: z.enum(['token', 'none']),
});
export type DashboardInfo = z.infer<typeof dashboardInfoSchema>;
/** `POST /v1/vms/:name/agent/update`: the new vmgmt-guest (a host path the daemon reads; default: its own build). */
export const agentUpdateBodySchema = z
  .object({
    binary: z.string().startsWith('/').max(4096).optional(),
    /**
     * The sha256 the guest must find in what it received (e.g. from a release manifest). Without it, the
     * digest of the file as the daemon read it. The daemon does not compare it itself: the guest's check
     * covers the whole way, file, copy and staging.
     */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional(),
    /** How long the new agent has to report in before the old one is restored. */
    reportInMs: z.number().int().min(1).max(120_000).optional(),
    /** After reporting in, a crash within this long still rolls back. */
    probationMs: z.number().int().min(0).max(120_000).optional(),
  })
  .strict();
export type AgentUpdateBody = z.infer<typeof agentUpdateBodySchema>;

export const agentUpdateResultSchema = z.object({
  name: z.string(),
  fromVersion: z.string().nullable(),
  toVersion: z.string(),
  pid: count,
  sha256: z.string(),
  bytes: count,
  /** ms from the old agent pausing its interrupt relay to the new agent's hello, measured in the guest. */
  gapMs: z.number().min(0),
  stageMs: z.number().min(0),
  switchMs: z.number().min(0),
  totalMs: z.number().min(0),
});
export type AgentUpdateResult = z.infer<typeof agentUpdateResultSchema>;

/** What each buffered route answers with on success: a JSON body, plain text, or nothing (204). */
export const ANSWERS = {
  health: { kind: 'json', schema: healthSchema },
  list: { kind: 'json', schema: vmListSchema },
  create: { kind: 'json', schema: vmDetailsSchema },
  inspect: { kind: 'json', schema: vmDetailsSchema },
  start: { kind: 'json', schema: vmDetailsSchema },
  stop: { kind: 'json', schema: vmDetailsSchema },
  kill: { kind: 'json', schema: vmDetailsSchema },
  pause: { kind: 'json', schema: vmDetailsSchema },
  resume: { kind: 'json', schema: vmDetailsSchema },
  remove: { kind: 'empty' },
  logs: { kind: 'text' },
  update: { kind: 'json', schema: vmDetailsSchema },
  host: { kind: 'json', schema: hostInfoSchema },
  chatPeers: { kind: 'json', schema: chatPeersSchema },
  chatSend: { kind: 'json', schema: chatSendResultSchema },
  chatCall: { kind: 'json', schema: chatCallResultSchema },
  chatReply: { kind: 'json', schema: chatReplyResultSchema },
  chatPolicyCheck: { kind: 'json', schema: chatPolicyCheckSchema },
  'vm-stats': { kind: 'json', schema: vmStatsSchema },
  stats: { kind: 'json', schema: statsListSchema },
  figures: { kind: 'json', schema: vmFiguresListSchema },
  dashboard: { kind: 'json', schema: dashboardInfoSchema },
  agentUpdate: { kind: 'json', schema: agentUpdateResultSchema },
  tree: { kind: 'json', schema: guestTreeSchema },
  mkdir: { kind: 'json', schema: mkdirResultSchema },
  execResize: { kind: 'empty' },
} as const satisfies Record<string, { kind: 'json'; schema: z.ZodType } | { kind: 'text' } | { kind: 'empty' }>;
export type BufferedRouteId = keyof typeof ANSWERS;

// ---- vm exec (POST /v1/vms/:name/exec) -------------------------------------------------------------------

/**
 * The first line of an exec request's body (JSON, then a newline); the rest of the body is the command's
 * stdin, to its end. The answer is a stream of exec frames (exec-frames.ts).
 */
export const execRequestSchema = z
  .object({
    argv: z.array(z.string().max(65_536)).min(1).max(4096),
    /** NAME=VALUE entries added to the guest agent's environment. */
    env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/, 'NAME=VALUE')).max(4096).default([]),
    cwd: z.string().startsWith('/', 'must be an absolute guest path').max(4096).optional(),
    /** A pseudo-terminal: stdout and stderr are one stream. */
    tty: z.boolean().default(false),
    rows: z.number().int().min(0).max(65_535).default(0),
    cols: z.number().int().min(0).max(65_535).default(0),
    /** SIGKILL after this long; the exit frame says timedOut. */
    timeoutMs: z.number().int().min(1).max(7 * 24 * 3_600_000).optional(),
  })
  .strict();
export type ExecRequest = z.infer<typeof execRequestSchema>;
export type ExecRequestInput = z.input<typeof execRequestSchema>;

export const EXEC_FRAMES_CONTENT_TYPE = 'application/vnd.vmgmt.exec-frames';
/** A --tty exec answer's header: the session's id, for `POST /v1/vms/:name/exec/:id/resize`. */
export const EXEC_ID_HEADER = 'x-vmgmt-exec-id';
export const EXEC_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The body of `POST /v1/vms/:name/exec/:id/resize`: the client's terminal size now. */
export const execResizeBodySchema = z
  .object({
    rows: z.number().int().min(1).max(65_535),
    cols: z.number().int().min(1).max(65_535),
  })
  .strict();
export type ExecResizeBody = z.infer<typeof execResizeBodySchema>;

/** The exit frame's JSON: how the command ended. */
export const execExitSchema = z.object({
  exitCode: z.number().int().min(0).max(255).nullable(),
  signal: z.number().int().min(1).max(64).nullable(),
  timedOut: z.boolean(),
  stdoutBytes: count,
  stderrBytes: count,
  durationMs: z.number().min(0),
});
export type ExecExit = z.infer<typeof execExitSchema>;

// ---- Transfer events (NDJSON lines of push and pull) ---------------------------------------------------

export const TRANSFER_STAGES = ['upload', 'guest'] as const;
export type TransferStage = (typeof TRANSFER_STAGES)[number];

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

export const transferEventSchema = z.discriminatedUnion('event', [
  z.object({ event: z.literal('progress'), stage: z.enum(TRANSFER_STAGES), bytes: count, totalBytes: count }),
  /** push: the guest has the file. */
  z.object({ event: z.literal('done'), bytes: count }),
  /** pull: the file is on the host; fetch it once from `download` (a path of this API). */
  z.object({ event: z.literal('ready'), bytes: count, download: z.string().startsWith('/v1/transfers/') }),
  errorBodySchema.extend({ event: z.literal('error') }),
]);
export type TransferEvent = z.infer<typeof transferEventSchema>;

export type DecodedTransferEvent = { ok: true; event: TransferEvent } | { ok: false; line: string; reason: string };

/** One NDJSON line (without its newline) → an event, or why it is not one. */
export function decodeTransferEvent(line: string): DecodedTransferEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, line, reason: `not JSON: ${(err as Error).message}` };
  }
  const checked = checkContract(transferEventSchema, value);
  return checked.ok ? { ok: true, event: checked.value } : { ok: false, line, reason: `not a transfer event: ${describeProblems(checked.problems)}` };
}

// ---- The event stream (`GET /v1/events`, server-sent events) -------------------------------------------
//
// One envelope for every kind: `{ id, kind, at, data }`, sent as an SSE frame `id: ID`, `event: KIND`,
// `data: ENVELOPE-JSON`. `id` counts up (the daemon starts at its start time in µs, so ids grow across
// restarts); `kind` says what `data` is. The stream opens with `stream.open`; a client that falls behind by more than the server's
// buffer is sent `stream.dropped` and closed (reconnect and list again); a stopping daemon sends
// `stream.end`. Later kinds are new `kind`s in the same envelope; a client
// skips kinds it does not know (decodeEvent says `unknown-kind`), so an older CLI keeps working.

/** Kinds a client may ask for with `?kinds=`; the stream.* kinds are always sent. */
export const EVENT_KINDS = ['chat.presence', 'chat.message', 'vm.state', 'stats.record', 'transfer'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
export const SSE_CONTENT_TYPE = 'text/event-stream';

export const PRESENCE_REASONS = ['registered', 'unregistered', 'process-gone', 'vm-stopped', 'host-left', 'host-unreachable'] as const;

export const chatPresenceEventSchema = z.object({
  event: z.enum(['join', 'leave']),
  reason: z.enum(PRESENCE_REASONS),
  peer: chatPeerSchema,
});
export type ChatPresenceEventData = z.infer<typeof chatPresenceEventSchema>;

export const chatMessageEventSchema = chatDataSchema.extend({
  from: chatPeerSchema,
  /** The host-side name it was sent to: `host`, or the stream's `as` name. */
  to: z.string(),
  broadcast: z.boolean(),
  /** Set for a call: answer it with `POST /v1/chat/reply` (only the stream's `as` name can). */
  callId: z.number().int().min(1).nullable(),
});
export type ChatMessageEventData = z.infer<typeof chatMessageEventSchema>;

/** A VM's lifecycle changed: created (previous null), a state transition, or removed. */
export const vmStateEventSchema = z.object({
  vm: z.string(),
  state: z.enum([...VM_STATES, 'removed']),
  previous: z.enum(VM_STATES).nullable(),
  reason: z.string(),
});
export type VmStateEventData = z.infer<typeof vmStateEventSchema>;

/** A guest's stats record the hub accepted, with the VM's share and host figures as of now. */
export const statsRecordEventSchema = z.object({
  vm: z.string(),
  sample: statsSampleSchema,
  share: shareInfoSchema.nullable(),
  host: hostFiguresSchema.nullable(),
});
export type StatsRecordEventData = z.infer<typeof statsRecordEventSchema>;

/** A copy between host and guest (`vmgmt cp`) started, finished or failed. */
export const transferNoticeSchema = z.object({
  vm: z.string(),
  /** Counts up per daemon process: the started and the finished event of one copy share it. */
  transferId: z.number().int().min(1),
  direction: z.enum(['to-guest', 'from-guest']),
  guestPath: z.string(),
  phase: z.enum(['started', 'done', 'failed']),
  bytes: count,
  error: z.string().nullable(),
});
export type TransferNoticeData = z.infer<typeof transferNoticeSchema>;

/** How a stream that asked to resume (Last-Event-ID or ?after=) was served. */
export const resumeInfoSchema = z.object({
  afterId: count,
  replayed: count,
  /** False when events after afterId were already gone from the buffer (or came from another daemon process): list again. */
  complete: z.boolean(),
});

const envelope = <K extends string, D extends z.ZodType>(kind: K, data: D) =>
  z.object({ id: count, kind: z.literal(kind), at: z.string(), data });

export const apiEventSchema = z.discriminatedUnion('kind', [
  envelope('stream.open', z.object({ kinds: z.array(z.string()), as: z.string().nullable(), maxBufferedBytes: count, vms: z.array(z.string()).nullable().optional(), resume: resumeInfoSchema.nullable().optional() })),
  envelope('stream.dropped', z.object({ reason: z.string(), bufferedBytes: count, maxBufferedBytes: count })),
  envelope('stream.end', z.object({ reason: z.string() })),
  envelope('chat.presence', chatPresenceEventSchema),
  envelope('chat.message', chatMessageEventSchema),
  envelope('vm.state', vmStateEventSchema),
  envelope('stats.record', statsRecordEventSchema),
  envelope('transfer', transferNoticeSchema),
]);
export type ApiEvent = z.infer<typeof apiEventSchema>;
export type ApiEventKind = ApiEvent['kind'];
export type ApiEventData<K extends ApiEventKind> = Extract<ApiEvent, { kind: K }>['data'];

export type DecodedEvent = { ok: true; event: ApiEvent } | { ok: false; kind: 'unknown-kind' | 'invalid'; reason: string };

/** One SSE frame's data (the envelope's JSON) → an event of this contract, or why not. */
export function decodeEvent(dataText: string): DecodedEvent {
  let value: unknown;
  try {
    value = JSON.parse(dataText);
  } catch (err) {
    return { ok: false, kind: 'invalid', reason: `not JSON: ${(err as Error).message}` };
  }
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (typeof kind === 'string' && !apiEventSchema.options.some((o) => o.shape.kind.value === kind)) {
    return { ok: false, kind: 'unknown-kind', reason: `event kind ${kind} is not known to this version` };
  }
  const checked = checkContract(apiEventSchema, value);
  return checked.ok ? { ok: true, event: checked.value } : { ok: false, kind: 'invalid', reason: `not an event of the API: ${describeProblems(checked.problems)}` };
}

// ---- Checking values against the contract --------------------------------------------------------------

export type ContractCheck<T> = { ok: true; value: T } | { ok: false; problems: FieldProblem[] };

/** A value checked against a schema of this contract: the parsed value, or each field that is wrong and why. */
export function checkContract<S extends z.ZodType>(schema: S, value: unknown): ContractCheck<z.output<S>> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, problems: zodProblems(parsed.error) };
}
