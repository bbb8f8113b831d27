// The daemon's configuration file: JSON at `vmgmt daemon --config PATH`, default /etc/vmgmt/config.json.
// Validated with zod `.strict()`, and its errors reported like a VM definition's: one line per field, each
// with why. A missing default file means every default; a file named with --config must exist. Flags
// (--state-dir, --runtime-dir, --socket or $VMGMT_SOCKET) override the file.
//
// On SIGHUP the daemon reads the file again (LiveDaemonConfig.reload): logLevel, transfers.maxPullBytes, the
// boot section, chat.rules, stats, scheduling, devices.prefaultRegions and the calc section take effect at once (the metrics section needs a restart; the chat policy is evaluated per send; prefaulting applies to devices mapped after the reload); the other fields are in use (directories, the bound socket) and a change to them is
// logged as needing a restart. A file that no longer parses leaves the running config as it was.
//
// One top-level section per subsystem. Sections reserved for later (RESERVED_SECTIONS) are refused by name
// until the version that reads them, so a config written for a newer daemon fails loudly, not silently.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { describeProblems, type FieldProblem, zodProblems } from '../api/field-problems.js';
import { DEFAULT_MAX_PULL_BYTES } from '../api/transfer-store.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';
import { VmgmtError } from './vmgmt-error.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { HOST_VM_SELECTOR, type ChatRule } from '../../device-backend/services/chat/chat-policy.js';
import type { ClusterSettings } from '../../device-backend/services/chat/cluster/cluster-chat-hub.js';
import type { CalcSettings } from '../../device-backend/services/calc/calc-program.js';
import { calcConfigSchema, resolveCalcConfig } from './calc-config.js';

export const DEFAULT_CONFIG_PATH = '/etc/vmgmt/config.json';
export const DEFAULT_STATE_DIR = '/var/lib/vmgmt';
export const DEFAULT_RUNTIME_DIR = '/run/vmgmt';
/** Cap on one file pulled out of a guest (`vmgmt cp VM:PATH ...`): 16 GiB, the transfer store's default. */
export { DEFAULT_MAX_PULL_BYTES };

/** Top-level sections later versions will read, and what for. */
export const RESERVED_SECTIONS = {
} as const;

const absolutePath = z.string().min(1).startsWith('/', 'must be an absolute path');

export const DEFAULT_MAX_TREE_DEPTH = 64;
export const DEFAULT_MAX_TREE_ENTRIES = 100_000;

export const transfersConfigSchema = z
  .object({
    maxPullBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_PULL_BYTES),
    transferDir: absolutePath.optional().describe('default: <runtimeDir>/transfers'),
    /** `vmgmt cp -r` from a VM: the deepest guest directory level taken below the copied one. */
    maxTreeDepth: z.number().int().min(1).max(4096).default(DEFAULT_MAX_TREE_DEPTH),
    /** `vmgmt cp -r` from a VM: the most entries (files, directories, skipped ones) one copy takes. */
    maxTreeEntries: z.number().int().min(1).max(10_000_000).default(DEFAULT_MAX_TREE_ENTRIES),
  })
  .strict();

const chatSelectorValue = z.string().min(1, 'must not be empty (leave the field out to match any)').max(64);
/** Who a chat rule's side matches: every field given must match; {} matches everyone. */
export const chatSelectorSchema = z
  .object({
    vm: chatSelectorValue.describe(`a VM name, or ${HOST_VM_SELECTOR} for host-side names`).optional(),
    name: chatSelectorValue.describe('a chat name').optional(),
    group: chatSelectorValue.describe("a VM's chatGroup").optional(),
    host: chatSelectorValue.describe('cluster mode: the host a party is on (its daemon\'s cluster.host)').optional(),
  })
  .strict();

/** One chat policy rule: ordered, first match wins (docs/protocol.md §2.5.5). */
export const chatRuleSchema = z
  .object({
    from: chatSelectorSchema,
    to: chatSelectorSchema,
    action: z.enum(['allow', 'deny']),
    note: z.string().min(1).max(200).optional(),
  })
  .strict();

export const MAX_CHAT_RULES = 1000;

export const chatConfigSchema = z
  .object({
    /** Ordered; first match wins; then the defaults (host to and from all, same group, else deny). */
    rules: z.array(chatRuleSchema).max(MAX_CHAT_RULES).default([]),
  })
  .strict();

export const bootConfigSchema = z
  .object({
    /** VMs booting at once; more wait their turn, so boots on a small host do not starve each other. */
    maxConcurrent: z.number().int().min(1).max(1024).default(4),
    /** How long a boot may hold its turn: until the guest agent is up, or this long. */
    agentWaitMs: z.number().int().min(1000).max(3_600_000).default(120_000),
  })
  .strict();

export const statsConfigSchema = z
  .object({
    /** How often guests send a stats record (pushed to each guest's stats loop). */
    intervalMs: z.number().int().min(100).max(60_000).default(1000),
  })
  .strict();

export const schedulingConfigSchema = z
  .object({
    /** The CPU scheduling policy (weights from declared demand); off: every VM at its base weight. */
    enabled: z.boolean().default(true),
    /** How often the scheduler measures the vCPU threads and decides. */
    periodMs: z.number().int().min(200).max(60_000).default(1000),
  })
  .strict();

export const devicesConfigSchema = z
  .object({
    /**
     * Map each VM's region with MAP_POPULATE, so all of it is resident in the daemon (and allocated on the
     * host) from the start instead of page by page as it is used: 64 MiB per VM at the default region size.
     * Default false; docs/decisions/device-memory.md has the figures.
     */
    prefaultRegions: z.boolean().default(false),
  })
  .strict();

/** Loopback addresses the metrics and dashboard listener may bind: guests and other hosts reach none of them directly. */
export const LOOPBACK_HOSTS = ['127.0.0.1', '::1', 'localhost'] as const;
export const DEFAULT_METRICS_PORT = 9479;

export const metricsConfigSchema = z
  .object({
    /** The HTTP listener for /metrics and the dashboard (orchestrator/observe/). */
    enabled: z.boolean().default(true),
    host: z.enum(LOOPBACK_HOSTS, { message: `must be a loopback address: ${LOOPBACK_HOSTS.join(', ')}` }).default('127.0.0.1'),
    /** 0: any free port (`vmgmt dashboard` prints the one taken). */
    port: z.number().int().min(0).max(65535).default(DEFAULT_METRICS_PORT),
    /** Whether /metrics needs the bearer token; "none" leaves it open to anyone on the host. The dashboard always needs it. */
    auth: z.enum(['token', 'none']).default('token'),
    tokenFile: absolutePath.optional().describe('default: <stateDir>/dashboard.token'),
  })
  .strict();
/** A daemon's or host's id: a NATS subject token and a cgroup directory name. */
export const daemonIdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be 1 to 32 of a-z 0-9 _ - (starting with a letter or digit)');

/**
 * Cluster mode (docs/decisions/cluster-nats.md): chat names, presence, messages and calls between daemons
 * over a NATS broker. Without the section (and without `vmgmt daemon --cluster URL`) the daemon is alone.
 */
export const clusterConfigSchema = z
  .object({
    /** nats://HOST:PORT of the broker (`--cluster URL` overrides it). */
    url: z.string().regex(/^nats:\/\/[^\s/]+$/, 'must be nats://HOST:PORT').optional(),
    /** This host's name in the cluster (the subjects it may publish on: vmgmt.<host>.>). Default: daemonId, else the machine's hostname. */
    host: daemonIdSchema.optional(),
    /** A file holding this host's NATS nkey seed (SU...), readable by the daemon only; required. */
    credentialsFile: absolutePath,
    /** The JetStream key-value bucket of names and host leases. */
    bucket: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 of A-Z a-z 0-9 _ -').default('vmgmt-chat'),
    /** How often this host renews its lease. */
    heartbeatMs: z.number().int().min(100).max(10_000).default(1000),
    /** A host not heard from for this long is unreachable, and its names are expired by the others. */
    leaseMs: z.number().int().min(500).max(120_000).default(4000),
    /** How long a send to another host waits for its answer before it is UNREACHABLE (a call: its timeout plus this). */
    requestTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
    /** Sends and calls to other hosts waiting for an answer at once; more are QUEUE_FULL. */
    maxInFlight: z.number().int().min(1).max(65_536).default(1024),
  })
  .strict()
  .refine((c) => c.leaseMs >= 2 * c.heartbeatMs, { message: 'leaseMs must be at least twice heartbeatMs', path: ['leaseMs'] });

/** The file as written: every field optional. */
export const daemonConfigFileSchema = z
  .object({
    stateDir: absolutePath.default(DEFAULT_STATE_DIR),
    runtimeDir: absolutePath.default(DEFAULT_RUNTIME_DIR),
    socketPath: absolutePath.optional().describe('default: <runtimeDir>/vmgmt.sock'),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    transfers: transfersConfigSchema.default(transfersConfigSchema.parse({})),
    boot: bootConfigSchema.default(bootConfigSchema.parse({})),
    chat: chatConfigSchema.default(chatConfigSchema.parse({})),
    stats: statsConfigSchema.default(statsConfigSchema.parse({})),
    scheduling: schedulingConfigSchema.default(schedulingConfigSchema.parse({})),
    devices: devicesConfigSchema.default(devicesConfigSchema.parse({})),
    /** Host programs as calculation functions, and the per-VM output budget (calc-config.ts). */
    calc: calcConfigSchema.default(calcConfigSchema.parse({})),
    metrics: metricsConfigSchema.default(metricsConfigSchema.parse({})),
    /**
     * Names this daemon among several on one machine: its VMs' cgroups go under /sys/fs/cgroup/vmgmt-<daemonId>
     * (default: /sys/fs/cgroup/vmgmt), and it is the default cluster.host. Give each daemon its own
     * stateDir and runtimeDir too.
     */
    daemonId: daemonIdSchema.optional(),
    cluster: clusterConfigSchema.optional(),
  })
  .strict();
export type DaemonConfigFile = z.infer<typeof daemonConfigFileSchema>;

/** The daemon's running configuration: the file, the flags over it, and every default filled in. */
export interface DaemonConfig {
  stateDir: string;
  runtimeDir: string;
  socketPath: string;
  logLevel: LogLevel;
  transfers: {
    maxPullBytes: number;
    transferDir: string;
    maxTreeDepth: number;
    maxTreeEntries: number;
  };
  boot: {
    maxConcurrent: number;
    agentWaitMs: number;
  };
  chat: {
    rules: ChatRule[];
  };
  stats: {
    intervalMs: number;
  };
  scheduling: {
    enabled: boolean;
    periodMs: number;
  };
  devices: {
    /** Read when a device maps its region (VM start, re-attach). */
    prefaultRegions: boolean;
  };
  /** Read at each CALC_BEGIN and CALC_LIST. */
  calc: CalcSettings;
  metrics: {
    enabled: boolean;
    host: (typeof LOOPBACK_HOSTS)[number];
    port: number;
    auth: 'token' | 'none';
    tokenFile: string;
  };
  /** The cgroup directory of this daemon's VMs under the cgroup root: vmgmt, or vmgmt-<daemonId>. */
  cgroupParent: string;
  daemonId: string | undefined;
  /** Cluster mode, when configured (the section, or --cluster with the section's credentials). */
  cluster: ClusterConfig | undefined;
}

export type ClusterConfig = ClusterSettings;

/** Flags of `vmgmt daemon`: relative paths are taken from the working directory. */
export interface DaemonConfigOverrides {
  stateDir?: string;
  runtimeDir?: string;
  socketPath?: string;
  /** `--cluster nats://HOST:PORT`: the broker, over cluster.url. */
  clusterUrl?: string;
}

export interface ConfigSource {
  path: string;
  /** Named with --config: a missing file is an error, not all defaults. */
  explicit: boolean;
}

export function configSource(configPath: string | undefined): ConfigSource {
  return configPath === undefined ? { path: DEFAULT_CONFIG_PATH, explicit: false } : { path: path.resolve(configPath), explicit: true };
}

/** The file's text → its parsed content, or every problem with it. Pure. */
export function parseDaemonConfig(text: string): { ok: true; file: DaemonConfigFile } | { ok: false; problems: FieldProblem[] } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [{ path: '(file)', message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const problems: FieldProblem[] = [];
  let rest = value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { ...copy } = value as Record<string, unknown>;
    for (const [name, what] of Object.entries(RESERVED_SECTIONS)) {
      if (!Object.hasOwn(copy, name)) continue;
      problems.push({ path: name, message: `reserved for ${what}; this version of vmgmt does not read it yet: remove it` });
      delete copy[name];
    }
    rest = copy;
  }
  const parsed = daemonConfigFileSchema.safeParse(rest);
  if (!parsed.success) problems.push(...zodProblems(parsed.error));
  return problems.length === 0 && parsed.success ? { ok: true, file: parsed.data } : { ok: false, problems };
}

/** The running configuration from the file and the flags. Pure. */
export function resolveDaemonConfig(file: DaemonConfigFile, overrides: DaemonConfigOverrides = {}): DaemonConfig {
  const stateDir = path.resolve(overrides.stateDir ?? file.stateDir);
  const runtimeDir = path.resolve(overrides.runtimeDir ?? file.runtimeDir);
  return {
    stateDir,
    runtimeDir,
    socketPath: path.resolve(overrides.socketPath ?? file.socketPath ?? path.join(runtimeDir, 'vmgmt.sock')),
    logLevel: file.logLevel,
    transfers: {
      maxPullBytes: file.transfers.maxPullBytes,
      transferDir: file.transfers.transferDir ?? path.join(runtimeDir, 'transfers'),
      maxTreeDepth: file.transfers.maxTreeDepth,
      maxTreeEntries: file.transfers.maxTreeEntries,
    },
    boot: { ...file.boot },
    chat: { rules: file.chat.rules.map(stripUndefined) },
    stats: { ...file.stats },
    scheduling: { ...file.scheduling },
    devices: { prefaultRegions: file.devices.prefaultRegions },
    calc: resolveCalcConfig(file.calc),
    metrics: { ...file.metrics, tokenFile: file.metrics.tokenFile ?? path.join(stateDir, 'dashboard.token') },
    cgroupParent: file.daemonId === undefined ? 'vmgmt' : `vmgmt-${file.daemonId}`,
    daemonId: file.daemonId,
    cluster: resolveCluster(file, overrides),
  };
}

/** Cluster mode from the file's section and --cluster; throws VmgmtError INVALID_CONFIG when half given. */
function resolveCluster(file: DaemonConfigFile, overrides: DaemonConfigOverrides): ClusterConfig | undefined {
  const c = file.cluster;
  const url = overrides.clusterUrl ?? c?.url;
  if (url === undefined && c === undefined) return undefined;
  if (!c) throw new VmgmtError('INVALID_CONFIG', `--cluster ${url} needs a "cluster" section in the config file with credentialsFile (the host's NATS nkey seed): see the README's cluster set-up`, { field: 'cluster.credentialsFile' });
  if (url === undefined) throw new VmgmtError('INVALID_CONFIG', 'the config file has a "cluster" section but no cluster.url: add it, or give vmgmt daemon --cluster nats://HOST:PORT', { field: 'cluster.url' });
  if (!/^nats:\/\/[^\s/]+$/.test(url)) throw new VmgmtError('INVALID_CONFIG', `--cluster ${JSON.stringify(url)}: must be nats://HOST:PORT`, { field: 'cluster.url' });
  const host = c.host ?? file.daemonId ?? hostnameId();
  return { url, host, credentialsFile: c.credentialsFile, bucket: c.bucket, heartbeatMs: c.heartbeatMs, leaseMs: c.leaseMs, requestTimeoutMs: c.requestTimeoutMs, maxInFlight: c.maxInFlight };
}

/** The machine's hostname as a cluster host id (lower case, other characters as -). */
function hostnameId(): string {
  const id = os.hostname().toLowerCase().replace(/[^a-z0-9_-]/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 32);
  return id || 'host';
}

/** A rule as written, without keys zod left undefined: it logs and compares (on reload) as written. */
function stripUndefined(rule: z.infer<typeof chatRuleSchema>): ChatRule {
  const sel = (s: z.infer<typeof chatSelectorSchema>): ChatRule['from'] => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
  return { from: sel(rule.from), to: sel(rule.to), action: rule.action, ...(rule.note === undefined ? {} : { note: rule.note }) };
}

/** Reads and checks the file; throws VmgmtError INVALID_CONFIG naming each bad field. */
export function loadDaemonConfig(source: ConfigSource, overrides: DaemonConfigOverrides = {}): DaemonConfig {
  return resolveDaemonConfig(readDaemonConfigFile(source), overrides);
}

function readDaemonConfigFile(source: ConfigSource): DaemonConfigFile {
  let text: string;
  try {
    text = readFileSync(source.path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' && !source.explicit) return daemonConfigFileSchema.parse({});
    const why = e.code === 'ENOENT' ? 'no such file' : e.message;
    throw new VmgmtError('INVALID_CONFIG', `cannot read the daemon config file ${source.path}: ${why}`, { file: source.path, ...(e.code ? { errno: e.code } : {}) }, { cause: err });
  }
  const parsed = parseDaemonConfig(text);
  if (!parsed.ok) {
    throw new VmgmtError('INVALID_CONFIG', `invalid daemon config in ${source.path}: ${describeProblems(parsed.problems)}`, { file: source.path, problems: parsed.problems });
  }
  return parsed.file;
}

export interface ConfigChange {
  /** Dotted path of the field, as written in the file. */
  field: string;
  from: unknown;
  to: unknown;
}

export interface ReloadPlan {
  /** The running config with what can change at once taken from the new one. */
  config: DaemonConfig;
  applied: ConfigChange[];
  /** Changed in the file, but in use until the daemon restarts. */
  needRestart: ConfigChange[];
}

const RELOADABLE_FIELDS = ['logLevel', 'transfers.maxPullBytes', 'boot.maxConcurrent', 'boot.agentWaitMs', 'chat.rules', 'stats.intervalMs', 'scheduling.enabled', 'scheduling.periodMs', 'devices.prefaultRegions', 'calc'] as const;
const RESTART_FIELDS = ['stateDir', 'runtimeDir', 'socketPath', 'transfers.transferDir', 'metrics.enabled', 'metrics.host', 'metrics.port', 'metrics.auth', 'metrics.tokenFile', 'daemonId', 'cluster'] as const;

/** What a reload changes. Pure. */
export function planReload(running: DaemonConfig, next: DaemonConfig): ReloadPlan {
  const changes = (fields: readonly string[]): ConfigChange[] =>
    fields.flatMap((field) => {
      const from = valueAt(running, field);
      const to = valueAt(next, field);
      return JSON.stringify(from) === JSON.stringify(to) ? [] : [{ field, from, to }];
    });
  return {
    config: {
      ...running,
      logLevel: next.logLevel,
      transfers: { ...running.transfers, maxPullBytes: next.transfers.maxPullBytes },
      boot: { ...next.boot },
      chat: { rules: next.chat.rules },
      stats: { ...next.stats },
      scheduling: { ...next.scheduling },
      devices: next.devices,
      calc: next.calc,
    },
    applied: changes(RELOADABLE_FIELDS),
    needRestart: changes(RESTART_FIELDS),
  };
}

function valueAt(config: DaemonConfig, field: string): unknown {
  return field.split('.').reduce<unknown>((v, key) => (v as Record<string, unknown>)[key], config);
}

export type ReloadOutcome = { ok: true; plan: ReloadPlan } | { ok: false; error: VmgmtError };

/**
 * The daemon's configuration while it runs. Read `current` when the value is needed rather than keeping a
 * copy: a reload replaces it.
 */
export class LiveDaemonConfig {
  #current: DaemonConfig;

  constructor(
    readonly source: ConfigSource,
    readonly overrides: DaemonConfigOverrides,
    initial: DaemonConfig,
  ) {
    this.#current = initial;
  }

  /** Reads the file for the daemon's start; throws VmgmtError INVALID_CONFIG. */
  static load(source: ConfigSource, overrides: DaemonConfigOverrides = {}): LiveDaemonConfig {
    return new LiveDaemonConfig(source, overrides, loadDaemonConfig(source, overrides));
  }

  get current(): DaemonConfig {
    return this.#current;
  }

  /** SIGHUP: reads the file again, applies what can change at once, logs the rest. Never throws. */
  reload(log: CoreLogger): ReloadOutcome {
    let next: DaemonConfig;
    try {
      next = loadDaemonConfig(this.source, this.overrides);
    } catch (err) {
      const error = err instanceof VmgmtError ? err : new VmgmtError('INVALID_CONFIG', `cannot reload ${this.source.path}: ${(err as Error).message}`, {}, { cause: err });
      log.error('config reload failed: the daemon keeps its running config', { file: this.source.path, error: error.message, ...error.details });
      return { ok: false, error };
    }
    const plan = planReload(this.#current, next);
    this.#current = plan.config;
    for (const c of plan.needRestart) {
      log.warn(`config: ${c.field} changed; it takes effect when the daemon restarts`, { file: this.source.path, field: c.field, running: c.from, inFile: c.to });
    }
    log.info(plan.applied.length ? 'config reloaded' : 'config reloaded: nothing to apply', {
      file: this.source.path,
      applied: plan.applied,
    });
    return { ok: true, plan };
  }
}
