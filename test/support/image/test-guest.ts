// Test fixture: the built guest image (images/build/) booted under TCG by the orchestrator's own QEMU
// launcher, with the console on ttyS0 (a file), the control channel on ttyS1 (a UNIX socket) and a plain
// ivshmem device (no server) so the guest sees a 1af4:1110 PCI device.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type QemuExit, type QemuProcess, startQemu } from '../../../orchestrator/qemu/qemu-process.js';
import { findRepoRoot } from '../../../orchestrator/vm/repo-root.js';
import { TEST_IMAGE_APPEND, type TestImage, testImage } from '../../../orchestrator/vm/test-image.js';

export interface GuestImage extends TestImage {
  /** From images/build/kernel-version.txt. */
  kernel: { package: string; version: string; release: string };
}

/** The built image and the kernel it resolved to; throws with the build command when it is missing. */
export function requireGuestImage(): GuestImage {
  const image = testImage();
  const versionPath = join(findRepoRoot(), 'images/build/kernel-version.txt');
  if (!existsSync(versionPath)) throw new Error(`${versionPath} is missing: build the image with \`make image\``);
  const fields = new Map<string, string>();
  for (const line of readFileSync(versionPath, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const kernel = { package: fields.get('package') ?? '', version: fields.get('version') ?? '', release: fields.get('release') ?? '' };
  if (kernel.release === '') throw new Error(`${versionPath} has no release= line; rebuild with \`make image\``);
  return { ...image, kernel };
}

export interface TestGuest {
  qemu: QemuProcess;
  exited: Promise<QemuExit>;
  consoleLogPath: string;
  controlSocketPath: string;
  /** performance.now() just before QEMU was started. */
  startedAtMs: number;
}

export async function bootTestGuest(image: GuestImage, runDir: string, opts: { appendExtra?: string } = {}): Promise<TestGuest> {
  const consoleLogPath = join(runDir, 'console.log');
  const controlSocketPath = join(runDir, 'control.sock');
  const startedAtMs = performance.now();
  const qemu = await startQemu(
    {
      name: 'image-test',
      uuid: randomUUID(),
      accel: 'tcg',
      memoryMiB: 256,
      cpus: 1,
      kernelPath: image.kernelPath,
      initrdPath: image.initrdPath,
      append: opts.appendExtra === undefined ? TEST_IMAGE_APPEND : `${TEST_IMAGE_APPEND} ${opts.appendExtra}`,
      qmpSocketPath: join(runDir, 'qmp.sock'),
      consoleLogPath,
      controlSocketPath,
      extraArgs: ['-device', 'ivshmem-plain,memdev=m0', '-object', 'memory-backend-memfd,id=m0,size=1M,share=on'],
    },
    { runDir },
  );
  return { qemu, exited: qemu.exited, consoleLogPath, controlSocketPath, startedAtMs };
}

/** Kills QEMU if it is still running and waits for it to be gone. */
export async function stopTestGuest(guest: TestGuest | undefined): Promise<void> {
  await guest?.qemu.kill();
}

export function readConsoleLog(guest: TestGuest): string {
  return existsSync(guest.consoleLogPath) ? readFileSync(guest.consoleLogPath, 'utf8') : '';
}
