// One fleet of the density benchmark: a real daemon in its own temp state and runtime directories, N VMs
// (test image, TCG, 1 vCPU) started through its API at once, then measured: when each VM's console says
// it is up, its control channel answers, a `vmgmt-guest ping` through its device succeeds and its agent
// has claimed a channel; idle CPU of every QEMU, of the daemon and of the host; memory; ping round trips;
// `vm ls` latency. teardown() leaves no QEMU, cgroup, socket or directory behind, also after a failure
// or on SIGINT.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rawApiRequest, type RawApiAnswer } from '../../orchestrator/api/raw-api-request.js';
import { GuestControlClient } from '../../orchestrator/guest-control/guest-control-client.js';
import { findRepoRoot } from '../../orchestrator/vm/repo-root.js';
import { hostCpuTicks, memfdAllocatedBytes, percentOfOneCore, processCpuTicks, processMemory, type ProcessMemory } from './proc-stats.js';

export interface FleetOptions {
  size: number;
  memoryMiB: number;
  prefaultRegions: boolean;
  bootTimeoutS: number;
  settleS: number;
  idleS: number;
  pings: number;
  /** Progress lines (stderr). */
  say: (line: string) => void;
}

export type BootStage = 'start' | 'console' | 'control' | 'ping';

export interface BootFailure {
  stage: BootStage;
  why: string;
  consoleTail: string;
}

export interface VmTimeline {
  name: string;
  /** Seconds from sending every start to each step; undefined when the step was not reached. */
  startedS?: number;
  consoleUpS?: number;
  controlS?: number;
  pingS?: number;
  agentS?: number;
  /** What the guest printed: `vmgmt-init: up in <s>s` (guest uptime). */
  guestUptimeS?: number;
  /** Control-channel errors (a command timed out behind others, a broken frame) retried before the ping answered. */
  controlRetries: number;
  lastControlError?: string;
  failure?: BootFailure;
}

export interface FleetResult {
  size: number;
  prefaultRegions: boolean;
  vms: VmTimeline[];
  up: number;
  failures: VmTimeline[];
  /** Every VM's ping succeeded by then; null when one never did. */
  allAnsweredS: number | null;
  agentsSlowestS: number | null;
  agentsMissing: number;
  bootDaemonCpuPercent: number;
  idle: {
    seconds: number;
    vmsTotalPercent: number;
    perVmMedianPercent: number;
    perVmMaxPercent: number;
    daemonPercent: number;
    /** Everything on the host (other users' work too), of one core. */
    hostBusyPercent: number;
  };
  daemonBaseline: ProcessMemory;
  daemonIdle: ProcessMemory;
  qemuRssMedianBytes: number;
  qemuRssMaxBytes: number;
  /** RssAnon: what each QEMU holds of its own (guest RAM it touched, TCG's code cache); binaries are shared. */
  qemuAnonMedianBytes: number;
  regionAllocatedMedianBytes: number;
  pingMedianUs: number;
  pingWorstMedianUs: number;
  pingFailures: string[];
  lsApiMedianMs: number;
  lsCliMedianMs: number;
}


const CONSOLE_UP = /vmgmt-init: up in ([\d.]+)s/;
const CONSOLE_TAIL_BYTES = 1200;
const KEEP_DAEMON_OUTPUT_BYTES = 64 * 1024;

export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Fleet {
  readonly baseDir: string;
  readonly stateDir: string;
  readonly runtimeDir: string;
  readonly socketPath: string;
  readonly names: string[];
  private daemon: ChildProcess | undefined;
  private daemonOutput = '';
  private readonly clients = new Map<string, GuestControlClient>();
  private tearingDown: Promise<void> | undefined;
  private t0 = 0;

  constructor(private readonly opts: FleetOptions) {
    this.baseDir = mkdtempSync(path.join(tmpdir(), 'vmgmt-density-'));
    this.stateDir = path.join(this.baseDir, 'state');
    this.runtimeDir = path.join(this.baseDir, 'run');
    this.socketPath = path.join(this.runtimeDir, 'vmgmt.sock');
    // Cgroups are named by VM and host-wide: a token per fleet keeps ours apart from anyone else's.
    const token = randomBytes(3).toString('hex');
    this.names = Array.from({ length: opts.size }, (_, i) => `dens-${token}-${String(i + 1).padStart(2, '0')}`);
  }

  private get cli(): string {
    return path.join(findRepoRoot(), 'dist/orchestrator/cli/vmgmt.js');
  }

  private elapsedS(): number {
    return (performance.now() - this.t0) / 1000;
  }

  async run(): Promise<FleetResult> {
    await this.startDaemon();
    // Let the start-up garbage go before the baseline (RSS falls for a while after "ready").
    await sleep(3000);
    const daemonPid = this.daemon!.pid!;
    const daemonBaseline = processMemory(daemonPid);
    for (const name of this.names) {
      const r = await this.api('POST', '/v1/vms', { name, memoryMiB: this.opts.memoryMiB, cpus: 1, accel: 'tcg' });
      if (r.status !== 201) throw new Error(`create ${name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    }

    this.opts.say(`  starting ${this.opts.size} VMs at once${this.opts.prefaultRegions ? ' (devices.prefaultRegions)' : ''}...`);
    const timelines = this.names.map((name): VmTimeline => ({ name, controlRetries: 0 }));
    const daemonCpu0 = processCpuTicks(daemonPid);
    this.t0 = performance.now();
    const deadline = this.t0 + this.opts.bootTimeoutS * 1000;
    await Promise.all(timelines.map((t) => this.boot(t, deadline)));
    const bootS = this.elapsedS();
    const bootDaemonCpuPercent = percentOfOneCore(processCpuTicks(daemonPid) - daemonCpu0, bootS);
    const up = timelines.filter((t) => t.pingS !== undefined && !t.failure);
    const failures = timelines.filter((t) => t.failure);
    const pinged = timelines.map((t) => t.pingS);
    const agents = timelines.map((t) => t.agentS).filter((s): s is number => s !== undefined);
    this.opts.say(`  ${up.length}/${this.opts.size} up, every ping answered after ${pinged.every((s) => s !== undefined) ? Math.max(...(pinged as number[])).toFixed(1) : '-'} s; settling ${this.opts.settleS} s, then idle for ${this.opts.idleS} s`);

    // Idle: nothing of ours talks to the daemon or the guests while CPU is counted.
    await sleep(this.opts.settleS * 1000);
    const pids = await this.qemuPids();
    const idle = await this.measureIdle(daemonPid, pids);

    const daemonIdle = processMemory(daemonPid);
    const qemuMemory = [...pids.values()].flatMap((pid) => {
      try {
        return [processMemory(pid)];
      } catch {
        return [];
      }
    });
    const qemuRss = qemuMemory.map((m) => m.rssBytes);
    const regions = [...memfdAllocatedBytes(daemonPid, 'vmgmt-dens-').values()];

    this.opts.say(`  pinging each device ${this.opts.pings} times, timing vm ls...`);
    const pingMedians: number[] = [];
    const pingFailures: string[] = [];
    for (const t of up) {
      const out = await this.guestRun(t.name, `vmgmt-guest ping -n ${this.opts.pings}`, 60_000).catch((err: unknown) => ({ exitCode: -1, stdout: (err as Error).message }));
      const m = /median_us=([\d.]+)/.exec(out.stdout);
      if (out.exitCode === 0 && m) pingMedians.push(Number(m[1]));
      else pingFailures.push(`${t.name}: exit ${out.exitCode}: ${out.stdout.trim().slice(-200)}`);
    }
    const lsApi: number[] = [];
    for (let i = 0; i < 20; i++) {
      const s = performance.now();
      const r = await this.api('GET', '/v1/vms');
      if (r.status !== 200) throw new Error(`GET /v1/vms: HTTP ${r.status}`);
      lsApi.push(performance.now() - s);
    }
    const lsCli: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      await this.vmgmt('vm', 'ls');
      lsCli.push(performance.now() - s);
    }

    return {
      size: this.opts.size,
      prefaultRegions: this.opts.prefaultRegions,
      vms: timelines,
      up: up.length,
      failures,
      allAnsweredS: pinged.every((s) => s !== undefined) ? Math.max(...(pinged as number[])) : null,
      agentsSlowestS: agents.length ? Math.max(...agents) : null,
      agentsMissing: this.opts.size - agents.length,
      bootDaemonCpuPercent,
      idle,
      daemonBaseline,
      daemonIdle,
      qemuRssMedianBytes: median(qemuRss),
      qemuRssMaxBytes: Math.max(...qemuRss),
      qemuAnonMedianBytes: median(qemuMemory.map((m) => m.anonBytes)),
      regionAllocatedMedianBytes: median(regions),
      pingMedianUs: median(pingMedians),
      pingWorstMedianUs: Math.max(...pingMedians),
      pingFailures,
      lsApiMedianMs: median(lsApi),
      lsCliMedianMs: median(lsCli),
    };
  }

  private async startDaemon(): Promise<void> {
    // Always our own config file: a host's /etc/vmgmt/config.json must not change what is measured.
    const config = path.join(this.baseDir, 'config.json');
    writeFileSync(config, JSON.stringify({ devices: { prefaultRegions: this.opts.prefaultRegions } }));
    const child = spawn(process.execPath, [this.cli, 'daemon', '--config', config, '--state-dir', this.stateDir, '--runtime-dir', this.runtimeDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer): void => {
      this.daemonOutput = (this.daemonOutput + b.toString()).slice(-KEEP_DAEMON_OUTPUT_BYTES);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.daemon = child;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${this.daemonOutput}`);
      if (this.daemonOutput.includes('"msg":"ready"')) return;
      await sleep(50);
    }
    throw new Error(`daemon not ready within 20 s:\n${this.daemonOutput}`);
  }

  /** One VM from its start request to a ping through its device; records a failure instead of throwing. */
  private async boot(t: VmTimeline, deadline: number): Promise<void> {
    const fail = (stage: BootStage, why: string): void => {
      t.failure ??= { stage, why, consoleTail: this.consoleTail(t.name) };
    };
    const left = (): number => deadline - performance.now();
    const watch = this.watchVm(t, deadline, (why) => {
      fail(stageOf(t), why);
      this.clients.get(t.name)?.close();
    });
    try {
      const r = await this.api('POST', `/v1/vms/${t.name}/start`, undefined, Math.max(left(), 1000));
      if (r.status !== 200) return fail('start', `HTTP ${r.status}: ${r.body?.message ?? JSON.stringify(r.body)}`);
      t.startedS = this.elapsedS();
      const consoleLog = path.join(this.stateDir, 'vms', t.name, 'console.log');
      while (!t.failure) {
        const m = existsSync(consoleLog) ? CONSOLE_UP.exec(readFileSync(consoleLog, 'utf8')) : null;
        if (m) {
          t.consoleUpS = this.elapsedS();
          t.guestUptimeS = Number(m[1]);
          break;
        }
        if (left() <= 0) return fail('console', `no "vmgmt-init: up" on the console within ${this.opts.bootTimeoutS} s`);
        await sleep(250);
      }
      // The control channel and the ping are retried until the deadline: under load a command can time out
      // behind the readiness probes the guest is still working through, and that is not a boot failure.
      while (!t.failure) {
        if (left() <= 0) return fail(stageOf(t), `no ping answered within ${this.opts.bootTimeoutS} s; last: ${t.lastControlError ?? 'none'}`);
        try {
          let client = this.clients.get(t.name);
          if (!client) {
            client = await GuestControlClient.connect(path.join(this.runtimeDir, 'vms', t.name, 'control.sock'), { timeoutMs: 10_000 });
            this.clients.set(t.name, client);
            await client.waitReady({ timeoutMs: Math.max(left(), 1000), probeIntervalMs: 1000 });
            t.controlS ??= this.elapsedS();
          }
          const out = await client.run('vmgmt-guest ping -n 1 -t 2000', { timeoutMs: Math.max(Math.min(left(), 60_000), 1000) });
          if (out.exitCode === 0) {
            t.pingS = this.elapsedS();
            break;
          }
          t.lastControlError = `vmgmt-guest ping: exit ${out.exitCode}: ${out.stdout.trim().slice(-300)}`;
          await sleep(250);
        } catch (err) {
          if (t.failure) break;
          t.controlRetries++;
          t.lastControlError = (err as Error).message;
          this.clients.get(t.name)?.close();
          this.clients.delete(t.name);
          await sleep(1000);
        }
      }
    } catch (err) {
      fail(stageOf(t), (err as Error).message);
    } finally {
      await watch;
    }
  }

  /**
   * Once a second until the agent has claimed its channel (or the deadline): the VM's state, so a QEMU
   * that ended fails the boot at once, and the agent's claim counter.
   */
  private async watchVm(t: VmTimeline, deadline: number, onEnded: (why: string) => void): Promise<void> {
    while (performance.now() < deadline && (t.agentS === undefined || t.pingS === undefined) && !t.failure) {
      await sleep(1000);
      const r = await this.api('GET', `/v1/vms/${t.name}`).catch(() => undefined);
      if (!r || r.status !== 200) continue;
      const vm = r.body;
      if (vm.state !== 'running' && vm.state !== 'starting') {
        onEnded(`VM is ${vm.state}: ${vm.stateReason}`);
        return;
      }
      const claims = vm.device?.services?.agent?.agent_claims ?? 0;
      if (t.agentS === undefined && claims > 0) t.agentS = this.elapsedS();
    }
  }

  private consoleTail(name: string): string {
    const file = path.join(this.stateDir, 'vms', name, 'console.log');
    if (!existsSync(file)) return '(no console log)';
    const text = readFileSync(file, 'utf8');
    return text.slice(-CONSOLE_TAIL_BYTES);
  }

  private async qemuPids(): Promise<Map<string, number>> {
    const r = await this.api('GET', '/v1/vms');
    const pids = new Map<string, number>();
    for (const vm of r.body.vms as { name: string; pid: number | null; state: string }[]) if (vm.pid !== null && vm.state === 'running') pids.set(vm.name, vm.pid);
    return pids;
  }

  private async measureIdle(daemonPid: number, pids: Map<string, number>): Promise<FleetResult['idle']> {
    const read = (pid: number): number | undefined => {
      try {
        return processCpuTicks(pid);
      } catch {
        return undefined; // ended
      }
    };
    const before = new Map([...pids].map(([name, pid]) => [name, read(pid)]));
    const daemon0 = processCpuTicks(daemonPid);
    const host0 = hostCpuTicks();
    const s = performance.now();
    await sleep(this.opts.idleS * 1000);
    const seconds = (performance.now() - s) / 1000;
    const perVm: number[] = [];
    for (const [name, pid] of pids) {
      const a = before.get(name);
      const b = read(pid);
      if (a !== undefined && b !== undefined) perVm.push(percentOfOneCore(b - a, seconds));
    }
    const host1 = hostCpuTicks();
    return {
      seconds,
      vmsTotalPercent: perVm.reduce((x, y) => x + y, 0),
      perVmMedianPercent: median(perVm),
      perVmMaxPercent: Math.max(...perVm),
      daemonPercent: percentOfOneCore(processCpuTicks(daemonPid) - daemon0, seconds),
      hostBusyPercent: percentOfOneCore(host1.busy - host0.busy, seconds),
    };
  }

  private async guestRun(name: string, command: string, timeoutMs: number): Promise<{ exitCode: number; stdout: string }> {
    const client = this.clients.get(name);
    if (!client) throw new Error(`no control channel to ${name}`);
    return client.run(command, { timeoutMs });
  }

  private vmgmt(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [this.cli, '--socket', this.socketPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`vmgmt ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout)));
    });
  }

  private api(method: string, urlPath: string, body?: unknown, timeoutMs = 60_000): Promise<RawApiAnswer> {
    return rawApiRequest(this.socketPath, method, urlPath, body, timeoutMs);
  }

  /** The daemon's last output, for a failure report. */
  get daemonLog(): string {
    return this.daemonOutput;
  }

  /**
   * Kills the VMs through the daemon (`hard`: skip that), stops the daemon, then kills every QEMU whose
   * command line names this fleet's directories, removes the VMs' cgroups and the directories.
   * Idempotent; returns the QEMU processes still alive afterwards (should be none).
   */
  teardown(opts: { hard?: boolean } = {}): Promise<void> {
    this.tearingDown ??= (async () => {
      for (const c of this.clients.values()) c.close();
      const daemon = this.daemon;
      const alive = daemon !== undefined && daemon.exitCode === null && daemon.signalCode === null;
      if (alive && !opts.hard) {
        await Promise.all(this.names.map((n) => this.api('POST', `/v1/vms/${n}/kill`, {}, 30_000).catch(() => undefined)));
      }
      if (alive) {
        const exited = new Promise((r) => daemon.once('exit', r));
        daemon.kill(opts.hard ? 'SIGKILL' : 'SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (daemon.exitCode === null && daemon.signalCode === null) {
          daemon.kill('SIGKILL');
          await exited;
        }
      }
      for (const pid of qemuPidsMentioning(this.baseDir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      const until = Date.now() + 10_000;
      while (qemuPidsMentioning(this.baseDir).length > 0 && Date.now() < until) await sleep(100);
      // A killed QEMU can stay in its cgroup as a zombie (no command line, so pgrep no longer sees it) for a
      // moment after its parent died: retry until the cgroups are gone.
      const cgroupsUntil = Date.now() + 5_000;
      while (this.names.some((name) => !removeCgroup(name)) && Date.now() < cgroupsUntil) await sleep(200);
      rmSync(this.baseDir, { recursive: true, force: true });
      const left = qemuPidsMentioning(this.baseDir);
      if (left.length > 0) throw new Error(`QEMU processes of ${this.baseDir} still alive after SIGKILL: ${left.join(', ')}`);
    })();
    return this.tearingDown;
  }
}

/** The step a VM had not reached yet. */
function stageOf(t: VmTimeline): BootStage {
  return t.startedS === undefined ? 'start' : t.consoleUpS === undefined ? 'console' : t.controlS === undefined ? 'control' : 'ping';
}

function qemuPidsMentioning(marker: string): number[] {
  try {
    return execFileSync('pgrep', ['-af', 'qemu-system'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(marker))
      .map((line) => Number(line.trim().split(/\s+/)[0]));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/**
 * The daemon removes a VM's cgroup when its QEMU ends; this catches the ones a killed daemon left. True
 * when none of them is left.
 */
function removeCgroup(name: string): boolean {
  let gone = true;
  for (const dir of [`/sys/fs/cgroup/vmgmt/${name}`, `/sys/fs/cgroup/cpu/vmgmt/${name}`, `/sys/fs/cgroup/cpuacct/vmgmt/${name}`]) {
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') gone = false; // still has a (zombie) process
    }
  }
  return gone;
}
