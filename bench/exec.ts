// bench/exec: `vmgmt vm exec` (the exec mode through the management device) against qemu-ga's guest-exec
// (virtio-serial, polled with guest-exec-status) in the same TCG guest, same run: start latency of /bin/true
// and output throughput of `head -c N /dev/zero`. `make bench-exec`. The guest image is the test image plus
// Debian's qemu-ga (bench/exec-image.sh). Prints one table with the ratios.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { findRepoRoot } from '../orchestrator/vm/repo-root.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';
import { testImage } from '../orchestrator/vm/test-image.js';
import { median } from './bench-guest.js';
import { QgaClient } from './qga-client.js';

const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 7);
/** Output size for the throughput rows; qemu-ga caps captured output at 16 MB, so at most 8 MiB for both. */
const OUT_MIB = Number(process.env.VMGMT_BENCH_OUT_MIB ?? 8);
/** vmgmt alone, past qemu-ga's cap. */
const BIG_MIB = Number(process.env.VMGMT_BENCH_BIG_MIB ?? 64);

async function vmgmtExec(vm: DeviceVm, argv: string[], print = false): Promise<{ ms: number; bytes: number; exitCode: number | null }> {
  let bytes = 0;
  const t0 = performance.now();
  const r = await vm.exec.run({
    spec: { argv, env: [], cwd: '', tty: false, rows: 0, cols: 0 },
    io: {
      output: async (_stream, b) => {
        bytes += b.byteLength;
        if (print) process.stdout.write(b);
      },
    },
  });
  return { ms: performance.now() - t0, bytes, exitCode: r.exitCode };
}

async function qgaExec(qga: QgaClient, argv: string[]): Promise<{ ms: number; bytes: number; exitCode: number; truncated: boolean }> {
  const t0 = performance.now();
  const r = await qga.guestExec(argv[0]!, argv.slice(1));
  return { ms: performance.now() - t0, bytes: r.outBytes, exitCode: r.exitcode, truncated: r.truncated };
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const mbps = (bytes: number, ms: number): number => round(bytes / (ms / 1000) / 1e6);

async function main(): Promise<void> {
  const root = findRepoRoot();
  console.log('building the bench image (test image + qemu-ga)...');
  execFileSync('bash', [path.join(root, 'bench/exec-image.sh')], { stdio: 'inherit' });
  const image = testImage(root);
  const qgaSocket = `/tmp/vmgmt-bench-qga-${process.pid}.sock`;
  let vm: DeviceVm | undefined;
  let qga: QgaClient | undefined;
  try {
    console.log('booting a TCG guest (1 vCPU, 512 MiB) with the management device and a virtio-serial port for qemu-ga...');
    vm = await startDeviceVm({
      name: 'bench-exec',
      accel: 'tcg',
      memoryMiB: 512,
      boot: { kernelPath: image.kernelPath, initrdPath: path.join(root, 'images/build/bench-exec/initramfs.cpio.gz'), append: image.append },
      extraArgs: [
        '-device', 'virtio-serial-pci',
        '-chardev', `socket,id=qga0,path=${qgaSocket},server=on,wait=off`,
        '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      ],
    });
    if (!(await vm.agent.waitUntilUp(120_000))) throw new Error('the vmgmt guest agent did not come up');
    const up = await vmgmtExec(vm, ['sh', '-c', 'modprobe virtio_pci && modprobe virtio_console && for i in 1 2 3 4 5 6 7 8 9 10; do p=$(ls /dev/vport*p1 2>/dev/null | head -1); [ -n "$p" ] && break; sleep 0.2; done; echo "qemu-ga on $p"; qemu-ga -d -m virtio-serial -p "$p" -t /run; sleep 0.5; ps | grep -q "[q]emu-ga" || { echo "qemu-ga is not running"; exit 1; }'], true);
    if (up.exitCode !== 0) throw new Error(`could not start qemu-ga in the guest (exit ${up.exitCode})`);
    qga = await QgaClient.connect(qgaSocket, 60_000);
    // Warm both paths once.
    await vmgmtExec(vm, ['/bin/true']);
    await qgaExec(qga, ['/bin/true']);

    const latV: number[] = [];
    const latQ: number[] = [];
    const thrV: number[] = [];
    const thrQ: number[] = [];
    const outBytes = OUT_MIB * 1024 * 1024;
    const outArgv = ['head', '-c', String(outBytes), '/dev/zero'];
    for (let i = 0; i < REPS; i++) {
      latV.push((await vmgmtExec(vm, ['/bin/true'])).ms);
      latQ.push((await qgaExec(qga, ['/bin/true'])).ms);
      const v = await vmgmtExec(vm, outArgv);
      if (v.bytes !== outBytes) throw new Error(`vmgmt exec gave ${v.bytes} bytes, not ${outBytes}`);
      thrV.push(v.ms);
      const q = await qgaExec(qga, outArgv);
      if (q.bytes !== outBytes || q.truncated) throw new Error(`qemu-ga gave ${q.bytes} bytes${q.truncated ? ' (truncated)' : ''}, not ${outBytes}`);
      thrQ.push(q.ms);
    }
    const bigBytes = BIG_MIB * 1024 * 1024;
    const big = await vmgmtExec(vm, ['head', '-c', String(bigBytes), '/dev/zero']);
    if (big.bytes !== bigBytes) throw new Error(`vmgmt exec gave ${big.bytes} of ${bigBytes} bytes`);
    const bigQ = await qgaExec(qga, ['head', '-c', String(bigBytes), '/dev/zero']).catch((err: unknown) => ({ error: (err as Error).message }));

    const rows = [
      { measure: 'start latency, /bin/true (ms, median)', 'vmgmt vm exec': round(median(latV)), 'qemu-ga guest-exec': round(median(latQ)), 'vmgmt faster by': `${round(median(latQ) / median(latV), 2)}x` },
      {
        measure: `output ${OUT_MIB} MiB from /dev/zero (MB/s, median)`,
        'vmgmt vm exec': mbps(outBytes, median(thrV)),
        'qemu-ga guest-exec': mbps(outBytes, median(thrQ)),
        'vmgmt faster by': `${round(median(thrQ) / median(thrV), 2)}x`,
      },
      {
        measure: `output ${BIG_MIB} MiB (MB/s, one run)`,
        'vmgmt vm exec': mbps(bigBytes, big.ms),
        'qemu-ga guest-exec': 'error' in bigQ ? `fails: ${bigQ.error.slice(0, 40)}` : bigQ.truncated ? `truncated at ${round(bigQ.bytes / 1048576)} MiB` : mbps(bigBytes, bigQ.ms),
        'vmgmt faster by': '-',
      },
    ];
    console.log(`\nvmgmt vm exec vs qemu-ga guest-exec, TCG guest, ${REPS} runs each, interleaved, same run:`);
    const cols = Object.keys(rows[0]!);
    const cells = rows.map((r) => cols.map((c) => String((r as Record<string, unknown>)[c])));
    const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
    const line = (xs: string[]): string => xs.map((x, i) => x.padEnd(widths[i]!)).join('  ');
    console.log(line(cols));
    console.log(line(widths.map((w) => '-'.repeat(w))));
    for (const r of cells) console.log(line(r));
    console.log('\nvmgmt: in-process ExecService (the daemon\'s path without the HTTP hop); qemu-ga: its JSON protocol on the chardev socket, guest-exec-status re-polled as soon as it answers.');
  } finally {
    qga?.close();
    await vm?.close();
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? (err as Error).message}`);
  process.exit(1);
});
