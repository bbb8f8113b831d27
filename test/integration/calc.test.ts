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
    const r = await sh('vmgmt-guest calc sha256 /tmp/data.bin --hex 2>/dev/null; sha256sum /tmp/data.bin | cut -d" " -f1');
    expect(r.exitCode).toBe(0);
    const [host, guest] = r.stdout.trim().split('\n');
    expect(host).toBe(createHash('sha256').update(data).digest('hex'));
    expect(host).toBe(guest);
    expect((await sh('vmgmt-guest calc sha512 /tmp/data.bin --hex 2>/dev/null')).stdout.trim()).toBe(createHash('sha512').update(data).digest('hex'));
  });

  it('gzip on the host and gunzip on the host round-trip through files and pipes', async () => {
    const r = await sh('vmgmt-guest calc gzip /tmp/data.bin /tmp/data.gz 2>/dev/null && gunzip -c /tmp/data.gz | cmp - /tmp/data.bin && vmgmt-guest calc gunzip /tmp/data.gz - 2>/dev/null | cmp - /tmp/data.bin && echo same');
    expect(r.stdout).toMatch(/same/);
    expect((await sh('printf 123456789 | vmgmt-guest calc crc32c --hex 2>/dev/null')).stdout.trim()).toBe('839206e3');
  });

  it('says in words what the host refused, and the next calculation works', async () => {
    const unknown = await sh('vmgmt-guest calc mine /tmp/data.bin 2>&1; echo "exit $?"');
    expect(unknown.stdout).toMatch(/no such calculation function on this host .*\(status 70\)/);
    expect(unknown.stdout).toMatch(/exit 8/);
    const bad = await sh('echo not-gzip > /tmp/bad && vmgmt-guest calc gunzip /tmp/bad 2>&1; echo "exit $?"');
    expect(bad.stdout).toMatch(/the calculation failed on the host .*\(status 73\)/);
    expect((await sh('printf abc | vmgmt-guest calc sha256 --hex 2>/dev/null')).stdout.trim()).toBe(createHash('sha256').update('abc').digest('hex'));
  });
});
