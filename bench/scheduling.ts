// bench/scheduling: what the CPU policy buys a VM that declares its demand. Two TCG guests under one
// daemon, both QEMU processes pinned to the same host CPU: one spins (a hog that declares nothing), the
// other runs a fixed CPU job having declared demand 100. The job is timed with the policy off, then on
// (SIGHUP with scheduling.enabled flipped), in the same run. `make bench-scheduling`.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmdirSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DaemonFixture } from '../test/support/daemon-fixture.js';

const LOOPS = Number(process.env.VMGMT_BENCH_SCHED_LOOPS ?? 400_000);
const HOST_CPU = process.env.VMGMT_BENCH_SCHED_CPU ?? '1';
const JOB = `bench-job-${process.pid % 10_000}`;
const HOG = `bench-hog-${process.pid % 10_000}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a QEMU process's vCPU threads, clock ticks. */
function vcpuTicks(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (!/^CPU \d+\//.test(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'))) continue;
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(f[11]) + Number(f[12]);
    } catch {
      // the thread ended
    }
  }
  return total;
}

async function run(d: DaemonFixture, vm: string, cmd: string): Promise<string> {
  const r = await d.guest(vm, cmd, 900_000);
  if (r.exitCode !== 0) throw new Error(`guest command failed (${r.exitCode}): ${cmd}\n${r.stdout}`);
  return r.stdout;
}

/** The job, timed by the guest's /proc/uptime, with the share of the host CPU each VM's vCPU got meanwhile. */
async function job(d: DaemonFixture, pids: [number, number]): Promise<{ seconds: number; jobShare: number }> {
  const j0 = vcpuTicks(pids[0]);
  const h0 = vcpuTicks(pids[1]);
  const out = await run(d, JOB, `s=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt ${LOOPS} ]; do i=$((i+1)); done; e=$(cut -d' ' -f1 /proc/uptime); echo "elapsed $s $e"`);
  const j = vcpuTicks(pids[0]) - j0;
  const h = vcpuTicks(pids[1]) - h0;
  const m = /elapsed ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`no elapsed time in:\n${out}`);
  return { seconds: Number(m[2]) - Number(m[1]), jobShare: j / Math.max(1, j + h) };
}

async function main(): Promise<void> {
  const config = (enabled: boolean): object => ({ scheduling: { enabled, periodMs: 500 } });
  const d = await DaemonFixture.start({ config: config(false) });
  try {
    console.log(`booting two TCG guests, pinning both to host CPU ${HOST_CPU}; job: ${LOOPS} shell loop iterations`);
    for (const name of [JOB, HOG]) {
      const r = await d.api('POST', '/v1/vms', { name, accel: 'tcg', cpu: { weight: 100, boostBudgetSec: 3600 } });
      if (r.status !== 201) throw new Error(`create ${name}: ${JSON.stringify(r.body)}`);
    }
    const started = await Promise.all([JOB, HOG].map((name) => d.api('POST', `/v1/vms/${name}/start`)));
    const pids = started.map((s) => {
      if (s.status !== 200) throw new Error(`start: ${JSON.stringify(s.body)}`);
      return s.body.pid as number;
    }) as [number, number];
    for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', HOST_CPU, String(pid)], { stdio: 'ignore' });
    await run(d, HOG, 'setsid sh -c "while :; do :; done" </dev/null >/dev/null 2>&1 & echo spinning');
    await run(d, JOB, 'vmgmt-guest stats demand 100 --reason "fixed job"');

    const off = await job(d, pids);
    writeFileSync(path.join(d.baseDir, 'config.json'), JSON.stringify(config(true)));
    process.kill(d.daemonPid!, 'SIGHUP');
    const deadline = Date.now() + 30_000;
    let share: { weight?: number; reason?: string } | null = null;
    while (Date.now() < deadline) {
      share = (await d.api('GET', `/v1/vms/${JOB}/stats?limit=1`)).body.share;
      if (share?.weight === 400) break;
      await sleep(250);
    }
    if (share?.weight !== 400) throw new Error(`the policy did not boost the job VM within 30 s: ${JSON.stringify(share)}`);
    const on = await job(d, pids);

    const rows = [
      ['policy off (equal weights)', off],
      ['policy on (job declares 100)', on],
    ] as const;
    console.log(`${'run'.padEnd(32)} ${'job s'.padStart(8)} ${'job vCPU share'.padStart(15)}`);
    for (const [label, r] of rows) console.log(`${label.padEnd(32)} ${r.seconds.toFixed(2).padStart(8)} ${`${(r.jobShare * 100).toFixed(1)}%`.padStart(15)}`);
    console.log(`speed-up with the policy on: ${(off.seconds / on.seconds).toFixed(2)}x (target >= 1.5x); share reason: ${share.reason}`);
  } finally {
    const left = await d.cleanup();
    for (const name of [JOB, HOG]) {
      for (const dir of [`/sys/fs/cgroup/cpu/vmgmt/${name}`, `/sys/fs/cgroup/cpuacct/vmgmt/${name}`, `/sys/fs/cgroup/vmgmt/${name}`]) {
        for (const sub of [`${dir}/vcpus`, dir]) {
          try {
            if (existsSync(sub)) rmdirSync(sub);
          } catch {
            // still in use
          }
        }
      }
    }
    if (left.length > 0) console.error(`QEMU processes left behind: ${left.join('; ')}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
