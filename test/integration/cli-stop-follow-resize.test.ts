// Issue 14's CLI leftovers through the real `vmgmt` against a real daemon and real QEMU guests:
// `vm stop` right after `vm start` goes to QMP quit at once (the guest has not enabled the ACPI power
// button yet) and says so, while a booted guest still powers off by the button; `vm logs -f` ends when the
// VM stops or crashes and follows on across an on-failure restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('vm stop after start, vm logs -f to the end (issue 14)', () => {
  let d: DaemonFixture;
  const vmgmt = (...args: string[]) => d.cli(...args);

  beforeAll(async () => {
    d = await DaemonFixture.start();
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  const waitForAgent = async (name: string): Promise<void> => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const info = await d.guest(name, 'vmgmt-guest info --json');
      if (/"mode":"agent"/.test(info.stdout)) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`the guest agent of ${name} did not come up`);
  };

  it('stop right after start goes to quit at once, says the VM was still booting, and leaves no QEMU', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-early', accel: 'tcg' })).status).toBe(201);
    const started = await vmgmt('vm', 'start', 'it-early');
    expect(started.code, started.stderr).toBe(0);
    const pid = JSON.parse((await vmgmt('vm', 'inspect', 'it-early', '--json')).stdout).pid as number;
    expect(alive(pid)).toBe(true);
    const t0 = Date.now();
    const stopped = await vmgmt('vm', 'stop', 'it-early');
    const ms = Date.now() - t0;
    expect(stopped.code, stopped.stderr).toBe(0);
    // The definition's deadline is 30 s; without the check the stop waited all of it.
    expect(ms).toBeLessThan(10_000);
    expect(stopped.stdout).toMatch(/^stopped vm it-early by QEMU quit \(/);
    expect(stopped.stdout).toMatch(/vm it-early was still booting \(its (firmware had not set up ACPI|kernel had not enabled the ACPI power button) yet.*\): stopped it with quit at once/);
    const json = JSON.parse((await vmgmt('vm', 'inspect', 'it-early', '--json')).stdout);
    expect(json).toMatchObject({ state: 'stopped', pid: null, lastExit: { stoppedBy: 'quit', stopNote: expect.stringContaining('still booting') } });
    expect(alive(pid)).toBe(false);
  });

  it('a booted guest still powers off by the button; vm logs -f prints the rest and ends when the VM stops', async () => {
    expect((await d.api('POST', '/v1/vms', { name: 'it-follow', accel: 'tcg' })).status).toBe(201);
    expect((await vmgmt('vm', 'start', 'it-follow')).code).toBe(0);
    await waitForAgent('it-follow');
    const { child, done } = d.cliStreaming(['vm', 'logs', '-f', 'it-follow'], () => {});
    let seen = '';
    child.stdout!.on('data', (b: Buffer) => (seen += b.toString()));
    expect((await d.guest('it-follow', 'echo follow-$((40+2)) > /dev/ttyS0')).exitCode).toBe(0);
    const deadline = Date.now() + 30_000;
    while (!seen.includes('follow-42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(seen).toContain('follow-42');

    const stopped = await vmgmt('vm', 'stop', 'it-follow');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/^stopped vm it-follow by the power button/);
    const end = await done;
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toMatch(/^vmgmt: vm it-follow stopped \(.+\); the log ends here\n$/);
    // The follower printed the log to its end: its last bytes are the log's.
    const tail = (await vmgmt('vm', 'logs', 'it-follow', '--tail', '200')).stdout;
    expect(tail.length).toBeGreaterThan(0);
    expect(end.stdout.endsWith(tail)).toBe(true);

    // Following a VM that is down already prints its log and ends at once.
    const again = await vmgmt('vm', 'logs', '-f', 'it-follow');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('follow-42');
    expect(again.stderr).toMatch(/vm it-follow stopped .*the log ends here/);
  });

  it('vm logs -f follows on across an on-failure restart, and ends when the VM crashes for good', async () => {
    const def = { name: 'it-restart', accel: 'tcg', restart: { policy: 'on-failure', maxRestarts: 1, backoffMs: 3000 } };
    expect((await d.api('POST', '/v1/vms', def)).status).toBe(201);
    const first = JSON.parse((await vmgmt('vm', 'start', 'it-restart', '--json')).stdout);
    await d.guest('it-restart', 'true');
    const { child, done } = d.cliStreaming(['vm', 'logs', '-f', 'it-restart'], () => {});
    let seen = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (seen += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    process.kill(first.pid, 'SIGKILL');
    const restarted = await d.waitFor('it-restart', (vm) => vm.state === 'running' && vm.restarts === 1, 120_000);
    expect(restarted.pid).not.toBe(first.pid);
    expect(err).toMatch(/vmgmt: vm it-restart crashed; its on-failure policy restarts it at \S+: following on\n/);
    // The follower is still there, and the restarted guest's output reaches it.
    expect((await d.guest('it-restart', 'echo after-restart-$((6*7)) > /dev/ttyS0')).exitCode).toBe(0);
    const deadline = Date.now() + 30_000;
    while (!seen.includes('after-restart-42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(seen).toContain('after-restart-42');
    expect(child.exitCode).toBeNull();

    // Its one restart is used: this crash is the end, and the follower says so.
    process.kill(restarted.pid, 'SIGKILL');
    const end = await done;
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toMatch(/vmgmt: vm it-restart crashed \(.+\); the log ends here\n$/);
    expect((await d.api('GET', '/v1/vms/it-restart')).body).toMatchObject({ state: 'crashed', restartGaveUpAt: expect.any(String) });
  });
});
