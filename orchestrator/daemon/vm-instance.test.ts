// VmInstance.recover() on a VM whose QEMU ended while no daemon ran: the lifecycle moves through the state
// machine's events (logged and persisted as every transition is), not by writing the state around it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import { daemonConfigFileSchema, resolveDaemonConfig } from './daemon-config.js';
import { createLogger } from './logger.js';
import { StateStore } from './state-store.js';
import { vmDefinitionSchema } from './vm-definition.js';
import { newRecord, VmInstance, type VmInstanceDeps } from './vm-instance.js';

let dir: string;
let lines: Record<string, unknown>[];
let deps: VmInstanceDeps;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-instance-'));
  lines = [];
  deps = {
    store: new StateStore(path.join(dir, 'state')),
    runtimeDir: path.join(dir, 'run'),
    cacheDir: path.join(dir, 'cache'),
    // recover() of a VM that is gone never reaches the native addon.
    native: {} as VmgmtNative,
    log: createLogger({ write: (line) => void lines.push(JSON.parse(line) as Record<string, unknown>) }),
    config: resolveDaemonConfig(daemonConfigFileSchema.parse({}), { stateDir: path.join(dir, 'state'), runtimeDir: path.join(dir, 'run') }),
  };
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('VmInstance.recover', () => {
  it('marks a VM whose QEMU is gone crashed through the state machine, exit status unknown', async () => {
    const name = `ut-gone-${process.pid}`;
    const definition = vmDefinitionSchema.parse({ name });
    deps.store.saveDefinition(definition);
    const record = { ...newRecord(), status: { state: 'running' as const, reason: 'QEMU started', guestShutdown: false, stopRequested: false }, pid: null };
    const vm = new VmInstance(definition, record, deps);

    await vm.recover();

    const details = vm.details();
    expect(details).toMatchObject({ state: 'crashed', pid: null, lastExit: { exitCode: null, signal: null, reason: 'exit status unknown' } });
    expect(details.stateReason).toBe('QEMU ended while the daemon was not running (exit status unknown; no pid recorded)');
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'state running -> crashed', vm: name }));
    const stored = JSON.parse(readFileSync(path.join(deps.store.vmDir(name), 'state.json'), 'utf8')) as { status: { state: string }; lastExit: unknown };
    expect(stored.status.state).toBe('crashed');
    expect(stored.lastExit).toMatchObject({ reason: 'exit status unknown' });
  });

  it('leaves a VM that was not running alone', async () => {
    const definition = vmDefinitionSchema.parse({ name: 'ut-idle' });
    deps.store.saveDefinition(definition);
    const vm = new VmInstance(definition, newRecord(), deps);
    await vm.recover();
    expect(vm.state).toBe('defined');
    expect(lines.filter((l) => String(l.msg).startsWith('state '))).toEqual([]);
  });
});
