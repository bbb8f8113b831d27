// bench/calc: the host calculation mode against the guest doing the same work itself, in the same run:
// sha256 and gzip of a file in the guest's tmpfs, and sha256 of 1 GiB streamed from a generator, with the
// guest's own tools and through `vmgmt-guest calc`. Prints one table with the speed-ups. `make bench-calc`
// runs it, then bench/agent-update (the agent's disruption window during an update).
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../device-backend/core/core-logger.js';
import { calcLauncherPath } from '../device-backend/services/calc/calc-launcher.js';
import { CalcPrograms } from '../device-backend/services/calc/calc-programs.js';
import { resolveCalcConfig, calcConfigSchema } from '../orchestrator/daemon/calc-config.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';
import { guestSeconds as seconds, mbps as rate, median } from './bench-guest.js';

const FILE_MIB = Number(process.env.VMGMT_BENCH_MIB ?? 128);
const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 3);

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-calc-'));
  const root = path.join(base, 'root');
  mkdirSync(root);
  writeFileSync(path.join(root, 'data.bin'), randomBytes(FILE_MIB * 1024 * 1024));
  let vm: DeviceVm | undefined;
  // A declared host program doing what the sha256 built-in does: the cost of the program path (execa,
  // launcher, job cgroup, stdin/stdout pipes) beside the built-in's.
  const settings = resolveCalcConfig(calcConfigSchema.parse({ programs: [{ name: 'sha256sum', argv: ['/usr/bin/sha256sum'], timeoutMs: 600_000, allow: { vms: ['bench-calc'] } }] }));
  const programs = new CalcPrograms({ settings: () => settings, launcherPath: calcLauncherPath(), log: silentLogger });
  try {
    console.log(`booting a TCG guest (1 vCPU, 1 GiB) with a ${FILE_MIB} MiB file...`);
    vm = await startDeviceVm({ name: 'bench-calc', accel: 'tcg', memoryMiB: 1024, files: { root }, calc: programs.catalogFor({ vm: 'bench-calc' }) });
    const r = await vm.control.run('vmgmt-guest file get data.bin /tmp/data.bin -q && echo ok', { timeoutMs: 300_000 });
    if (!r.stdout.includes('ok')) throw new Error(`could not put the file into the guest: ${r.stdout}`);
    const fileBytes = FILE_MIB * 1048576;
    const GEN = 'dd if=/dev/zero bs=1M count=1024 2>/dev/null';
    const cases = [
      { what: `sha256, ${FILE_MIB} MiB file`, bytes: fileBytes, guest: 'sha256sum /tmp/data.bin', host: 'vmgmt-guest calc sha256 -i /tmp/data.bin --hex' },
      { what: `gzip -6, ${FILE_MIB} MiB file`, bytes: fileBytes, guest: 'gzip -6 -c /tmp/data.bin', host: 'vmgmt-guest calc gzip -i /tmp/data.bin -o /dev/null' },
      { what: `sha256 (host program sha256sum), ${FILE_MIB} MiB`, bytes: fileBytes, guest: 'sha256sum /tmp/data.bin', host: 'vmgmt-guest calc sha256sum -i /tmp/data.bin' },
      { what: 'sha256, 1 GiB from a generator (pipe)', bytes: 1024 * 1048576, guest: `${GEN} | sha256sum`, host: `${GEN} | vmgmt-guest calc sha256 --hex` },
    ];
    // Results checked equal: each digest is the guest's own (sha256sum prints "HEX  NAME"); gzip's output is
    // not byte-equal between implementations, so it must gunzip back to the input in the guest.
    const first = async (cmd: string): Promise<string> => (await vm!.control.run(cmd, { timeoutMs: 600_000 })).stdout.trim().split(/\s+/)[0] ?? '';
    for (const [mine, theirs] of [
      ['sha256sum /tmp/data.bin', 'vmgmt-guest calc sha256 -i /tmp/data.bin --hex 2>/dev/null'],
      ['sha256sum /tmp/data.bin', 'vmgmt-guest calc sha256sum -i /tmp/data.bin 2>/dev/null'],
      [`${GEN} | sha256sum`, `${GEN} | vmgmt-guest calc sha256 --hex 2>/dev/null`],
    ] as const) {
      const [own, viaHost] = [await first(mine), await first(theirs)];
      if (!own || own !== viaHost) throw new Error(`${theirs} gave ${viaHost}, the guest's own ${mine} ${own}`);
    }
    if (!(await first('vmgmt-guest calc gzip -i /tmp/data.bin 2>/dev/null | gunzip -c | cmp - /tmp/data.bin && echo same')).includes('same')) throw new Error('the host\'s gzip output does not gunzip to the input in the guest');
    console.log('results checked: digests equal the guest\'s own, the host\'s gzip gunzips to the input');
    const rows = [];
    for (const c of cases) {
      const g: number[] = [];
      const h: number[] = [];
      for (let i = 0; i < REPS; i++) {
        g.push(await seconds(vm, c.guest));
        h.push(await seconds(vm, c.host));
      }
      const mbps = (s: number): number => rate(c.bytes, s);
      rows.push({ work: c.what, 'in the guest MB/s': mbps(median(g)), 'on the host (calc) MB/s': mbps(median(h)), 'speed-up': Math.round((median(g) / median(h)) * 10) / 10 });
    }
    console.log(`\nhost calculation vs the guest itself (file: ${FILE_MIB} MiB of random data), median of ${REPS}, TCG, same run; target 5x:`);
    console.table(rows);
  } finally {
    await vm?.close();
    await programs.close();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
