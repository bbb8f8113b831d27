import { describe, expect, it } from 'vitest';
import { lookupKvmProbeCache } from './accel-probe-cache.js';
import { resolveAccel, type AccelProbeIo, type KvmBootResult } from './accel-probe.js';

function fakeIo(opts: { deviceProblem?: string; boot?: KvmBootResult; mtimeMs?: number } = {}) {
  const files = new Map<string, string>();
  const calls = { boots: 0 };
  const io: AccelProbeIo = {
    kvmDeviceProblem: async () => opts.deviceProblem,
    qemuVersion: async () => 'QEMU emulator version 7.2.22',
    fileMtimeMs: async () => opts.mtimeMs ?? 1000,
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

  it('chooses kvm when the probe succeeds and re-probes when the kernel changes', async () => {
    const { io, calls } = fakeIo({ boot: { ok: true, durationMs: 900 } });
    expect(await resolveAccel('auto', probe, io)).toMatchObject({ accel: 'kvm', fromCache: false });
    expect(await resolveAccel('auto', probe, io)).toMatchObject({ accel: 'kvm', fromCache: true });
    expect(await resolveAccel('auto', { ...probe, kernelPath: '/img/other' }, io)).toMatchObject({ fromCache: false });
    expect(calls.boots).toBe(2);
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
  const key = { qemuVersion: 'v7', kernelPath: '/k', kernelMtimeMs: 5 };
  const entry = { version: 1, key, accel: 'tcg', reason: 'r', probedAt: 't', probeDurationMs: 1 };
  it('hits only on an identical key and says what changed otherwise', () => {
    expect(lookupKvmProbeCache(JSON.stringify(entry), key).hit).toBe(true);
    expect(lookupKvmProbeCache(JSON.stringify(entry), { ...key, kernelMtimeMs: 6 })).toEqual({
      hit: false,
      why: 'kernelMtimeMs changed from 5 to 6',
    });
    expect(lookupKvmProbeCache('{', key)).toEqual({ hit: false, why: 'cache file is not JSON' });
    expect(lookupKvmProbeCache(JSON.stringify({ ...entry, accel: 'hvf' }), key).hit).toBe(false);
    expect(lookupKvmProbeCache(undefined, key)).toEqual({ hit: false, why: 'no cache file' });
  });
});
