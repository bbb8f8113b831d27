// The scheduler's shell with a fake control and fake thread readings, and the cgroup v1 control on a
// directory laid out like /sys/fs/cgroup (plain files: what it writes, and what it puts back).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StatsHub } from '../../../device-backend/services/stats/stats-hub.js';
import { encodeStatsRecord, decodeStatsRecord } from '../../../device-backend/services/stats/stats-codec.js';
import { STATS_RECORD } from '../../../device-backend/layout/wire-layout.js';
import { createLogger } from '../logger.js';
import { hostCpuControl, type CpuControl } from './cpu-control.js';
import { CpuScheduler, type SchedTarget } from './cpu-scheduler.js';

const quiet = createLogger({ level: 'error', write: () => {} });

function recordWithDemand(demand: number, seq: number) {
  const p = encodeStatsRecord({
    version: 1, sizeBytes: STATS_RECORD.sizeBytes, seq, intervalMs: 1000, uptimeMs: seq * 1000,
    cpu: { user: seq, nice: 0, system: 0, idle: seq, iowait: 0, irq: 0, softirq: 0, steal: 0 },
    memTotalKiB: 1000, memAvailableKiB: 500, load: [0, 0, 0], runnable: 1, cpus: 1,
    psi: { cpuSome: null, memSome: null, memFull: null, ioSome: null, ioFull: null }, demand, demandLeftMs: null, reason: 'r',
  });
  const d = decodeStatsRecord(p);
  if (!d.ok) throw new Error(d.reason);
  return d.value;
}

describe('CpuScheduler', () => {
  it('measures, decides, applies once per change, pushes the share, restores on stop and when a VM goes', async () => {
    let now = 0;
    const hub = new StatsHub({ intervalMs: () => 1000, nowMs: () => now });
    const applied: string[] = [];
    const control: CpuControl = {
      mechanism: 'fake',
      apply: (vm, threads, weight, cap) => void applied.push(`${vm} ${threads.join(',')} ${weight} ${cap}`),
      restore: (vm) => void applied.push(`restore ${vm}`),
    };
    const pushed: number[] = [];
    let run = 0;
    const target: SchedTarget = { name: 'a', pid: 10, limits: { weight: 100, boostBudgetSec: 60 }, vcpuThreads: async () => [11], pushShare: (s) => void pushed.push(s.weight), intervalChanged: () => {}, log: quiet };
    let targets = [target];
    const enabled = { value: true };
    const s = new CpuScheduler({ hub, control, log: quiet, config: () => ({ enabled: enabled.value, periodMs: 1000 }), targets: () => targets, readThread: () => ({ runNs: (run += 9e8), waitNs: run / 2 }), nowMs: () => now });
    await s.tick();
    expect(applied).toEqual(['a 11 100 null']);
    hub.accept('a', 1, recordWithDemand(90, 1));
    now += 1000;
    await s.tick();
    expect(applied.at(-1)).toBe('a 11 340 null');
    expect(hub.view('a').host).toMatchObject({ vcpuPercent: 90, vcpuThreads: 1 });
    expect(hub.view('a').share).toMatchObject({ weight: 340, mechanism: 'fake' });
    now += 1000;
    hub.accept('a', 1, recordWithDemand(90, 2));
    await s.tick();
    expect(applied).toHaveLength(2); // unchanged: not written again
    expect(pushed).toEqual([100, 340, 340]);
    enabled.value = false;
    now += 1000;
    await s.tick();
    expect(applied.at(-1)).toBe('restore a');
    expect(hub.view('a').share!.reason).toMatch(/policy off/);
    enabled.value = true;
    now += 1000;
    await s.tick();
    targets = [];
    await s.tick();
    expect(applied.slice(-2)).toEqual(['a 11 340 null', 'restore a']);
    targets = [target];
    await s.tick();
    s.stop();
    expect(applied.at(-1)).toBe('restore a');
  });
});

describe('cgroup v1 control', () => {
  let root: string;
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('moves vCPU threads into vcpus, writes shares and quota, and puts the defaults back', () => {
    root = mkdtempSync(path.join(tmpdir(), 'vmgmt-cg-'));
    const vm = path.join(root, 'cpu', 'vmgmt', 'web');
    mkdirSync(vm, { recursive: true });
    writeFileSync(path.join(root, 'cpu', 'cpu.shares'), '1024');
    writeFileSync(path.join(vm, 'cpu.shares'), '1024');
    writeFileSync(path.join(vm, 'tasks'), '');
    const control = hostCpuControl(root);
    expect(control.mechanism).toBe('cgroup-v1 cpu.shares');
    control.apply('web', [101, 102], 340, 50);
    expect(readFileSync(path.join(vm, 'cpu.shares'), 'utf8')).toBe('3482');
    expect(readFileSync(path.join(vm, 'vcpus', 'tasks'), 'utf8')).toBe('102'); // a plain file keeps the last write
    expect(readFileSync(path.join(vm, 'vcpus', 'cpu.cfs_quota_us'), 'utf8')).toBe('50000');
    control.restore('web');
    expect(readFileSync(path.join(vm, 'cpu.shares'), 'utf8')).toBe('1024');
    expect(readFileSync(path.join(vm, 'tasks'), 'utf8')).toBe('102');
    // A real cgroup directory can be removed with files in it; here the plain files keep it.
    expect(existsSync(path.join(vm, 'vcpus'))).toBe(true);
  });
});
