// Where the bootable test guest lives once `make image` (images/build-image.sh) has built it.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { findRepoRoot } from './repo-root.js';

export interface TestImage {
  kernelPath: string;
  initrdPath: string;
  append: string;
}

/**
 * no_timer_check: under TCG on a loaded host the kernel's boot-time check that the timer interrupt arrives
 * through the (interrupt-remapped) IO-APIC can time out and panic; see docs/decisions/boot-under-load.md.
 * nowatchdog tsc=reliable: no soft-lockup watchdog and no clocksource watchdog, two timers that wake an idle
 * guest (and, under TCG on a loaded host, report lockups and unstable clocks that are only the host's
 * load); see docs/decisions/idle-cost.md.
 */
export const TEST_IMAGE_APPEND = 'console=ttyS0 intel_iommu=on no_timer_check nowatchdog tsc=reliable panic=-1 quiet';

export function testImage(root = findRepoRoot()): TestImage {
  const dir = path.join(root, 'images/build');
  const image = { kernelPath: path.join(dir, 'vmlinuz'), initrdPath: path.join(dir, 'initramfs.cpio.gz'), append: TEST_IMAGE_APPEND };
  for (const p of [image.kernelPath, image.initrdPath]) {
    if (!existsSync(p)) throw new Error(`test image file ${p} is missing: build it with \`make image\``);
  }
  return image;
}
