import { describe, expect, it } from 'vitest';
import { lookupKvmProbeCache } from './accel-probe-cache.js';
import { hostCacheDir, hostKvmProbeInfo, resolveAccel, type AccelProbeIo, type KvmBootResult } from './accel-probe.js';

function fakeIo(opts: { deviceProblem?: string; boot?: KvmBootResult; mtimeMs?: number; hostKernel?: string } = {}) {
  const files = new Map<string, string>();
  const calls = { boots: 0 };
  const io: AccelProbeIo = {
    kvmDeviceProblem: async () => opts.deviceProblem,
    qemuVersion: async () => 'QEMU emulator version 7.2.22',
    fileMtimeMs: async () => opts.mtimeMs ?? 1000,
    hostKernel: async () => opts.hostKernel ?? '6.1.0-57-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3',
    kvmDeviceIdentity: async () => 'rdev 10:232 ino 9',
    readCache: async (path) => {
      const text = files.get(path);
      if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return text;
    },
    writeCache: async (path, text) => {
      files.set(path, text);
    },
    bootKvmProbe: async () => {
      calls.boots++;
      return opts.boot ?? { ok: false, durationMs: 20_000, why: 'the guest printed nothing' };
    },
  };
  return { io, files, calls };
}

const probe = { kernelPath: '/img/vmlinuz', initrdPath: '/img/initramfs.cpio.gz', cacheDir: '/var/cache/vmgmt' };

describe('resolveAccel', () => {
  it('honours explicit requests without probing', async () => {
    const { io, calls } = fakeIo({ deviceProblem: 'ENOENT' });
    expect(await resolveAccel('kvm', probe, io)).toMatchObject({ accel: 'kvm', fromCache: false });
    expect(await resolveAccel('tcg', probe, io)).toMatchObject({ accel: 'tcg' });
    expect(calls.boots).toBe(0);
  });

  it('uses tcg when /dev/kvm cannot be opened, saying why', async () => {
    const { io, calls } = fakeIo({ deviceProblem: 'EACCES' });
    const decision = await resolveAccel('auto', probe, io);
    expect(decision).toMatchObject({ accel: 'tcg', fromCache: false });
    expect(decision.reason).toContain('/dev/kvm cannot be opened read-write (EACCES)');
    expect(calls.boots).toBe(0);
  });

  it('falls back to tcg when the probe guest does not come up, and caches that', async () => {
    const { io, files, calls } = fakeIo();
    const first = await resolveAccel('auto', probe, io);
    expect(first).toMatchObject({ accel: 'tcg', fromCache: false, probeDurationMs: 20_000 });
    expect(first.reason).toMatch(/KVM self-probe failed after 20000 ms: the guest printed nothing; using tcg/);
    expect([...files.keys()]).toEqual(['/var/cache/vmgmt/kvm-probe.json']);
    const second = await resolveAccel('auto', probe, io);
    expect(second).toMatchObject({ accel: 'tcg', fromCache: true, probeDurationMs: 20_000 });
    expect(second.reason).toContain('[cached ');
    expect(calls.boots).toBe(1);
  });

  it('chooses kvm when the probe succeeds, shares it across checkouts and re-probes when the host kernel changes', async () => {
    const { io, calls } = fakeIo({ boot: { ok: true, durationMs: 900 } });
    const told: string[] = [];
    expect(await resolveAccel('auto', { ...probe, onProbing: (m) => told.push(m) }, io)).toMatchObject({ accel: 'kvm', fromCache: false });
    expect(told).toEqual([expect.stringMatching(/^probing whether KVM runs guests on this host \(no cache file\): .* for up to 20000 ms; the answer is kept in \/var\/cache\/vmgmt\/kvm-probe.json/)]);
    expect(await resolveAccel('auto', probe, io)).toMatchObject({ accel: 'kvm', fromCache: true });
    // Another checkout: another guest kernel path, same host: the cached answer holds.
    expect(await resolveAccel('auto', { ...probe, kernelPath: '/other/checkout/vmlinuz' }, io)).toMatchObject({ fromCache: true });
    io.hostKernel = async () => '6.1.0-58-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.200-1';
    const why: string[] = [];
    expect(await resolveAccel('auto', { ...probe, onProbing: (m) => why.push(m) }, io)).toMatchObject({ fromCache: false });
    expect(why[0]).toContain('hostKernel changed from');
    expect(calls.boots).toBe(2);
  });

  it('hostKvmProbeInfo reports the cached answer, or why the next start probes, without probing', async () => {
    const { io, calls } = fakeIo({ boot: { ok: false, durationMs: 106, why: 'QEMU exited (SIGABRT)' } });
    expect(await hostKvmProbeInfo({ cacheDir: '/c' }, io)).toMatchObject({ cachePath: '/c/kvm-probe.json', cached: null, stale: 'no cache file: the next start with accel auto probes' });
    await resolveAccel('auto', { ...probe, cacheDir: '/c' }, io);
    expect(await hostKvmProbeInfo({ cacheDir: '/c' }, io)).toMatchObject({
      key: { hostKernel: expect.any(String), qemuVersion: 'QEMU emulator version 7.2.22', kvmDevice: 'rdev 10:232 ino 9' },
      cached: { accel: 'tcg', reason: expect.stringContaining('QEMU exited (SIGABRT)'), probeDurationMs: 106 },
    });
    expect(calls.boots).toBe(1);
    expect(await hostKvmProbeInfo({ cacheDir: '/c' }, { ...io, kvmDeviceProblem: async () => 'ENOENT' })).toMatchObject({ problem: expect.stringContaining('without probing') });
  });

  it('keeps the cache per host, not per checkout', () => {
    expect(hostCacheDir({ VMGMT_CACHE_DIR: '/x' }, 1000)).toBe('/x');
    expect(hostCacheDir({}, 0)).toBe('/var/cache/vmgmt');
    expect(hostCacheDir({ XDG_CACHE_HOME: '/home/u/.c' }, 1000)).toBe('/home/u/.c/vmgmt');
  });

  it('throws PROBE_FAILED when the kernel is missing', async () => {
    const { io } = fakeIo();
    io.fileMtimeMs = async () => {
      throw new Error('ENOENT: no such file');
    };
    await expect(resolveAccel('auto', probe, io)).rejects.toMatchObject({ code: 'PROBE_FAILED', details: { value: '/img/vmlinuz' } });
  });
});

describe('lookupKvmProbeCache', () => {
  const key = { hostKernel: '6.1 #1', qemuVersion: 'v7', kvmDevice: 'rdev 10:232 ino 5' };
  const entry = { version: 2, key, accel: 'tcg', reason: 'r', probedAt: 't', probeDurationMs: 1 };
  it('hits only on an identical key and says what changed otherwise', () => {
    expect(lookupKvmProbeCache(JSON.stringify(entry), key).hit).toBe(true);
    expect(lookupKvmProbeCache(JSON.stringify(entry), { ...key, kvmDevice: 'rdev 10:232 ino 6' })).toEqual({
      hit: false,
      why: 'kvmDevice changed from "rdev 10:232 ino 5" to "rdev 10:232 ino 6"',
    });
    expect(lookupKvmProbeCache('{', key)).toEqual({ hit: false, why: 'cache file is not JSON' });
    expect(lookupKvmProbeCache(JSON.stringify({ ...entry, accel: 'hvf' }), key).hit).toBe(false);
    expect(lookupKvmProbeCache(undefined, key)).toEqual({ hit: false, why: 'no cache file' });
  });
});
