// Test fixture: the built guest image (images/build/) and a QEMU booted from it with the console on
// ttyS0 (a file) and the control channel on ttyS1 (a UNIX socket), started directly with execa.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export interface GuestImage {
  kernelPath: string;
  initrdPath: string;
  /** From images/build/kernel-version.txt. */
  kernel: { package: string; version: string; release: string };
}

/** The built image; throws with the build command when it is missing. */
export function requireGuestImage(buildDir = join(REPO_ROOT, 'images/build')): GuestImage {
  const kernelPath = join(buildDir, 'vmlinuz');
  const initrdPath = join(buildDir, 'initramfs.cpio.gz');
  const versionPath = join(buildDir, 'kernel-version.txt');
  const missing = [kernelPath, initrdPath, versionPath].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(
      `guest image not built (missing ${missing.join(', ')}); run: bash images/build-image.sh (from ${REPO_ROOT})`,
    );
  }
  const fields = new Map<string, string>();
  for (const line of readFileSync(versionPath, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const kernel = { package: fields.get('package') ?? '', version: fields.get('version') ?? '', release: fields.get('release') ?? '' };
  if (kernel.release === '') throw new Error(`${versionPath} has no release= line; rebuild with: bash images/build-image.sh`);
  return { kernelPath, initrdPath, kernel };
}

export const TEST_GUEST_APPEND = 'console=ttyS0 intel_iommu=on panic=-1 quiet';

export interface TestGuest {
  qemu: ResultPromise<{ reject: false; stdin: 'ignore'; stdout: 'pipe'; stderr: 'pipe'; all: true }>;
  consoleLogPath: string;
  controlSocketPath: string;
  /** performance.now() just before QEMU was spawned. */
  startedAtMs: number;
}

/**
 * Boots the image under TCG. `ivshmem-plain` is only there so the guest sees a 1af4:1110 PCI device.
 * The caller kills `qemu` (and removes `runDir`) when done.
 */
export function bootTestGuest(image: GuestImage, runDir: string, opts: { appendExtra?: string } = {}): TestGuest {
  const consoleLogPath = join(runDir, 'console.log');
  const controlSocketPath = join(runDir, 'control.sock');
  const append = opts.appendExtra === undefined ? TEST_GUEST_APPEND : `${TEST_GUEST_APPEND} ${opts.appendExtra}`;
  const args = [
    ...['-machine', 'q35', '-accel', 'tcg', '-m', '256', '-smp', '1'],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ...['-device', 'intel-iommu,intremap=on'],
    ...['-kernel', image.kernelPath, '-initrd', image.initrdPath, '-append', append],
    ...['-chardev', `socket,id=vmgmtctl,path=${controlSocketPath},server=on,wait=off`],
    ...['-serial', `file:${consoleLogPath}`, '-serial', 'chardev:vmgmtctl'],
    ...['-device', 'ivshmem-plain,memdev=m0', '-object', 'memory-backend-memfd,id=m0,size=1M,share=on'],
  ];
  const startedAtMs = performance.now();
  const qemu = execa('qemu-system-x86_64', args, {
    reject: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    all: true,
  });
  return { qemu, consoleLogPath, controlSocketPath, startedAtMs };
}

/** Kills QEMU if it is still running and waits for it to be gone. */
export async function stopTestGuest(guest: TestGuest | undefined): Promise<void> {
  if (guest === undefined) return;
  if (guest.qemu.exitCode === null && guest.qemu.signalCode === null) guest.qemu.kill('SIGKILL');
  await guest.qemu;
}

export function readConsoleLog(guest: TestGuest): string {
  return existsSync(guest.consoleLogPath) ? readFileSync(guest.consoleLogPath, 'utf8') : '';
}
