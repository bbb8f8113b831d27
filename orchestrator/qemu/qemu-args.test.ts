import { describe, expect, it } from 'vitest';
import { buildQemuArgs, type QemuVmSpec } from './qemu-args.js';
import { QemuError } from './qemu-error.js';

const base: QemuVmSpec = {
  name: 'vm1',
  uuid: '123e4567-e89b-12d3-a456-426614174000',
  accel: 'tcg',
  memoryMiB: 256,
  cpus: 1,
  kernelPath: '/img/vmlinuz',
  initrdPath: '/img/initramfs.cpio.gz',
  append: 'console=ttyS0 panic=-1',
  qmpSocketPath: '/run/vm1/qmp.sock',
  consoleLogPath: '/run/vm1/console.log',
};

/** Value following the n-th occurrence of a flag. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] as string] : []));
}

describe('buildQemuArgs', () => {
  it('builds the full TCG command line', () => {
    expect(buildQemuArgs(base)).toEqual([
      '-name', 'vm1,debug-threads=on',
      '-uuid', '123e4567-e89b-12d3-a456-426614174000',
      '-machine', 'q35',
      '-accel', 'tcg',
      '-cpu', 'max',
      '-m', '256',
      '-smp', '1',
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
      '-kernel', '/img/vmlinuz',
      '-initrd', '/img/initramfs.cpio.gz',
      '-append', 'console=ttyS0 panic=-1',
      '-qmp', 'unix:/run/vm1/qmp.sock,server=on,wait=off',
      '-serial', 'file:/run/vm1/console.log',
      '-device', 'intel-iommu,intremap=on',
      '-device', 'pvpanic',
    ]);
  });

  it('uses the host CPU and a split irqchip under KVM', () => {
    const args = buildQemuArgs({ ...base, accel: 'kvm' });
    expect(valuesOf(args, '-machine')).toEqual(['q35,kernel-irqchip=split']);
    expect(valuesOf(args, '-accel')).toEqual(['kvm']);
    expect(valuesOf(args, '-cpu')).toEqual(['host']);
  });

  it('adds the control socket as ttyS1 and ivshmem after the IOMMU, extra args last', () => {
    const args = buildQemuArgs({
      ...base,
      controlSocketPath: '/run/vm1/ctl.sock',
      ivshmem: { serverSocketPath: '/run/vmgmt/ivshmem.sock', vectors: 4 },
      sandbox: false,
      extraArgs: ['-S'],
    });
    expect(args).not.toContain('-sandbox');
    expect(valuesOf(args, '-serial')).toEqual(['file:/run/vm1/console.log', 'chardev:vmgmtctl']);
    expect(valuesOf(args, '-chardev')).toEqual([
      'socket,id=vmgmtctl,path=/run/vm1/ctl.sock,server=on,wait=off',
      'socket,id=vmgmtivsh,path=/run/vmgmt/ivshmem.sock',
    ]);
    const devices = valuesOf(args, '-device');
    expect(devices).toEqual(['intel-iommu,intremap=on', 'pvpanic', 'ivshmem-doorbell,chardev=vmgmtivsh,vectors=4']);
    expect(args.indexOf('ivshmem-doorbell,chardev=vmgmtivsh,vectors=4')).toBeGreaterThan(args.indexOf('intel-iommu,intremap=on'));
    expect(args.at(-1)).toBe('-S');
  });

  it.each([
    [{ name: 'a,b' }, 'name'],
    [{ uuid: 'nope' }, 'uuid'],
    [{ memoryMiB: 1.5 }, 'memoryMiB'],
    [{ cpus: 0 }, 'cpus'],
    [{ qmpSocketPath: '/tmp/x,server=off' }, 'qmpSocketPath'],
    [{ qmpSocketPath: `/tmp/${'x'.repeat(120)}` }, 'qmpSocketPath'],
    [{ ivshmem: { serverSocketPath: '/s', vectors: 0 } }, 'ivshmem.vectors'],
    [{ accel: 'hvf' as 'tcg' }, 'accel'],
  ] as Array<[Partial<QemuVmSpec>, string]>)('rejects an invalid spec field %j', (patch, field) => {
    let err: unknown;
    try {
      buildQemuArgs({ ...base, ...patch });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QemuError);
    expect(err).toMatchObject({ code: 'INVALID_SPEC', details: { field } });
    expect((err as Error).message).toContain(field);
  });
});

describe('buildQemuArgs: console socket and disk boot', () => {
  it('serves ttyS0 on a socket and still logs it when consoleSocketPath is set', () => {
    const args = buildQemuArgs({ ...base, consoleSocketPath: '/run/vm1/console.sock' });
    expect(valuesOf(args, '-chardev')).toContain('socket,id=vmgmtcon,path=/run/vm1/console.sock,server=on,wait=off,logfile=/run/vm1/console.log,logappend=on');
    expect(valuesOf(args, '-serial')[0]).toBe('chardev:vmgmtcon');
    expect(args.join(' ')).not.toContain('file:/run/vm1/console.log');
  });

  it('boots a disk image instead of a kernel', () => {
    const { kernelPath: _k, initrdPath: _i, append: _a, ...noKernel } = base;
    const args = buildQemuArgs({ ...noKernel, disk: { path: '/img/disk.qcow2', format: 'qcow2' } });
    expect(valuesOf(args, '-drive')).toEqual(['file=/img/disk.qcow2,if=virtio,format=qcow2']);
    expect(args).not.toContain('-kernel');
  });

  it('refuses both a kernel and a disk, or neither', () => {
    expect(() => buildQemuArgs({ ...base, disk: { path: '/d', format: 'raw' } })).toThrow(/exactly one way to boot/);
    const { kernelPath: _k, ...none } = base;
    expect(() => buildQemuArgs(none)).toThrow(/exactly one way to boot/);
  });
});
