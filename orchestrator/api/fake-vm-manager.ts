// An in-memory VmManagerApi for tests of the API server and the CLI: no QEMU, same errors as the contract.
import type { VmDefinition } from '../daemon/vm-definition.js';
import type { HostCopyOptions, LogSource, VmDetails, VmManagerApi, VmSummary } from '../daemon/vm-manager-api.js';
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

  async remove(name: string, opts?: { force?: boolean }): Promise<void> {
    this.#enter('remove', [name, opts]);
    const vm = this.#get(name);
    if (vm.state === 'running' && !opts?.force) {
      throw new VmgmtError('INVALID_STATE', `vm ${name} is running: stop it first or remove it with force`, { name, state: vm.state });
    }
    this.vms.delete(name);
  }

  async logs(name: string, opts: { source: LogSource; tailBytes?: number }): Promise<string> {
    this.#enter('logs', [name, opts]);
    this.#get(name);
    const text = `${opts.source} log of ${name}\nline 2\n`;
    return opts.tailBytes === undefined ? text : text.slice(-opts.tailBytes);
  }

  async copyToGuest(name: string, opts: HostCopyOptions & { sizeBytes: number }): Promise<{ bytes: number }> {
    this.#enter('copyToGuest', [name, opts.guestPath]);
    this.#get(name);
    throw new VmgmtError('AGENT_UNAVAILABLE', `no guest agent is running in VM ${name} (fake manager)`);
  }

  async copyFromGuest(name: string, opts: HostCopyOptions): Promise<{ bytes: number }> {
    this.#enter('copyFromGuest', [name, opts.guestPath]);
    this.#get(name);
    throw new VmgmtError('AGENT_UNAVAILABLE', `no guest agent is running in VM ${name} (fake manager)`);
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
