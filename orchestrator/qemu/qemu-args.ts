// Builds the qemu-system-x86_64 argv for one VM. Pure: no I/O.
import { IFNAME_PATTERN, MAC_PATTERN, qemuNetworkArgs, type QemuNetwork } from '../vm/vm-network.js';
import { QemuError } from './qemu-error.js';

export interface QemuVmSpec {
  name: string;
  uuid: string;
  accel: 'tcg' | 'kvm';
  memoryMiB: number;
  cpus: number;
  /** `-cpu`; default `host` under KVM, `max` under TCG. */
  cpuModel?: string;
  /** Direct kernel boot; or `disk`. */
  kernelPath?: string;
  initrdPath?: string;
  append?: string;
  disk?: { path: string; format: 'raw' | 'qcow2' };
  qmpSocketPath: string;
  /** Everything the guest prints on ttyS0 is appended here. */
  consoleLogPath: string;
  /** ttyS0 served as a listening UNIX socket too (for `vmgmt vm console`), still logged to consoleLogPath. */
  consoleSocketPath?: string;
  /** ttyS1 of the guest, served by QEMU as a listening UNIX socket. */
  controlSocketPath?: string;
  ivshmem?: { serverSocketPath: string; vectors: number };
  /** One virtio-net NIC; none without it. */
  network?: QemuNetwork;
  /** seccomp sandbox; default true. */
  sandbox?: boolean;
  extraArgs?: string[];
}

export const QEMU_CONTROL_CHARDEV_ID = 'vmgmtctl';
export const QEMU_CONSOLE_CHARDEV_ID = 'vmgmtcon';
export const QEMU_IVSHMEM_CHARDEV_ID = 'vmgmtivsh';
export const QEMU_MAX_IVSHMEM_VECTORS = 1024;

// What libvirt passes: also forbid setuid, fork/exec and scheduler/affinity changes.
const SANDBOX_ARG = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';
const UNIX_PATH_MAX_BYTES = 107;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function buildQemuArgs(spec: QemuVmSpec): string[] {
  validateSpec(spec);
  const kvm = spec.accel === 'kvm';
  const args = [
    '-name', `${spec.name},debug-threads=on`,
    '-uuid', spec.uuid,
    // Interrupt remapping (intremap=on) under KVM needs the IOAPIC emulated in QEMU: kernel-irqchip=split.
    '-machine', kvm ? 'q35,kernel-irqchip=split' : 'q35',
    '-accel', spec.accel,
    '-cpu', spec.cpuModel ?? (kvm ? 'host' : 'max'),
    '-m', String(spec.memoryMiB),
    '-smp', String(spec.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
  ];
  if (spec.sandbox ?? true) args.push('-sandbox', SANDBOX_ARG);
  if (spec.kernelPath !== undefined) {
    args.push('-kernel', spec.kernelPath);
    if (spec.initrdPath !== undefined) args.push('-initrd', spec.initrdPath);
    if (spec.append !== undefined) args.push('-append', spec.append);
  }
  if (spec.disk) args.push('-drive', `file=${spec.disk.path},if=virtio,format=${spec.disk.format}`);
  args.push('-qmp', `unix:${spec.qmpSocketPath},server=on,wait=off`);
  if (spec.consoleSocketPath !== undefined) {
    args.push(
      '-chardev', `socket,id=${QEMU_CONSOLE_CHARDEV_ID},path=${spec.consoleSocketPath},server=on,wait=off,logfile=${spec.consoleLogPath},logappend=on`,
      '-serial', `chardev:${QEMU_CONSOLE_CHARDEV_ID}`,
    );
  } else {
    args.push('-serial', `file:${spec.consoleLogPath}`);
  }
  if (spec.controlSocketPath !== undefined) {
    args.push(
      '-chardev', `socket,id=${QEMU_CONTROL_CHARDEV_ID},path=${spec.controlSocketPath},server=on,wait=off`,
      '-serial', `chardev:${QEMU_CONTROL_CHARDEV_ID}`,
    );
  }
  // The IOMMU must be created before any PCI device it translates for.
  args.push('-device', 'intel-iommu,intremap=on', '-device', 'pvpanic');
  if (spec.ivshmem) {
    args.push(
      '-chardev', `socket,id=${QEMU_IVSHMEM_CHARDEV_ID},path=${spec.ivshmem.serverSocketPath}`,
      '-device', `ivshmem-doorbell,chardev=${QEMU_IVSHMEM_CHARDEV_ID},vectors=${spec.ivshmem.vectors}`,
    );
  }
  if (spec.network) args.push(...qemuNetworkArgs(spec.network));
  args.push(...(spec.extraArgs ?? []));
  return args;
}

function validateSpec(spec: QemuVmSpec): void {
  const fail = (field: string, value: unknown, what: string): never => {
    throw new QemuError('INVALID_SPEC', `invalid VM spec: ${field} ${JSON.stringify(value)} ${what}`, { field, value });
  };
  if (!NAME_PATTERN.test(spec.name)) fail('name', spec.name, 'must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit');
  if (!UUID_PATTERN.test(spec.uuid)) fail('uuid', spec.uuid, 'must be a UUID like 123e4567-e89b-12d3-a456-426614174000');
  if (spec.accel !== 'tcg' && spec.accel !== 'kvm') fail('accel', spec.accel, "must be 'tcg' or 'kvm'");
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 16) fail('memoryMiB', spec.memoryMiB, 'must be an integer >= 16');
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1 || spec.cpus > 255) fail('cpus', spec.cpus, 'must be an integer in 1..255');
  // QEMU option syntax treats ',' as a separator, and a newline has no business in a path.
  const paths: Array<[string, string | undefined]> = [
    ['kernelPath', spec.kernelPath],
    ['initrdPath', spec.initrdPath],
    ['disk.path', spec.disk?.path],
    ['qmpSocketPath', spec.qmpSocketPath],
    ['consoleLogPath', spec.consoleLogPath],
    ['consoleSocketPath', spec.consoleSocketPath],
    ['controlSocketPath', spec.controlSocketPath],
    ['ivshmem.serverSocketPath', spec.ivshmem?.serverSocketPath],
  ];
  for (const [field, path] of paths) {
    if (path === undefined) continue;
    if (path === '' || /[,\n\0]/.test(path)) fail(field, path, 'must be a non-empty path without commas, newlines or NUL');
  }
  for (const [field, path] of paths.filter(([f]) => f.endsWith('SocketPath'))) {
    if (path !== undefined && new TextEncoder().encode(path).length > UNIX_PATH_MAX_BYTES) {
      fail(field, path, `is longer than the ${UNIX_PATH_MAX_BYTES} bytes a UNIX socket path may have; use a shorter run dir`);
    }
  }
  if (spec.ivshmem) {
    const { vectors } = spec.ivshmem;
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > QEMU_MAX_IVSHMEM_VECTORS) {
      fail('ivshmem.vectors', vectors, `must be an integer in 1..${QEMU_MAX_IVSHMEM_VECTORS}`);
    }
  }
  const net = spec.network;
  if (net) {
    if (!MAC_PATTERN.test(net.mac)) fail('network.mac', net.mac, 'must be a MAC like 52:54:00:12:34:56');
    if (net.kind === 'tap' && !IFNAME_PATTERN.test(net.ifname)) fail('network.ifname', net.ifname, 'must be 1-15 of [A-Za-z0-9_.-]');
    if (net.kind === 'user') {
      for (const f of net.forwards) {
        if (!/^[0-9.]+$/.test(f.hostAddress)) fail('network.forwards.hostAddress', f.hostAddress, 'must be an IPv4 address');
        for (const p of [f.hostPort, f.guestPort]) if (!Number.isInteger(p) || p < 1 || p > 65_535) fail('network.forwards port', p, 'must be in 1..65535');
      }
    }
  }
  if (spec.append?.includes('\n')) fail('append', spec.append, 'must not contain a newline');
  if ((spec.kernelPath === undefined) === (spec.disk === undefined)) fail('kernelPath', spec.kernelPath, 'or disk: give exactly one way to boot');
}
