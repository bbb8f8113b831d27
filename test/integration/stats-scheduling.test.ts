// The stats mode and the CPU scheduler against real QEMU guests: the guest agent's records reach the API
// and the CLI; malformed, out-of-range, backwards and too-frequent records are refused without harm; and
// the loop works: two spinning guests pinned to one host CPU get CPU time by their declared demand, the
// ratio follows a swap of the demands, and a guest whose boost budget is spent falls back to its base.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmdirSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeStatsRecord, type StatsRecord } from '../../device-backend/services/stats/stats-codec.js';
import { STATS_RECORD } from '../../device-backend/layout/wire-layout.js';
import { DaemonFixture } from '../support/daemon-fixture.js';

const suffix = (process.pid % 10_000).toString();
const HI = `st-a-${suffix}`;
const LO = `st-b-${suffix}`;
const BUDGET_SEC = 20;
const WINDOW_MS = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** utime + stime (clock ticks) of the QEMU process's vCPU threads ("CPU n/TCG"), from /proc/PID/task/TID/stat. */
function vcpuTicks(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let comm: string;
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8');
    } catch {
      continue;
    }
    if (!/^CPU \d+\/(TCG|KVM)/.test(comm)) continue;
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  }
  return total;
}

async function cpuTimes(pids: [number, number], ms: number): Promise<[number, number]> {
  const a0 = vcpuTicks(pids[0]);
  const b0 = vcpuTicks(pids[1]);
  await sleep(ms);
  return [vcpuTicks(pids[0]) - a0, vcpuTicks(pids[1]) - b0];
}

const record = (over: Partial<StatsRecord>): StatsRecord => ({
  version: 1,
  sizeBytes: STATS_RECORD.sizeBytes,
  seq: 4_000_000_000,
  intervalMs: 1000,
  uptimeMs: 1,
  cpu: { user: 0, nice: 0, system: 0, idle: 0, iowait: 0, irq: 0, softirq: 0, steal: 0 },
  memTotalKiB: 1000,
  memAvailableKiB: 500,
  load: [0, 0, 0],
  runnable: 1,
  cpus: 1,
  psi: { cpuSome: null, memSome: null, memFull: null, ioSome: null, ioFull: null },
  demand: null,
  demandLeftMs: null,
  reason: '',
  ...over,
});
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('stats mode and CPU scheduling', () => {
  let d: DaemonFixture;
  const pids: number[] = [];

  beforeAll(async () => {
    d = await DaemonFixture.start({ config: { stats: { intervalMs: 1000 }, scheduling: { enabled: true, periodMs: 500 } } });
    for (const name of [HI, LO]) {
      expect((await d.api('POST', '/v1/vms', { name, accel: 'tcg', cpu: { weight: 100, boostBudgetSec: BUDGET_SEC } })).status).toBe(201);
    }
    const started = await Promise.all([HI, LO].map((name) => d.api('POST', `/v1/vms/${name}/start`)));
    for (const s of started) expect(s.status, JSON.stringify(s.body)).toBe(200);
    pids.push(...started.map((s) => s.body.pid as number));
  });

  afterAll(async () => {
    if (!d) return;
    expect(await d.cleanup()).toEqual([]);
    for (const name of [HI, LO]) {
      for (const dir of [`/sys/fs/cgroup/cpu/vmgmt/${name}`, `/sys/fs/cgroup/cpuacct/vmgmt/${name}`, `/sys/fs/cgroup/vmgmt/${name}`]) {
        for (const sub of [`${dir}/vcpus`, dir]) {
          try {
            if (existsSync(sub)) rmdirSync(sub);
          } catch {
            // still in use: the test fails on leftovers above
          }
        }
      }
    }
  });

  it('records arrive and are visible through the API and the CLI', async () => {
    const deadline = Date.now() + 90_000;
    let stats: any;
    while (Date.now() < deadline) {
      stats = (await d.api('GET', `/v1/vms/${HI}/stats`)).body;
      if (stats.samples?.length >= 3 && stats.share) break;
      await sleep(500);
    }
    expect(stats.samples.length, JSON.stringify(stats)).toBeGreaterThanOrEqual(3);
    const last = stats.samples.at(-1);
    expect(last).toMatchObject({ cpus: 1, demand: null });
    expect(last.memTotalKiB).toBeGreaterThan(100_000);
    expect(last.memAvailableKiB).toBeLessThanOrEqual(last.memTotalKiB);
    expect(last.cpu).not.toBeNull();
    expect(last.cpu.steal).toBe(0);
    expect(stats.share).toMatchObject({ weight: 100, baseWeight: 100, mechanism: expect.stringMatching(/cgroup|setpriority/) });
    expect(stats.host.vcpuThreads).toBe(1);

    const table = await d.cli('stats');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/NAME\s+STATE\s+GUEST-CPU\s+STEAL\s+DEMAND/);
    expect(table.stdout).toContain(HI);
    expect(table.stdout).toContain(LO);
    const one = await d.cli('stats', HI, '--json');
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ name: HI, intervalMs: 1000, policyEnabled: true });
    // The guest sees what the host gives it.
    const share = await d.guest(HI, 'vmgmt-guest stats share');
    expect(share.exitCode, share.stdout).toBe(0);
    expect(share.stdout).toMatch(/weight=100\n/);
    expect(share.stdout).toMatch(/policy=on/);
  });

  it('refuses malformed, out-of-range, backwards and too-frequent records without harm', async () => {
    const before = (await d.api('GET', `/v1/vms/${HI}/stats`)).body;
    const raw = (payload: Uint8Array | string): Promise<{ exitCode: number; stdout: string }> =>
      d.guest(HI, `vmgmt-guest debug raw --mode stats --type 0x0401 --payload ${typeof payload === 'string' ? payload : hex(payload)} 2>/dev/null`);
    expect((await raw('0100')).stdout).toMatch(/status=60 /);
    const demand = encodeStatsRecord(record({}));
    demand[STATS_RECORD.offsets.demand] = 200;
    expect((await raw(demand)).stdout).toMatch(/status=61 /);
    expect((await raw(encodeStatsRecord(record({ memAvailableKiB: 5000 })))).stdout).toMatch(/status=61 /);
    // Counters far below what the agent sent already.
    expect((await raw(encodeStatsRecord(record({})))).stdout).toMatch(/status=62 /);
    const flood = await d.guest(HI, 'vmgmt-guest stats push --count 30');
    expect(flood.stdout).toMatch(/status 63\)/);
    expect(flood.stdout).toMatch(/push: sent=30 accepted=\d+ refused=\d+/);
    const refused = Number(/refused=(\d+)/.exec(flood.stdout)![1]);
    expect(refused).toBeGreaterThanOrEqual(20);
    // Nothing changed but the refusal counts: the agent's records go on, no bad value is in the series.
    await sleep(3000);
    const after = (await d.api('GET', `/v1/vms/${HI}/stats?limit=3600`)).body;
    expect(after.refused).toBeGreaterThanOrEqual(before.refused + 4 + refused);
    expect(after.accepted).toBeGreaterThan(before.accepted);
    expect(after.samples.every((s: any) => s.memTotalKiB > 100_000 && (s.demand === null || s.demand <= 100))).toBe(true);
    expect(after.samples.at(-1).atMs).toBeGreaterThan(Date.now() - 3000);
    const vm = (await d.api('GET', `/v1/vms/${HI}`)).body;
    expect(vm.device.protocolErrors).toBe(0);
  });

  it('gives the high-demand guest >= 3x the CPU, follows a swap, and falls back to the base when the budget is spent', async () => {
    for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', '1', String(pid)], { stdio: 'ignore' });
    for (const name of [HI, LO]) {
      expect((await d.guest(name, 'setsid sh -c "while :; do :; done" </dev/null >/dev/null 2>&1 & echo spinning')).stdout).toMatch(/spinning/);
    }
    const shareOf = async (name: string): Promise<any> => (await d.api('GET', `/v1/vms/${name}/stats?limit=1`)).body.share;
    const waitShares = async (want: Record<string, (s: any) => boolean>, timeoutMs = 60_000): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      let got: Record<string, unknown> = {};
      while (Date.now() < deadline) {
        got = Object.fromEntries(await Promise.all(Object.keys(want).map(async (n) => [n, await shareOf(n)])));
        if (Object.entries(want).every(([n, ok]) => got[n] && ok(got[n]))) return;
        await sleep(250);
      }
      throw new Error(`shares not applied within ${timeoutMs} ms: ${JSON.stringify(got)}`);
    };

    await d.guest(HI, 'vmgmt-guest stats demand 90 --reason "batch job"');
    await d.guest(LO, 'vmgmt-guest stats demand 10 --reason idle-ish');
    await waitShares({ [HI]: (s) => s.weight === 340, [LO]: (s) => s.weight === 40 });
    const [hi1, lo1] = await cpuTimes([pids[0]!, pids[1]!], WINDOW_MS);
    const ratio1 = hi1 / Math.max(1, lo1);
    console.log(`demand 90 vs 10: vCPU ticks ${hi1} vs ${lo1}, ratio ${ratio1.toFixed(2)}`);
    expect(ratio1).toBeGreaterThanOrEqual(3);
    expect((await shareOf(HI)).reason).toMatch(/demand 90 \(batch job\): boosted to weight 340/);

    await d.guest(HI, 'vmgmt-guest stats demand 10');
    await d.guest(LO, 'vmgmt-guest stats demand 90');
    await waitShares({ [HI]: (s) => s.weight === 40, [LO]: (s) => s.weight === 340 });
    const [hi2, lo2] = await cpuTimes([pids[0]!, pids[1]!], WINDOW_MS);
    const ratio2 = lo2 / Math.max(1, hi2);
    console.log(`swapped: vCPU ticks ${lo2} vs ${hi2}, ratio ${ratio2.toFixed(2)}`);
    expect(ratio2).toBeGreaterThanOrEqual(3);

    // LO keeps declaring 90: once its 20 s of boost are spent it is held at its base weight.
    await waitShares({ [LO]: (s) => s.weight === 100 && /used up/.test(s.reason) }, (BUDGET_SEC + 10) * 1000);
    const [hi3, lo3] = await cpuTimes([pids[0]!, pids[1]!], 5000);
    const ratio3 = lo3 / Math.max(1, hi3);
    console.log(`budget spent: vCPU ticks ${lo3} vs ${hi3}, ratio ${ratio3.toFixed(2)} (weights 100 vs 40)`);
    expect(ratio3).toBeLessThan(ratio2);
    const seen = await d.guest(LO, 'vmgmt-guest stats share');
    expect(seen.stdout).toMatch(/budget_spent=yes/);
    const log = readFileSync(`${d.stateDir}/vms/${LO}/daemon.log`, 'utf8');
    expect(log).toMatch(/cpu share: weight 100 \(was 340\): demand 90 but the boost budget of 20 s is used up/);
  });

  it('puts the weights back when the daemon stops (the VMs keep running)', async () => {
    const dir = `/sys/fs/cgroup/cpu/vmgmt/${LO}`;
    if (!existsSync(dir)) return; // not a cgroup v1 host: the mechanism test above said which one it used
    expect(readFileSync(`${dir}/cpu.shares`, 'utf8').trim()).not.toBe('');
    expect(existsSync(`${dir}/vcpus`)).toBe(true);
    expect(await d.sigterm()).toBe(0);
    expect(readFileSync(`${dir}/cpu.shares`, 'utf8').trim()).toBe('1024');
    expect(readFileSync(`/sys/fs/cgroup/cpu/vmgmt/${HI}/cpu.shares`, 'utf8').trim()).toBe('1024');
    expect(existsSync(`${dir}/vcpus`)).toBe(false);
    expect(d.log).toMatch(/cpu scheduler stopped: weights of 2 VMs restored/);
  });
});
