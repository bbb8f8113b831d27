// `vmgmt vm pause|resume` against a real VM: QMP stop/cont, the state in vm ls and vm inspect, and cp,
// exec and chat to a paused VM refused at once with "vm NAME is paused".
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

describe('vm pause and resume', () => {
  let d: DaemonFixture;
  const vm = 'it-pause';

  beforeAll(async () => {
    d = await DaemonFixture.start();
    expect((await d.api('POST', '/v1/vms', { name: vm, accel: 'tcg', memoryMiB: 256 })).status).toBe(201);
    const started = await d.cli('vm', 'start', vm);
    expect(started.code, started.stderr).toBe(0);
    await d.waitForAgent(vm);
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('a chat name registers in the guest', async () => {
    await d.guest(vm, 'vmgmt-guest chat register pausebob > /tmp/bob.out 2>/tmp/bob.err & echo started');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(await d.cli('chat', 'peers')).stdout.includes(`${vm}/pausebob`)) await new Promise((r) => setTimeout(r, 300));
    expect((await d.cli('chat', 'peers')).stdout).toContain(`${vm}/pausebob`);
  });

  it('pauses: QEMU reports paused, vm ls and vm inspect show it', async () => {
    const r = await d.cli('vm', 'pause', vm);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`paused vm ${vm}\n`);
    const ls = await d.cli('vm', 'ls');
    expect(ls.stdout).toMatch(new RegExp(`^${vm}\\s+paused\\b`, 'm'));
    const inspect = JSON.parse((await d.cli('--json', 'vm', 'inspect', vm)).stdout);
    expect(inspect.state).toBe('paused');
    // QEMU's own view, on the VM's QMP socket through the daemon's log of events.
    expect(d.log).toContain('QMP event STOP');
    const again = await d.cli('vm', 'pause', vm);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain(`vm ${vm} is paused already`);
  });

  it('cp, exec and chat to the paused VM answer "vm NAME is paused" at once', async () => {
    const local = path.join(d.baseDir, 'f.txt');
    writeFileSync(local, 'x');
    for (const args of [
      ['cp', local, `${vm}:/tmp/f.txt`],
      ['cp', `${vm}:/etc/hostname`, path.join(d.baseDir, 'h')],
      ['vm', 'exec', vm, '--', 'true'],
      ['chat', 'send', 'pausebob', 'hello'],
    ]) {
      const t0 = Date.now();
      const r = await d.cli(...args);
      expect(r.stderr, args.join(' ')).toContain(`vm ${vm} is paused`);
      expect(r.code, args.join(' ')).toBe(5);
      expect(Date.now() - t0, args.join(' ')).toBeLessThan(5_000);
    }
  });

  it('resumes, and the guest runs again', async () => {
    const r = await d.cli('vm', 'resume', vm);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`resumed vm ${vm}\n`);
    expect(JSON.parse((await d.cli('--json', 'vm', 'inspect', vm)).stdout).state).toBe('running');
    const local = path.join(d.baseDir, 'after.txt');
    writeFileSync(local, 'after resume');
    const cp = await d.cli('cp', local, `${vm}:/tmp/after.txt`);
    expect(cp.code, cp.stderr).toBe(0);
    expect((await d.guest(vm, 'cat /tmp/after.txt')).stdout).toBe('after resume');
    const again = await d.cli('vm', 'resume', vm);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain('only a paused VM can be resumed');
  });
});
