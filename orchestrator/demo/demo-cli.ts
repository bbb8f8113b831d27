// `make demo`: boots one guest under the resolved accelerator with the management device, pings the
// core from inside the guest through the device and prints the round-trip times, then shuts down.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDeviceVm, type DeviceVm } from '../vm/device-vm.js';
import { parsePingSummary } from './ping-summary.js';

const PINGS = Number(process.env.VMGMT_DEMO_PINGS ?? 1000);

async function main(): Promise<number> {
  console.log('vmgmt demo: booting a guest with the management device...');
  let vm: DeviceVm | undefined;
  const filesRoot = mkdtempSync(path.join(tmpdir(), 'vmgmt-demo-files-'));
  const stop = (): void => {
    void vm?.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    vm = await startDeviceVm({ name: 'demo', memoryMiB: 512, files: { root: filesRoot } });
    console.log(`accelerator: ${vm.accel.accel} (${vm.accel.reason})`);
    console.log(`guest ready ${(vm.bootToReadyMs / 1000).toFixed(2)} s after QEMU started (run dir ${vm.runDir})`);
    const info = await vm.control.run('vmgmt-guest info', { timeoutMs: 30_000 });
    console.log(`\n$ vmgmt-guest info\n${info.stdout.trimEnd()}`);
    const ping = await vm.control.run(`vmgmt-guest ping -n ${PINGS}`, { timeoutMs: 120_000 });
    const summary = parsePingSummary(ping.stdout);
    console.log(`\n$ vmgmt-guest ping -n ${PINGS}\n${ping.stdout.trimEnd()}`);
    if (ping.exitCode !== 0 || !summary) {
      console.error(`demo failed: vmgmt-guest ping exited ${ping.exitCode}`);
      return 1;
    }
    const c = vm.device.core.counters;
    console.log('\nround trip through the device, measured inside the guest:');
    console.table({ pings: summary.n, 'min µs': summary.minUs, 'median µs': summary.medianUs, 'p99 µs': summary.p99Us, 'max µs': summary.maxUs, 'guest wait': summary.wait });
    console.log(`core side: ${c.messages} messages served, ${c.doorbells} doorbells, ${c.notificationsSent} guest notifications, ${c.protocolErrors} protocol errors`);

    const files = await vm.control.run(
      'head -c 67108864 /dev/urandom > /tmp/demo.bin && vmgmt-guest file put /tmp/demo.bin demo.bin --sha256 -q && ' +
        'vmgmt-guest file get demo.bin /tmp/back.bin --sha256 -q && vmgmt-guest file ls && vmgmt-guest file get ../etc/passwd /tmp/nope -q',
      { timeoutMs: 120_000 },
    );
    console.log(`
file mode (host root ${filesRoot}):
${files.stdout.trimEnd()}`);
    if (!/^put: /m.test(files.stdout) || !/^get: /m.test(files.stdout) || files.exitCode !== 8) {
      console.error(`demo failed: file mode did not behave (exit ${files.exitCode})`);
      return 1;
    }
    return 0;
  } finally {
    await vm?.close();
    rmSync(filesRoot, { recursive: true, force: true });
    console.log('shut down: QEMU stopped, sockets and region removed');
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
