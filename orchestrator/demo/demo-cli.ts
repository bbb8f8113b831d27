// `make demo`: boots one guest under the resolved accelerator with the management device, pings the
// core from inside the guest through the device and prints the round-trip times, then shuts down.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDeviceVm, type DeviceVm } from '../vm/device-vm.js';
import { formatDemoFiles, formatDemoHeader, formatDemoPing, parseFileCopyLines } from './demo-report.js';
import { parsePingSummary } from './ping-summary.js';

const PINGS = Number(process.env.VMGMT_DEMO_PINGS ?? 1000);

async function main(): Promise<number> {
  console.log('vmgmt demo: one guest under QEMU with the management device\n');
  let vm: DeviceVm | undefined;
  const filesRoot = mkdtempSync(path.join(tmpdir(), 'vmgmt-demo-files-'));
  const stop = (): void => {
    void vm?.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    vm = await startDeviceVm({ name: 'demo', memoryMiB: 512, files: { root: filesRoot } });
    console.log(formatDemoHeader({ accel: vm.accel, bootToReadyMs: vm.bootToReadyMs }));

    const ping = await vm.control.run(`vmgmt-guest ping -n ${PINGS}`, { timeoutMs: 120_000 });
    const summary = parsePingSummary(ping.stdout);
    if (ping.exitCode !== 0 || !summary) {
      console.error(`demo failed: vmgmt-guest ping exited ${ping.exitCode}:\n${ping.stdout.trimEnd()}`);
      return 1;
    }
    console.log(`\n${formatDemoPing(summary, vm.device.core.counters)}`);

    const files = await vm.control.run(
      'head -c 67108864 /dev/urandom > /tmp/demo.bin && vmgmt-guest file put /tmp/demo.bin demo.bin --sha256 -q && ' +
        'vmgmt-guest file get demo.bin /tmp/back.bin --sha256 -q && vmgmt-guest file get ../etc/passwd /tmp/nope -q',
      { timeoutMs: 120_000 },
    );
    const copies = parseFileCopyLines(files.stdout);
    const refusal = /^vmgmt-guest: get \.\.\/etc\/passwd: (.*)$/m.exec(files.stdout)?.[1];
    if (copies.length !== 2 || files.exitCode !== 8 || !refusal) {
      console.error(`demo failed: file mode did not behave (exit ${files.exitCode}):\n${files.stdout.trimEnd()}`);
      return 1;
    }
    console.log(`\n${formatDemoFiles({ root: filesRoot, copies, refusal })}`);
    return 0;
  } finally {
    await vm?.close();
    rmSync(filesRoot, { recursive: true, force: true });
    console.log('\nShut down: QEMU stopped, sockets and region removed.');
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
