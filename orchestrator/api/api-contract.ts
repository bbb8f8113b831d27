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
  })
  .strict();

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

/** `GET /v1/events?kinds=&as=`. */
export const eventsQuerySchema = z
  .object({
    /** Comma-separated EVENT_KINDS; default all. */
    kinds: z.string().optional(),
    /** Registers this host-side chat name for as long as the stream is open: its messages come on it. */
    as: chatName.optional(),
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

export const vmExitInfoSchema = z.object({
  /** Null when the daemon was not running when QEMU ended: "exit status unknown". */
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  at: z.string(),
  reason: z.string(),
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
});
export type VmDeviceInfo = z.infer<typeof vmDeviceInfoSchema>;

/** `GET /v1/vms/:name`, and the answer of create, start, stop and kill. */
export const vmDetailsSchema = vmSummarySchema.extend({
  definition: vmDefinitionSchema,
  paths: vmPathsSchema,
  device: vmDeviceInfoSchema.nullable(),
  stateReason: z.string(),
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

/** What each buffered route answers with on success: a JSON body, plain text, or nothing (204). */
export const ANSWERS = {
  health: { kind: 'json', schema: healthSchema },
  list: { kind: 'json', schema: vmListSchema },
  create: { kind: 'json', schema: vmDetailsSchema },
  inspect: { kind: 'json', schema: vmDetailsSchema },
  start: { kind: 'json', schema: vmDetailsSchema },
  stop: { kind: 'json', schema: vmDetailsSchema },
  kill: { kind: 'json', schema: vmDetailsSchema },
  remove: { kind: 'empty' },
  logs: { kind: 'text' },
  chatPeers: { kind: 'json', schema: chatPeersSchema },
  chatSend: { kind: 'json', schema: chatSendResultSchema },
  chatCall: { kind: 'json', schema: chatCallResultSchema },
  chatReply: { kind: 'json', schema: chatReplyResultSchema },
  chatPolicyCheck: { kind: 'json', schema: chatPolicyCheckSchema },
  'vm-stats': { kind: 'json', schema: vmStatsSchema },
  stats: { kind: 'json', schema: statsListSchema },
} as const satisfies Record<string, { kind: 'json'; schema: z.ZodType } | { kind: 'text' } | { kind: 'empty' }>;
export type BufferedRouteId = keyof typeof ANSWERS;

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
// `data: ENVELOPE-JSON`. `id` counts up per daemon process (it starts again after a restart); `kind` says
// what `data` is. The stream opens with `stream.open`; a client that falls behind by more than the server's
// buffer is sent `stream.dropped` and closed (reconnect and list again); a stopping daemon sends
// `stream.end`. Later kinds (VM state changes, metrics) are new `kind`s in the same envelope; a client
// skips kinds it does not know (decodeEvent says `unknown-kind`), so an older CLI keeps working.

/** Kinds a client may ask for with `?kinds=`; the stream.* kinds are always sent. */
export const EVENT_KINDS = ['chat.presence', 'chat.message'] as const;
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

const envelope = <K extends string, D extends z.ZodType>(kind: K, data: D) =>
  z.object({ id: count, kind: z.literal(kind), at: z.string(), data });

export const apiEventSchema = z.discriminatedUnion('kind', [
  envelope('stream.open', z.object({ kinds: z.array(z.string()), as: z.string().nullable(), maxBufferedBytes: count })),
  envelope('stream.dropped', z.object({ reason: z.string(), bufferedBytes: count, maxBufferedBytes: count })),
  envelope('stream.end', z.object({ reason: z.string() })),
  envelope('chat.presence', chatPresenceEventSchema),
  envelope('chat.message', chatMessageEventSchema),
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
