import { describe, expect, it } from 'vitest';
import { DEFAULT_FILE_LIMITS, type FileRootConfig } from '../../device-backend/services/file/file-root-config.js';
import { definitionProblems, vmDefinitionSchema } from './vm-definition.js';

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
});
