// The management device survives its core going away: a new core takes the region and eventfds back
// out of the running QEMU (pidfd_getfd) and the guest's pings work again, without a reboot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import { ManagementDevice, type QemuDeviceFds } from '../../device-backend/management-device.js';
import { loadNative } from '../../device-backend/native/index.js';
import { parsePingSummary } from '../../orchestrator/demo/ping-summary.js';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';

describe('re-attaching the management device to a running VM', () => {
  let vm: DeviceVm;
  let second: ManagementDevice | undefined;

  beforeAll(async () => {
    vm = await startDeviceVm({ name: 'it-reattach', accel: 'tcg' });
  });

  afterAll(async () => {
    second?.close();
    await vm?.close();
    if (vm) expect(expectNoLeftovers(vm.runDir)).toEqual([]);
  });

  it('a new core serves the guest after the first one is gone', async () => {
    const first = await vm.control.run('vmgmt-guest ping -n 10', { timeoutMs: 60_000 });
    expect(first.exitCode, first.stdout).toBe(0);

    const fds: QemuDeviceFds = await vm.device.locateInQemu(vm.qemu.pid);
    expect(fds.coreEventFds).toHaveLength(vm.device.geometry.vectors);
    expect(fds.clientEventFds).toHaveLength(vm.device.geometry.vectors);
    const served = vm.device.core.counters.messages;
    vm.stopCore();

    const down = await vm.control.run('vmgmt-guest ping -n 1 -t 500', { timeoutMs: 60_000 });
    expect(down.exitCode, down.stdout).toBe(5);

    second = ManagementDevice.reattach({
      native: loadNative(),
      name: 'it-reattach',
      socketPath: `${vm.runDir}/ivshmem.sock`,
      log: silentLogger,
      qemuPid: vm.qemu.pid,
      fds,
    });
    expect(second.origin).toBe('reattached');
    expect(served).toBeGreaterThanOrEqual(10);

    // This core serves no agent mode, so the guest agent cannot serve and holds vfio only for a moment
    // every few seconds, when it tries to connect again: the ping takes vfio itself (retried if it collides).
    let again = await vm.control.run('vmgmt-guest ping -n 50 --wait msix', { timeoutMs: 60_000 });
    for (let i = 0; i < 5 && again.exitCode === 1 && /is busy/.test(again.stdout); i++) {
      await new Promise((r) => setTimeout(r, 300));
      again = await vm.control.run('vmgmt-guest ping -n 50 --wait msix', { timeoutMs: 60_000 });
    }
    expect(again.exitCode, again.stdout).toBe(0);
    expect(parsePingSummary(again.stdout)?.wait).toBe('msix');
    expect(second.core.counters.messages).toBe(50);

    const info = JSON.parse((await vm.control.run('vmgmt-guest info --json')).stdout) as { header: { coreGeneration: number } };
    expect(info.header.coreGeneration).toBe(2);
  });
});
