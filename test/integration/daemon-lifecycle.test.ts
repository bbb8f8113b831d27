// The vmgmt daemon against real QEMU guests: lifecycle over the control API, restart policy, definition
// validation, and kill -9 of the daemon with VMs and their management devices re-attached.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePingSummary } from '../../orchestrator/demo/ping-summary.js';
import { TEST_IMAGE_APPEND, testImage } from '../../orchestrator/vm/test-image.js';
import { DaemonFixture } from '../support/daemon-fixture.js';

describe('vmgmt daemon', () => {
  let d: DaemonFixture;

  beforeAll(async () => {
    d = await DaemonFixture.start();
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('rejects bad definitions, naming each field and why', async () => {
    const r = await d.api('POST', '/v1/vms', { name: 'Bad Name!', memoryMiB: 3, device: { regionSizeBytes: 3000 }, colour: 'red' });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('INVALID_DEFINITION');
    const paths = (r.body.details.problems as { path: string }[]).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'memoryMiB', 'device.regionSizeBytes']));
    expect(r.body.message).toMatch(/colour/);
    expect(r.body.message).toMatch(/power of two/);
  });

  it('refuses a second VM with the same name', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-dup', accel: 'tcg' })).status).toBe(201);
    const again = await d.api('POST', '/v1/vms', { name: 'it-dup', accel: 'tcg' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(again.body.message).toMatch(/it-dup already exists/);
    expect((await d.api('DELETE', '/v1/vms/it-dup')).status).toBe(204);
    expect((await d.api('GET', '/v1/vms/it-dup')).status).toBe(404);
  });

  it('a kernel that is not there is refused at create, naming the field', async () => {
    const r = await d.api('POST', '/v1/vms', { name: 'it-nokernel', accel: 'tcg', boot: { kernel: '/nonexistent/vmlinuz' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'INVALID_DEFINITION', details: { problems: [{ path: 'boot.kernel', message: '/nonexistent/vmlinuz does not exist on the host' }] } });
    expect((await d.api('GET', '/v1/vms/it-nokernel')).status).toBe(404);
  });

  it('a VM that cannot boot fails to start with QEMU\'s own words and leaves nothing running', async () => {
    const notAKernel = path.join(d.baseDir, 'not-a-kernel');
    writeFileSync(notAKernel, 'this is not a kernel');
    expect((await d.api('POST', '/v1/vms', { name: 'it-nokernel', accel: 'tcg', boot: { kernel: notAKernel } })).status).toBe(201);
    const r = await d.api('POST', '/v1/vms/it-nokernel/start');
    expect(r.status).toBe(502);
    expect(r.body.code).toBe('QEMU_FAILED');
    expect(r.body.message).toMatch(/not-a-kernel|kernel/);
    const vm = (await d.api('GET', '/v1/vms/it-nokernel')).body;
    expect(vm).toMatchObject({ state: 'crashed', pid: null });
    expect(vm.stateReason).toMatch(/start failed/);
    expect((await d.api('DELETE', '/v1/vms/it-nokernel')).status).toBe(204);
  });

  it('define -> start -> running -> stop with a cooperative guest', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-coop', accel: 'tcg' })).status).toBe(201);
    const started = await d.api('POST', '/v1/vms/it-coop/start');
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    expect(started.body).toMatchObject({ state: 'running', accel: 'tcg', device: { attached: true, origin: 'fresh' } });
    const ping = await d.guest('it-coop', 'vmgmt-guest ping -n 20');
    expect(ping.exitCode, ping.stdout).toBe(0);
    const consoleLog = await d.api('GET', '/v1/vms/it-coop/logs?source=console');
    expect(consoleLog.body).toMatch(/vmgmt-init: up in [\d.]+s/);
    const daemonLog = await d.api('GET', '/v1/vms/it-coop/logs?source=daemon&tailBytes=100000');
    expect(daemonLog.body).toMatch(/"msg":"state starting -> running","vm":"it-coop"/);
    const stopped = await d.api('POST', '/v1/vms/it-coop/stop', { timeoutMs: 30_000 });
    expect(stopped.status).toBe(200);
    expect(stopped.body.state).toBe('stopped');
    expect(stopped.body.lastExit).toMatchObject({ exitCode: 0 });
    const log = readFileSync(path.join(d.stateDir, 'vms/it-coop/daemon.log'), 'utf8');
    expect(log).toMatch(/QMP event SHUTDOWN/); // the guest powered itself off: no deadline needed
    expect(log).not.toMatch(/did not power off/);
  });

  it('stop falls back to quit when the guest ignores the power button', async () => {
    const image = testImage();
    const def = { name: 'it-deaf', accel: 'tcg', powerdownTimeoutMs: 2000, boot: { kernel: image.kernelPath, initrd: image.initrdPath, append: `${TEST_IMAGE_APPEND} vmgmt.ignore_power_button=1` } };
    expect((await d.api('POST', '/v1/vms', def)).status).toBe(201);
    expect((await d.api('POST', '/v1/vms/it-deaf/start')).status).toBe(200);
    expect((await d.guest('it-deaf', 'true')).exitCode).toBe(0);
    const t0 = Date.now();
    const stopped = await d.api('POST', '/v1/vms/it-deaf/stop');
    expect(stopped.body.state).toBe('stopped');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    expect(readFileSync(path.join(d.stateDir, 'vms/it-deaf/daemon.log'), 'utf8')).toMatch(/did not power off within 2000 ms/);
  });

  it('kill -9 of QEMU marks the VM crashed and the on-failure policy restarts it', async () => {
    const def = { name: 'it-crash', accel: 'tcg', restart: { policy: 'on-failure', maxRestarts: 2, backoffMs: 500 } };
    expect((await d.api('POST', '/v1/vms', def)).status).toBe(201);
    const first = (await d.api('POST', '/v1/vms/it-crash/start')).body;
    process.kill(first.pid, 'SIGKILL');
    const crashed = await d.waitFor('it-crash', (vm) => vm.state === 'crashed' || vm.restarts === 1);
    expect(crashed.lastExit).toMatchObject({ signal: 'SIGKILL' });
    expect(crashed.lastExit.reason).toMatch(/unexpectedly/);
    const now = await d.waitFor('it-crash', (vm) => vm.state === 'running' && vm.restarts === 1);
    expect(now.pid).not.toBe(first.pid);
    expect((await d.api('POST', '/v1/vms/it-crash/kill')).body.state).toBe('stopped');
  });

  it('kill -9 of the daemon with two VMs running: both re-attached, controllable, devices answering', async () => {
    for (const name of ['it-a', 'it-b']) {
      expect((await d.api('POST', '/v1/vms', { name, accel: 'tcg' })).status).toBe(201);
      expect((await d.api('POST', `/v1/vms/${name}/start`)).status).toBe(200);
    }
    const before = (await d.api('GET', '/v1/vms')).body.vms as { name: string; pid: number }[];
    await d.kill9();
    const down = await d.guest('it-a', 'vmgmt-guest ping -n 1 -t 500');
    expect(down.exitCode).toBe(5);

    await d.startDaemon();
    for (const name of ['it-a', 'it-b']) {
      const vm = (await d.api('GET', `/v1/vms/${name}`)).body;
      expect(vm.state).toBe('running');
      expect(vm.pid).toBe(before.find((v) => v.name === name)!.pid);
      expect(vm.device).toMatchObject({ attached: true, origin: 'reattached' });
      const ping = await d.guest(name, 'vmgmt-guest ping -n 50');
      expect(ping.exitCode, ping.stdout).toBe(0);
      expect(parsePingSummary(ping.stdout)?.n).toBe(50);
      // 50 pings, plus the resident agent setting its mode again on the re-attached device.
      expect((await d.api('GET', `/v1/vms/${name}`)).body.device.messages).toBeGreaterThanOrEqual(50);
    }
    const stopped = await d.api('POST', '/v1/vms/it-a/stop');
    expect(stopped.body.state).toBe('stopped');
    expect((await d.api('POST', '/v1/vms/it-b/kill')).body.state).toBe('stopped');
  });

  it('a VM that died while the daemon was down is marked crashed, exit status unknown', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-gone', accel: 'tcg' })).status).toBe(201);
    const vm = (await d.api('POST', '/v1/vms/it-gone/start')).body;
    await d.kill9();
    process.kill(vm.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await d.startDaemon();
    const now = (await d.api('GET', '/v1/vms/it-gone')).body;
    expect(now.state).toBe('crashed');
    expect(now.stateReason).toMatch(/exit status unknown/);
    expect(now.pid).toBeNull();
  });

  it('SIGTERM stops the daemon and leaves VMs running', async () => {
    const vm = (await d.api('POST', '/v1/vms/it-b/start')).body;
    expect(vm.state).toBe('running');
    const t0 = Date.now();
    expect(await d.sigterm()).toBe(0);
    // Nothing left over from earlier stops (deadline timers, QEMU handles) keeps a stopping daemon alive.
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(() => process.kill(vm.pid, 0)).not.toThrow();
    await d.startDaemon();
    expect((await d.api('GET', '/v1/vms/it-b')).body).toMatchObject({ state: 'running', pid: vm.pid });
    expect((await d.api('POST', '/v1/vms/it-b/kill')).body.state).toBe('stopped');
  });
});
