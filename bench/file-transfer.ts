// bench/file-transfer: host<->guest file throughput through the management device, against the raw
// memcpy rate into and out of BAR2 in the same guest, in the same run. `make bench`.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { computeGeometry, DEFAULT_GEOMETRY } from '../device-backend/layout/geometry.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';

const FILE_MIB = Number(process.env.VMGMT_BENCH_MIB ?? 128);
const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 3);
/** The device region (default: the wire layout's, 64 MiB); each of its 8 channels gets 1/8 of the data window. */
const REGION_MIB = process.env.VMGMT_BENCH_REGION_MIB === undefined ? DEFAULT_GEOMETRY.regionSizeBytes / (1024 * 1024) : Number(process.env.VMGMT_BENCH_REGION_MIB);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function run(vm: DeviceVm, cmd: string): Promise<string> {
  const r = await vm.control.run(cmd, { timeoutMs: 300_000 });
  if (r.exitCode !== 0) throw new Error(`guest command failed (${r.exitCode}): ${cmd}\n${r.stdout}`);
  return r.stdout;
}

function field(out: string, re: RegExp, what: string): number {
  const m = re.exec(out);
  if (!m) throw new Error(`no ${what} in:\n${out}`);
  return Number(m[1]);
}

/** Wraps a guest command so it prints its duration from /proc/uptime (10 ms resolution). */
const timed = (cmd: string): string => `s=$(cut -d' ' -f1 /proc/uptime); ${cmd}; e=$(cut -d' ' -f1 /proc/uptime); echo "elapsed $s $e"`;

function timedRate(out: string): number {
  const m = /elapsed ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`no elapsed time in:\n${out}`);
  const seconds = Math.max(Number(m[2]) - Number(m[1]), 0.01);
  return Math.round(((FILE_MIB * 1024 * 1024) / seconds / 1e6) * 10) / 10;
}

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-'));
  const root = path.join(base, 'root');
  let vm: DeviceVm | undefined;
  try {
    mkdirSync(root);
    const data = randomBytes(FILE_MIB * 1024 * 1024);
    writeFileSync(path.join(root, 'big.bin'), data);
    const hostSum = createHash('sha256').update(data).digest('hex');
    const geometry = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: REGION_MIB * 1024 * 1024 });
    if (!geometry.ok) throw new Error(`VMGMT_BENCH_REGION_MIB=${REGION_MIB}: ${geometry.reason}`);
    console.log(`booting a TCG guest (1 vCPU, 1 GiB) with a ${FILE_MIB} MiB file in its host root, ${REGION_MIB} MiB device region (data slice ${(geometry.geometry.dataSliceBytes / 1024).toFixed(0)} KiB per channel)...`);
    vm = await startDeviceVm({ name: 'bench', accel: 'tcg', memoryMiB: 1024, geometry: { regionSizeBytes: geometry.geometry.regionSizeBytes }, files: { root, quotaBytes: 4 * FILE_MIB * 1024 * 1024, maxFileBytes: 2 * FILE_MIB * 1024 * 1024 } });

    const toBar: number[] = [];
    const fromBar: number[] = [];
    const localWrite: number[] = [];
    const localRead: number[] = [];
    const get: number[] = [];
    const getNull: number[] = [];
    const put: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const mem = await run(vm, `vmgmt-guest bench memcpy --mib ${FILE_MIB} --reps 1`);
      toBar.push(field(mem, /to_bar_MBps=([\d.]+)/, 'memcpy to BAR2'));
      fromBar.push(field(mem, /from_bar_MBps=([\d.]+)/, 'memcpy from BAR2'));
      get.push(field(await run(vm, 'rm -f /tmp/big && vmgmt-guest file get big.bin /tmp/big -q'), /^get: .* MBps=([\d.]+)/m, 'get rate'));
      put.push(field(await run(vm, 'vmgmt-guest file put /tmp/big up.bin -q'), /^put: .* MBps=([\d.]+)/m, 'put rate'));
      getNull.push(field(await run(vm, 'vmgmt-guest file get big.bin - -q 2>&1 >/dev/null'), /^get: .* MBps=([\d.]+)/m, 'get to /dev/null rate'));
      // What the guest itself can do with a file of this size in its tmpfs: the other ceiling of a transfer.
      localWrite.push(timedRate(await run(vm, timed(`rm -f /tmp/dd && dd if=/dev/zero of=/tmp/dd bs=1M count=${FILE_MIB} 2>/dev/null`))));
      localRead.push(timedRate(await run(vm, timed('dd if=/tmp/dd of=/tmp/dd2 bs=1M 2>/dev/null; rm -f /tmp/dd /tmp/dd2'))));
    }
    // Integrity, outside the timed runs.
    const guestSum = (await run(vm, 'sha256sum /tmp/big')).split(' ')[0];
    const upSum = createHash('sha256').update(readFileSync(path.join(root, 'up.bin'))).digest('hex');
    if (guestSum !== hostSum || upSum !== hostSum) throw new Error(`integrity check failed: host ${hostSum}, guest ${guestSum}, uploaded ${upSum}`);

    const rows = [
      { direction: 'host -> guest (file get)', MBps: median(get), 'raw BAR2 memcpy MBps': median(fromBar), 'guest local file MBps': median(localWrite) },
      { direction: 'guest -> host (file put)', MBps: median(put), 'raw BAR2 memcpy MBps': median(toBar), 'guest local file MBps': median(localRead) },
      { direction: 'host -> guest (get to /dev/null)', MBps: median(getNull), 'raw BAR2 memcpy MBps': median(fromBar), 'guest local file MBps': Number.NaN },
    ].map((r) => ({
      ...r,
      '% of memcpy': Math.round((100 * r.MBps) / r['raw BAR2 memcpy MBps']),
      '% of local file': Number.isNaN(r['guest local file MBps']) ? '-' : Math.round((100 * r.MBps) / r['guest local file MBps']),
    })).map((r) => ({ ...r, 'guest local file MBps': Number.isNaN(r['guest local file MBps']) ? '-' : r['guest local file MBps'] }));
    console.log(`\nfile transfer, ${FILE_MIB} MiB, ${REGION_MIB} MiB region, median of ${REPS} runs, TCG (sha256 verified outside the timed runs):`);
    console.table(rows);
    console.log('runs (MBps): get', get.join(', '), '| put', put.join(', '), '| get to /dev/null', getNull.join(', '), '| memcpy to', toBar.join(', '), '| memcpy from', fromBar.join(', '), '| tmpfs write', localWrite.join(', '), '| tmpfs read', localRead.join(', '));
    console.log('get to /dev/null: the protocol and the host copying into shared memory, the guest never touching the bytes.');
    console.log('A get ends in the guest writing a new tmpfs file and a put starts with the guest reading one; both sides of the');
    console.log('device are in the timed path (puts include the host fsync), so the local file rates of the guest (dd /dev/zero to tmpfs for get, tmpfs to tmpfs for put) are the practical ceiling under TCG.');
  } finally {
    await vm?.close();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
