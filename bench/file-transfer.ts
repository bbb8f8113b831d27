// bench/file-transfer: host<->guest file throughput through the management device, against the raw
// memcpy rate into and out of BAR2 in the same guest, in the same run. `make bench`.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';

const FILE_MIB = Number(process.env.VMGMT_BENCH_MIB ?? 128);
const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 3);

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

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-'));
  const root = path.join(base, 'root');
  let vm: DeviceVm | undefined;
  try {
    mkdirSync(root);
    const data = randomBytes(FILE_MIB * 1024 * 1024);
    writeFileSync(path.join(root, 'big.bin'), data);
    const hostSum = createHash('sha256').update(data).digest('hex');
    console.log(`booting a TCG guest (1 vCPU, 1 GiB) with a ${FILE_MIB} MiB file in its host root...`);
    vm = await startDeviceVm({ name: 'bench', accel: 'tcg', memoryMiB: 1024, files: { root, quotaBytes: 4 * FILE_MIB * 1024 * 1024, maxFileBytes: 2 * FILE_MIB * 1024 * 1024 } });

    const toBar: number[] = [];
    const fromBar: number[] = [];
    const get: number[] = [];
    const put: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const mem = await run(vm, `vmgmt-guest bench memcpy --mib ${FILE_MIB} --reps 1`);
      toBar.push(field(mem, /to_bar_MBps=([\d.]+)/, 'memcpy to BAR2'));
      fromBar.push(field(mem, /from_bar_MBps=([\d.]+)/, 'memcpy from BAR2'));
      get.push(field(await run(vm, 'rm -f /tmp/big && vmgmt-guest file get big.bin /tmp/big -q'), /^get: .* MBps=([\d.]+)/m, 'get rate'));
      put.push(field(await run(vm, 'vmgmt-guest file put /tmp/big up.bin -q'), /^put: .* MBps=([\d.]+)/m, 'put rate'));
    }
    // Integrity, outside the timed runs.
    const guestSum = (await run(vm, 'sha256sum /tmp/big')).split(' ')[0];
    const upSum = createHash('sha256').update(readFileSync(path.join(root, 'up.bin'))).digest('hex');
    if (guestSum !== hostSum || upSum !== hostSum) throw new Error(`integrity check failed: host ${hostSum}, guest ${guestSum}, uploaded ${upSum}`);

    const rows = [
      { direction: 'host -> guest (file get)', MBps: median(get), 'raw memcpy MBps': median(fromBar), baseline: 'memcpy out of BAR2' },
      { direction: 'guest -> host (file put)', MBps: median(put), 'raw memcpy MBps': median(toBar), baseline: 'memcpy into BAR2' },
    ].map((r) => ({ ...r, 'ratio %': Math.round((100 * r.MBps) / r['raw memcpy MBps']) }));
    console.log(`\nfile transfer, ${FILE_MIB} MiB, median of ${REPS} runs, TCG (sha256 verified outside the timed runs):`);
    console.table(rows);
    console.log('runs (MBps): get', get.join(', '), '| put', put.join(', '), '| memcpy to', toBar.join(', '), '| memcpy from', fromBar.join(', '));
  } finally {
    await vm?.close();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
