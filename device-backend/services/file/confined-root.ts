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

/** What a walk of the whole root found when the file service started. */
export interface RootScan {
  /** Bytes of regular files beneath the root, temp files aside. */
  usedBytes: number;
  /** Entries beneath the root (files, directories and anything else), temp files aside. */
  entries: number;
  /** `.vmgmt-put-*` files a killed daemon left behind, removed; paths relative to the root. */
  removedTemps: string[];
  /** Temp files that could not be removed, and why. */
  unremovedTemps: { path: string; error: string }[];
  /** Directories not walked: mount points (never crossed), or ones that could not be read; and why. */
  skipped: { path: string; reason: string }[];
}

const errorCode = (err: unknown): string | undefined => (err as { code?: string }).code;

/**
 * Walks the whole tree beneath the root once, never following symlinks or crossing mounts: removes the
 * temp files of puts that a killed daemon left behind (invisible to the guest, excluded from the quota,
 * otherwise never removed), and measures what is left. A mount point or an unreadable directory is
 * skipped and reported, so the file service still starts (the guest cannot reach into a mount anyway:
 * openat2 refuses with RESOLVE_NO_XDEV). Bounded in entries walked.
 */
export function scanRoot(r: ConfinedRoot, maxEntries = 1_000_000): RootScan {
  const n = r.native;
  const F = n.OPEN_FLAGS;
  const scan: RootScan = { usedBytes: 0, entries: 0, removedTemps: [], unremovedTemps: [], skipped: [] };
  let walked = 0;
  const walk = (dirFd: number, dir: string): void => {
    for (const e of n.readdirFd(dirFd)) {
      if (++walked > maxEntries) throw new Error(`more than ${maxEntries} entries under the file root`);
      const rel = dir === '' ? e.name : `${dir}/${e.name}`;
      let st: NativeStat;
      try {
        st = n.fstatat(dirFd, e.name);
      } catch {
        continue; // removed meanwhile
      }
      if (isTempName(e.name) && st.type === 'file') {
        try {
          n.unlinkat(dirFd, e.name, false);
          scan.removedTemps.push(rel);
        } catch (err) {
          if (errorCode(err) !== 'ENOENT') scan.unremovedTemps.push({ path: rel, error: (err as Error).message });
        }
        continue;
      }
      scan.entries++;
      if (st.type === 'file') scan.usedBytes += st.sizeBytes;
      if (st.type !== 'dir') continue;
      // Exactly what the guest can reach: RESOLVE_NO_XDEV refuses a mount point (EXDEV), while a
      // directory that only has another st_dev (a btrfs subvolume) is walked, and counted, like any other.
      let sub: number;
      try {
        sub = n.openat2(dirFd, e.name, F.RDONLY | F.DIRECTORY | F.NOFOLLOW | F.NONBLOCK, 0, r.resolve);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') continue; // replaced meanwhile
        scan.skipped.push({ path: rel, reason: code === 'EXDEV' ? 'a mount point' : (err as Error).message });
        continue;
      }
      try {
        walk(sub, rel);
      } catch (err) {
        if (errorCode(err) === undefined || errorCode(err) === 'ERR_INVALID_ARG_VALUE') throw err; // our own limit, or a bug
        scan.skipped.push({ path: rel, reason: (err as Error).message });
      } finally {
        n.close(sub);
      }
    }
  };
  walk(r.rootFd, '');
  return scan;
}
