// The daemon's registry of VMs: creates, finds and removes them, and hands lifecycle requests to each
// VM's instance. Implements what the control API serves.
import type { GuestTree } from './guest-tree.js';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import type { DaemonConfig } from './daemon-config.js';
import { LocalChatHub } from '../../device-backend/services/chat/local-chat-hub.js';
import type { ChatHub, HostMessageHandler } from '../../device-backend/services/chat/chat-hub.js';
import { ClusterChatHub } from '../../device-backend/services/chat/cluster/cluster-chat-hub.js';
import type { Logger } from './logger.js';
import { StateStore } from './state-store.js';
import type { VmDefinition } from './vm-definition.js';
import { describeProblems } from '../api/field-problems.js';
import { BootGate } from './boot-gate.js';
import { hostPathProblems } from './definition-paths.js';
import { readLogChunk } from './file-tail.js';
import { MAX_LOG_CHUNK_BYTES } from '../api/api-contract.js';
import { hostCacheDir, hostKvmProbeInfo } from '../qemu/accel-probe.js';
import { newRecord, VmInstance } from './vm-instance.js';
import type { HostCopyOptions, HostInfo, LogChunk, LogSource, StatsList, VmDetails, VmManagerApi, VmStats, VmSummary } from './vm-manager-api.js';
import type { TransferNoticeData, VmStateEventData } from '../api/api-contract.js';
import { StatsHub } from '../../device-backend/services/stats/stats-hub.js';
import { CalcPrograms } from '../../device-backend/services/calc/calc-programs.js';
import { calcLauncherPath } from '../../device-backend/services/calc/calc-launcher.js';
import type { ExecOptions, ExecResult } from '../../device-backend/services/exec/exec-service.js';
import { FallbackCpuControl, hostCpuControl } from './scheduler/cpu-control.js';
import { CpuScheduler, type SchedTarget } from './scheduler/cpu-scheduler.js';
import { isActive } from './vm-state-machine.js';
import { VmgmtError } from './vmgmt-error.js';
import type { AgentUpdateResult } from '../api/api-contract.js';

export interface VmManagerOptions {
  stateDir: string;
  runtimeDir: string;
  native: VmgmtNative;
  log: Logger;
  /** The daemon's configuration as of now (a SIGHUP may replace it): LiveDaemonConfig. */
  config: { readonly current: DaemonConfig };
  /** What guests send to `host` (the daemon publishes it on the API's event stream); default: logged. */
  onHostChatMessage?: HostMessageHandler;
  /** VMs created, removed and changing state (the event stream's `vm.state`). */
  onLifecycle?: (change: VmStateEventData) => void;
  /** Copies between host and guest starting and ending (the event stream's `transfer`). */
  onTransfer?: (notice: TransferNoticeData) => void;
}

const DEFAULT_LOG_TAIL_BYTES = 64 * 1024;
const DEFAULT_STATS_SAMPLES = 60;

export class VmManager implements VmManagerApi {
  private readonly store: StateStore;
  private readonly vms = new Map<string, VmInstance>();
  /** One chat hub for every VM of this daemon. */
  readonly chatHub: ChatHub;
  /** Cluster mode (config cluster): the hub that routes names of other hosts over NATS; start() connects it. */
  readonly cluster: ClusterChatHub | undefined;
  /** How many VMs boot at once (config boot.maxConcurrent). */
  private readonly bootGate: BootGate;
  /** Every VM's stats series, host figures and CPU share. */
  readonly statsHub: StatsHub;
  /** Weights of the VMs' vCPU threads from what the guests declare (config scheduling). */
  readonly scheduler: CpuScheduler;
  /** The addon as this daemon's devices use it: regions mapped as `devices.prefaultRegions` says now. */
  private readonly deviceNative: VmgmtNative;
  /** The declared calculation programs (config calc) of every VM; close() removes their cgroups. */
  readonly calcPrograms: CalcPrograms;

  constructor(private readonly opts: VmManagerOptions) {
    this.statsHub = new StatsHub({ intervalMs: () => opts.config.current.stats.intervalMs });
    this.scheduler = new CpuScheduler({
      hub: this.statsHub,
      control: new FallbackCpuControl(hostCpuControl(undefined, opts.config.current.cgroupParent)),
      log: opts.log.child({ service: 'scheduler' }),
      config: () => opts.config.current.scheduling,
      targets: () => [...this.vms.values()].map((vm) => vm.schedTarget()).filter((t): t is SchedTarget => t !== undefined),
    });
    this.store = new StateStore(opts.stateDir);
    this.bootGate = new BootGate(() => opts.config.current.boot.maxConcurrent);
    // The policy is read at each send: a SIGHUP that changes chat.rules applies to the next one.
    const cluster = opts.config.current.cluster;
    const local = new LocalChatHub({
      log: opts.log.child({ service: 'chat' }),
      policy: () => ({ rules: opts.config.current.chat.rules }),
      ...(opts.onHostChatMessage ? { onHostMessage: opts.onHostChatMessage } : {}),
      ...(cluster ? { hostId: cluster.host } : {}),
    });
    this.cluster = cluster ? new ClusterChatHub({ local, log: opts.log.child({ service: 'cluster' }), ...cluster }) : undefined;
    this.chatHub = this.cluster ?? local;
    this.deviceNative = configuredNative(opts.native, opts.config);
    this.calcPrograms = new CalcPrograms({ settings: () => opts.config.current.calc, launcherPath: calcLauncherPath(), log: opts.log.child({ service: 'calc' }) });
    const { vms, problems } = this.store.loadAll();
    for (const p of problems) opts.log.error('cannot load a stored VM; fix or remove its files', { vm: p.name, problem: p.problem, dir: this.store.vmDir(p.name) });
    for (const { definition, record } of vms) this.vms.set(definition.name, this.instance(definition, record));
  }

  private instance(definition: VmDefinition, record = newRecord()): VmInstance {
    const live = this.opts.config;
    return new VmInstance(definition, record, {
      store: this.store,
      runtimeDir: this.opts.runtimeDir,
      cacheDir: hostCacheDir(),
      native: this.deviceNative,
      log: this.opts.log,
      get config() {
        return live.current;
      },
      chatHub: this.chatHub,
      bootGate: this.bootGate,
      statsHub: this.statsHub,
      calcPrograms: this.calcPrograms,
      ...(this.opts.onLifecycle ? { onStateChange: this.opts.onLifecycle } : {}),
    });
  }

  private get(name: string): VmInstance {
    const vm = this.vms.get(name);
    if (!vm) throw new VmgmtError('NOT_FOUND', `no VM named ${name}: see \`vmgmt vm ls\``, { name });
    return vm;
  }

  /** Re-attaches every VM that was running when the daemon last stopped. */
  async recoverAll(): Promise<void> {
    for (const vm of this.vms.values()) {
      try {
        await vm.recover();
      } catch (err) {
        vm.log.error('re-attach failed', { error: (err as Error).message });
      }
    }
  }

  detachAll(): void {
    for (const vm of this.vms.values()) vm.detach();
  }

  async create(definition: VmDefinition): Promise<VmDetails> {
    if (this.vms.has(definition.name) || this.store.exists(definition.name)) {
      throw new VmgmtError('ALREADY_EXISTS', `a VM named ${definition.name} already exists: choose another name or remove it first (\`vmgmt vm rm ${definition.name}\`)`, { name: definition.name });
    }
    const problems = hostPathProblems(definition);
    if (problems.length > 0) {
      throw new VmgmtError('INVALID_DEFINITION', `invalid VM definition: ${describeProblems(problems)}`, { problems });
    }
    const record = newRecord();
    this.store.saveDefinition(definition);
    this.store.saveRecord(definition.name, record);
    const vm = this.instance(definition, record);
    this.vms.set(definition.name, vm);
    vm.log.info('defined');
    this.opts.onLifecycle?.({ vm: definition.name, state: vm.state, previous: null, reason: 'defined' });
    return vm.details();
  }

  list(): VmSummary[] {
    // Natural order: s1, s2, s10.
    return [...this.vms.values()].map((vm) => vm.summary()).sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  }

  inspect(name: string): VmDetails {
    return this.get(name).details();
  }

  start(name: string): Promise<VmDetails> {
    return this.get(name).start();
  }

  stop(name: string, opts?: { timeoutMs?: number }): Promise<VmDetails> {
    return this.get(name).stop(opts);
  }

  kill(name: string): Promise<VmDetails> {
    return this.get(name).kill();
  }

  exec(name: string, opts: ExecOptions): Promise<ExecResult> {
    return this.get(name).exec(opts);
  }

  pause(name: string): Promise<VmDetails> {
    return this.get(name).pause();
  }

  resume(name: string): Promise<VmDetails> {
    return this.get(name).resume();
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const vm = this.get(name);
    if (isActive(vm.state)) {
      if (!opts.force) throw new VmgmtError('INVALID_STATE', `VM ${name} is ${vm.state}: stop it first, or remove it with --force`, { name, state: vm.state });
      await vm.kill();
    }
    vm.detach();
    vm.log.close();
    this.vms.delete(name);
    this.store.remove(name);
    this.statsHub.forget(name);
    rmSync(vm.paths.runDir, { recursive: true, force: true });
    this.opts.log.info('removed', { vm: name });
    this.opts.onLifecycle?.({ vm: name, state: 'removed', previous: vm.state, reason: 'removed' });
  }

  copyToGuest(name: string, opts: HostCopyOptions & { sizeBytes: number }): Promise<{ bytes: number }> {
    return this.noticed(name, 'to-guest', opts.guestPath, () => this.get(name).copy('to-guest', opts));
  }

  copyFromGuest(name: string, opts: HostCopyOptions & { maxBytes: number }): Promise<{ bytes: number }> {
    return this.noticed(name, 'from-guest', opts.guestPath, () => this.get(name).copy('from-guest', opts));
  }

  /** `vmgmt cp -r` from a VM: the checked guest tree under guestPath (guest-tree.ts). */
  listGuestTree(name: string, guestPath: string): Promise<GuestTree> {
    return this.get(name).listTree(guestPath);
  }

  /** `vmgmt cp -r` to a VM: makes a guest directory (an existing one is fine). */
  makeGuestDir(name: string, guestPath: string, mode: number): Promise<void> {
    return this.get(name).makeDir(guestPath, mode);
  }

  private transfersStarted = 0;

  /** A copy, told to onTransfer when it starts and when it ends (a copy refused at once is not told). */
  private async noticed(name: string, direction: 'to-guest' | 'from-guest', guestPath: string, copy: () => Promise<{ bytes: number }>): Promise<{ bytes: number }> {
    const started = copy();
    const notify = this.opts.onTransfer;
    if (!notify) return started;
    const transferId = ++this.transfersStarted;
    const base = { vm: name, transferId, direction, guestPath };
    notify({ ...base, phase: 'started', bytes: 0, error: null });
    try {
      const done = await started;
      notify({ ...base, phase: 'done', bytes: done.bytes, error: null });
      return done;
    } catch (err) {
      notify({ ...base, phase: 'failed', bytes: 0, error: (err as Error).message });
      throw err;
    }
  }

  agentUpdate(name: string, opts: { binary?: string; sha256?: string; reportInMs?: number; probationMs?: number }): Promise<AgentUpdateResult> {
    return this.get(name).updateAgent(opts);
  }

  stats(name: string, opts: { limit?: number } = {}): VmStats {
    const vm = this.get(name);
    const view = this.statsHub.view(name, opts.limit ?? DEFAULT_STATS_SAMPLES);
    return {
      name,
      state: vm.state,
      intervalMs: this.statsHub.intervalMs(),
      policyEnabled: this.opts.config.current.scheduling.enabled,
      accepted: view.accepted,
      refused: view.refused,
      host: view.host,
      share: view.share,
      samples: view.samples,
    };
  }

  statsAll(): StatsList {
    return { vms: this.list().map((vm) => this.stats(vm.name, { limit: 1 })) };
  }

  async logs(name: string, opts: { source: LogSource; tailBytes?: number; fromByte?: number }): Promise<LogChunk> {
    const vm = this.get(name);
    const file = opts.source === 'console' ? vm.paths.consoleLog : opts.source === 'qemu' ? vm.paths.qemuLog : path.join(this.store.vmDir(name), 'daemon.log');
    // The state first: a VM that is stopped now has written all it will (QEMU exited before the state changed).
    const vmState = vm.state;
    const restartAt = vm.restartAt;
    const chunk = readLogChunk(file, {
      tailBytes: Math.min(opts.tailBytes ?? DEFAULT_LOG_TAIL_BYTES, MAX_LOG_CHUNK_BYTES),
      ...(opts.fromByte === undefined ? {} : { fromByte: opts.fromByte }),
      maxBytes: MAX_LOG_CHUNK_BYTES,
    });
    return { ...chunk, vmState, restartAt };
  }

  async update(name: string, definition: VmDefinition): Promise<VmDetails> {
    const vm = this.get(name);
    if (definition.name !== name) throw new VmgmtError('INVALID_DEFINITION', `invalid VM definition: name: is ${definition.name}, but the VM is ${name}: a VM cannot be renamed`, { problems: [{ path: 'name', message: `must be ${name}` }] });
    if (isActive(vm.state)) throw new VmgmtError('INVALID_STATE', `VM ${name} is ${vm.state}: stop it first (\`vmgmt vm stop ${name}\`), then update its definition`, { name, state: vm.state });
    const problems = hostPathProblems(definition);
    if (problems.length > 0) throw new VmgmtError('INVALID_DEFINITION', `invalid VM definition: ${describeProblems(problems)}`, { problems });
    this.store.saveDefinition(definition);
    const { record } = vm.snapshotForReplace();
    vm.detach();
    vm.log.close();
    const next = this.instance(definition, record);
    this.vms.set(name, next);
    next.log.info('definition updated');
    return next.details();
  }

  async host(): Promise<HostInfo> {
    return { kvmProbe: await hostKvmProbeInfo({ cacheDir: hostCacheDir() }) };
  }
}

/**
 * The addon with mapShared prefaulting as the config says at the time of each mapping (a VM start or a
 * re-attach), so a SIGHUP applies to the next device mapped. docs/decisions/device-memory.md.
 */
export function configuredNative(native: VmgmtNative, config: { readonly current: DaemonConfig }): VmgmtNative {
  const mapShared: VmgmtNative['mapShared'] = (fd, sizeBytes, prefault) => native.mapShared(fd, sizeBytes, prefault ?? config.current.devices.prefaultRegions);
  // The addon's own properties are read-only: define mapShared on an object that inherits the rest.
  return Object.create(native, { mapShared: { value: mapShared, enumerable: true } }) as VmgmtNative;
}
