// Chooses the accelerator. /dev/kvm existing is not enough: a nested KVM may open fine and still never
// run a guest, so 'auto' boots the real guest image under KVM once and caches whether it reached init.
import { PROBE_CMDLINE_FLAG, PROBE_OK_MARKER } from '../guest-control/control-protocol.js';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, release, tmpdir, version } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import {
  encodeKvmProbeCache,
  KVM_PROBE_CACHE_FILE,
  KVM_PROBE_CACHE_VERSION,
  lookupKvmProbeCache,
  type KvmProbeCacheEntry,
  type KvmProbeKey,
} from './accel-probe-cache.js';
import { buildQemuArgs } from './qemu-args.js';
import { QemuError } from './qemu-error.js';
import { QEMU_DEFAULT_BINARY } from './qemu-process.js';

/** The test image's init prints this and powers off when booted with PROBE_CMDLINE_FLAG (images/init). */
export const KVM_PROBE_MARKER = PROBE_OK_MARKER;
export const KVM_PROBE_APPEND = `console=ttyS0 panic=-1 ${PROBE_CMDLINE_FLAG}`;
export const KVM_PROBE_DEFAULT_DEADLINE_MS = 20_000;
const KVM_DEVICE = '/dev/kvm';
const PROBE_POLL_INTERVAL_MS = 100;

export type AccelRequest = 'tcg' | 'kvm' | 'auto';
export type Accel = 'tcg' | 'kvm';

export interface AccelDecision {
  accel: Accel;
  reason: string;
  /** True when the answer came from <cacheDir>/kvm-probe.json rather than a probe run now. */
  fromCache: boolean;
  /** Duration of the probe that produced this answer (now or when cached). */
  probeDurationMs?: number;
}

export interface AccelProbeOptions {
  kernelPath: string;
  initrdPath: string;
  cacheDir: string;
  /** How long the guest gets to print the probe marker. Default 20 s. */
  deadlineMs?: number;
  binary?: string;
  /** Told before a probe boot starts (nothing cached for this host yet): what is happening and why. */
  onProbing?: (message: string) => void;
}

/**
 * Where the per-host cache lives: $VMGMT_CACHE_DIR, else /var/cache/vmgmt for root, else
 * $XDG_CACHE_HOME/vmgmt or ~/.cache/vmgmt. Not under a daemon's state directory or a checkout, so they all
 * share the probe's answer.
 */
export function hostCacheDir(env: Readonly<Record<string, string | undefined>> = process.env, uid: number = process.getuid?.() ?? -1): string {
  if (env['VMGMT_CACHE_DIR']) return env['VMGMT_CACHE_DIR'];
  if (uid === 0) return '/var/cache/vmgmt';
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'vmgmt');
}

export type KvmBootResult = { ok: true; durationMs: number } | { ok: false; durationMs: number; why: string };

/** The I/O the decision needs; replaced by fakes in unit tests. */
export interface AccelProbeIo {
  /** undefined when /dev/kvm opens read-write, else why not. */
  kvmDeviceProblem(): Promise<string | undefined>;
  qemuVersion(binary: string): Promise<string>;
  /** Throws when the file is missing (the probe's guest kernel). */
  fileMtimeMs(path: string): Promise<number>;
  /** The running kernel's build: `uname -r` and `uname -v`. */
  hostKernel(): Promise<string>;
  /** Which /dev/kvm: device number and inode. */
  kvmDeviceIdentity(): Promise<string>;
  readCache(path: string): Promise<string | undefined>;
  writeCache(path: string, text: string): Promise<void>;
  bootKvmProbe(opts: { binary: string; kernelPath: string; initrdPath: string; deadlineMs: number }): Promise<KvmBootResult>;
}

export async function resolveAccel(
  requested: AccelRequest,
  probe: AccelProbeOptions,
  io: AccelProbeIo = nodeAccelProbeIo,
): Promise<AccelDecision> {
  if (requested === 'kvm') return { accel: 'kvm', reason: 'kvm requested explicitly (not probed)', fromCache: false };
  if (requested === 'tcg') return { accel: 'tcg', reason: 'tcg requested explicitly', fromCache: false };

  const deviceProblem = await io.kvmDeviceProblem();
  if (deviceProblem !== undefined) {
    return { accel: 'tcg', reason: `${KVM_DEVICE} cannot be opened read-write (${deviceProblem}); using tcg`, fromCache: false };
  }

  const binary = probe.binary ?? QEMU_DEFAULT_BINARY;
  let key: KvmProbeKey;
  try {
    key = await kvmProbeKey(binary, io);
    await io.fileMtimeMs(probe.kernelPath);
  } catch (err) {
    throw new QemuError(
      'PROBE_FAILED',
      `cannot prepare the KVM self-probe: ${err instanceof Error ? err.message : String(err)}; ` +
        `check that ${binary} runs and the guest kernel ${probe.kernelPath} exists (make images), or request tcg/kvm explicitly`,
      { binary, field: 'kernelPath', value: probe.kernelPath },
      { cause: err },
    );
  }

  const cachePath = join(probe.cacheDir, KVM_PROBE_CACHE_FILE);
  const lookup = lookupKvmProbeCache(await io.readCache(cachePath).catch(() => undefined), key);
  if (lookup.hit) {
    const { entry } = lookup;
    return {
      accel: entry.accel,
      reason: `${entry.reason} [cached ${entry.probedAt} in ${cachePath}]`,
      fromCache: true,
      probeDurationMs: entry.probeDurationMs,
    };
  }

  const deadlineMs = probe.deadlineMs ?? KVM_PROBE_DEFAULT_DEADLINE_MS;
  probe.onProbing?.(
    `probing whether KVM runs guests on this host (${lookup.why}): booting the test image under KVM for up to ${deadlineMs} ms; ` +
      `the answer is kept in ${cachePath} for every later start and checkout`,
  );
  const boot = await io.bootKvmProbe({ binary, kernelPath: probe.kernelPath, initrdPath: probe.initrdPath, deadlineMs });
  const accel: Accel = boot.ok ? 'kvm' : 'tcg';
  const reason = boot.ok
    ? `KVM self-probe reached the guest's init in ${boot.durationMs} ms; using kvm`
    : `KVM self-probe failed after ${boot.durationMs} ms: ${boot.why}; using tcg (nested or broken KVM cannot run guests)`;
  let cacheNote = '';
  try {
    await io.writeCache(
      cachePath,
      encodeKvmProbeCache({
        version: KVM_PROBE_CACHE_VERSION,
        key,
        accel,
        reason,
        probedAt: new Date().toISOString(),
        probeDurationMs: boot.durationMs,
      }),
    );
  } catch (err) {
    cacheNote = ` (result not cached: ${err instanceof Error ? err.message : String(err)})`;
  }
  return { accel, reason: reason + cacheNote, fromCache: false, probeDurationMs: boot.durationMs };
}

export const nodeAccelProbeIo: AccelProbeIo = {
  async kvmDeviceProblem() {
    try {
      await (await open(KVM_DEVICE, 'r+')).close();
      return undefined;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  },
  async qemuVersion(binary) {
    const { stdout } = await execa(binary, ['--version'], { timeout: 10_000 });
    return stdout.split('\n')[0] ?? stdout;
  },
  async fileMtimeMs(path) {
    return (await stat(path)).mtimeMs;
  },
  async hostKernel() {
    return `${release()} ${version()}`;
  },
  async kvmDeviceIdentity() {
    const st = await stat(KVM_DEVICE);
    return `rdev ${Math.floor(st.rdev / 256)}:${st.rdev % 256} ino ${st.ino}`;
  },
  async readCache(path) {
    return readFile(path, 'utf8');
  },
  async writeCache(path, text) {
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, text);
    await rename(temp, path);
  },
  bootKvmProbe,
};

async function kvmProbeKey(binary: string, io: AccelProbeIo): Promise<KvmProbeKey> {
  return { hostKernel: await io.hostKernel(), qemuVersion: await io.qemuVersion(binary), kvmDevice: await io.kvmDeviceIdentity() };
}

/** `vmgmt host`: the cache file, the key as of now, and the cached answer if it still holds. Never probes. */
export async function hostKvmProbeInfo(
  opts: { cacheDir: string; binary?: string },
  io: AccelProbeIo = nodeAccelProbeIo,
): Promise<{ cachePath: string; key: KvmProbeKey | null; cached: Omit<KvmProbeCacheEntry, 'version' | 'key'> | null; stale?: string; problem?: string }> {
  const cachePath = join(opts.cacheDir, KVM_PROBE_CACHE_FILE);
  const deviceProblem = await io.kvmDeviceProblem();
  if (deviceProblem !== undefined) {
    return { cachePath, key: null, cached: null, problem: `${KVM_DEVICE} cannot be opened read-write (${deviceProblem}): accel auto uses tcg without probing` };
  }
  let key: KvmProbeKey;
  try {
    key = await kvmProbeKey(opts.binary ?? QEMU_DEFAULT_BINARY, io);
  } catch (err) {
    return { cachePath, key: null, cached: null, problem: `cannot work out the probe's key: ${err instanceof Error ? err.message : String(err)}` };
  }
  const lookup = lookupKvmProbeCache(await io.readCache(cachePath).catch(() => undefined), key);
  if (!lookup.hit) return { cachePath, key, cached: null, stale: `${lookup.why}: the next start with accel auto probes` };
  const { accel, reason, probedAt, probeDurationMs } = lookup.entry;
  return { cachePath, key, cached: { accel, reason, probedAt, probeDurationMs } };
}

/** Boots kernel+initrd under -accel kvm and waits for the guest's init to print the probe marker. */
async function bootKvmProbe(opts: { binary: string; kernelPath: string; initrdPath: string; deadlineMs: number }): Promise<KvmBootResult> {
  const dir = await mkdtemp(join(tmpdir(), 'vmgmt-kvm-probe-'));
  const consoleLogPath = join(dir, 'console.log');
  const args = buildQemuArgs({
    name: 'vmgmt-kvm-probe',
    uuid: randomUUID(),
    accel: 'kvm',
    memoryMiB: 256,
    cpus: 1,
    kernelPath: opts.kernelPath,
    initrdPath: opts.initrdPath,
    append: KVM_PROBE_APPEND,
    qmpSocketPath: join(dir, 'qmp.sock'),
    consoleLogPath,
  });
  const started = Date.now();
  // Not detached: if the daemon dies mid-probe, execa's cleanup takes the probe VM with it.
  const subprocess = execa(opts.binary, args, { stdin: 'ignore', all: true, reject: false, timeout: opts.deadlineMs + 5_000 });
  let exited = false;
  void subprocess.then(() => {
    exited = true;
  });
  const consoleHasMarker = async (): Promise<boolean> =>
    (await readFile(consoleLogPath, 'utf8').catch(() => '')).includes(KVM_PROBE_MARKER);
  try {
    while (Date.now() - started < opts.deadlineMs) {
      const wasExited = exited;
      if (await consoleHasMarker()) return { ok: true, durationMs: Date.now() - started };
      if (wasExited) {
        const result = await subprocess;
        const output = (result.all ?? '').trim().split('\n').slice(-5).join(' | ');
        return {
          ok: false,
          durationMs: Date.now() - started,
          why: `QEMU exited (${result.signal ?? `exit code ${result.exitCode}`}) before the guest printed ${KVM_PROBE_MARKER}` +
            (output ? `: ${output}` : ''),
        };
      }
      await sleep(PROBE_POLL_INTERVAL_MS);
    }
    const consoleBytes = (await stat(consoleLogPath).catch(() => undefined))?.size ?? 0;
    return {
      ok: false,
      durationMs: Date.now() - started,
      why: `the guest printed no ${KVM_PROBE_MARKER} within ${opts.deadlineMs} ms (console log: ${consoleBytes} bytes)`,
    };
  } finally {
    subprocess.kill('SIGKILL');
    await subprocess;
    await rm(dir, { recursive: true, force: true });
  }
}
