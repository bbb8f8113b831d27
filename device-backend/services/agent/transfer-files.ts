// The file-mode requests of the agent's channel: FILE_OPEN / READ / WRITE / CLOSE / HASH on the one-off
// paths of host transfers, and nothing else in the host file system. A handle refers to its transfer, never
// to the transfer's fd: the fd is looked up at each use, and the transfer's end drops every handle on it.
//
// A to-guest transfer whose fd is a pipe (the daemon streams `vmgmt cp`'s upload into it as it arrives) is
// read in file order, once: reads are served one after the other with non-blocking read()s on the event
// loop, waiting for the pipe to be readable when it is empty (the upload's pace, with the pipe's room as
// the back-pressure). A from-guest transfer whose fd is a pipe (the daemon streams it to `vmgmt cp`'s
// download) is written the same way: in file order, with non-blocking write()s, waiting (a 1 ms timer)
// while the pipe is full. A read or write out of order, or a hash of a pipe, answers STREAM_ORDER.
import { FILE_CLOSE_FLAG, FILE_OPEN_FLAG, FILE_TYPE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { ServiceContext } from '../../core/message-service.js';
import { isNativeSyscallError, type VmgmtNative } from '../../native/index.js';
import { statusForErrno } from '../file/errno-status.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import { decodeHandle, decodeIo, decodeOpen, encodeInfo, encodeIoResult, type PathRef } from '../file/file-codec.js';
import type { HostTransfer, HostTransfers } from './host-transfers.js';
import { need, preadFully, Refusal, sha256InTurns } from '../refusal.js';

export const TRANSFER_FILE_TYPES = [MSG_TYPE.FILE_OPEN, MSG_TYPE.FILE_READ, MSG_TYPE.FILE_WRITE, MSG_TYPE.FILE_CLOSE, MSG_TYPE.FILE_HASH];

/** How long a write to a full pipe waits before it tries again (the download drains it meanwhile). */
const PIPE_FULL_WAIT_MS = 1;

/** Open handles per VM; the agent needs two at most (one copy at a time, each direction one file). */
const MAX_HANDLES = 16;

interface TransferHandle {
  readonly kind: 'read' | 'write';
  readonly transfer: HostTransfer;
  /** write: the size the agent declared at open; writes past it are refused. */
  readonly declaredBytes: number;
  busy: number;
  closing: boolean;
  /** A to-guest transfer read from a pipe: where the next read must start, and the reads queued behind it. */
  stream?: { next: number; tail: Promise<unknown>; wake?: () => void };
}



export interface TransferFilesOptions {
  native: VmgmtNative;
  transfers: HostTransfers;
  /** A refusal, for the log. */
  onRefused: (type: number, status: number, reason: string) => void;
}

export class TransferFiles {
  private readonly handles = new Map<number, Map<number, TransferHandle>>();
  private nextHandle = 1;
  private openCount = 0;
  private readonly stopWatching: () => void;

  constructor(private readonly opts: TransferFilesOptions) {
    this.stopWatching = opts.transfers.onEnd((t) => this.dropHandlesOf(t));
  }

  get openFiles(): number {
    return this.openCount;
  }

  handle(req: Message, ctx: ServiceContext): Message | Promise<Message> {
    try {
      const answer = this.dispatch(req, ctx);
      if (answer instanceof Promise) return answer.then((payload) => responseTo(req, STATUS.OK.code, payload), (err: unknown) => this.refused(req, err));
      return responseTo(req, STATUS.OK.code, answer);
    } catch (err) {
      return this.refused(req, err);
    }
  }

  private refused(req: Message, err: unknown): Message {
    if (isNativeSyscallError(err)) {
      // The host file failed (a full transfer directory: ENOSPC): the guest gets the status in words.
      const status = statusForErrno(err.code);
      this.opts.onRefused(req.type, status, err.message);
      return responseTo(req, status);
    }
    if (!(err instanceof Refusal)) throw err;
    this.opts.onRefused(req.type, err.status, err.reason);
    return responseTo(req, err.status);
  }

  private dispatch(req: Message, ctx: ServiceContext): Uint8Array | undefined | Promise<Uint8Array> {
    switch (req.type) {
      case MSG_TYPE.FILE_OPEN: {
        const open = need(decodeOpen(req.payload));
        return this.open(ctx, open.path, open.flags, open.sizeBytes);
      }
      case MSG_TYPE.FILE_READ:
        return this.read(ctx, need(decodeIo(req.payload)));
      case MSG_TYPE.FILE_WRITE:
        return this.write(ctx, need(decodeIo(req.payload)));
      case MSG_TYPE.FILE_CLOSE:
        this.closeHandle(ctx, need(decodeHandle(req.payload)));
        return undefined;
      case MSG_TYPE.FILE_HASH:
        return this.hash(ctx, need(decodeHandle(req.payload)));
      default:
        throw new Refusal(STATUS.UNKNOWN_TYPE.code, `type ${req.type} is not served on the agent's channel`);
    }
  }

  private table(channel: number): Map<number, TransferHandle> {
    let t = this.handles.get(channel);
    if (!t) this.handles.set(channel, (t = new Map()));
    return t;
  }

  private lookup(ctx: ServiceContext, handle: number): TransferHandle {
    const h = this.handles.get(ctx.channel)?.get(handle);
    if (!h || h.closing) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${handle}`);
    return h;
  }

  /** The transfer's fd, for I/O in this same synchronous step; gone once the transfer ended. */
  private fdOf(h: TransferHandle, handle: number): number {
    const fd = this.opts.transfers.fdOf(h.transfer);
    if (fd === undefined) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${handle}: host transfer ended (${h.transfer.endedReason ?? 'unknown'})`);
    return fd;
  }

  private open(ctx: ServiceContext, ref: PathRef, flags: number, sizeBytes: number): Uint8Array {
    const bytes = ctx.slice.copyOut(ref.offset, ref.length);
    if (!bytes.ok) throw new Refusal(bytes.status, `path: ${bytes.reason}`);
    const path = new TextDecoder().decode(bytes.bytes);
    if (!this.opts.transfers.isTransferPath(path)) {
      throw new Refusal(STATUS.PATH_ESCAPES.code, 'the agent\'s channel reaches host transfers only: use a channel in the file mode for the VM\'s root');
    }
    const t = this.opts.transfers.lookup(path);
    if (!t) throw new Refusal(STATUS.NOT_FOUND.code, 'no such host transfer (finished or cancelled)');
    if (this.openCount >= MAX_HANDLES) throw new Refusal(STATUS.TOO_MANY_OPEN.code, `${this.openCount} transfer handles open`);
    if (t.direction === 'to-guest' && flags === FILE_OPEN_FLAG.READ) {
      const fd = this.opts.transfers.fdOf(t);
      const piped = fd !== undefined && this.opts.native.fstat(fd).type === 'fifo';
      const handle = this.add(ctx.channel, { kind: 'read', transfer: t, declaredBytes: 0, busy: 0, closing: false, ...(piped ? { stream: { next: 0, tail: Promise.resolve() } } : {}) });
      return encodeInfo({ handle, type: FILE_TYPE.FILE, sizeBytes: t.totalBytes, mtimeNs: 0n, mode: 0o644 });
    }
    if (t.direction === 'from-guest' && flags === FILE_OPEN_FLAG.WRITE) {
      if (sizeBytes > t.maxBytes) {
        throw new Refusal(STATUS.FILE_TOO_LARGE.code, `host transfer ${t.token}: the guest declared ${sizeBytes} bytes, the host takes at most ${t.maxBytes}`);
      }
      t.totalBytes = sizeBytes;
      const fd = this.opts.transfers.fdOf(t);
      const piped = fd !== undefined && this.opts.native.fstat(fd).type === 'fifo';
      const handle = this.add(ctx.channel, { kind: 'write', transfer: t, declaredBytes: sizeBytes, busy: 0, closing: false, ...(piped ? { stream: { next: 0, tail: Promise.resolve() } } : {}) });
      this.progress(t, 0); // the size is known now: a streamed pull can announce its download
      return encodeInfo({ handle, type: FILE_TYPE.FILE, sizeBytes: 0, mtimeNs: 0n, mode: 0o644 });
    }
    throw new Refusal(STATUS.PERMISSION_DENIED.code, `host transfer ${t.token} is ${t.direction}, not open flags ${flags}`);
  }

  private add(channel: number, h: TransferHandle): number {
    const id = this.nextHandle;
    this.nextHandle = (this.nextHandle % 0xfffffffe) + 1;
    this.table(channel).set(id, h);
    this.openCount++;
    return id;
  }

  private read(ctx: ServiceContext, req: { handle: number; length: number; fileOffset: number; bufOffset: number }): Uint8Array | Promise<Uint8Array> {
    const h = this.lookup(ctx, req.handle);
    if (h.kind !== 'read') throw new Refusal(STATUS.WRONG_HANDLE_KIND.code, `handle ${req.handle} is a write handle`);
    const view = ctx.slice.view(req.bufOffset, req.length);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    if (h.stream) return this.readStream(h, h.stream, req.handle, view.bytes, req.fileOffset);
    const done = preadFully(this.opts.native, this.fdOf(h, req.handle), view.bytes, req.fileOffset);
    this.progress(h.transfer, done);
    return encodeIoResult(done);
  }

  private write(ctx: ServiceContext, req: { handle: number; length: number; fileOffset: number; bufOffset: number }): Uint8Array | Promise<Uint8Array> {
    const h = this.lookup(ctx, req.handle);
    if (h.kind !== 'write') throw new Refusal(STATUS.WRONG_HANDLE_KIND.code, `handle ${req.handle} is a read handle`);
    if (req.fileOffset + req.length > h.declaredBytes) {
      throw new Refusal(STATUS.WRITE_PAST_SIZE.code, `write of ${req.length} at ${req.fileOffset} past the declared ${h.declaredBytes} bytes`);
    }
    const view = ctx.slice.view(req.bufOffset, req.length);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    if (h.stream) return this.writeStream(h, h.stream, req.handle, view.bytes, req.fileOffset);
    const written = this.opts.native.pwrite(this.fdOf(h, req.handle), view.bytes, req.fileOffset);
    this.progress(h.transfer, written);
    return encodeIoResult(written);
  }

  /** Queues a read of a piped transfer behind the ones before it; each fills its view or ends at end of file. */
  private readStream(h: TransferHandle, s: NonNullable<TransferHandle['stream']>, handle: number, view: Uint8Array, offset: number): Promise<Uint8Array> {
    const run = async (): Promise<Uint8Array> => {
      if (offset !== s.next) throw new Refusal(STATUS.STREAM_ORDER.code, `handle ${handle}: read at ${offset}, but the stream is at ${s.next}`);
      let done = 0;
      while (done < view.byteLength) {
        if (h.closing) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${handle} closed while it waited for the upload`);
        const fd = this.fdOf(h, handle);
        const n = this.opts.native.readSome(fd, view.subarray(done));
        if (n === 0) break;
        if (n > 0) {
          done += n;
          continue;
        }
        await pipeWait(s, (done) => {
          const watch = this.opts.native.watchReadable(fd, done);
          return () => watch.stop();
        });
      }
      s.next += done;
      this.progress(h.transfer, done);
      return encodeIoResult(done);
    };
    return this.inOrder(s, run);
  }

  /** Queues a write to a piped transfer behind the ones before it; each goes whole into the pipe. */
  private writeStream(h: TransferHandle, s: NonNullable<TransferHandle['stream']>, handle: number, view: Uint8Array, offset: number): Promise<Uint8Array> {
    const run = async (): Promise<Uint8Array> => {
      if (offset !== s.next) throw new Refusal(STATUS.STREAM_ORDER.code, `handle ${handle}: write at ${offset}, but the stream is at ${s.next}`);
      let done = 0;
      while (done < view.byteLength) {
        if (h.closing) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${handle} closed while it waited for the download`);
        const n = this.opts.native.writeSome(this.fdOf(h, handle), view.subarray(done));
        if (n > 0) {
          done += n;
          continue;
        }
        await pipeWait(s, (done) => {
          const timer = setTimeout(done, PIPE_FULL_WAIT_MS);
          return () => clearTimeout(timer);
        });
      }
      s.next += done;
      this.progress(h.transfer, done);
      return encodeIoResult(done);
    };
    return this.inOrder(s, run);
  }

  /** Runs `run` after every request queued on the stream before it, whatever their outcome: one pipe, in file order. */
  private inOrder(s: NonNullable<TransferHandle['stream']>, run: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const answer = s.tail.then(run, run);
    s.tail = answer.catch(() => undefined);
    return answer;
  }

  private progress(t: HostTransfer, bytes: number): void {
    t.movedBytes += bytes;
    t.onProgress?.(t.movedBytes, t.totalBytes);
  }

  private closeHandle(ctx: ServiceContext, req: { handle: number; flags: number }): void {
    const h = this.lookup(ctx, req.handle);
    if (req.flags & ~FILE_CLOSE_FLAG.COMMIT) throw new Refusal(STATUS.RESERVED_NONZERO.code, `close flags ${req.flags}`);
    this.table(ctx.channel).delete(req.handle);
    if (h.kind === 'write' && req.flags & FILE_CLOSE_FLAG.COMMIT) h.transfer.committed = true;
    this.release(h);
  }

  /** The handle is done; a hash running on it lets go when it notices. */
  private release(h: TransferHandle): void {
    if (h.closing) return;
    h.closing = true;
    h.stream?.wake?.();
    this.openCount--;
  }

  /** sha256 of the whole file, read in chunks between turns of the event loop. */
  private async hash(ctx: ServiceContext, req: { handle: number; flags: number }): Promise<Uint8Array> {
    if (req.flags !== 0) throw new Refusal(STATUS.RESERVED_NONZERO.code, 'hash flags');
    const h = this.lookup(ctx, req.handle);
    if (h.stream) throw new Refusal(STATUS.STREAM_ORDER.code, `handle ${req.handle}: a streamed transfer has no hash`);
    h.busy++;
    try {
      return await sha256InTurns(this.opts.native, () => {
        if (h.closing) throw new Refusal(STATUS.BAD_HANDLE.code, `handle ${req.handle} closed during hashing`);
        return this.fdOf(h, req.handle);
      });
    } finally {
      h.busy--;
    }
  }

  /** A host transfer ended: every handle opened on it dies now, on whatever channel it was opened. */
  private dropHandlesOf(t: HostTransfer): void {
    for (const table of this.handles.values()) {
      for (const [id, h] of table) {
        if (h.transfer !== t) continue;
        table.delete(id);
        this.release(h);
      }
    }
  }

  channelReset(channel: number): void {
    const t = this.handles.get(channel);
    if (!t) return;
    for (const h of t.values()) this.release(h);
    this.handles.delete(channel);
  }

  close(): void {
    this.stopWatching();
    for (const channel of [...this.handles.keys()]) this.channelReset(channel);
  }
}

/**
 * Waits for the pipe: until `arm`'s event fires, or until s.wake is called (the handle closes). `arm`
 * starts the event with the function that ends the wait and returns what cancels it.
 */
function pipeWait(s: NonNullable<TransferHandle['stream']>, arm: (done: () => void) => () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    let cancel = (): void => {};
    const done = (): void => {
      cancel();
      s.wake = undefined;
      resolve();
    };
    cancel = arm(done);
    s.wake = done;
  });
}
