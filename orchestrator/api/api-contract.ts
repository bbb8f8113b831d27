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

// ---- Checking values against the contract --------------------------------------------------------------

export type ContractCheck<T> = { ok: true; value: T } | { ok: false; problems: FieldProblem[] };

/** A value checked against a schema of this contract: the parsed value, or each field that is wrong and why. */
export function checkContract<S extends z.ZodType>(schema: S, value: unknown): ContractCheck<z.output<S>> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, problems: zodProblems(parsed.error) };
}
