// One VM under the daemon: its QEMU process, QMP event stream, management device, cgroup and persisted
// state. Lifecycle decisions come from the pure state machine; this file does the I/O they call for.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { DIRENT } from '../../device-backend/layout/wire-layout.js';
import { AgentError } from '../../device-backend/services/agent/agent-error.js';
import { MAX_ENTRY_NAME_BYTES } from '../../device-backend/services/agent/agent-listing.js';
import { walkGuestTree, type GuestTree } from './guest-tree.js';
import path from 'node:path';
import type { MessageService } from '../../device-backend/core/message-service.js';
import { ManagementDevice, type ServiceSnapshotStore } from '../../device-backend/management-device.js';
import type { AgentService } from '../../device-backend/services/agent/agent-service.js';
import type { ExecOptions, ExecResult, ExecService } from '../../device-backend/services/exec/exec-service.js';
import type { AgentUpdateService } from '../../device-backend/services/agent/agent-update.js';
import type { AgentUpdateResult } from '../api/api-contract.js';
import { agentUpdate } from './agent-update.js';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import { readPowerButton } from '../qemu/acpi-power-button.js';
import { attachQemu } from '../qemu/qemu-attach.js';
import type { QemuExit, QemuProcess } from '../qemu/qemu-process.js';
import type { ChatHub } from '../../device-backend/services/chat/chat-hub.js';
import type { ChatAttachment } from '../../device-backend/services/device-services.js';
import type { StatsHub } from '../../device-backend/services/stats/stats-hub.js';
import type { CalcCatalog, CalcPrograms } from '../../device-backend/services/calc/calc-programs.js';
import type { StatsService } from '../../device-backend/services/stats/stats-service.js';
import type { SchedTarget } from './scheduler/cpu-scheduler.js';
import { launchVm, testImageBoot, type VmBoot, vmServices } from '../vm/launch-vm.js';
import { networkInfo } from '../vm/vm-network.js';
import { agentCopy } from './agent-copy.js';
import { vmExec } from './vm-exec.js';
import { writeFileAtomic } from './atomic-file.js';
import type { BootGate, ReleaseTurn } from './boot-gate.js';
import { lastLines } from './file-tail.js';
import { createVmCgroup } from './cgroup.js';
import type { DaemonConfig } from './daemon-config.js';
import type { Logger } from './logger.js';
import { checkProcessIdentity, processStartTime } from './process-identity.js';
import type { StateStore, VmRecord } from './state-store.js';
import type { VmDefinition } from './vm-definition.js';
import type { HostCopyOptions, VmDetails, VmPaths, VmSummary } from './vm-manager-api.js';
import type { VmStateEventData } from '../api/api-contract.js';
import { initialStatus, isActive, restartDelayMs, transition, type VmEvent, wantsRestart } from './vm-state-machine.js';
import { VmgmtError } from './vmgmt-error.js';
import { namedAnswerCounts, namedChannelCounts } from '../observe/wire-names.js';

export interface VmInstanceDeps {
  store: StateStore;
  runtimeDir: string;
  cacheDir: string;
  native: VmgmtNative;
  log: Logger;
  /**
   * The daemon's configuration (e.g. `config.transfers.maxPullBytes`). Read it when the value is needed:
   * it is the config as of now, and a SIGHUP may have replaced it since the VM was created.
   */
  readonly config: DaemonConfig;
  /** The daemon's one chat hub, shared by every VM. */
  chatHub?: ChatHub;
  /** Turns to boot, shared by every VM; without one a VM boots at once. */
  bootGate?: BootGate;
  /** The daemon's statistics of every VM (stats mode, scheduler). */
  statsHub?: StatsHub;
  /** The daemon's declared calculation programs (config calc), shared by every VM. */
  calcPrograms?: CalcPrograms;
  /** Told of every state change (the API's event stream publishes it as `vm.state`). */
  onStateChange?: (change: VmStateEventData) => void;
}

const CONSOLE_TAIL_LINES = 15;
/** After the power button's deadline: how long QEMU gets to `quit` before it is killed. */
const QUIT_TIMEOUT_MS = 5_000;
/** How long a copy waits for the agent of a VM that has booted (it may be re-claiming its channel). */
const DEFAULT_AGENT_WAIT_MS = 20_000;
const QMP_EVENTS = new Set(['STOP', 'RESUME', 'RESET', 'SHUTDOWN', 'POWERDOWN', 'GUEST_PANICKED']);

export function newRecord(): VmRecord {
  return { uuid: randomUUID(), status: initialStatus(), pid: null, pidStartTime: null, accel: null, startedAt: null, restarts: 0, lastExit: null, deviceFds: null };
}

export class VmInstance {
  private qemu: QemuProcess | undefined;
  private device: ManagementDevice | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  /** When restartTimer fires (ISO time), until the restart begins or is called off. */
  private restartDueAt: string | null = null;
  private stableTimer: NodeJS.Timeout | undefined;
  /** This VM's turn to boot (BootGate), held from launch until its agent is up. */
  private bootTurn: ReleaseTurn | undefined;
  private bootStartedAtMs = 0;
  private agentUp = false;
  private queue: Promise<unknown> = Promise.resolve();
  private detached = false;
  /** The agent service of the device now served (a new one with each device). */
  private agent: AgentService | undefined;
  private execService: ExecService | undefined;
  /** The stats service of the device now served. */
  private statsService: StatsService | undefined;
  /** The agent's version and the driver update, of the device now served. */
  private agentUpdater: AgentUpdateService | undefined;
  readonly log: Logger;
  readonly paths: VmPaths;

  constructor(
    readonly definition: VmDefinition,
    private record: VmRecord,
    private readonly deps: VmInstanceDeps,
  ) {
    const run = path.join(deps.runtimeDir, 'vms', definition.name);
    const state = deps.store.vmDir(definition.name);
    this.paths = {
      runDir: run,
      qmpSocket: path.join(run, 'qmp.sock'),
      consoleSocket: path.join(run, 'console.sock'),
      controlSocket: path.join(run, 'control.sock'),
      ivshmemSocket: path.join(run, 'ivshmem.sock'),
      consoleLog: path.join(state, 'console.log'),
      qemuLog: path.join(state, 'qemu.log'),
    };
    this.log = deps.log.child({ vm: definition.name }, { file: path.join(state, 'daemon.log') });
  }

  get name(): string {
    return this.definition.name;
  }

  get state(): VmRecord['status']['state'] {
    return this.record.status.state;
  }

  /** When the on-failure policy restarts this crashed VM (ISO time), or null when no restart is due. */
  get restartAt(): string | null {
    return this.restartDueAt;
  }

  /** Runs lifecycle operations on this VM one at a time. */
  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => {});
    return next;
  }

  private apply(event: VmEvent): void {
    const t = transition(this.record.status, event);
    if (!t.ok) throw new VmgmtError('INVALID_STATE', `VM ${this.name}: ${t.reason}`, { name: this.name, state: this.state });
    const previous = this.record.status.state;
    if (t.status.state !== previous) this.log.info(`state ${previous} -> ${t.status.state}`, { reason: t.status.reason });
    this.record = { ...this.record, status: t.status };
    this.persist();
    if (t.status.state !== previous) this.deps.onStateChange?.({ vm: this.name, state: t.status.state, previous, reason: t.status.reason });
  }

  private persist(): void {
    this.deps.store.saveRecord(this.name, this.record);
  }

  summary(): VmSummary {
    const r = this.record;
    return {
      name: this.name,
      uuid: r.uuid,
      state: r.status.state,
      pid: r.pid,
      accel: r.accel,
      accelReason: r.accelReason ?? null,
      startedAt: r.startedAt,
      restarts: r.restarts,
      lastExit: r.lastExit,
      restartGaveUpAt: r.restartGaveUpAt ?? null,
    };
  }

  details(): VmDetails {
    const d = this.device;
    return {
      ...this.summary(),
      definition: this.definition,
      paths: this.paths,
      stateReason: this.record.status.reason,
      network: networkInfo(this.name, this.definition.network),
      device: d
        ? {
            attached: true,
            origin: d.origin,
            regionSizeBytes: d.geometry.regionSizeBytes,
            messages: d.core.counters.messages,
            protocolErrors: d.core.counters.protocolErrors,
            doorbells: d.core.counters.doorbells,
            serviceFailures: d.core.counters.serviceFailures,
            services: d.core.serviceCounters(),
            channelResets: d.core.counters.channelResets,
            deviceResets: d.core.counters.deviceResets,
            answers: namedAnswerCounts(d.core.answerCounters()),
            channels: namedChannelCounts(d.core.channelCounters()),
          }
        : null,
      agent: this.agentInfo(),
    };
  }

  private agentInfo(): VmDetails['agent'] {
    const u = this.device ? this.agentUpdater : undefined;
    const now = u?.current;
    if (!u || !now) return null;
    return { ...now, lastUpdate: u.last ?? null };
  }

  /** `vmgmt agent update`: a new vmgmt-guest replaces the running agent in place. */
  updateAgent(opts: { binary?: string; sha256?: string; reportInMs?: number; probationMs?: number }): Promise<AgentUpdateResult> {
    const updater = this.agentUpdater;
    if (!this.device || !updater || this.state !== 'running') throw new VmgmtError('INVALID_STATE', `VM ${this.name} is ${this.state}: an agent update needs a running VM with its device`, { name: this.name });
    this.log.info('agent update', { binary: opts.binary ?? '(the daemon\'s build)' });
    return agentUpdate(this.name, updater, { ...opts, tempDir: this.paths.runDir }, this.log);
  }

  start(opts: { resetRestarts?: boolean } = {}): Promise<VmDetails> {
    return this.serialize(async () => {
      this.restartDueAt = null;
      this.apply({ type: 'start' });
      if (opts.resetRestarts ?? true) this.record = { ...this.record, restarts: 0, restartGaveUpAt: null };
      clearTimeout(this.restartTimer);
      try {
        await this.launch();
      } catch (err) {
        // QEMU may be up already (the failure came after it started): never leave it behind.
        const qemu = this.qemu;
        this.qemu = undefined;
        await qemu?.kill().catch(() => {});
        this.cleanupAfterExit();
        this.apply({ type: 'start-failed', reason: (err as Error).message });
        throw new VmgmtError('QEMU_FAILED', `VM ${this.name} failed to start: ${(err as Error).message}`, { name: this.name }, { cause: err });
      }
      this.apply({ type: 'started' });
      this.scheduleRestartCountReset();
      return this.details();
    });
  }

  private bootSpec(): VmBoot {
    const boot = this.definition.boot;
    if (!boot) return testImageBoot();
    if ('disk' in boot) return { disk: { path: boot.disk, format: boot.format } };
    return { kernelPath: boot.kernel, ...(boot.initrd ? { initrdPath: boot.initrd } : {}), ...(boot.append ? { append: boot.append } : {}) };
  }

  /** The services' state, kept in the VM's state directory across daemon restarts. */
  private snapshots(): ServiceSnapshotStore {
    const file = path.join(this.deps.store.vmDir(this.name), 'services.json');
    return {
      load: () => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {}),
      save: (snapshots) => writeFileAtomic(file, `${JSON.stringify(snapshots)}\n`),
    };
  }

  private chat(): ChatAttachment | undefined {
    return this.deps.chatHub ? { hub: this.deps.chatHub, ...(this.definition.chatGroup ? { group: this.definition.chatGroup } : {}) } : undefined;
  }

  /** What this VM may calculate: the built-ins and the declared programs whose allow-list names it or its group. */
  private calc(): CalcCatalog | undefined {
    return this.deps.calcPrograms?.catalogFor({ vm: this.name, ...(this.definition.chatGroup ? { group: this.definition.chatGroup } : {}) });
  }

  /** The services for a re-attached device of this VM: the same list launchVm builds. */
  private services(): MessageService[] {
    const built = vmServices(this.definition.files, { native: this.deps.native, log: this.log }, this.chat(), this.deps.statsHub, this.calc());
    this.agent = built.agent;
    this.execService = built.exec;
    this.statsService = built.stats;
    this.agentUpdater = built.agentUpdate;
    return built.services;
  }

  /** `vmgmt cp` in either direction, through the guest agent. */
  copy(direction: 'to-guest' | 'from-guest', opts: HostCopyOptions & { sizeBytes?: number; maxBytes?: number }): Promise<{ bytes: number }> {
    const agent = this.agent;
    this.requireRunning('copies');
    if (!this.device || !agent) throw new VmgmtError('INVALID_STATE', `VM ${this.name} is ${this.state}: copies need a running VM with its device`, { name: this.name });
    this.log.info(`copy ${direction}`, { guestPath: opts.guestPath });
    return agentCopy(agent, {
      direction,
      hostFd: opts.hostFd,
      sizeBytes: opts.sizeBytes ?? 0,
      ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
      guestPath: opts.guestPath,
      // A VM still booting gets until its boot deadline for the agent to come up.
      agentWaitMs: this.agentUp ? DEFAULT_AGENT_WAIT_MS : Math.max(DEFAULT_AGENT_WAIT_MS, this.bootStartedAtMs + this.deps.config.boot.agentWaitMs - Date.now()),
      timeoutMs: opts.timeoutMs ?? 600_000,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
  }

  /** `vmgmt cp -r` from the VM: the checked tree under guestPath (guest-tree.ts), within the config's limits. */
  async listTree(guestPath: string): Promise<GuestTree> {
    const agent = this.agent;
    this.requireRunning('copies');
    if (!this.device || !agent) throw new VmgmtError('INVALID_STATE', `VM ${this.name} is ${this.state}: copies need a running VM with its device`, { name: this.name });
    const { maxTreeDepth, maxTreeEntries, transferDir } = this.deps.config.transfers;
    this.log.info('list tree', { guestPath });
    mkdirSync(transferDir, { recursive: true, mode: 0o700 });
    const listDir = async (guestDir: string): Promise<Uint8Array> => {
      // An unlinked temp file: nothing is left behind however the listing ends.
      const file = path.join(transferDir, `.list-${randomUUID()}`);
      const handle = await open(file, 'wx+', 0o600);
      try {
        await unlink(file);
        const maxBytes = (maxTreeEntries + 1) * (DIRENT.sizeBytes + MAX_ENTRY_NAME_BYTES + 8);
        const agentWaitMs = this.agentUp ? DEFAULT_AGENT_WAIT_MS : Math.max(DEFAULT_AGENT_WAIT_MS, this.bootStartedAtMs + this.deps.config.boot.agentWaitMs - Date.now());
        let bytes: number;
        try {
          ({ bytes } = await agent.list({ hostFd: handle.fd, maxBytes, guestPath: guestDir, timeoutMs: 120_000, agentWaitMs }));
        } catch (err) {
          if (err instanceof AgentError) throw new VmgmtError(err.code === 'TIMEOUT' ? 'TIMEOUT' : err.code === 'AGENT_UNAVAILABLE' ? 'AGENT_UNAVAILABLE' : 'GUEST_REFUSED', err.message.replace('could not copy', 'could not list'), err.details, { cause: err });
          throw err;
        }
        const buf = Buffer.alloc(bytes);
        let got = 0;
        while (got < bytes) {
          const { bytesRead } = await handle.read(buf, got, bytes - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      } finally {
        await handle.close();
      }
    };
    return walkGuestTree(guestPath, listDir, { maxDepth: maxTreeDepth, maxEntries: maxTreeEntries });
  }

  /** `vmgmt cp -r` to the VM: makes a guest directory (an existing one is fine). */
  async makeDir(guestPath: string, mode: number): Promise<void> {
    const agent = this.agent;
    this.requireRunning('copies');
    if (!this.device || !agent) throw new VmgmtError('INVALID_STATE', `VM ${this.name} is ${this.state}: copies need a running VM with its device`, { name: this.name });
    const waitMs = this.agentUp ? DEFAULT_AGENT_WAIT_MS : Math.max(DEFAULT_AGENT_WAIT_MS, this.bootStartedAtMs + this.deps.config.boot.agentWaitMs - Date.now());
    try {
      await agent.mkdir(guestPath, mode, { waitMs, timeoutMs: 30_000 });
    } catch (err) {
      if (err instanceof AgentError) throw new VmgmtError(err.code === 'TIMEOUT' ? 'TIMEOUT' : err.code === 'AGENT_UNAVAILABLE' ? 'AGENT_UNAVAILABLE' : err.code === 'INVALID_REQUEST' ? 'INVALID_REQUEST' : 'GUEST_REFUSED', err.message, err.details, { cause: err });
      throw err;
    }
  }

  /** `vmgmt vm exec`: a command in the guest through the agent, its I/O streamed through opts.io. */
  exec(opts: ExecOptions): Promise<ExecResult> {
    this.requireRunning('commands');
    const exec = this.execService;
    if (!this.device || !exec) throw new VmgmtError('INVALID_STATE', `VM ${this.name} is ${this.state}: commands need a running VM with its device`, { name: this.name });
    this.log.info('exec', { argv0: opts.spec.argv[0], args: opts.spec.argv.length, tty: opts.spec.tty });
    const agentWaitMs = this.agentUp ? DEFAULT_AGENT_WAIT_MS : Math.max(DEFAULT_AGENT_WAIT_MS, this.bootStartedAtMs + this.deps.config.boot.agentWaitMs - Date.now());
    return vmExec(exec, { ...opts, agentWaitMs });
  }

  /** What the CPU scheduler needs of a running VM; undefined when it is not running with a QEMU process. */
  schedTarget(): SchedTarget | undefined {
    const qemu = this.qemu;
    if (!qemu || this.state !== 'running') return undefined;
    return {
      name: this.name,
      pid: qemu.pid,
      limits: this.definition.cpu,
      vcpuThreads: async () => {
        const cpus = await qemu.qmp.execute<Array<{ 'thread-id': number }>>('query-cpus-fast');
        return cpus.map((c) => c['thread-id']).filter((t) => Number.isInteger(t) && t > 0);
      },
      pushShare: (share) => void this.statsService?.pushShare(share),
      intervalChanged: () => this.statsService?.intervalChanged(),
      log: this.log,
    };
  }

  private geometry() {
    const d = this.definition.device;
    return { regionSizeBytes: d.regionSizeBytes, vectors: d.vectors, channelCount: d.channels, ringSlots: d.ringSlots, slotSizeBytes: d.slotSizeBytes };
  }

  private async launch(): Promise<void> {
    const def = this.definition;
    mkdirSync(this.paths.runDir, { recursive: true, mode: 0o700 });
    const gate = this.deps.bootGate;
    if (gate) {
      if (gate.booting >= this.deps.config.boot.maxConcurrent) {
        this.log.info(`waiting for a turn to boot: ${gate.booting} VMs are booting, ${gate.waiting} waiting (boot.maxConcurrent ${this.deps.config.boot.maxConcurrent})`);
      }
      this.bootTurn = await gate.turn();
    }
    this.bootStartedAtMs = Date.now();
    this.agentUp = false;
    const { accel, device, services, qemu } = await launchVm(
      {
        name: def.name,
        uuid: this.record.uuid,
        accel: def.accel,
        memoryMiB: def.memoryMiB,
        cpus: def.cpus,
        ...(def.cpuModel ? { cpuModel: def.cpuModel } : {}),
        boot: this.bootSpec(),
        geometry: this.geometry(),
        ...(def.files ? { files: def.files } : {}),
        ...(this.chat() ? { chat: this.chat()! } : {}),
        ...(this.deps.statsHub ? { stats: this.deps.statsHub } : {}),
        ...(this.calc() ? { calc: this.calc()! } : {}),
        paths: this.paths,
        network: def.network,
        cacheDir: this.deps.cacheDir,
      },
      { native: this.deps.native, log: this.log, snapshots: this.snapshots() },
    );
    this.device = device;
    this.agent = services.agent;
    this.execService = services.exec;
    this.statsService = services.stats;
    this.agentUpdater = services.agentUpdate;
    // The boot's turn ends when the agent is up (or the boot's deadline passes, or the VM goes away).
    const turn = this.bootTurn;
    const agentWaitMs = this.deps.config.boot.agentWaitMs;
    void services.agent
      .waitUntilUp(agentWaitMs)
      .then((up) => {
        if (up && this.agent === services.agent) this.agentUp = true;
        else if (!up && this.device === device) this.log.warn(`the guest agent did not come up within ${agentWaitMs} ms of the start; the next VM may boot now`);
      })
      .finally(() => this.endBootTurn(turn));
    this.qemu = qemu;
    const cgroup = createVmCgroup(def.name, undefined, this.deps.config.cgroupParent);
    if (cgroup.ok) cgroup.cgroup.addProcess(qemu.pid);
    else this.log.warn('VM runs without its own cgroup', { reason: cgroup.reason });
    this.record = {
      ...this.record,
      pid: qemu.pid,
      pidStartTime: processStartTime(qemu.pid) ?? null,
      accel: accel.accel,
      accelReason: accel.reason,
      startedAt: new Date().toISOString(),
      deviceFds: await device.locateInQemu(qemu.pid),
    };
    this.persist();
    this.watch(qemu);
  }

  private watch(qemu: QemuProcess): void {
    void (async () => {
      for await (const ev of qemu.qmp.events()) {
        if (!QMP_EVENTS.has(ev.event) || this.qemu !== qemu) continue;
        this.log.info(`QMP event ${ev.event}`, { data: ev.data });
        try {
          const reason = typeof ev.data?.['reason'] === 'string' ? (ev.data['reason'] as string) : undefined;
          this.apply({ type: 'qmp', event: ev.event as 'STOP', ...(reason ? { reason } : {}) });
        } catch (err) {
          this.log.warn('ignored QMP event', { event: ev.event, error: (err as Error).message });
        }
        if (ev.event === 'GUEST_PANICKED') void qemu.kill();
      }
    })().catch((err: unknown) => this.log.warn('QMP event stream ended with an error', { error: (err as Error).message }));
    void qemu.exited.then((exit) => this.onExited(qemu, exit, true));
  }

  private onExited(qemu: QemuProcess, exit: QemuExit, known: boolean): void {
    if (this.qemu !== qemu || this.detached) return;
    this.qemu = undefined;
    const at = new Date().toISOString();
    clearTimeout(this.stableTimer);
    this.apply({ type: 'exited', exitCode: exit.exitCode, signal: exit.signal, known: known && (exit.exitCode !== null || exit.signal !== null) });
    const crashed = this.state === 'crashed';
    // Whatever waits on the device (a copy) fails now, with the VM's fate.
    this.cleanupAfterExit(`VM ${this.name} ${crashed ? 'crashed' : 'stopped'} (${this.record.status.reason})`);
    // Early panics come before any pvpanic driver loads: what the console said last is the best account.
    const consoleTail = crashed ? lastLines(this.paths.consoleLog, CONSOLE_TAIL_LINES) : '';
    this.record = {
      ...this.record,
      pid: null,
      pidStartTime: null,
      deviceFds: null,
      lastExit: { exitCode: exit.exitCode, signal: exit.signal, at, reason: this.record.status.reason, ...(consoleTail ? { consoleTail } : {}) },
    };
    this.persist();
    this.scheduleRestartIfWanted();
  }

  /** A VM that runs steadily for resetAfterMs gets its full count of restarts back. */
  private scheduleRestartCountReset(): void {
    clearTimeout(this.stableTimer);
    const startedAt = this.record.startedAt ? Date.parse(this.record.startedAt) : Date.now();
    const dueMs = Math.max(0, startedAt + this.definition.restart.resetAfterMs - Date.now());
    const qemu = this.qemu;
    this.stableTimer = setTimeout(() => {
      if (this.qemu !== qemu || !qemu || this.state !== 'running' || this.record.restarts === 0) return;
      this.log.info(`ran ${this.definition.restart.resetAfterMs} ms without a crash: restart count ${this.record.restarts} -> 0`);
      this.record = { ...this.record, restarts: 0 };
      this.persist();
    }, dueMs);
    this.stableTimer.unref();
  }

  private scheduleRestartIfWanted(): void {
    const policy = this.definition.restart;
    if (!wantsRestart(this.record.status, policy, this.record.restarts)) {
      if (this.record.status.state === 'crashed' && policy.policy === 'on-failure') {
        this.record = { ...this.record, restartGaveUpAt: new Date().toISOString() };
        this.persist();
        this.log.warn(`the on-failure policy gave up: ${this.record.restarts} restarts of ${policy.maxRestarts} used; start the VM by hand once its cause is fixed`);
      }
      return;
    }
    const delayMs = restartDelayMs(policy.backoffMs, this.record.restarts);
    this.record.restarts += 1;
    this.persist();
    this.log.info(`restarting in ${delayMs} ms (restart ${this.record.restarts} of ${policy.maxRestarts}, policy on-failure)`);
    this.restartDueAt = new Date(Date.now() + delayMs).toISOString();
    this.restartTimer = setTimeout(() => {
      this.start({ resetRestarts: false }).catch((err: unknown) => this.log.error('restart failed', { error: (err as Error).message }));
    }, delayMs);
  }

  private endBootTurn(turn = this.bootTurn): void {
    turn?.();
    if (this.bootTurn === turn) this.bootTurn = undefined;
  }

  private cleanupAfterExit(reason = `VM ${this.name} is no longer running`): void {
    this.endBootTurn();
    this.device?.close(reason);
    this.device = undefined;
    for (const s of [this.paths.qmpSocket, this.paths.consoleSocket, this.paths.controlSocket, this.paths.ivshmemSocket]) rmSync(s, { force: true });
    const cg = createVmCgroup(this.name, undefined, this.deps.config.cgroupParent);
    if (cg.ok) cg.cgroup.remove();
  }

  stop(opts: { timeoutMs?: number } = {}): Promise<VmDetails> {
    return this.serialize(async () => {
      this.apply({ type: 'stop' });
      const qemu = this.qemu;
      if (!qemu) throw new VmgmtError('INTERNAL', `VM ${this.name} is ${this.state} but has no QEMU process attached`);
      const deadlineMs = opts.timeoutMs ?? this.definition.powerdownTimeoutMs;
      // A guest still booting has no ACPI handler yet: it ignores the power button until the deadline.
      const booting = !this.agentUp;
      let stoppedBy: 'powerdown' | 'quit' | 'kill' = 'powerdown';
      let stopNote = '';
      // QEMU drops a press the guest has not enabled (acpi-power-button.ts): then waiting is for nothing.
      const button = await readPowerButton(qemu.qmp);
      if (button.kind === 'disabled') {
        stopNote = `vm ${this.name} was still booting (${button.why}): stopped it with quit at once`;
        this.log.info(stopNote);
        await qemu.shutdown({ timeoutMs: QUIT_TIMEOUT_MS });
        stoppedBy = 'quit';
      } else {
        if (button.kind === 'unknown') this.log.debug(`could not tell whether the guest takes the power button: ${button.why}; pressing it`);
        await qemu.qmp.execute('system_powerdown').catch((err: unknown) => this.log.warn('system_powerdown failed', { error: (err as Error).message }));
        // Pressed while the guest was booting, the press may come before anything in the guest listens for
        // it (the kernel took it, its userspace was not up): press once more when its agent comes up.
        const agent = this.agent;
        if (booting && agent) {
          void agent.waitUntilUp(deadlineMs).then((up) => {
            if (!up || this.qemu !== qemu || this.state !== 'stopping') return;
            this.log.info('the guest agent came up while the VM was stopping: pressing the power button once more');
            return qemu.qmp.execute('system_powerdown');
          }).catch(() => {});
        }
        let deadline: NodeJS.Timeout | undefined;
        const exited = await Promise.race([qemu.exited.then(() => true), new Promise<false>((r) => (deadline = setTimeout(() => r(false), deadlineMs)))]);
        clearTimeout(deadline);
        if (!exited) {
          stopNote =
            `the guest did not power off within ${deadlineMs} ms of the ACPI power button` +
            (booting ? ' (it was still booting: its agent was not up, and a guest ignores the button until its ACPI handler is set up)' : '') +
            '; QEMU was told to quit';
          this.log.warn(stopNote);
          await qemu.shutdown({ timeoutMs: QUIT_TIMEOUT_MS });
          stoppedBy = 'quit';
        }
      }
      const exit = await qemu.exited;
      if (stoppedBy === 'quit' && exit.signal === 'SIGKILL') {
        stoppedBy = 'kill';
        stopNote += `, did not exit within ${QUIT_TIMEOUT_MS} ms and was killed (SIGKILL)`;
      }
      await this.settled();
      if (this.record.lastExit) {
        this.record = { ...this.record, lastExit: { ...this.record.lastExit, stoppedBy, ...(stopNote ? { stopNote } : {}) } };
        this.persist();
      }
      return this.details();
    });
  }

  /** QMP `stop`: the vCPUs halt, QEMU and the device stay up. The QMP STOP event says the same. */
  pause(): Promise<VmDetails> {
    return this.serialize(async () => {
      if (this.state === 'paused') throw new VmgmtError('INVALID_STATE', `vm ${this.name} is paused already`, { name: this.name, state: this.state });
      if (this.state !== 'running') throw new VmgmtError('INVALID_STATE', `vm ${this.name} is ${this.state}: only a running VM can be paused`, { name: this.name, state: this.state });
      const qemu = this.qemu;
      if (!qemu) throw new VmgmtError('INTERNAL', `VM ${this.name} is ${this.state} but has no QEMU process attached`);
      await qemu.qmp.execute('stop');
      // The event may still be on its way; the transition is the same either way.
      if (this.state === 'running') this.apply({ type: 'qmp', event: 'STOP' });
      return this.details();
    });
  }

  /** QMP `cont`. */
  resume(): Promise<VmDetails> {
    return this.serialize(async () => {
      if (this.state !== 'paused') throw new VmgmtError('INVALID_STATE', `vm ${this.name} is ${this.state}: only a paused VM can be resumed`, { name: this.name, state: this.state });
      const qemu = this.qemu;
      if (!qemu) throw new VmgmtError('INTERNAL', `VM ${this.name} is ${this.state} but has no QEMU process attached`);
      await qemu.qmp.execute('cont');
      if (this.state === 'paused') this.apply({ type: 'qmp', event: 'RESUME' });
      return this.details();
    });
  }

  /** Refuses at once what needs the guest to run: `vm NAME is paused` (cp, exec, chat), else the state. */
  requireRunning(what: string): void {
    if (this.state === 'paused') throw new VmgmtError('INVALID_STATE', `vm ${this.name} is paused: resume it first (vmgmt vm resume ${this.name})`, { name: this.name, state: this.state });
    if (this.state !== 'running') throw new VmgmtError('INVALID_STATE', `VM ${this.name} is ${this.state}: ${what} need a running VM with its device`, { name: this.name, state: this.state });
  }

  kill(): Promise<VmDetails> {
    return this.serialize(async () => {
      this.apply({ type: 'kill' });
      const qemu = this.qemu;
      if (qemu) await qemu.kill();
      await this.settled();
      return this.details();
    });
  }

  /** Lets the exit handler (a promise reaction) run before reporting. */
  private async settled(): Promise<void> {
    await new Promise((r) => setImmediate(r));
  }

  /** After a daemon restart: take back a VM that was running, or record that it died meanwhile. */
  async recover(): Promise<void> {
    const r = this.record;
    if (!isActive(r.status.state)) return;
    const identity = r.pid !== null && r.pidStartTime !== null ? checkProcessIdentity(r.pid, r.pidStartTime, r.uuid) : { same: false as const, why: 'no pid recorded' };
    if (!identity.same) {
      this.log.warn('VM died while the daemon was not running', { why: identity.why });
      this.cleanupAfterExit();
      this.apply({ type: 'vanished', why: identity.why });
      this.record = { ...this.record, pid: null, pidStartTime: null, deviceFds: null, lastExit: { exitCode: null, signal: null, at: new Date().toISOString(), reason: 'exit status unknown' } };
      this.persist();
      this.scheduleRestartIfWanted();
      return;
    }
    const pid = r.pid!;
    const qemu = await attachQemu({ pid, qmpSocketPath: this.paths.qmpSocket, sockets: [this.paths.qmpSocket, this.paths.consoleSocket, this.paths.controlSocket], logPath: this.paths.qemuLog, native: this.deps.native });
    this.qemu = qemu;
    if (r.deviceFds) {
      try {
        this.device = ManagementDevice.reattach({
          native: this.deps.native,
          name: this.name,
          socketPath: this.paths.ivshmemSocket,
          geometry: this.geometry(),
          services: this.services(),
          snapshots: this.snapshots(),
          log: this.log,
          qemuPid: pid,
          fds: r.deviceFds,
        });
      } catch (err) {
        this.log.error('could not re-attach the management device; the VM runs without it until restarted', { error: (err as Error).message });
      }
    }
    const status = (await qemu.qmp.execute<{ status: string }>('query-status')).status;
    this.apply({ type: 'reattached', qemuStatus: status });
    this.log.info('re-attached', { pid, device: this.device ? 'served' : 'none' });
    this.watch(qemu);
    this.scheduleRestartCountReset();
    this.agentUp = true; // it booted under an earlier daemon; its agent re-claims its channel on its own
  }

  /** `vm update`: the record to carry over to the instance that replaces this one (the VM is not active). */
  snapshotForReplace(): { record: VmRecord } {
    clearTimeout(this.restartTimer);
    this.restartDueAt = null;
    return { record: this.record };
  }

  /** Daemon shutdown: let go of QEMU and the device without stopping the VM. */
  detach(): void {
    this.detached = true;
    clearTimeout(this.restartTimer);
    this.restartDueAt = null;
    clearTimeout(this.stableTimer);
    this.endBootTurn();
    this.qemu?.release();
    this.device?.close('the daemon is shutting down (the VM keeps running)');
  }
}
