// Faults in the middle of a `vmgmt cp`: QEMU killed, the daemon stopped or killed. What the user sees comes
// at once and says what happened; the VM's state is recorded; nothing is left behind (no staging file in
// the daemon, no partial file where the copy was going).
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const VM = 'it-fault';
const BIG_MIB = 192;

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('faults during vmgmt cp', () => {
  let d: DaemonFixture;
  let bigLocal: string;

  const files = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };

  /** Starts the VM unless it runs, and waits for its agent. */
  async function startVm(): Promise<number> {
    const now = await d.api('GET', `/v1/vms/${VM}`);
    const r = now.body.state === 'running' ? now : await d.api('POST', `/v1/vms/${VM}/start`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await d.waitForAgent(VM, 90_000, 300);
    return r.body.pid as number;
  }

  /** Runs `vmgmt cp --json ARGS`, calls act() once the guest stage has moved bytes, returns how the CLI ended. */
  async function copyAndInterrupt(args: string[], act: (cli: ChildProcess) => Promise<unknown> | void) {
    let acted: Promise<unknown> | undefined;
    let actedAt = 0;
    const run = d.cliStreaming(['cp', '--json', ...args], (out) => {
      if (acted || !/"stage":"guest","bytes":[1-9]/.test(out)) return;
      actedAt = Date.now();
      acted = Promise.resolve(act(run.child));
    });
    const result = await run.done;
    await acted;
    expect(acted, `the copy finished before it could be interrupted:\n${result.stdout}\n${result.stderr}`).toBeDefined();
    const lastEvent = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { event?: string; message?: string };
    return { ...result, lastEvent, afterActMs: Date.now() - actedAt };
  }

  beforeAll(async () => {
    d = await DaemonFixture.start();
    expect((await d.api('POST', '/v1/vms', { name: VM, accel: 'tcg', memoryMiB: 768 })).status).toBe(201);
    bigLocal = path.join(d.baseDir, 'big.bin');
    writeFileSync(bigLocal, randomBytes(BIG_MIB * 1024 * 1024));
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('QEMU killed during a push: the copy fails at once saying the VM crashed, and the staging file is gone', async () => {
    const pid = await startVm();
    const r = await copyAndInterrupt([bigLocal, `${VM}:/tmp/big`], () => void process.kill(pid, 'SIGKILL'));
    expect(r.code).not.toBe(0);
    expect(r.afterActMs).toBeLessThan(15_000);
    expect(r.lastEvent).toMatchObject({ event: 'error', message: expect.stringMatching(/VM it-fault crashed .*killed by SIGKILL.* during the copy of \/tmp\/big/) });
    expect((await d.api('GET', `/v1/vms/${VM}`)).body.state).toBe('crashed');
    expect(files(d.transferDir)).toEqual([]);
  });

  const bigInGuest = async (): Promise<void> => {
    expect((await d.guest(VM, `dd if=/dev/zero of=/tmp/big bs=1M count=${BIG_MIB} 2>/dev/null && echo ok`, 120_000)).stdout).toMatch(/ok/);
  };

  it('QEMU killed during a pull: nothing is left in the destination directory or the daemon', async () => {
    await startVm();
    await bigInGuest();
    const pid = (await d.api('GET', `/v1/vms/${VM}`)).body.pid as number;
    const dest = path.join(d.baseDir, 'pull-dest');
    mkdirSync(dest);
    const r = await copyAndInterrupt([`${VM}:/tmp/big`, `${dest}/`], () => void process.kill(pid, 'SIGKILL'));
    expect(r.code).not.toBe(0);
    expect(r.afterActMs).toBeLessThan(15_000);
    expect(r.lastEvent.message).toMatch(/VM it-fault crashed .* during the copy of \/tmp\/big/);
    expect(files(dest)).toEqual([]);
    expect(files(d.transferDir)).toEqual([]);
  });

  it('Ctrl-C of the CLI during a pull leaves no partial file in the destination, and the daemon none either', async () => {
    await startVm();
    await bigInGuest();
    const dest = path.join(d.baseDir, 'interrupted');
    mkdirSync(dest);
    const r = await copyAndInterrupt([`${VM}:/tmp/big`, `${dest}/`], (cli) => void cli.kill('SIGINT'));
    expect(r.code).toBe(130);
    expect(files(dest)).toEqual([]);
    const deadline = Date.now() + 30_000;
    while (files(d.transferDir).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    expect(files(d.transferDir)).toEqual([]);
  });

  it('a full guest file system is said as such: the guest is out of space at PATH', async () => {
    await startVm();
    expect((await d.guest(VM, 'mkdir -p /mnt/small && mount -t tmpfs -o size=1m vmgmt-small /mnt/small && echo ok')).stdout).toMatch(/ok/);
    const local = path.join(d.baseDir, 'four-mib.bin');
    writeFileSync(local, randomBytes(4 * 1024 * 1024));
    const r = await d.cli('cp', local, `${VM}:/mnt/small/f`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the guest is out of space at \/mnt\/small\/f/);
    expect(r.stderr).not.toMatch(/quota/);
    expect(files(d.transferDir)).toEqual([]);
  });

  it('SIGTERM to the daemon during a copy: it exits within seconds, the VM keeps running, nothing is left', async () => {
    const pid = await startVm();
    let exit: Promise<number | null> | undefined;
    const t0 = { ms: 0 };
    const r = await copyAndInterrupt([bigLocal, `${VM}:/tmp/big`], () => {
      t0.ms = Date.now();
      exit = d.sigterm();
    });
    await exit;
    expect(Date.now() - t0.ms).toBeLessThan(10_000);
    expect(r.code).not.toBe(0);
    expect(processAlive(pid)).toBe(true);
    expect(files(d.transferDir)).toEqual([]);
    await d.startDaemon();
    await d.waitFor(VM, (vm) => vm.state === 'running' && vm.pid === pid);
  });

  it('kill -9 of the daemon during a copy: the VM keeps running, the next daemon sweeps the staging file and copies again', async () => {
    const pid = (await d.api('GET', `/v1/vms/${VM}`)).body.pid as number;
    // The agent re-claims its channel after the restart above.
    await d.waitForAgent(VM, 60_000, 300);
    const r = await copyAndInterrupt([bigLocal, `${VM}:/tmp/big`], () => d.kill9());
    expect(r.code).not.toBe(0);
    expect(processAlive(pid)).toBe(true);
    await d.startDaemon();
    expect(files(d.transferDir)).toEqual([]);
    const small = path.join(d.baseDir, 'small.txt');
    writeFileSync(small, 'after the restart');
    const again = await d.cli('cp', small, `${VM}:/tmp/small.txt`);
    expect(again.code, again.stderr).toBe(0);
    expect((await d.guest(VM, 'cat /tmp/small.txt')).stdout).toBe('after the restart');
    expect((await d.api('POST', `/v1/vms/${VM}/kill`)).status).toBe(200);
  });
});
