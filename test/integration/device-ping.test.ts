// A real guest under TCG pings the management core through the ivshmem-doorbell device with the real C
// driver, and reports a timeout in words when the core is gone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePingSummary } from '../../orchestrator/demo/ping-summary.js';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';

interface GuestInfo {
  vendor: string;
  device: string;
  ivPosition: number;
  bar2SizeBytes: number;
  header: Record<string, number | string> & { deviceStatusText: string };
  channels: { owner: number; state: string; mode: string; errorCount: number }[];
}

describe('guest ping through the management device', () => {
  let vm: DeviceVm;

  beforeAll(async () => {
    vm = await startDeviceVm({ name: 'it-ping', accel: 'tcg' });
  });

  afterAll(async () => {
    await vm?.close();
    if (vm) expect(expectNoLeftovers(vm.runDir)).toEqual([]);
  });

  async function guestInfo(): Promise<GuestInfo> {
    const r = await vm.control.run('vmgmt-guest info --json', { timeoutMs: 30_000 });
    expect(r.exitCode, r.stdout).toBe(0);
    return JSON.parse(r.stdout) as GuestInfo;
  }

  it('the driver finds the device and reads the geometry the core wrote', async () => {
    const info = await guestInfo();
    const g = vm.device.geometry;
    expect(info).toMatchObject({ vendor: '1af4', device: '1110', ivPosition: 1, bar2SizeBytes: g.regionSizeBytes });
    expect(info.header).toMatchObject({ channelCount: g.channelCount, ringSlots: g.ringSlots, slotSizeBytes: g.slotSizeBytes, dataOffset: g.dataOffset, vectors: g.vectors });
  });

  // The resident agent holds vfio and relays the MSI-X interrupt: a command waits on its relay (wait=relay).
  it('round-trips 200 pings, each served by the core, waiting on MSI-X through the agent\'s relay', async () => {
    const deadline = Date.now() + 120_000; // the agent may still be starting (on a loaded host, minutes after the boot)
    while (parsePingSummary((await vm.control.run('vmgmt-guest ping -n 1', { timeoutMs: 60_000 })).stdout)?.wait !== 'relay') {
      if (Date.now() > deadline) throw new Error('the agent\'s relay did not come up');
      await new Promise((r) => setTimeout(r, 500));
    }
    const before = vm.device.core.counters.messages;
    const r = await vm.control.run('vmgmt-guest ping -n 200 --wait relay', { timeoutMs: 60_000 });
    expect(r.exitCode, r.stdout).toBe(0);
    const summary = parsePingSummary(r.stdout);
    expect(summary, r.stdout).toBeDefined();
    expect(summary!.n).toBe(200);
    expect(summary!.wait).toBe('relay');
    expect(summary!.minUs).toBeGreaterThan(0);
    expect(summary!.minUs).toBeLessThanOrEqual(summary!.medianUs);
    expect(summary!.medianUs).toBeLessThanOrEqual(summary!.p99Us);
    expect(vm.device.core.counters.messages - before).toBe(200);
    expect(vm.device.core.counters.protocolErrors).toBe(0);
  });

  it('round-trips by polling when asked to', async () => {
    const r = await vm.control.run('vmgmt-guest ping -n 20 --wait poll', { timeoutMs: 60_000 });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(parsePingSummary(r.stdout)?.wait).toBe('poll');
  });

  it('the device is initialised and every command channel released after the driver exits', async () => {
    const info = await guestInfo();
    expect(info.header.deviceStatusText).toMatch(/DRIVER_OK/);
    // The resident agent keeps its channel; every channel a command used is free again.
    const agent = info.channels.filter((c) => c.mode === 'agent');
    expect(agent).toHaveLength(1);
    expect(info.channels.filter((c) => c.mode !== 'agent').map((c) => c.owner)).toEqual(new Array(vm.device.geometry.channelCount - 1).fill(0));
    expect(info.channels.every((c) => c.errorCount === 0)).toBe(true);
  });

  it('reports a timeout in words when the core is gone', async () => {
    vm.stopCore();
    const r = await vm.control.run('vmgmt-guest ping -n 1 -t 1000', { timeoutMs: 60_000 });
    expect(r.exitCode, r.stdout).toBe(5);
    expect(r.stdout).toMatch(/timed out after \d+ ms waiting for the management core/);
    expect(r.stdout).toMatch(/is the vmgmt daemon running\?/);
  });
});
