// File operations confined to a VM's host root. Every guest path is resolved from the root directory fd
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV); final components are then used
// only relative to their parent's fd; no guest path reaches a path-based call.
import { constants, openSync } from 'node:fs';
import { type NativeStat, type VmgmtNative } from '../../native/index.js';
import { isTempName } from './file-path.js';

export interface ConfinedRoot {
  readonly rootFd: number;
  resolve: number;
  native: VmgmtNative;
}

export function openRoot(native: VmgmtNative, root: string): ConfinedRoot {
  const R = native.RESOLVE;
  // The root itself comes from the VM definition (the host's choice), so an ordinary open is fine here.
  const rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  const st = native.fstat(rootFd);
  if (st.type !== 'dir') {
    native.close(rootFd);
    throw new Error(`file root ${root} is not a directory`);
  }
  return { rootFd, native, resolve: R.BENEATH | R.NO_MAGICLINKS | R.NO_XDEV };
}

/**
 * An O_PATH fd of `path` (relative, beneath the root), the final component never followed. Opening it has
 * no side effect whatever the file is (a fifo's writer is not woken, a device's open is not called): fstat
 * it, then reopenFd it for I/O once the type is known to be safe.
 */
export function openPathBeneath(r: ConfinedRoot, path: string): number {
  const F = r.native.OPEN_FLAGS;
  // openat2 takes no other flags with O_PATH than NOFOLLOW and DIRECTORY (EINVAL otherwise).
  return r.native.openat2(r.rootFd, path, F.PATH | F.NOFOLLOW, 0, r.resolve);
}

/**
 * A directory beneath the root, opened for *at() calls and fsync. Symlinks on the way are followed as
 * long as they stay beneath the root (RESOLVE_BENEATH refuses the rest); the final name the caller then
 * uses relative to this fd is never followed.
 */
export function openDirBeneath(r: ConfinedRoot, path: string): number {
  const F = r.native.OPEN_FLAGS;
  return r.native.openat2(r.rootFd, path, F.RDONLY | F.DIRECTORY | F.NONBLOCK, 0, r.resolve);
}

/** Sum of regular file sizes under the root, not following symlinks, bounded in entries walked. */
export function usageBytes(r: ConfinedRoot, maxEntries = 1_000_000): number {
  const n = r.native;
  let total = 0;
  let walked = 0;
  const walk = (dirFd: number): void => {
    for (const e of n.readdirFd(dirFd)) {
      if (++walked > maxEntries) throw new Error(`more than ${maxEntries} entries under the file root`);
      let st: NativeStat;
      try {
        st = n.fstatat(dirFd, e.name);
      } catch {
        continue; // removed meanwhile
      }
      if (st.type === 'file' && !isTempName(e.name)) total += st.sizeBytes;
      if (st.type === 'dir') {
        const sub = n.openat2(dirFd, e.name, n.OPEN_FLAGS.RDONLY | n.OPEN_FLAGS.DIRECTORY | n.OPEN_FLAGS.NOFOLLOW, 0, r.resolve);
        try {
          walk(sub);
        } finally {
          n.close(sub);
        }
      }
    }
  };
  walk(r.rootFd);
  return total;
}
