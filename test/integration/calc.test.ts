// The calculation mode from a real guest: the host computes digests and compresses what the guest streams
// through the device, byte for byte what the guest's own tools say; refusals print in words.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeviceVm, startDeviceVm } from '../../orchestrator/vm/device-vm.js';
import { expectNoLeftovers } from '../support/leftovers.js';

describe('calculation mode', () => {
  let vm: DeviceVm | undefined;
  let base: string;
  const data = randomBytes(12 * 1024 * 1024 + 123);

  const sh = async (cmd: string): Promise<{ exitCode: number; stdout: string }> => vm!.control.run(cmd, { timeoutMs: 120_000 });

  beforeAll(async () => {
    base = mkdtempSync(path.join(tmpdir(), 'vmgmt-it-calc-'));
    const root = path.join(base, 'root');
    mkdirSync(root);
    writeFileSync(path.join(root, 'data.bin'), data);
    vm = await startDeviceVm({ name: 'it-calc', accel: 'tcg', memoryMiB: 512, files: { root } });
    expect((await sh('vmgmt-guest file get data.bin /tmp/data.bin -q && echo ok')).stdout).toMatch(/ok/);
  });

  afterAll(async () => {
    const runDir = vm?.runDir;
    await vm?.close();
    rmSync(base, { recursive: true, force: true });
    if (runDir) expect(expectNoLeftovers(runDir)).toEqual([]);
  });

  it('sha256 and sha512 of a 12 MiB file, computed on the host, are what the guest computes itself', async () => {
    const r = await sh('vmgmt-guest calc sha256 -i /tmp/data.bin --hex 2>/dev/null; sha256sum /tmp/data.bin | cut -d" " -f1');
    expect(r.exitCode).toBe(0);
    const [host, guest] = r.stdout.trim().split('\n');
    expect(host).toBe(createHash('sha256').update(data).digest('hex'));
    expect(host).toBe(guest);
    expect((await sh('vmgmt-guest calc sha512 -i /tmp/data.bin --hex 2>/dev/null')).stdout.trim()).toBe(createHash('sha512').update(data).digest('hex'));
  });

  it('gzip on the host and gunzip on the host round-trip through files and pipes', async () => {
    const r = await sh('vmgmt-guest calc gzip -i /tmp/data.bin -o /tmp/data.gz 2>/dev/null && gunzip -c /tmp/data.gz | cmp - /tmp/data.bin && vmgmt-guest calc gunzip -i /tmp/data.gz 2>/dev/null | cmp - /tmp/data.bin && echo same');
    expect(r.stdout).toMatch(/same/);
    expect((await sh('printf 123456789 | vmgmt-guest calc crc32c --hex 2>/dev/null')).stdout.trim()).toBe('839206e3');
  });

  it('a 1 GiB input from a generator streams without its size known up front (nothing spooled in the guest)', async () => {
    // dd with 1 MiB blocks: busybox head writes the pipe in small pieces and takes a minute under TCG.
    const r = await sh('dd if=/dev/zero bs=1M count=1024 2>/dev/null | vmgmt-guest calc sha256 --hex 2>/tmp/calc.err; echo "exit $?"; cat /tmp/calc.err');
    const zeros = createHash('sha256');
    const mib = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 1024; i++) zeros.update(mib);
    const [digest, exit, stats] = r.stdout.split('\n');
    expect(exit).toBe('exit 0');
    expect(digest).toBe(zeros.digest('hex'));
    expect(stats).toMatch(/function=sha256 in=1073741824 out=32 /);
    // The same from a file of known size and from a pipe: the same digest.
    expect((await sh('vmgmt-guest calc sha256 --hex < /tmp/data.bin 2>/dev/null')).stdout.trim()).toBe(createHash('sha256').update(data).digest('hex'));
    expect((await sh('cat /tmp/data.bin | vmgmt-guest calc gzip 2>/dev/null | gunzip -c | cmp - /tmp/data.bin && echo same')).stdout).toMatch(/same/);
    expect((await sh('vmgmt-guest calc sha256 --hex < /dev/null 2>/dev/null')).stdout.trim()).toBe(createHash('sha256').digest('hex'));
  }, 300_000);

  it('says in words what the host refused, and the next calculation works', async () => {
    const unknown = await sh('vmgmt-guest calc mine -i /tmp/data.bin 2>&1; echo "exit $?"');
    expect(unknown.stdout).toMatch(/no such calculation function on this host .*\(status 70\)/);
    expect(unknown.stdout).toMatch(/exit 8/);
    const bad = await sh('echo not-gzip > /tmp/bad && vmgmt-guest calc gunzip -i /tmp/bad 2>&1; echo "exit $?"');
    expect(bad.stdout).toMatch(/the calculation failed on the host .*\(status 73\)/);
    const args = await sh('printf abc | vmgmt-guest calc sha256 extra 2>&1; echo "exit $?"');
    expect(args.stdout).toMatch(/does not take these arguments .*\(status 79\)/);
    expect(args.stdout).toMatch(/exit 8/);
    expect((await sh('printf abc | vmgmt-guest calc sha256 --hex 2>/dev/null')).stdout.trim()).toBe(createHash('sha256').update('abc').digest('hex'));
  });
});
