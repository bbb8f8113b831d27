import { describe, expect, it } from 'vitest';
import { computeGeometry, DEFAULT_GEOMETRY } from '../../device-backend/layout/geometry.js';
import { DEFAULT_FILE_LIMITS, type FileRootConfig } from '../../device-backend/services/file/file-root-config.js';
import { definitionProblems, deviceGeometry, vmDefinitionSchema } from './vm-definition.js';

describe('VM definition', () => {
  it('needs only a name; everything else has a default', () => {
    const d = vmDefinitionSchema.parse({ name: 'a' });
    expect(d).toMatchObject({ name: 'a', memoryMiB: 256, cpus: 1, accel: 'auto', restart: { policy: 'never' }, device: { regionSizeBytes: 64 * 1024 * 1024, vectors: 2 } });
    expect(d.boot).toBeUndefined();
  });

  it('names every bad field and why', () => {
    const r = vmDefinitionSchema.safeParse({ name: '../etc', cpus: 0, accel: 'xen', device: { vectors: 9 }, files: { root: 'relative' }, extra: 1 });
    expect(r.success).toBe(false);
    const problems = definitionProblems(r.error!);
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(Object.keys(byPath)).toEqual(expect.arrayContaining(['name', 'cpus', 'accel', 'device.vectors', 'files.root', '(top level)']));
    expect(byPath['files.root']).toMatch(/absolute/);
    expect(byPath['(top level)']).toMatch(/extra/);
  });

  it('files: entry limit, hard links and unsafe names default from the file service, and map into its config', () => {
    const files = vmDefinitionSchema.parse({ name: 'f', files: { root: '/srv/f' } }).files!;
    expect(files).toMatchObject({ maxEntries: DEFAULT_FILE_LIMITS.maxEntries, allowHardLinks: false, allowUnsafeNames: false });
    const config: FileRootConfig = files; // the daemon hands the parsed section to the file service as is
    expect(config.maxEntries).toBe(100_000);
    const custom = vmDefinitionSchema.parse({ name: 'f', files: { root: '/srv/f', maxEntries: 10, allowHardLinks: true, allowUnsafeNames: true } }).files!;
    expect(custom).toMatchObject({ maxEntries: 10, allowHardLinks: true, allowUnsafeNames: true });
    expect(vmDefinitionSchema.safeParse({ name: 'f', files: { root: '/srv/f', maxEntries: -1 } }).success).toBe(false);
    expect(vmDefinitionSchema.safeParse({ name: 'f', files: { root: '/srv/f', allowHardlinks: true } }).success).toBe(false);
  });

  it('accepts a kernel boot or a disk boot, not a mix', () => {
    expect(vmDefinitionSchema.safeParse({ name: 'k', boot: { kernel: '/k', initrd: '/i', append: 'x' } }).success).toBe(true);
    expect(vmDefinitionSchema.parse({ name: 'd', boot: { disk: '/d.qcow2' } }).boot).toEqual({ disk: '/d.qcow2', format: 'qcow2' });
    expect(vmDefinitionSchema.safeParse({ name: 'x', boot: { kernel: '/k', disk: '/d' } }).success).toBe(false);
  });

  it.each(['a', 'web-1', 'db_2', '0x'])('accepts the name %s', (name) => {
    expect(vmDefinitionSchema.safeParse({ name }).success).toBe(true);
  });

  it.each(['', 'A', '-a', 'a b', 'a/b', 'a,b', 'x'.repeat(33)])('refuses the name %j', (name) => {
    expect(vmDefinitionSchema.safeParse({ name }).success).toBe(false);
  });

  it('takes the device defaults from the wire layout', () => {
    const { device } = vmDefinitionSchema.parse({ name: 'a' });
    expect(deviceGeometry(device)).toEqual(DEFAULT_GEOMETRY);
  });

  it.each([
    [{ regionSizeBytes: 64 * 1024, channels: 64 }, 'device.regionSizeBytes', /no data window/],
    [{ regionSizeBytes: 128 * 1024, channels: 16, ringSlots: 64, slotSizeBytes: 256 }, 'device.regionSizeBytes', /no data window/],
    [{ regionSizeBytes: 3 * 1024 * 1024 }, 'device.regionSizeBytes', /power of two/],
    [{ regionSizeBytes: 32 * 1024 }, 'device.regionSizeBytes', /65536/],
    [{ regionSizeBytes: 2 * 1024 * 1024 * 1024 }, 'device.regionSizeBytes', /1073741824/],
    [{ ringSlots: 3 }, 'device.ringSlots', /power of two/],
    [{ ringSlots: 2048 }, 'device.ringSlots', /1024/],
    [{ slotSizeBytes: 100 }, 'device.slotSizeBytes', /multiple of 64/],
    [{ slotSizeBytes: 8192 }, 'device.slotSizeBytes', /4096/],
    [{ channels: 65 }, 'device.channels', /64/],
    [{ vectors: 9 }, 'device.vectors', /8/],
  ])('refuses a geometry the device would refuse (%o), naming the field', (device, path, why) => {
    const r = vmDefinitionSchema.safeParse({ name: 'a', device });
    expect(r.success).toBe(false);
    const problems = definitionProblems(r.error!);
    expect(problems).toEqual([{ path, message: expect.stringMatching(why) }]);
  });

  it('checks the whole geometry whatever else is wrong with the definition', () => {
    const r = vmDefinitionSchema.safeParse({ name: 'Bad', cpus: 0, device: { regionSizeBytes: 128 * 1024, channels: 16 } });
    const paths = definitionProblems(r.error!).map((p) => p.path);
    expect(paths.sort()).toEqual(['cpus', 'device.regionSizeBytes', 'name']);
  });

  it('accepts every geometry the device accepts', () => {
    const device = { regionSizeBytes: 1024 * 1024, vectors: 1, channels: 2, ringSlots: 8, slotSizeBytes: 64 };
    expect(vmDefinitionSchema.parse({ name: 'a', device }).device).toEqual(device);
    expect(computeGeometry(deviceGeometry(vmDefinitionSchema.parse({ name: 'a', device }).device)).ok).toBe(true);
  });
});
