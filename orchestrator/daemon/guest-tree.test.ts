import { describe, expect, it } from 'vitest';
import { FILE_TYPE } from '../../device-backend/layout/wire-layout.js';
import { encodeListing } from '../../device-backend/services/agent/agent-listing.js';
import { walkGuestTree } from './guest-tree.js';

type Node = { kind: 'file'; size: number } | { kind: 'dir'; children: Record<string, Node> } | { kind: 'link' } | { kind: 'fifo' };

/** A listDir over an in-memory guest tree (the agent's records), counting the calls. */
function fakeGuest(root: Record<string, Node>) {
  const calls: string[] = [];
  const listDir = async (dir: string): Promise<Uint8Array> => {
    calls.push(dir);
    let node: Node = { kind: 'dir', children: root };
    for (const part of dir.split('/').filter(Boolean).slice(1)) {
      if (node.kind !== 'dir' || !node.children[part]) throw new Error(`no ${dir}`);
      node = node.children[part]!;
    }
    if (node.kind !== 'dir') throw new Error(`${dir} is not a dir`);
    return encodeListing(
      Object.entries(node.children).map(([name, n]) =>
        n.kind === 'file'
          ? { name, type: FILE_TYPE.FILE, mode: 0o100644, size: n.size }
          : n.kind === 'dir'
            ? { name, type: FILE_TYPE.DIR, mode: 0o040750 }
            : n.kind === 'link'
              ? { name, type: FILE_TYPE.SYMLINK, mode: 0o120777 }
              : { name, type: FILE_TYPE.OTHER, mode: 0o010644 },
      ),
    );
  };
  return { listDir, calls };
}

const chain = (depth: number): Record<string, Node> => {
  let node: Record<string, Node> = { f: { kind: 'file', size: 1 } };
  for (let i = depth; i >= 1; i--) node = { [`d${i}`]: { kind: 'dir', children: node } };
  return node;
};

describe('walkGuestTree', () => {
  it('gives parents before children, sorted, with sizes and modes; skips symlinks and fifos with warnings', async () => {
    const g = fakeGuest({
      b: { kind: 'dir', children: { x: { kind: 'file', size: 5 }, ln: { kind: 'link' } } },
      a: { kind: 'file', size: 3 },
      p: { kind: 'fifo' },
    });
    const tree = await walkGuestTree('/g/', g.listDir, { maxDepth: 8, maxEntries: 100 });
    expect(tree.entries).toEqual([
      { path: 'a', kind: 'file', sizeBytes: 3, mode: 0o644 },
      { path: 'b', kind: 'dir', sizeBytes: 0, mode: 0o750 },
      { path: 'b/x', kind: 'file', sizeBytes: 5, mode: 0o644 },
    ]);
    expect(tree.warnings).toEqual(['skipped /g/p: it is a fifo: skipped', 'skipped /g/b/ln: it is a symlink: not followed and not copied']);
    expect(g.calls).toEqual(['/g', '/g/b']);
  });

  it('takes a tree exactly maxDepth deep and refuses one level more with its own message', async () => {
    await expect(walkGuestTree('/g', fakeGuest(chain(3)).listDir, { maxDepth: 3, maxEntries: 100 })).resolves.toMatchObject({ entries: expect.any(Array) });
    await expect(walkGuestTree('/g', fakeGuest(chain(4)).listDir, { maxDepth: 3, maxEntries: 100 })).rejects.toMatchObject({
      code: 'GUEST_REFUSED',
      message: expect.stringMatching(/deeper than 3 levels at d1\/d2\/d3\/d4 \(transfers\.maxTreeDepth/),
      details: { limit: 'maxTreeDepth' },
    });
  });

  it('refuses more than maxEntries entries with its own message, counting skipped ones too', async () => {
    const wide: Record<string, Node> = {};
    for (let i = 0; i < 6; i++) wide[`l${i}`] = { kind: 'link' };
    await expect(walkGuestTree('/g', fakeGuest(wide).listDir, { maxDepth: 3, maxEntries: 6 })).resolves.toMatchObject({ entries: [] });
    await expect(walkGuestTree('/g', fakeGuest(wide).listDir, { maxDepth: 3, maxEntries: 5 })).rejects.toMatchObject({
      code: 'GUEST_REFUSED',
      message: expect.stringMatching(/more than 5 entries \(transfers\.maxTreeEntries/),
      details: { limit: 'maxTreeEntries' },
    });
  });

  it('fails on a malformed listing, naming the directory', async () => {
    await expect(walkGuestTree('/g', async () => new Uint8Array(5), { maxDepth: 3, maxEntries: 5 })).rejects.toMatchObject({
      code: 'GUEST_REFUSED',
      message: expect.stringMatching(/listing of \/g is malformed/),
    });
  });
});
