// An in-memory VmManagerApi for tests of the API server and the CLI: no QEMU, same errors as the contract.
// Copies move bytes between the caller's host fd (a pipe, read or written in order) and an in-memory guest
// file system (guestFiles).
import type { GuestTree } from '../daemon/guest-tree.js';
import type { ExecOptions, ExecResult } from '../../device-backend/services/exec/exec-service.js';
import { readSync, writeSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { VmDefinition } from '../daemon/vm-definition.js';
import type { AgentUpdateResult } from './api-contract.js';
import type { HostCopyOptions, HostInfo, LogChunk, LogSource, StatsList, VmDetails, VmManagerApi, VmStats, VmSummary } from '../daemon/vm-manager-api.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';

export interface FakeVmManagerCall {
  method: keyof VmManagerApi;
  args: unknown[];
}

export class FakeVmManager implements VmManagerApi {
  readonly calls: FakeVmManagerCall[] = [];
  readonly vms = new Map<string, VmDetails>();
  /** Thrown (once) by the next call instead of doing anything. */
  failNext: unknown;
  /** Guest path → contents: what copyToGuest writes and copyFromGuest reads. */
  readonly guestFiles = new Map<string, Uint8Array>();
  /** The maxBytes each copyFromGuest was given. */
  readonly pullLimits: number[] = [];
  /** Thrown (once) by the next copy halfway through, after some progress. */
  failCopy: unknown;
  /** Bytes per pread/pwrite and per onProgress call. */
  copyChunkBytes = 1024 * 1024;
  #nextPid = 4242;

  constructor(readonly runRoot = '/run/vmgmt/vms') {}

  async create(definition: VmDefinition): Promise<VmDetails> {
    this.#enter('create', [definition]);
    if (this.vms.has(definition.name)) {
      throw new VmgmtError('ALREADY_EXISTS', `vm ${definition.name} already exists: remove it first or pick another name`, {
        name: definition.name,
      });
    }
    const runDir = `${this.runRoot}/${definition.name}`;
    const vm: VmDetails = {
      name: definition.name,
      uuid: `00000000-0000-4000-8000-${String(this.vms.size + 1).padStart(12, '0')}`,
      state: 'defined',
      pid: null,
      accel: null,
      startedAt: null,
      restarts: 0,
      lastExit: null,
      definition,
      paths: {
        runDir,
        qmpSocket: `${runDir}/qmp.sock`,
        consoleSocket: `${runDir}/console.sock`,
        consoleLog: `${runDir}/console.log`,
        qemuLog: `${runDir}/qemu.log`,
        controlSocket: `${runDir}/control.sock`,
        ivshmemSocket: `${runDir}/ivshmem.sock`,
      },
      device: null,
      stateReason: 'created',
    };
    this.vms.set(vm.name, vm);
    return structuredClone(vm);
  }

  list(): VmSummary[] {
    this.#enter('list', []);
    return [...this.vms.values()].map(({ name, uuid, state, pid, accel, startedAt, restarts, lastExit }) => ({
      name,
      uuid,
      state,
      pid,
      accel,
      startedAt,
      restarts,
      lastExit,
    }));
  }

  inspect(name: string): VmDetails {
    this.#enter('inspect', [name]);
    return structuredClone(this.#get(name));
  }

  async start(name: string): Promise<VmDetails> {
    this.#enter('start', [name]);
    const vm = this.#get(name);
    if (vm.state === 'running') throw new VmgmtError('INVALID_STATE', `vm ${name} is already running`, { name, state: vm.state });
    Object.assign(vm, {
      state: 'running',
      pid: this.#nextPid++,
      accel: 'tcg',
      startedAt: new Date().toISOString(),
      stateReason: 'started by request',
      device: { attached: true, origin: 'fresh', regionSizeBytes: vm.definition.device.regionSizeBytes, messages: 0, protocolErrors: 0, doorbells: 0 },
    });
    return structuredClone(vm);
  }

  async stop(name: string, opts?: { timeoutMs?: number }): Promise<VmDetails> {
    this.#enter('stop', [name, opts]);
    const vm = this.#get(name);
    if (vm.state !== 'running') throw new VmgmtError('INVALID_STATE', `vm ${name} is ${vm.state}, not running`, { name, state: vm.state });
    this.#exit(vm, 0, null, 'powered off by request');
    return structuredClone(vm);
  }

  async kill(name: string): Promise<VmDetails> {
    this.#enter('kill', [name]);
    const vm = this.#get(name);
    if (vm.state !== 'running') throw new VmgmtError('INVALID_STATE', `vm ${name} is ${vm.state}, not running`, { name, state: vm.state });
    this.#exit(vm, null, 'SIGKILL', 'killed by request');
    return structuredClone(vm);
  }

  async exec(name: string, _opts: ExecOptions): Promise<ExecResult> {
    this.#enter('exec', [name]);
    const vm = this.#get(name);
    throw new VmgmtError('INVALID_STATE', `vm ${name} is ${vm.state}: the fake manager runs no commands`, { name, state: vm.state });
  }

  async pause(name: string): Promise<VmDetails> {
    this.#enter('pause', [name]);
    const vm = this.#get(name);
    if (vm.state !== 'running') throw new VmgmtError('INVALID_STATE', `vm ${name} is ${vm.state}: only a running VM can be paused`, { name, state: vm.state });
    vm.state = 'paused';
    return structuredClone(vm);
  }

  async resume(name: string): Promise<VmDetails> {
    this.#enter('resume', [name]);
    const vm = this.#get(name);
    if (vm.state !== 'paused') throw new VmgmtError('INVALID_STATE', `vm ${name} is ${vm.state}: only a paused VM can be resumed`, { name, state: vm.state });
    vm.state = 'running';
    return structuredClone(vm);
  }

  async remove(name: string, opts?: { force?: boolean }): Promise<void> {
    this.#enter('remove', [name, opts]);
    const vm = this.#get(name);
    if (vm.state === 'running' && !opts?.force) {
      throw new VmgmtError('INVALID_STATE', `vm ${name} is running: stop it first or remove it with force`, { name, state: vm.state });
    }
    this.vms.delete(name);
  }

  stats(name: string, opts: { limit?: number } = {}): VmStats {
    this.#enter('stats', [name, opts]);
    const vm = this.#get(name);
    return { name, state: vm.state, intervalMs: 1000, policyEnabled: true, accepted: 0, refused: 0, host: null, share: null, samples: [] };
  }

  /** Versions the fake agents run (agentUpdate moves a VM to the next). */
  readonly agentVersions = new Map<string, string>();

  async agentUpdate(name: string, opts: { binary?: string; sha256?: string; reportInMs?: number; probationMs?: number }): Promise<AgentUpdateResult> {
    this.#enter('agentUpdate', [name, opts]);
    const vm = this.#get(name);
    if (vm.state !== 'running') throw new VmgmtError('INVALID_STATE', `VM ${name} is ${vm.state}: an agent update needs a running VM`, { name });
    const fromVersion = this.agentVersions.get(name) ?? null;
    const toVersion = `fake-${(Number(fromVersion?.slice(5) ?? 0) || 0) + 1}`;
    this.agentVersions.set(name, toVersion);
    return { name, fromVersion, toVersion, pid: this.#nextPid++, sha256: '0'.repeat(64), bytes: 0, gapMs: 1, stageMs: 1, switchMs: 1, totalMs: 3 };
  }

  statsAll(): StatsList {
    this.#enter('statsAll', []);
    return { vms: [...this.vms.values()].map((vm) => ({ name: vm.name, state: vm.state, intervalMs: 1000, policyEnabled: true, accepted: 0, refused: 0, host: null, share: null, samples: [] })) };
  }

  async logs(name: string, opts: { source: LogSource; tailBytes?: number; fromByte?: number }): Promise<LogChunk> {
    this.#enter('logs', [name, opts]);
    const vm = this.#get(name);
    const all = `${opts.source} log of ${name}\nline 2\n`;
    const text = opts.fromByte !== undefined ? all.slice(opts.fromByte) : opts.tailBytes === undefined ? all : all.slice(-opts.tailBytes);
    return { text, endByte: all.length, vmState: vm.state, restartAt: null };
  }

  async update(name: string, definition: VmDefinition): Promise<VmDetails> {
    this.#enter('update', [name, definition]);
    this.#get(name);
    throw new VmgmtError('INVALID_STATE', 'the fake manager does not update definitions', { name });
  }

  async host(): Promise<HostInfo> {
    this.#enter('host', []);
    return { kvmProbe: { cachePath: '/fake/kvm-probe.json', key: null, cached: null, problem: 'a fake manager' } };
  }

  async copyToGuest(name: string, opts: HostCopyOptions & { sizeBytes: number }): Promise<{ bytes: number }> {
    this.#enter('copyToGuest', [name, opts.guestPath, opts.sizeBytes]);
    this.#runningForCopy(name, opts.guestPath);
    const data = new Uint8Array(opts.sizeBytes);
    let moved = 0;
    opts.onProgress?.(0, opts.sizeBytes);
    while (moved < opts.sizeBytes) {
      // The daemon streams a push through a non-blocking pipe: read in order, and wait when it is empty.
      let n: number;
      try {
        n = readSync(opts.hostFd, data, moved, Math.min(this.copyChunkBytes, opts.sizeBytes - moved), null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      if (n === 0) throw new VmgmtError('INTERNAL', `the host file ended after ${moved} of ${opts.sizeBytes} bytes (fake manager)`);
      moved += n;
      await this.#copyStep(moved, opts.sizeBytes, opts.onProgress);
    }
    await this.#copyStep(moved, opts.sizeBytes, undefined);
    this.guestFiles.set(opts.guestPath, data);
    return { bytes: moved };
  }

  /** The guest tree under guestPath from guestFiles (every key below it is a file; directories are implied). */
  async listGuestTree(name: string, guestPath: string): Promise<GuestTree> {
    this.#enter('listGuestTree', [name, guestPath]);
    this.#runningForCopy(name, guestPath);
    const base = guestPath.replace(/\/+$/, '') + '/';
    const entries: GuestTree['entries'] = [];
    const dirs = new Set<string>();
    for (const [p, data] of [...this.guestFiles].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!p.startsWith(base)) continue;
      const rel = p.slice(base.length);
      const parts = rel.split('/');
      for (let i = 1; i < parts.length; i++) {
        const d = parts.slice(0, i).join('/');
        if (!dirs.has(d)) entries.push({ path: d, kind: 'dir', sizeBytes: 0, mode: 0o755 });
        dirs.add(d);
      }
      entries.push({ path: rel, kind: 'file', sizeBytes: data.byteLength, mode: 0o644 });
    }
    return { entries, warnings: [] };
  }

  /** Guest directories made with makeGuestDir. */
  readonly guestDirs = new Set<string>();

  async makeGuestDir(name: string, guestPath: string, _mode: number): Promise<void> {
    this.#enter('makeGuestDir', [name, guestPath]);
    this.#runningForCopy(name, guestPath);
    this.guestDirs.add(guestPath);
  }

  async copyFromGuest(name: string, opts: HostCopyOptions & { maxBytes: number }): Promise<{ bytes: number }> {
    this.#enter('copyFromGuest', [name, opts.guestPath]);
    this.pullLimits.push(opts.maxBytes);
    this.#runningForCopy(name, opts.guestPath);
    const data = this.guestFiles.get(opts.guestPath);
    if (!data) {
      throw new VmgmtError('GUEST_REFUSED', `the guest agent could not copy ${opts.guestPath}: no such file (status 2)`, { status: 2 });
    }
    if (data.byteLength > opts.maxBytes) {
      throw new VmgmtError('GUEST_REFUSED', `${opts.guestPath} is ${data.byteLength} bytes: the host takes at most ${opts.maxBytes}`, { status: 28 });
    }
    let moved = 0;
    opts.onProgress?.(0, data.byteLength);
    while (moved < data.byteLength) {
      // A pull streams through a pipe whose write end is non-blocking: write in order, wait while it is full.
      try {
        moved += writeSync(opts.hostFd, data, moved, Math.min(this.copyChunkBytes, data.byteLength - moved), null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      await this.#copyStep(moved, data.byteLength, opts.onProgress);
    }
    await this.#copyStep(moved, data.byteLength, undefined);
    return { bytes: moved };
  }

  #runningForCopy(name: string, guestPath: string): void {
    const vm = this.#get(name);
    if (vm.state !== 'running') {
      throw new VmgmtError('INVALID_STATE', `VM ${name} is ${vm.state}: copies need a running VM with its device`, { name });
    }
    if (!guestPath.startsWith('/')) throw new VmgmtError('INVALID_REQUEST', `guest path ${guestPath} must be absolute`);
  }

  /** Reports progress, yields to the event loop, and throws failCopy once past half way. */
  async #copyStep(moved: number, total: number, onProgress: HostCopyOptions['onProgress']): Promise<void> {
    onProgress?.(moved, total);
    await nextTurn();
    if (this.failCopy !== undefined && moved * 2 >= total) {
      const err = this.failCopy;
      this.failCopy = undefined;
      throw err;
    }
  }

  #enter(method: keyof VmManagerApi, args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.failNext !== undefined) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
  }

  #get(name: string): VmDetails {
    const vm = this.vms.get(name);
    if (!vm) throw new VmgmtError('NOT_FOUND', `no vm named ${name}: see \`vmgmt vm ls\``, { name });
    return vm;
  }

  #exit(vm: VmDetails, exitCode: number | null, signal: string | null, reason: string): void {
    Object.assign(vm, {
      state: 'stopped',
      pid: null,
      startedAt: null,
      stateReason: reason,
      device: null,
      lastExit: { exitCode, signal, at: new Date().toISOString(), reason },
    });
  }
}
