// The file mode: get, put, list, stat, mkdir, remove, hash for one VM, confined to its host root.
// Bulk data moves between the file and the channel's data slice with pread/pwrite straight into guest
// memory (one copy), on libuv's thread pool (preadFull/pwriteFull): the guest keeps several buffers in
// flight, so the host's reads for a get and writes for a put overlap with the guest's copy, and one VM's
// slow disk never holds up the event loop the other VMs share. A handle's fd is closed only when no job
// uses it (busy). Puts land whole or not at all: a temp file beside the target, fsynced and renamed on commit.
import { randomBytes } from 'node:crypto';
import { DEFAULT_FILE_LIMITS, type FileRootConfig } from './file-root-config.js';
import { FILE_CLOSE_FLAG, FILE_OPEN_FLAG, FILE_REMOVE_FLAG, FILE_TYPE, MODE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { CoreLogger } from '../../core/core-logger.js';
import type { MessageService, ServiceContext, ServiceCounters } from '../../core/message-service.js';
import type { NativeFileType, NativeStat, VmgmtNative } from '../../native/index.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import { type ConfinedRoot, openDirBeneath, openPathBeneath, openRoot, type RootScan, scanRoot } from './confined-root.js';
import { statusForErrno } from './errno-status.js';
import {
  decodeHandle, decodeIo, decodeList, decodeOpen, decodePath, type DirEntryOut, encodeInfo, encodeIoResult, encodeListResult,
  namesThatFit, packDirents, type PathRef,
} from './file-codec.js';
import { decodeCookie, DirListings, encodeCookie } from './dir-listings.js';
import { decodeGuestPath, isTempName, splitGuestPath, TEMP_PREFIX, unsafeNameReason } from './file-path.js';
import { need, Refusal, sha256InTurns } from '../refusal.js';

interface ReadHandle {
  kind: 'read';
  fd: number;
  /** Thread-pool jobs and hashes using fd: it is closed when the last one ends. */
  busy: number;
  closing: boolean;
  /** Called when busy drops to 0 (a commit waiting for the writes a hostile guest did not wait for). */
  idle: (() => void)[];
}

interface WriteHandle {
  kind: 'write';
  fd: number;
  parentFd: number;
  tmpName: string;
  name: string;
  declaredBytes: number;
  /** 1 when the target did not exist at open: the entry it reserved against maxEntries. */
  reservedEntries: number;
  busy: number;
  closing: boolean;
  idle: (() => void)[];
}

type Handle = ReadHandle | WriteHandle;


/** Paths named in one log line about the root scan (the count is always given). */
const MAX_LOGGED_PATHS = 20;

function fileType(t: NativeFileType): number {
  return t === 'file' ? FILE_TYPE.FILE : t === 'dir' ? FILE_TYPE.DIR : t === 'symlink' ? FILE_TYPE.SYMLINK : FILE_TYPE.OTHER;
}

const mtimeNs = (st: NativeStat): bigint => BigInt(Math.round(st.mtimeMs * 1e6));

export interface FileServiceOptions {
  native: VmgmtNative;
  /** The VM's host root; without one every request answers NO_FILE_ROOT. */
  config?: FileRootConfig;
  log: CoreLogger;
  /** Monotonic clock for the lifetime of LIST snapshots; default performance.now. */
  nowMs?: () => number;
}

export class FileService implements MessageService {
  readonly name = 'file';
  readonly modes = [MODE.FILE];
  readonly types = [
    MSG_TYPE.FILE_OPEN, MSG_TYPE.FILE_READ, MSG_TYPE.FILE_WRITE, MSG_TYPE.FILE_CLOSE, MSG_TYPE.FILE_STAT,
    MSG_TYPE.FILE_LIST, MSG_TYPE.FILE_MKDIR, MSG_TYPE.FILE_REMOVE, MSG_TYPE.FILE_HASH,
  ];
  private readonly root: ConfinedRoot | undefined;
  private readonly handles = new Map<number, Map<number, Handle>>();
  private nextHandle = 1;
  private openCount = 0;
  private usedBytes: number;
  private reservedBytes = 0;
  /** Entries beneath the root (temp files aside), and those open puts of new names reserve. */
  private usedEntries: number;
  private reservedEntries = 0;
  private closed = false;
  private readonly listings = new DirListings();

  constructor(private readonly opts: FileServiceOptions) {
    this.root = opts.config ? openRoot(opts.native, opts.config.root) : undefined;
    const scan = this.root ? this.scan(this.root) : undefined;
    this.usedBytes = scan?.usedBytes ?? 0;
    this.usedEntries = scan?.entries ?? 0;
  }

  /** Sweeps the temp files a killed daemon left, measures the root, and logs what it did. */
  private scan(root: ConfinedRoot): RootScan {
    let scan: RootScan;
    try {
      scan = scanRoot(root);
    } catch (err) {
      this.n.close(root.rootFd);
      throw err;
    }
    const { log } = this.opts;
    const first = <T>(list: T[]): T[] => list.slice(0, MAX_LOGGED_PATHS);
    if (scan.removedTemps.length > 0) {
      log.info('removed temporary files of puts a previous daemon left unfinished', { count: scan.removedTemps.length, paths: first(scan.removedTemps) });
    }
    if (scan.unremovedTemps.length > 0) {
      log.warn('could not remove temporary files of unfinished puts', { count: scan.unremovedTemps.length, files: first(scan.unremovedTemps) });
    }
    if (scan.skipped.length > 0) {
      log.warn('parts of the file root not counted (mount points are never crossed)', { count: scan.skipped.length, dirs: first(scan.skipped) });
    }
    return scan;
  }

  get usage(): { usedBytes: number; reservedBytes: number; openFiles: number; entries: number; reservedEntries: number } {
    return { usedBytes: this.usedBytes, reservedBytes: this.reservedBytes, openFiles: this.openCount, entries: this.usedEntries, reservedEntries: this.reservedEntries };
  }

  private nowMs(): number {
    return this.opts.nowMs ? this.opts.nowMs() : performance.now();
  }

  private get n(): VmgmtNative {
    return this.opts.native;
  }

  private get cfg(): FileRootConfig {
    if (!this.opts.config) throw new Refusal(STATUS.NO_FILE_ROOT.code, 'no file root configured');
    return this.opts.config;
  }

  private get rootFs(): ConfinedRoot {
    if (!this.root) throw new Refusal(STATUS.NO_FILE_ROOT.code, 'no file root configured');
    return this.root;
  }

  /** Counts what the mode does (the core hands these out in attach). */
  private counters: ServiceCounters = { add: () => {} };

  attach(host: { counters: ServiceCounters }): void {
    this.counters = host.counters;
  }

  handle(request: Message, ctx: ServiceContext): Message | Promise<Message> {
    this.counters.add('requests');
    try {
      const result = this.dispatch(request, ctx);
      if (result instanceof Promise) return result.catch((err: unknown) => this.refused(request, err));
      return result;
    } catch (err) {
      return this.refused(request, err);
    }
  }

  private refused(request: Message, err: unknown): Message {
    this.counters.add('refusals');
    if (err instanceof Refusal) {
      this.opts.log.info('file request refused', { type: request.type, status: err.status, reason: err.reason });
      return responseTo(request, err.status);
    }
    const code = (err as { code?: string }).code;
    const status = statusForErrno(code);
    this.opts.log.info('file request failed on the host', { type: request.type, status, error: (err as Error).message });
    return responseTo(request, status);
  }

  private dispatch(req: Message, ctx: ServiceContext): Message | Promise<Message> {
    const ok = (payload?: Uint8Array): Message => responseTo(req, STATUS.OK.code, payload);
    switch (req.type) {
      case MSG_TYPE.FILE_OPEN:
        return ok(this.open(ctx, need(decodeOpen(req.payload))));
      case MSG_TYPE.FILE_READ:
        return this.read(ctx, need(decodeIo(req.payload))).then(ok);
      case MSG_TYPE.FILE_WRITE:
        return this.write(ctx, need(decodeIo(req.payload))).then(ok);
      case MSG_TYPE.FILE_CLOSE: {
        const closed = this.closeHandle(ctx, need(decodeHandle(req.payload)));
        return closed ? closed.then(() => ok()) : ok();
      }
      case MSG_TYPE.FILE_STAT:
        return ok(this.stat(ctx, need(decodePath(req.payload))));
      case MSG_TYPE.FILE_LIST:
        return ok(this.list(ctx, need(decodeList(req.payload))));
      case MSG_TYPE.FILE_MKDIR:
        this.mkdir(ctx, need(decodePath(req.payload)));
        return ok();
      case MSG_TYPE.FILE_REMOVE:
        this.remove(ctx, need(decodePath(req.payload)));
        return ok();
      case MSG_TYPE.FILE_HASH:
        return this.hash(ctx, need(decodeHandle(req.payload))).then(ok);
      default:
        throw new Refusal(STATUS.UNKNOWN_TYPE.code, `type ${req.type}`);
    }
  }

  private path(ctx: ServiceContext, ref: PathRef): string {
    const bytes = ctx.slice.copyOut(ref.offset, ref.length);
    if (!bytes.ok) throw new Refusal(bytes.status, `path: ${bytes.reason}`);
    const path = decodeGuestPath(bytes.bytes);
    if (!path.ok) throw new Refusal(path.status, path.reason);
    return path.path;
  }

  private split(path: string): { parent: string; name: string } {
    const s = splitGuestPath(path);
    if (!s.ok) throw new Refusal(s.status, s.reason);
    if (isTempName(s.split.name)) throw new Refusal(STATUS.PERMISSION_DENIED.code, `${TEMP_PREFIX}* names are the host's own`);
    return s.split;
  }

  /** A name the guest creates (put, mkdir): no control characters or leading '-' unless the VM allows them. */
  private creatable(name: string): void {
    if (this.cfg.allowUnsafeNames) return;
    const unsafe = unsafeNameReason(name);
    if (unsafe) throw new Refusal(STATUS.UNSAFE_NAME.code, unsafe);
  }

  /** A regular file with other hard links (one may be outside the root) is refused unless the VM allows it. */
  private singlyLinked(st: NativeStat, path: string): void {
    if (st.type === 'file' && st.nlink > 1 && !this.cfg.allowHardLinks) {
      throw new Refusal(STATUS.HARD_LINKED.code, `${path} has ${st.nlink} hard links`);
    }
  }

  /** Refuses `adding` new entries beyond the VM's limit; `releasing` of the reserved ones are this request's own. */
  private entriesFit(adding: number, releasing = 0): void {
    const after = this.usedEntries + this.reservedEntries - releasing + adding;
    if (adding > 0 && after > this.cfg.maxEntries) throw new Refusal(STATUS.TOO_MANY_ENTRIES.code, `${after} > ${this.cfg.maxEntries} entries`);
  }

  private writable(): void {
    if (this.cfg.readOnly) throw new Refusal(STATUS.READ_ONLY.code, 'read-only root');
  }

  private table(channel: number): Map<number, Handle> {
    let t = this.handles.get(channel);
    if (!t) this.handles.set(channel, (t = new Map()));
    return t;
  }

  private lookup(ctx: ServiceContext, handle: number): Handle {
    const h = this.handles.get(ctx.channel)?.get(handle);
    if (!h || h.closing) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${handle}`);
    return h;
  }

  private addHandle(channel: number, h: Handle): number {
    const id = this.nextHandle;
    this.nextHandle = (this.nextHandle % 0xfffffffe) + 1;
    this.table(channel).set(id, h);
    this.openCount++;
    return id;
  }

  private open(ctx: ServiceContext, req: { path: PathRef; flags: number; mode: number; sizeBytes: number }): Uint8Array {
    if (this.openCount >= (this.opts.config?.maxOpenFiles ?? DEFAULT_FILE_LIMITS.maxOpenFiles)) throw new Refusal(STATUS.TOO_MANY_OPEN.code, `${this.openCount} open`);
    const path = this.path(ctx, req.path);
    if (req.flags === FILE_OPEN_FLAG.READ) return this.openRead(ctx, path);
    if (req.flags === FILE_OPEN_FLAG.WRITE) return this.openWrite(ctx, path, req.mode, req.sizeBytes);
    throw new Refusal(STATUS.RESERVED_NONZERO.code, `open flags ${req.flags}: exactly one of READ, WRITE`);
  }

  /**
   * O_PATH first (no side effect, whatever the file is), fstat that fd, and only a regular file is opened
   * for reading, through the same fd (reopenFd), never by path again: nothing can be swapped in between.
   */
  private openRead(ctx: ServiceContext, path: string): Uint8Array {
    const pathFd = openPathBeneath(this.rootFs, path);
    let fd = -1;
    try {
      const st = this.n.fstat(pathFd);
      if (st.type === 'dir') throw new Refusal(STATUS.IS_DIRECTORY.code, path);
      // O_PATH|O_NOFOLLOW opens a final symlink itself: refused as a symlink is everywhere (never followed).
      if (st.type === 'symlink') throw new Refusal(STATUS.PATH_ESCAPES.code, `${path} is a symlink (not followed)`);
      if (st.type !== 'file') throw new Refusal(STATUS.NOT_REGULAR.code, `${path} is a ${st.type}`);
      this.singlyLinked(st, path);
      fd = this.reopen(pathFd, path);
      const handle = this.addHandle(ctx.channel, { kind: 'read', fd, busy: 0, closing: false, idle: [] });
      return encodeInfo({ handle, type: FILE_TYPE.FILE, sizeBytes: st.sizeBytes, mtimeNs: mtimeNs(st), mode: st.mode });
    } catch (err) {
      if (fd >= 0) this.n.close(fd);
      throw err;
    } finally {
      this.n.close(pathFd);
    }
  }

  /** reopenFd; its ENOENT means /proc is missing on the host, not that the guest's file is (IO_ERROR, logged). */
  private reopen(pathFd: number, path: string): number {
    try {
      return this.n.reopenFd(pathFd, this.n.OPEN_FLAGS.RDONLY);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
      throw new Error(`reopening ${path} through /proc/self/fd failed (is /proc mounted for the daemon?): ${(err as Error).message}`);
    }
  }

  private openWrite(ctx: ServiceContext, path: string, mode: number, sizeBytes: number): Uint8Array {
    this.writable();
    if (sizeBytes > this.cfg.maxFileBytes) throw new Refusal(STATUS.FILE_TOO_LARGE.code, `${sizeBytes} > ${this.cfg.maxFileBytes}`);
    const { parent, name } = this.split(path);
    this.creatable(name);
    const parentFd = openDirBeneath(this.rootFs, parent);
    let fd = -1;
    const tmpName = `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
    try {
      const existing = this.statOrUndefined(parentFd, name);
      if (existing?.type === 'dir') throw new Refusal(STATUS.IS_DIRECTORY.code, path);
      if (existing && existing.type !== 'file') throw new Refusal(STATUS.NOT_REGULAR.code, `${path} is a ${existing.type}`);
      if (existing) this.singlyLinked(existing, path);
      const after = this.usedBytes - (existing?.sizeBytes ?? 0) + this.reservedBytes + sizeBytes;
      if (after > this.cfg.quotaBytes) throw new Refusal(STATUS.QUOTA_EXCEEDED.code, `${after} > ${this.cfg.quotaBytes} bytes`);
      const newEntries = existing ? 0 : 1;
      this.entriesFit(newEntries);
      const F = this.n.OPEN_FLAGS;
      fd = this.n.openat2(parentFd, tmpName, F.WRONLY | F.CREAT | F.EXCL | F.NOFOLLOW, 0o600, this.rootFs.resolve);
      const fileMode = (this.cfg.fileMode & 0o666) | (this.cfg.allowExecutable ? mode & 0o111 : 0);
      if (this.cfg.owner) this.n.fchown(fd, this.cfg.owner.uid, this.cfg.owner.gid);
      this.n.fchmod(fd, fileMode);
      this.reservedBytes += sizeBytes;
      this.reservedEntries += newEntries;
      const handle = this.addHandle(ctx.channel, { kind: 'write', fd, parentFd, tmpName, name, declaredBytes: sizeBytes, reservedEntries: newEntries, busy: 0, closing: false, idle: [] });
      return encodeInfo({ handle, type: FILE_TYPE.FILE, sizeBytes: 0, mtimeNs: 0n, mode: fileMode });
    } catch (err) {
      if (fd >= 0) {
        this.n.close(fd);
        this.unlinkQuietly(parentFd, tmpName);
      }
      this.n.close(parentFd);
      throw err;
    }
  }

  /** Runs a thread-pool job on h.fd, keeping the fd open until it ends (a close meanwhile is deferred). */
  private async onPool(h: Handle, job: (fd: number) => Promise<number>): Promise<number> {
    h.busy++;
    try {
      return await job(h.fd);
    } finally {
      h.busy--;
      if (h.busy === 0) {
        for (const wake of h.idle.splice(0)) wake();
        if (h.closing && !this.committing.has(h)) this.release(h);
      }
    }
  }

  private async read(ctx: ServiceContext, req: { handle: number; length: number; fileOffset: number; bufOffset: number }): Promise<Uint8Array> {
    const h = this.lookup(ctx, req.handle);
    if (h.kind !== 'read') throw new Refusal(STATUS.WRONG_HANDLE_KIND.code, `handle ${req.handle} is a ${h.kind} handle`);
    const view = ctx.slice.view(req.bufOffset, req.length);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    const done = await this.onPool(h, (fd) => this.n.preadFull(fd, view.bytes, req.fileOffset));
    this.counters.add('bytes_to_guest', done);
    return encodeIoResult(done);
  }

  private async write(ctx: ServiceContext, req: { handle: number; length: number; fileOffset: number; bufOffset: number }): Promise<Uint8Array> {
    const h = this.lookup(ctx, req.handle);
    if (h.kind === 'read') throw new Refusal(STATUS.WRONG_HANDLE_KIND.code, `handle ${req.handle} is a read handle`);
    if (req.fileOffset + req.length > h.declaredBytes) {
      throw new Refusal(STATUS.WRITE_PAST_SIZE.code, `write of ${req.length} at ${req.fileOffset} past the declared ${h.declaredBytes} bytes`);
    }
    const view = ctx.slice.view(req.bufOffset, req.length);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    const written = await this.onPool(h, (fd) => this.n.pwriteFull(fd, view.bytes, req.fileOffset));
    this.counters.add('bytes_from_guest', written);
    return encodeIoResult(written);
  }

  /** A commit returns a promise (its fsyncs run on the thread pool); a plain close is done at once. */
  private closeHandle(ctx: ServiceContext, req: { handle: number; flags: number }): Promise<void> | undefined {
    const h = this.lookup(ctx, req.handle);
    if (req.flags & ~FILE_CLOSE_FLAG.COMMIT) throw new Refusal(STATUS.RESERVED_NONZERO.code, `close flags ${req.flags}`);
    this.table(ctx.channel).delete(req.handle);
    if (h.kind === 'write' && req.flags & FILE_CLOSE_FLAG.COMMIT) return this.commit(h, ctx.channel);
    this.release(h);
    return undefined;
  }

  /**
   * Write handles between COMMIT and its end (their jobs finishing must not release them), with their
   * channel: a reset of it before the rename discards the put, as it would have before the COMMIT arrived.
   */
  private readonly committing = new Map<Handle, { channel: number; aborted: boolean }>();

  /**
   * Waits for writes still in flight (a guest that committed without waiting for their answers gets the file
   * as they leave it), then decides and accounts synchronously, so two commits at once cannot both pass the
   * quota; then fsync, rename, fsync of the directory on the thread pool, and the accounting is undone if
   * one of them fails.
   */
  private async commit(h: WriteHandle, channel: number): Promise<void> {
    h.closing = true;
    const state = { channel, aborted: false };
    this.committing.set(h, state);
    let accounted: { bytes: number; entries: number } | undefined;
    try {
      if (h.busy > 0) await new Promise<void>((wake) => h.idle.push(wake));
      const st = this.n.fstat(h.fd);
      const old = this.statOrUndefined(h.parentFd, h.name);
      if (old) this.singlyLinked(old, h.name);
      const after = this.usedBytes - (old?.type === 'file' ? old.sizeBytes : 0) + st.sizeBytes + this.reservedBytes - h.declaredBytes;
      if (after > this.cfg.quotaBytes) throw new Refusal(STATUS.QUOTA_EXCEEDED.code, `${after} > ${this.cfg.quotaBytes} bytes`);
      const newEntries = old ? 0 : 1; // the name may have come or gone since the open
      this.entriesFit(newEntries, h.reservedEntries);
      accounted = { bytes: st.sizeBytes - (old?.type === 'file' ? old.sizeBytes : 0), entries: newEntries };
      this.usedBytes += accounted.bytes;
      this.usedEntries += accounted.entries;
      this.reservedBytes -= h.declaredBytes;
      this.reservedEntries -= h.reservedEntries;
      await this.n.fsyncAsync(h.fd);
      if (state.aborted) throw new Refusal(STATUS.BAD_HANDLE.code, `channel ${channel} was reset during the commit of ${h.name}: discarded`);
      this.n.renameat(h.parentFd, h.tmpName, h.parentFd, h.name, false);
      h.tmpName = ''; // renamed: nothing left to remove
      await this.n.fsyncAsync(h.parentFd);
      this.n.close(h.fd);
      this.n.close(h.parentFd);
      this.openCount--;
      this.committing.delete(h);
    } catch (err) {
      this.committing.delete(h);
      if (accounted && h.tmpName) {
        this.usedBytes -= accounted.bytes;
        this.usedEntries -= accounted.entries;
        this.reservedBytes += h.declaredBytes;
        this.reservedEntries += h.reservedEntries;
      }
      if (h.tmpName) this.release(h);
      else this.closeCommitted(h);
      throw err;
    }
  }

  /** After the rename a failed directory fsync leaves the file in place: only the fds are closed. */
  private closeCommitted(h: WriteHandle): void {
    this.n.close(h.fd);
    this.n.close(h.parentFd);
    this.openCount--;
  }

  /** Closes a handle; an uncommitted write leaves nothing behind. Deferred while a hash runs on it. */
  private release(h: Handle): void {
    h.closing = true;
    if (h.busy > 0 || this.committing.has(h)) return;
    this.n.close(h.fd);
    if (h.kind === 'write') {
      this.unlinkQuietly(h.parentFd, h.tmpName);
      this.n.close(h.parentFd);
      this.reservedBytes -= h.declaredBytes;
      this.reservedEntries -= h.reservedEntries;
    }
    this.openCount--;
  }

  private stat(ctx: ServiceContext, req: { path: PathRef; arg: number }): Uint8Array {
    if (req.arg !== 0) throw new Refusal(STATUS.RESERVED_NONZERO.code, 'stat arg');
    const path = this.path(ctx, req.path);
    // openat2 takes no other flags with O_PATH than NOFOLLOW and DIRECTORY (EINVAL otherwise).
    const F = this.n.OPEN_FLAGS;
    const fd = this.n.openat2(this.rootFs.rootFd, path, F.PATH | F.NOFOLLOW, 0, this.rootFs.resolve);
    try {
      const st = this.n.fstat(fd);
      return encodeInfo({ handle: 0, type: fileType(st.type), sizeBytes: st.sizeBytes, mtimeNs: mtimeNs(st), mode: st.mode });
    } finally {
      this.n.close(fd);
    }
  }

  /**
   * One page of a directory. The directory is read and sorted once per listing (cookie 0) into a snapshot
   * kept for this channel (see dir-listings.ts for what the cookie means); a page stats only its own
   * entries, so its cost does not grow with the directory.
   */
  private list(ctx: ServiceContext, req: { path: PathRef; bufOffset: number; bufLength: number; cookie: number }): Uint8Array {
    const path = this.path(ctx, req.path);
    const out = ctx.slice.view(req.bufOffset, req.bufLength);
    if (!out.ok) throw new Refusal(out.status, out.reason);
    const dirFd = openDirBeneath(this.rootFs, path);
    try {
      const dir = this.n.fstat(dirFd);
      const key = { dev: dir.dev, ino: dir.ino };
      const nowMs = this.nowMs();
      const cookie = decodeCookie(req.cookie);
      let tag = cookie.tag;
      let names = tag === 0 ? undefined : this.listings.find(ctx.channel, tag, key, nowMs);
      if (!names) {
        names = this.n.readdirFd(dirFd).filter((e) => !isTempName(e.name)).map((e) => e.name).sort();
        tag = this.listings.keep(ctx.channel, key, names, nowMs, tag === 0 ? undefined : tag);
      }
      let next = Math.min(cookie.index, names.length);
      let entries: DirEntryOut[] = [];
      // Entries removed since the snapshot are skipped; a page is never empty while names remain.
      while (entries.length === 0 && next < names.length) {
        const page = names.slice(next, next + namesThatFit(names, next, req.bufLength));
        if (page.length === 0) throw new Refusal(STATUS.BAD_BUFFER.code, `buffer of ${req.bufLength} bytes holds no entry`);
        entries = page.flatMap((name) => {
          const st = this.statOrUndefined(dirFd, name);
          return st ? [{ name, type: fileType(st.type), sizeBytes: st.sizeBytes, mtimeNs: mtimeNs(st), mode: st.mode }] : [];
        });
        next += page.length;
      }
      const packed = packDirents(entries, req.bufLength);
      out.bytes.set(packed.bytes);
      if (next >= names.length) this.listings.drop(ctx.channel, tag);
      return encodeListResult(packed.count, packed.bytes.byteLength, next < names.length ? encodeCookie(tag, next) : 0);
    } finally {
      this.n.close(dirFd);
    }
  }

  private mkdir(ctx: ServiceContext, req: { path: PathRef; arg: number }): void {
    this.writable();
    const { parent, name } = this.split(this.path(ctx, req.path));
    this.creatable(name);
    this.entriesFit(1);
    const parentFd = openDirBeneath(this.rootFs, parent);
    try {
      // The guest's mode, limited to what the VM's configuration allows (0: the configured mode).
      this.n.mkdirat(parentFd, name, req.arg === 0 ? this.cfg.dirMode & 0o777 : req.arg & this.cfg.dirMode & 0o777);
      this.usedEntries++;
    } finally {
      this.n.close(parentFd);
    }
  }

  private remove(ctx: ServiceContext, req: { path: PathRef; arg: number }): void {
    this.writable();
    if (req.arg & ~FILE_REMOVE_FLAG.DIR) throw new Refusal(STATUS.RESERVED_NONZERO.code, `remove flags ${req.arg}`);
    const { parent, name } = this.split(this.path(ctx, req.path));
    const parentFd = openDirBeneath(this.rootFs, parent);
    try {
      const st = this.n.fstatat(parentFd, name);
      const dir = (req.arg & FILE_REMOVE_FLAG.DIR) !== 0;
      if (st.type === 'dir' && !dir) throw new Refusal(STATUS.IS_DIRECTORY.code, name);
      if (st.type !== 'dir' && dir) throw new Refusal(STATUS.NOT_DIRECTORY.code, name);
      this.singlyLinked(st, name);
      this.n.unlinkat(parentFd, name, dir);
      if (st.type === 'file') this.usedBytes -= st.sizeBytes;
      this.usedEntries = Math.max(0, this.usedEntries - 1);
    } finally {
      this.n.close(parentFd);
    }
  }

  /** sha256 of the whole file, read in chunks between turns of the event loop. */
  private async hash(ctx: ServiceContext, req: { handle: number; flags: number }): Promise<Uint8Array> {
    if (req.flags !== 0) throw new Refusal(STATUS.RESERVED_NONZERO.code, 'hash flags');
    const h = this.lookup(ctx, req.handle);
    h.busy++;
    try {
      return await sha256InTurns(this.n, () => {
        if (h.closing) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${req.handle} closed during hashing`);
        return h.fd;
      });
    } finally {
      h.busy--;
      if (h.closing && h.busy === 0) this.release(h);
    }
  }

  private statOrUndefined(dirFd: number, name: string): NativeStat | undefined {
    try {
      return this.n.fstatat(dirFd, name);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private unlinkQuietly(dirFd: number, name: string): void {
    try {
      this.n.unlinkat(dirFd, name, false);
    } catch (err) {
      this.opts.log.warn('could not remove a temporary file', { name, error: (err as Error).message });
    }
  }

  channelReset(channel: number): void {
    this.listings.channelReset(channel);
    for (const c of this.committing.values()) if (c.channel === channel) c.aborted = true;
    const t = this.handles.get(channel);
    if (!t) return;
    for (const h of t.values()) this.release(h);
    this.handles.delete(channel);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.committing.values()) c.aborted = true;
    for (const channel of [...this.handles.keys()]) this.channelReset(channel);
    this.listings.clear();
    if (this.root) this.n.close(this.root.rootFd);
  }
}

