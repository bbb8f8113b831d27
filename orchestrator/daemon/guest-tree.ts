// `vmgmt cp -r` from a VM: walks a guest directory tree one AGENT_LIST at a time (listDir) and gives back the
// files and directories to copy, as relative paths made only of names the host checked (agent-listing.ts).
// Symlinks are neither followed nor recreated, fifos, sockets and device nodes are skipped: each of those,
// and each refused name, is a warning. A tree deeper than maxDepth or with more than maxEntries entries
// fails the walk, each with its own message. Pure apart from listDir.
import { decodeListing, type GuestEntryKind } from '../../device-backend/services/agent/agent-listing.js';
import { VmgmtError } from './vmgmt-error.js';

export interface TreeEntry {
  /** Relative to the walked root, '/'-separated, every component checked. */
  path: string;
  kind: 'file' | 'dir';
  sizeBytes: number;
  mode: number;
}

export interface GuestTree {
  entries: TreeEntry[];
  warnings: string[];
}

export interface TreeLimits {
  maxDepth: number;
  maxEntries: number;
}

const SKIPPED: Readonly<Partial<Record<GuestEntryKind, string>>> = {
  symlink: 'is a symlink: not followed and not copied',
  fifo: 'is a fifo: skipped',
  socket: 'is a socket: skipped',
  device: 'is a device node: skipped',
  other: 'is not a regular file or directory: skipped',
};

/** listDir(guestDir) → the raw AGENT_LIST bytes of that guest directory. */
export async function walkGuestTree(root: string, listDir: (guestDir: string) => Promise<Uint8Array>, limits: TreeLimits): Promise<GuestTree> {
  const entries: TreeEntry[] = [];
  const warnings: string[] = [];
  let seen = 0;
  const base = root.replace(/\/+$/, '') || '';
  // Depth-first, iterative: a deep tree cannot grow the host's stack.
  const pending: Array<{ rel: string; depth: number }> = [{ rel: '', depth: 0 }];
  while (pending.length > 0) {
    const { rel, depth } = pending.pop()!;
    const guestDir = rel === '' ? base || '/' : `${base}/${rel}`;
    const decoded = decodeListing(await listDir(guestDir));
    if (!decoded.ok) {
      throw new VmgmtError('GUEST_REFUSED', `the guest's listing of ${guestDir} is malformed (${decoded.reason}): nothing was copied`, { guestPath: guestDir });
    }
    for (const r of decoded.refused) warnings.push(`skipped an entry of ${guestDir}: ${r.reason} (${r.shownName})`);
    seen += decoded.entries.length + decoded.refused.length;
    if (seen > limits.maxEntries) {
      throw new VmgmtError(
        'GUEST_REFUSED',
        `the guest tree ${root} has more than ${limits.maxEntries} entries (transfers.maxTreeEntries in the daemon's config): nothing was copied; copy a smaller directory or raise the limit`,
        { guestPath: root, limit: 'maxTreeEntries', maxTreeEntries: limits.maxEntries },
      );
    }
    const dirs: string[] = [];
    for (const e of decoded.entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.kind === 'file' || e.kind === 'dir') {
        if (e.kind === 'dir' && depth + 1 > limits.maxDepth) {
          throw new VmgmtError(
            'GUEST_REFUSED',
            `the guest tree ${root} is deeper than ${limits.maxDepth} levels at ${path} (transfers.maxTreeDepth in the daemon's config): nothing was copied; copy a shallower directory or raise the limit`,
            { guestPath: root, limit: 'maxTreeDepth', maxTreeDepth: limits.maxDepth, at: path },
          );
        }
        entries.push({ path, kind: e.kind, sizeBytes: e.kind === 'file' ? e.sizeBytes : 0, mode: e.mode });
        if (e.kind === 'dir') dirs.push(path);
      } else {
        warnings.push(`skipped ${guestDir === '/' ? '' : guestDir}/${e.name}: it ${SKIPPED[e.kind] ?? 'is skipped'}`);
      }
    }
    for (const d of dirs.reverse()) pending.push({ rel: d, depth: depth + 1 });
  }
  return { entries, warnings };
}
