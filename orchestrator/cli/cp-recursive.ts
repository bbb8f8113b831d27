// `vmgmt cp -r`: a directory tree, file by file through the single-file copy (cp-command.ts), so each file
// is atomic as there (a guest temp name renamed into place; a local temp name renamed into place) and an
// error in the middle leaves no partial file. To a VM: the local tree is walked here (lstat, never
// followed), guest directories are made with the daemon's mkdir route. From a VM: the daemon walks the
// guest tree and checks every name the guest sent (guest-tree.ts); the names are checked again here, every
// local directory is made by us and checked to be a real directory, and an existing symlink or non-file in
// the way is refused, so nothing lands outside the destination. Symlinks, fifos, sockets and device nodes
// are skipped with a warning, both ways. See docs/decisions/cp-recursive.md.
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { checkEntryName } from '../../device-backend/services/agent/agent-listing.js';
import { baseName, type CpCommand } from './cp-args.js';
import { createProgress, localError, pull, push, type CpContext } from './cp-command.js';
import { formatSize } from './cp-progress.js';
import { CliError } from './cli-error.js';
import { EXIT, type ExitCode } from './exit-codes.js';

/** The last line of `vmgmt cp -r --json`. */
export interface CpTreeDoneEvent {
  event: 'done';
  direction: 'push' | 'pull';
  recursive: true;
  vm: string;
  guestPath: string;
  localPath: string;
  files: number;
  dirs: number;
  skipped: number;
  bytes: number;
}

/** This process's umask, read once (setting it back at once). */
const UMASK = ((): number => {
  const m = process.umask(0o022);
  process.umask(m);
  return m;
})();

/** The most entries a local tree may have for one `cp -r` to a VM (a runaway walk is refused, not followed). */
export const MAX_LOCAL_TREE_ENTRIES = 1_000_000;

interface LocalEntry {
  rel: string;
  kind: 'file' | 'dir';
  mode: number;
  sizeBytes: number;
}

export async function runCpRecursive(command: CpCommand, ctx: CpContext): Promise<ExitCode> {
  const warn = (message: string): void => {
    if (ctx.json) ctx.stdout.write(JSON.stringify({ event: 'warning', message }) + '\n');
    else ctx.stderr.write(`vmgmt: warning: ${message}\n`);
  };
  const done = command.direction === 'push' ? await pushTree(command, ctx, warn) : await pullTree(command, ctx, warn);
  if (ctx.json) ctx.stdout.write(JSON.stringify(done) + '\n');
  else {
    const from = done.direction === 'push' ? done.localPath : `${done.vm}:${done.guestPath}`;
    const to = done.direction === 'push' ? `${done.vm}:${done.guestPath}` : done.localPath;
    const skipped = done.skipped ? `, ${done.skipped} skipped` : '';
    ctx.stdout.write(`copied ${from} to ${to} (${done.files} files, ${done.dirs} directories, ${formatSize(done.bytes)}${skipped})\n`);
  }
  return EXIT.OK;
}

/** Overall progress when a file starts: how many files and bytes of the tree are done. */
interface Overall {
  index: number;
  files: number;
  doneBytes: number;
  totalBytes: number;
}

/**
 * Per file: a line (`[3/10 1.2 MiB of 40 MiB] a/b.txt`) on a terminal, or a `file` event with --json; then
 * the file's own bar as single cp draws it.
 */
function fileStarted(ctx: CpContext, o: Overall, rel: string, sizeBytes: number): void {
  if (ctx.json) {
    ctx.stdout.write(JSON.stringify({ event: 'file', path: rel, index: o.index, total: o.files, sizeBytes, doneBytes: o.doneBytes, totalBytes: o.totalBytes }) + '\n');
  } else if ((ctx.stderr as { isTTY?: boolean }).isTTY === true) {
    ctx.stderr.write(`[${o.index}/${o.files} ${formatSize(o.doneBytes)} of ${formatSize(o.totalBytes)}] ${rel}\n`);
  }
}

/** The local tree under root: directories before what they hold; what is neither file nor directory is skipped. */
export async function walkLocalTree(root: string, warn: (m: string) => void): Promise<{ entries: LocalEntry[]; skipped: number }> {
  const entries: LocalEntry[] = [];
  let skipped = 0;
  const pending = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const dir = rel === '' ? root : path.join(root, rel);
    const names = (await readdir(dir).catch((err: unknown) => {
      throw localError('FILE_UNREADABLE', `cannot read the directory ${dir}`, dir, err);
    })).sort();
    const subdirs: string[] = [];
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const full = path.join(root, childRel);
      const st = await lstat(full).catch(() => undefined);
      if (!st) continue; // gone meanwhile
      if (st.isSymbolicLink()) {
        warn(`skipped ${full}: it is a symlink: not followed and not copied`);
        skipped++;
      } else if (st.isDirectory()) {
        entries.push({ rel: childRel, kind: 'dir', mode: st.mode & 0o7777, sizeBytes: 0 });
        subdirs.push(childRel);
      } else if (st.isFile()) {
        entries.push({ rel: childRel, kind: 'file', mode: st.mode & 0o7777, sizeBytes: st.size });
      } else {
        warn(`skipped ${full}: it is ${st.isFIFO() ? 'a fifo' : st.isSocket() ? 'a socket' : 'a device node'}: skipped`);
        skipped++;
      }
      if (entries.length > MAX_LOCAL_TREE_ENTRIES) {
        throw new CliError('FILE_UNREADABLE', `${root} has more than ${MAX_LOCAL_TREE_ENTRIES} entries: copy a smaller directory`, { path: root });
      }
    }
    for (const d of subdirs.reverse()) pending.push(d);
  }
  return { entries, skipped };
}

async function pushTree(command: CpCommand & { direction: 'push' }, ctx: CpContext, warn: (m: string) => void): Promise<CpTreeDoneEvent> {
  const { vm, localPath, guestPath } = command;
  const st = await lstat(localPath).catch((err: unknown) => {
    throw localError('FILE_UNREADABLE', `cannot read ${localPath}`, localPath, err);
  });
  if (!st.isDirectory()) {
    throw new CliError('FILE_UNREADABLE', `cannot copy ${localPath} with -r: it is not a directory${st.isFile() ? ' (copy a file without -r)' : ''}`, { path: localPath });
  }
  const { entries, skipped } = await walkLocalTree(localPath, warn);
  const guestRoot = guestPath.length > 1 ? guestPath.replace(/\/+$/, '') : guestPath;
  const guestOf = (rel: string): string => (guestRoot === '/' ? `/${rel}` : `${guestRoot}/${rel}`);
  await ctx.client.makeGuestDir(vm, guestRoot, st.mode & 0o7777);
  const files = entries.filter((e) => e.kind === 'file').length;
  const totalBytes = entries.reduce((n, e) => n + e.sizeBytes, 0);
  let index = 0;
  let bytes = 0;
  for (const e of entries) {
    if (e.kind === 'dir') {
      await ctx.client.makeGuestDir(vm, guestOf(e.rel), e.mode);
      continue;
    }
    const file = path.join(localPath, e.rel);
    fileStarted(ctx, { index: ++index, files, doneBytes: bytes, totalBytes }, e.rel, e.sizeBytes);
    const progress = createProgress({ ...ctx, json: false });
    try {
      bytes += (await push({ kind: 'cp', direction: 'push', vm, localPath: file, guestPath: guestOf(e.rel) }, ctx, progress)).bytes;
    } finally {
      progress.finish();
    }
  }
  return { event: 'done', direction: 'push', recursive: true, vm, guestPath: guestRoot, localPath, files, dirs: entries.length - files + 1, skipped, bytes };
}

/** Makes (or takes, if it is already a real directory) the local directory dir; a symlink or a file there is refused. */
async function ensureLocalDir(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o777 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw localError('FILE_UNWRITABLE', `cannot make the directory ${dir}`, dir, err);
  });
  const st = await lstat(dir).catch((err: unknown) => {
    throw localError('FILE_UNWRITABLE', `cannot make the directory ${dir}`, dir, err);
  });
  if (!st.isDirectory()) {
    throw new CliError('FILE_UNWRITABLE', `cannot copy into ${dir}: it is ${st.isSymbolicLink() ? 'a symlink (not followed)' : 'not a directory'}`, { path: dir });
  }
}

async function pullTree(command: CpCommand & { direction: 'pull' }, ctx: CpContext, warn: (m: string) => void): Promise<CpTreeDoneEvent> {
  const { vm, guestPath, localPath } = command;
  // Like a single pull: into an existing directory under the guest directory's name, else the path itself.
  const existing = await lstat(localPath).catch(() => undefined);
  const guestName = baseName(guestPath);
  const root = existing?.isDirectory() && guestName !== '' ? path.join(localPath, guestName) : localPath;
  const tree = await ctx.client.guestTree(vm, guestPath);
  for (const w of tree.warnings) warn(w);
  let skipped = tree.warnings.length;
  await ensureLocalDir(root);
  const files = tree.entries.filter((e) => e.kind === 'file').length;
  const totalBytes = tree.entries.reduce((n, e) => n + e.sizeBytes, 0);
  let index = 0;
  let bytes = 0;
  let dirs = 1;
  for (const e of tree.entries) {
    // The daemon checked every name; check again: a path that could leave root is never joined.
    const parts = e.path.split('/');
    const bad = parts.map((p) => checkEntryName(new TextEncoder().encode(p))).find((why) => why !== undefined);
    if (bad) {
      warn(`skipped ${JSON.stringify(e.path)} from ${vm}:${guestPath}: ${bad}`);
      skipped++;
      continue;
    }
    const target = path.join(root, ...parts);
    if (e.kind === 'dir') {
      await ensureLocalDir(target);
      dirs++;
      continue;
    }
    const there = await lstat(target).catch(() => undefined);
    if (there && !there.isFile()) {
      throw new CliError('FILE_UNWRITABLE', `cannot write ${target}: it is ${there.isSymbolicLink() ? 'a symlink (not followed)' : there.isDirectory() ? 'a directory' : 'not a regular file'}`, { path: target });
    }
    const remote = guestPath === '/' ? `/${e.path}` : `${guestPath}/${e.path}`;
    fileStarted(ctx, { index: ++index, files, doneBytes: bytes, totalBytes }, e.path, e.sizeBytes);
    const progress = createProgress({ ...ctx, json: false });
    try {
      bytes += (await pull({ kind: 'cp', direction: 'pull', vm, guestPath: remote, localPath: target }, ctx, progress)).bytes;
    } finally {
      progress.finish();
    }
    // The guest's permission bits (executable scripts stay executable), never setuid/setgid/sticky, always
    // readable and writable by us, within our umask.
    await chmod(target, ((e.mode & 0o777) | 0o600) & ~UMASK).catch((err: unknown) => {
      throw localError('FILE_UNWRITABLE', `cannot set the mode of ${target}`, target, err);
    });
  }
  return { event: 'done', direction: 'pull', recursive: true, vm, guestPath, localPath: root, files, dirs, skipped, bytes };
}
