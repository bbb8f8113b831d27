// bench/cpu-model: the guest CPU model under TCG, measured in the same run: a guest's own tmpfs write, a
// file get into tmpfs and a file put through the device, with QEMU's `max` and with the launcher's default
// (TCG_DEFAULT_CPU_MODEL). `make bench-cpu-model`. Prints one table with the ratios.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';
import { TCG_DEFAULT_CPU_MODEL } from '../orchestrator/vm/launch-vm.js';
import { guestRun as run, guestSeconds, mbps, median } from './bench-guest.js';

const FILE_MIB = Number(process.env.VMGMT_BENCH_MIB ?? 64);
const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 3);
const MODELS = ['max', TCG_DEFAULT_CPU_MODEL];

const rate = (out: string, re: RegExp): number => {
  const m = re.exec(out);
  if (!m) throw new Error(`no rate in:\n${out}`);
  return Number(m[1]);
};

/** dd into the guest's tmpfs, timed by the guest's clock. */
async function ddRate(vm: DeviceVm): Promise<number> {
  await run(vm, 'rm -f /tmp/dd');
  return mbps(FILE_MIB * 1024 * 1024, await guestSeconds(vm, `dd if=/dev/zero of=/tmp/dd bs=1M count=${FILE_MIB}`));
}

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-cpu-'));
  const root = path.join(base, 'root');
  mkdirSync(root);
  writeFileSync(path.join(root, 'big.bin'), randomBytes(FILE_MIB * 1024 * 1024));
  const results: Record<string, { dd: number; get: number; put: number }> = {};
  try {
    for (const model of MODELS) {
      console.log(`booting a TCG guest with -cpu ${model} ...`);
      const vm = await startDeviceVm({ name: 'bench-cpu', accel: 'tcg', memoryMiB: 512, cpuModel: model, files: { root, quotaBytes: 4 * FILE_MIB * 1024 * 1024 } });
      try {
        const dd: number[] = [];
        const get: number[] = [];
        const put: number[] = [];
        for (let i = 0; i < REPS; i++) {
          dd.push(await ddRate(vm));
          get.push(rate(await run(vm, 'rm -f /tmp/big && vmgmt-guest file get big.bin /tmp/big -q'), /^get: .* MBps=([\d.]+)/m));
          put.push(rate(await run(vm, 'vmgmt-guest file put /tmp/big up.bin -q'), /^put: .* MBps=([\d.]+)/m));
        }
        results[model] = { dd: median(dd), get: median(get), put: median(put) };
      } finally {
        await vm.close();
      }
    }
    const [a, b] = MODELS.map((m) => results[m]!);
    console.log(`\nguest CPU model under TCG, ${FILE_MIB} MiB, median of ${REPS} runs, same host, same run:`);
    console.table(
      (['dd', 'get', 'put'] as const).map((k) => ({
        measure: { dd: 'guest dd into tmpfs', get: 'file get into tmpfs', put: 'file put from tmpfs' }[k],
        [`${MODELS[0]} MB/s`]: a![k],
        [`${MODELS[1]} MB/s`]: b![k],
        ratio: Math.round((b![k] / a![k]) * 100) / 100,
      })),
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
