// `vmgmt cp`: a local file to a VM (push) or a VM's file to a local path (pull), through the daemon's
// streaming routes. A pulled file is written to a temporary name in the destination's directory and
// renamed into place, so the destination is either the whole file or untouched.
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import type { TransferEvent } from '../api/api-contract.js';
import { ApiError } from './api-client.js';
import { baseName, type CpCommand } from './cp-args.js';
import { formatSize, ProgressRenderer } from './cp-progress.js';
import { CliError } from './cli-error.js';
import type { CommandContext } from './cli-commands.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { openDownload, pullFile, pushFile } from './transfer-client.js';

export type CpContext = Pick<CommandContext, 'client' | 'json' | 'stdout' | 'stderr' | 'nowMs'>;

/** The last line of `vmgmt cp --json`. */
export interface CpDoneEvent {
  event: 'done';
  direction: 'push' | 'pull';
  vm: string;
  guestPath: string;
  localPath: string;
  bytes: number;
}

export async function runCpCommand(command: CpCommand, ctx: CpContext): Promise<ExitCode> {
  if (command.recursive) return (await import('./cp-recursive.js')).runCpRecursive(command, ctx);
  const progress = createProgress(ctx);
  let done: CpDoneEvent;
  try {
    done = command.direction === 'push' ? await push(command, ctx, progress) : await pull(command, ctx, progress);
  } finally {
    progress.finish();
  }
  if (ctx.json) ctx.stdout.write(JSON.stringify(done) + '\n');
  else {
    const from = done.direction === 'push' ? done.localPath : `${done.vm}:${done.guestPath}`;
    const to = done.direction === 'push' ? `${done.vm}:${done.guestPath}` : done.localPath;
    ctx.stdout.write(`copied ${from} to ${to} (${formatSize(done.bytes)})\n`);
  }
  return EXIT.OK;
}

export interface Progress {
  /** A server event: progress is drawn (TTY) or printed (--json); done is left to the command's own. */
  event(event: TransferEvent): void;
  /** The client's own download progress. */
  download(bytes: number, totalBytes: number, final?: boolean): void;
  finish(): void;
}

export function createProgress(ctx: CpContext): Progress {
  if (ctx.json) {
    const line = (e: object): void => void ctx.stdout.write(JSON.stringify(e) + '\n');
    let lastDownloadMs = Number.NEGATIVE_INFINITY;
    return {
      event: (e) => {
        if (e.event !== 'done') line(e);
      },
      download: (bytes, totalBytes, final = false) => {
        const now = ctx.nowMs();
        if (!final && now - lastDownloadMs < 100) return;
        lastDownloadMs = now;
        line({ event: 'progress', stage: 'download', bytes, totalBytes });
      },
      finish: () => {},
    };
  }
  const tty = ctx.stderr as NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  if (tty.isTTY !== true) return { event: () => {}, download: () => {}, finish: () => {} };
  const bar = new ProgressRenderer((text) => void tty.write(text), tty.columns ?? 80);
  return {
    event: (e) => {
      if (e.event === 'progress') bar.update(e.stage, e.bytes, e.totalBytes, ctx.nowMs());
    },
    download: (bytes, totalBytes, final = false) => bar.update('download', bytes, totalBytes, ctx.nowMs(), final),
    finish: () => bar.finish(),
  };
}

export async function push(command: CpCommand & { direction: 'push' }, ctx: CpContext, progress: Progress): Promise<CpDoneEvent> {
  const { vm, localPath, guestPath } = command;
  const st = await stat(localPath).catch((err: unknown) => {
    throw localError('FILE_UNREADABLE', `cannot read ${localPath}`, localPath, err);
  });
  if (st.isDirectory()) throw new CliError('FILE_UNREADABLE', `cannot copy ${localPath}: it is a directory: copy it with vmgmt cp -r`, { path: localPath });
  if (!st.isFile()) throw new CliError('FILE_UNREADABLE', `cannot copy ${localPath}: it is not a regular file`, { path: localPath });
  const handle = await open(localPath, 'r').catch((err: unknown) => {
    throw localError('FILE_UNREADABLE', `cannot read ${localPath}`, localPath, err);
  });
  let readFailure: unknown;
  let source: NodeJS.ReadableStream & { destroy(): void } | undefined;
  try {
    const sizeBytes = (await handle.stat()).size;
    let body: NodeJS.ReadableStream | undefined;
    if (sizeBytes > 0) {
      const counted = new ExactLength(sizeBytes, localPath);
      // autoClose: the stream closes the handle when it ends or is destroyed (a FileHandle with a live stream
      // on it does not close otherwise).
      source = handle.createReadStream({ start: 0, end: sizeBytes - 1 }).on('error', (err) => counted.destroy(err));
      body = source.pipe(counted);
      body.once('error', (err) => (readFailure = err));
    }
    const result = await pushFile(ctx.client.socketPath, vm, { guestPath, sizeBytes, ...(body ? { body } : {}), onEvent: (e) => progress.event(e) });
    return { event: 'done', direction: 'push', vm, guestPath, localPath, bytes: result.bytes };
  } catch (err) {
    if (readFailure !== undefined && !(err instanceof ApiError)) {
      throw readFailure instanceof CliError ? readFailure : localError('FILE_UNREADABLE', `cannot read ${localPath}`, localPath, readFailure);
    }
    throw err;
  } finally {
    source?.destroy();
    await handle.close().catch(() => {});
  }
}

export async function pull(command: CpCommand & { direction: 'pull' }, ctx: CpContext, progress: Progress): Promise<CpDoneEvent> {
  const { vm, guestPath } = command;
  const target = await resolvePullTarget(command.localPath, guestPath);
  const tempPath = path.join(path.dirname(target), `.${path.basename(target)}.vmgmt-${randomBytes(4).toString('hex')}.part`);
  let handle: FileHandle | undefined = await open(tempPath, 'wx', 0o666).catch((err: unknown) => {
    throw localError('FILE_UNWRITABLE', `cannot write ${target}`, target, err);
  });
  let renamed = false;
  // Ctrl-C or SIGTERM ends the process before any finally runs: take the partial file with it.
  const onSignal = (signal: NodeJS.Signals): void => {
    try {
      unlinkSync(tempPath);
    } catch {
      // not there (yet, or any more)
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const ready = await pullFile(ctx.client.socketPath, vm, { guestPath, onEvent: (e) => progress.event(e) });
    const download = await openDownload(ctx.client.socketPath, ready.download);
    if (download.sizeBytes !== ready.bytes) {
      download.body.destroy();
      throw new ApiError(200, 'BAD_RESPONSE', `the daemon announced ${ready.bytes} bytes but the download has ${download.sizeBytes}`);
    }
    let received = 0;
    progress.download(0, ready.bytes);
    // A download cut short is most often a copy that failed in the guest: the pull's event stream says why.
    const why = async (fallback: ApiError): Promise<Error> => (await withTimeout(ready.outcome, OUTCOME_WAIT_MS)) ?? fallback;
    try {
      for await (const chunk of download.body as AsyncIterable<Buffer>) {
        await writeFully(handle, chunk, received).catch((err: unknown) => {
          download.body.destroy();
          throw localError('FILE_UNWRITABLE', `cannot write ${target}`, target, err);
        });
        received += chunk.length;
        progress.download(received, ready.bytes);
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw await why(new ApiError(200, 'BAD_RESPONSE', `the download of ${vm}:${guestPath} broke off after ${received} of ${ready.bytes} bytes (${(err as Error).message}): copy it again`));
    }
    if (received !== ready.bytes) {
      throw await why(new ApiError(200, 'BAD_RESPONSE', `the download of ${vm}:${guestPath} ended after ${received} of ${ready.bytes} bytes: copy it again`));
    }
    const failed = await ready.outcome;
    if (failed) throw failed;
    progress.download(received, ready.bytes, true);
    try {
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(tempPath, target);
      renamed = true;
    } catch (err) {
      throw localError('FILE_UNWRITABLE', `cannot write ${target}`, target, err);
    }
    return { event: 'done', direction: 'pull', vm, guestPath, localPath: target, bytes: received };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await handle?.close().catch(() => {});
    if (!renamed) await unlink(tempPath).catch(() => {});
  }
}

/** How long a cut download waits for the pull's event stream to say why. */
const OUTCOME_WAIT_MS = 10_000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/** The local file a pull writes: localPath itself, or the guest file's name inside it when it is a directory. */
async function resolvePullTarget(localPath: string, guestPath: string): Promise<string> {
  const st = await stat(localPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && !localPath.endsWith('/')) return undefined;
    throw localError('FILE_UNWRITABLE', `cannot write ${localPath}`, localPath, err);
  });
  const target = st?.isDirectory() ? path.join(localPath, baseName(guestPath)) : localPath;
  if (target !== localPath) {
    const inner = await stat(target).catch(() => undefined);
    if (inner?.isDirectory()) throw new CliError('FILE_UNWRITABLE', `cannot write ${target}: it is a directory`, { path: target });
  }
  return target;
}

async function writeFully(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done, position + done)).bytesWritten;
}

/** Passes exactly `sizeBytes` on, failing when the file turns out shorter or longer than it was. */
class ExactLength extends Transform {
  #seen = 0;
  constructor(
    private readonly sizeBytes: number,
    private readonly file: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    if (this.#seen === this.sizeBytes) done();
    else done(new CliError('FILE_UNREADABLE', `${this.file} changed while it was being sent: read ${this.#seen} of ${this.sizeBytes} bytes; copy it again`, { path: this.file }));
  }
}

/** `cannot read ./x: no such file or directory (ENOENT)` */
export function localError(code: 'FILE_UNREADABLE' | 'FILE_UNWRITABLE', what: string, file: string, err: unknown): CliError {
  const e = err as NodeJS.ErrnoException;
  const reason = e.code && e.message.startsWith(`${e.code}: `) ? `${e.message.slice(e.code.length + 2).split(', ')[0]} (${e.code})` : e.message;
  return new CliError(code, `${what}: ${reason}`, { path: file, ...(e.code ? { errno: e.code } : {}) }, { cause: err });
}
