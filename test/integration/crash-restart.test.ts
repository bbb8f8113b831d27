// A guest that resets itself under -no-reboot is a crash: recorded with QEMU's reason and the console's
// last lines, restarted by the on-failure policy, and `vm inspect` says when the policy gave up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const VM = 'it-reset';

describe('crashes are crashes', () => {
  let d: DaemonFixture;

  beforeAll(async () => {
    d = await DaemonFixture.start();
    const def = { name: VM, accel: 'tcg', restart: { policy: 'on-failure', maxRestarts: 1, backoffMs: 200 } };
    expect((await d.api('POST', '/v1/vms', def)).status).toBe(201);
    expect((await d.api('POST', `/v1/vms/${VM}/start`)).status).toBe(200);
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  /** Makes the guest reset at once (sysrq b): QEMU, started with -no-reboot, shuts down with guest-reset. */
  const resetGuest = async (): Promise<void> => {
    await d.guest(VM, 'echo b > /proc/sysrq-trigger', 10_000).catch(() => {});
  };

  it('a guest reset is recorded as a crash with the reason and the console tail, and the VM is restarted', async () => {
    const first = (await d.api('GET', `/v1/vms/${VM}`)).body;
    await d.guest(VM, 'echo vmgmt-before-reset > /dev/console');
    await resetGuest();
    const restarted = await d.waitFor(VM, (vm) => vm.restarts === 1 && vm.state === 'running' && vm.pid !== first.pid, 120_000);
    expect(restarted.lastExit.reason).toMatch(/the guest reset itself .*guest-reset/);
    expect(restarted.lastExit.consoleTail).toEqual(expect.any(String));
    expect(restarted.restartGaveUpAt ?? null).toBeNull();
    const log = (await d.api('GET', `/v1/vms/${VM}/logs?source=daemon`)).body as string;
    expect(log).toMatch(/"msg":"QMP event SHUTDOWN".*"reason":"guest-reset"/);
  });

  it('the second crash uses up maxRestarts: the VM stays crashed and inspect says when the policy gave up', async () => {
    await resetGuest();
    const gaveUp = await d.waitFor(VM, (vm) => vm.state === 'crashed' && typeof vm.restartGaveUpAt === 'string', 120_000);
    expect(gaveUp.restarts).toBe(1);
    const inspect = await d.cli('vm', 'inspect', VM);
    expect(inspect.stdout).toMatch(/restarts:\s+1 \(the on-failure policy gave up at /);
    expect(inspect.stdout).toMatch(/last exit:.*guest-reset/);
    // A manual start gives the policy its restarts back.
    const started = await d.api('POST', `/v1/vms/${VM}/start`);
    expect(started.body).toMatchObject({ state: 'running', restarts: 0, restartGaveUpAt: null });
    expect((await d.api('POST', `/v1/vms/${VM}/kill`)).status).toBe(200);
  });
});
