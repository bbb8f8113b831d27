// The streaming routes: a pushed file streams through a pipe into the guest as it is received (no copy of it
// is kept on the host: the guest agent's reads wait for the upload, and the pipe's room holds the upload
// back when the guest is slower); a pulled file streams the other way: as soon as the guest agent has
// opened it (its size known), the pull answers `ready` with a download id, and the download reads a pipe the
// agent's writes fill; the pull's event stream goes on with the guest's progress and ends when the copy
// does (with an error event when it fails). The download's last bytes are sent only once the guest has
// committed the copy, so a complete body means a complete file; a copy that fails cuts the download short.
// Push and pull answer with NDJSON events (transfer-events.ts) once they start; what fails before that
// (unknown VM, VM not running) is an ordinary JSON error answer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { read, write } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { loadNative } from '../../device-backend/native/index.js';
import { pipeline } from 'node:stream/promises';
import type { VmManagerApi } from '../daemon/vm-manager-api.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import type { StreamAction } from './api-requests.js';
import { errorResponse, errorToResponse, type ApiErrorBody, type ApiResponse } from './api-responses.js';
import { checkContract, describeProblems, NDJSON_CONTENT_TYPE, transferEventSchema, type TransferEvent, type TransferStage } from './api-contract.js';
import { encodeTransferEvent, ProgressThrottle } from './transfer-events.js';
import type { LiveDownload, TransferStore } from './transfer-store.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';

export interface TransferContext {
  manager: VmManagerApi;
  store: TransferStore;
  log: CoreLogger;
  nowMs: () => number;
  /** Tells a client that sent `Expect: 100-continue` to send the body now. */
  acceptBody: () => void;
}

/** `answer`: nothing was sent yet, the server writes this response. `streamed`: the response is done. */
export type StreamOutcome = { kind: 'answer'; response: ApiResponse } | { kind: 'streamed'; status: number };

/** The streaming routes of file transfers (the event stream is api-events.ts's). */
export type TransferAction = Exclude<StreamAction, { kind: 'events' } | { kind: 'exec' }>;

export async function handleStreamAction(
  action: TransferAction,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: TransferContext,
): Promise<StreamOutcome> {
  switch (action.kind) {
    case 'push':
      return push(action, req, res, ctx);
    case 'pull':
      return pull(action, res, ctx);
    case 'download':
      return download(action.id, res, ctx);
  }
}

async function push(
  action: StreamAction & { kind: 'push' },
  req: IncomingMessage,
  res: ServerResponse,
  ctx: TransferContext,
): Promise<StreamOutcome> {
  const refused = checkVmCanCopy(ctx.manager, action.name);
  if (refused) return refused;
  const { name, guestPath, sizeBytes } = action;
  const native = loadNative();
  const [readFd, writeFd] = native.pipe();
  let writeOpen = true;
  const closeWrite = (): void => {
    if (writeOpen) native.close(writeFd);
    writeOpen = false;
  };
  ctx.acceptBody();
  const body = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const events = startEvents(res, ctx.nowMs, ctx.log);
  const startedMs = ctx.nowMs();
  try {
    events.progress('upload', 0, sizeBytes);
    // The guest copy starts at once and reads the pipe as the upload fills it. When the copy ends first
    // (refused, failed) the read end closes, so an upload write waiting for room fails (EPIPE) instead of
    // waiting for ever; when the upload fails first the write end closes and the guest sees the file end.
    const copy = ctx.manager
      .copyToGuest(name, { guestPath, hostFd: readFd, sizeBytes, onProgress: (moved, total) => events.progress('guest', moved, total) })
      .finally(() => native.close(readFd));
    const upload = receiveUpload(body, writeFd, sizeBytes, (received) => events.progress('upload', received, sizeBytes))
      .then(() => events.progress('upload', sizeBytes, sizeBytes, true))
      .finally(closeWrite);
    const [copied, uploaded] = await Promise.allSettled([copy, upload]);
    // The upload's failure explains a copy that saw the file end early; else the copy's own.
    if (uploaded.status === 'rejected' && !(copied.status === 'rejected' && isBrokenPipe(uploaded.reason))) throw uploaded.reason;
    if (copied.status === 'rejected') throw copied.reason;
    // The two stages overlap: the guest's final figure goes last, whatever the throttle sent before.
    events.send({ event: 'progress', stage: 'guest', bytes: copied.value.bytes, totalBytes: sizeBytes });
    events.send({ event: 'done', bytes: copied.value.bytes });
    ctx.log.info('file pushed', { vm: name, guestPath, bytes: copied.value.bytes, durationMs: Math.round(ctx.nowMs() - startedMs) });
  } catch (err) {
    events.fail(err, ctx.log, { vm: name, guestPath, direction: 'push' });
    // Read what the client still sends before the answer ends: closing on unread data resets the
    // connection, and the client would lose the error event.
    await drainBody(req, body);
  } finally {
    closeWrite();
    events.end();
  }
  return { kind: 'streamed', status: 200 };
}

const DRAIN_BODY_MS = 30_000;

/** Discards the rest of a request body (at most its Content-Length) through its iterator, for up to DRAIN_BODY_MS. */
async function drainBody(req: IncomingMessage, body: AsyncIterator<Buffer>): Promise<void> {
  if (req.complete || req.destroyed) return;
  const timer = setTimeout(() => req.destroy(), DRAIN_BODY_MS);
  try {
    for (;;) if ((await body.next()).done) break;
  } catch {
    // the client went away: nothing left to read
  } finally {
    clearTimeout(timer);
  }
}

const isBrokenPipe = (err: unknown): boolean => (err as { cause?: { code?: string } }).cause?.code === 'EPIPE';

async function pull(action: StreamAction & { kind: 'pull' }, res: ServerResponse, ctx: TransferContext): Promise<StreamOutcome> {
  const refused = checkVmCanCopy(ctx.manager, action.name);
  if (refused) return refused;
  const { name, guestPath } = action;
  const native = loadNative();
  const [readFd, writeFd] = native.pipe('write');
  // The read end belongs to the download once it is claimed; until then (or if it never is) to this pull.
  let readOwned = true;
  const closeRead = (): void => {
    if (readOwned) native.close(readFd);
    readOwned = false;
  };
  const events = startEvents(res, ctx.nowMs, ctx.log);
  const startedMs = ctx.nowMs();
  let announce: (bytes: number) => void = () => {};
  const announced = new Promise<number>((resolve) => (announce = resolve));
  let sizeKnown = false;
  const copy = ctx.manager
    .copyFromGuest(name, {
      guestPath,
      hostFd: writeFd,
      maxBytes: ctx.store.maxPullBytes,
      onProgress: (moved, total) => {
        if (!sizeKnown) {
          sizeKnown = true;
          announce(total);
        }
        events.progress('guest', moved, total);
      },
    })
    .finally(() => native.close(writeFd));
  try {
    const first = await Promise.race([announced.then((bytes) => ({ kind: 'open' as const, bytes })), copy.then((r) => ({ kind: 'done' as const, bytes: r.bytes }))]);
    const bytes = first.bytes;
    if (events.clientGone()) {
      ctx.log.info('the client went away before the pulled file was ready; dropped it', { vm: name, guestPath });
      closeRead();
      await copy.catch(() => undefined);
      return { kind: 'streamed', status: 200 };
    }
    // From here the store (drop: nobody came) or the download closes the read end.
    readOwned = false;
    let dropped = false;
    const id = ctx.store.holdLive({
      readFd,
      bytes,
      copy,
      drop: () => {
        dropped = true;
        native.close(readFd);
      },
    });
    if (id === undefined) throw new VmgmtError('INVALID_STATE', 'the daemon is shutting down: pull the file again when it is back');
    // The event stream goes on after ready (guest progress, then the copy's error if it fails), so a client
    // whose download is cut short learns why; it ends when the copy does.
    events.send({ event: 'ready', bytes, download: `/v1/transfers/${id}` });
    const result = await copy.catch((err: unknown) => {
      if (!dropped) throw err;
      throw new VmgmtError('INVALID_STATE', `nobody fetched ${id === undefined ? 'the download' : `/v1/transfers/${id}`} within ${Math.round(ctx.store.downloadTtlMs / 1000)} s of the ready event (or the daemon is stopping), so the copy of ${guestPath} was stopped: pull it again`, { guestPath }, { cause: err });
    });
    ctx.log.info('file pulled', { vm: name, guestPath, bytes: result.bytes, durationMs: Math.round(ctx.nowMs() - startedMs) });
  } catch (err) {
    events.fail(err, ctx.log, { vm: name, guestPath, direction: 'pull' });
  } finally {
    closeRead();
    await copy.catch(() => undefined);
    events.end();
  }
  return { kind: 'streamed', status: 200 };
}

const readAsync = promisify(read);
const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;

/**
 * Sends a live download: what the guest copy puts into the pipe, as it comes, with the body's last chunk
 * held back until the copy has succeeded. The pipe's read end is closed only after the last read returned
 * (a copy that ends closes the write end, so a read never waits for ever).
 */
async function sendLive(live: LiveDownload, res: ServerResponse, ctx: TransferContext, id: string): Promise<void> {
  const native = loadNative();
  let sent = 0;
  try {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(live.bytes), 'Cache-Control': 'no-store' });
    res.flushHeaders();
    if (live.bytes === 0) {
      await live.copy;
      res.end();
      return;
    }
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(DOWNLOAD_CHUNK_BYTES, live.bytes - sent));
      const { bytesRead } = await readAsync(live.readFd, chunk, 0, chunk.length, null);
      if (bytesRead === 0) throw new Error(`the guest copy ended after ${sent} of ${live.bytes} bytes`);
      if (res.destroyed) throw new Error('the client went away');
      sent += bytesRead;
      const last = sent === live.bytes;
      if (last) await live.copy; // committed in the guest: only now may the body be complete
      if (!res.write(chunk.subarray(0, bytesRead))) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
      if (last) break;
    }
    res.end();
  } catch (err) {
    ctx.log.info('a live download was cut off', { id, bytes: live.bytes, sent, error: (err as Error).message });
    res.destroy();
  } finally {
    native.close(live.readFd);
  }
}

async function download(id: string, res: ServerResponse, ctx: TransferContext): Promise<StreamOutcome> {
  const held = ctx.store.claim(id);
  if (held?.kind === 'live') {
    await sendLive(held, res, ctx, id);
    return { kind: 'streamed', status: 200 };
  }
  if (!held) {
    return answer(
      errorResponse(
        404,
        'NOT_FOUND',
        `no download ${id}: it was fetched already, or expired (downloads are kept ${Math.round(ctx.store.downloadTtlMs / 1000)} s after the ready event): pull the file again`,
        { id },
      ),
    );
  }
  let handle;
  try {
    handle = await open(held.path, 'r');
  } catch (err) {
    await ctx.store.remove(held.path);
    return answer(errorToResponse(new VmgmtError('INTERNAL', `cannot open the pulled file ${held.path}: ${(err as Error).message}`, { id }, { cause: err })).response);
  }
  // The open handle keeps the bytes; the name goes now, so nothing is left whatever the client does.
  await ctx.store.remove(held.path);
  try {
    const sizeBytes = (await handle.stat()).size;
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(sizeBytes), 'Cache-Control': 'no-store' });
    await pipeline(handle.createReadStream({ start: 0 }), res);
  } catch (err) {
    ctx.log.info('a download was cut off', { id, bytes: held.bytes, error: (err as Error).message });
    res.destroy();
  } finally {
    await handle.close().catch(() => {});
  }
  return { kind: 'streamed', status: 200 };
}

/** An answer before streaming when the VM is unknown or not running; undefined when the copy may go on. */
function checkVmCanCopy(manager: VmManagerApi, name: string): StreamOutcome | undefined {
  let state;
  try {
    state = manager.inspect(name).state;
  } catch (err) {
    return answer(errorToResponse(err).response);
  }
  if (state === 'running') return undefined;
  return answer(
    errorToResponse(
      new VmgmtError('INVALID_STATE', `vm ${name} is ${state}: copies need a running VM; start it with \`vmgmt vm start ${name}\``, {
        name,
        state,
      }),
    ).response,
  );
}

function answer(response: ApiResponse): StreamOutcome {
  return { kind: 'answer', response };
}

/** Writes the request body into the pipe; throws VmgmtError when the body breaks off or the pipe is closed. */
async function receiveUpload(iterator: AsyncIterator<Buffer>, writeFd: number, sizeBytes: number, onBytes: (received: number) => void): Promise<void> {
  let received = 0;
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await iterator.next();
    } catch (err) {
      throw new VmgmtError('INVALID_REQUEST', `the upload broke off after ${received} of ${sizeBytes} bytes (${(err as Error).message}): send the file again`, {
        receivedBytes: received,
        sizeBytes,
      }, { cause: err });
    }
    if (next.done) break;
    if (received + next.value.length > sizeBytes) {
      throw new VmgmtError('INVALID_REQUEST', `the upload is longer than the ${sizeBytes} bytes it announced: send the file again`, { receivedBytes: received + next.value.length, sizeBytes });
    }
    try {
      await writeFully(writeFd, next.value);
    } catch (err) {
      throw new VmgmtError('INTERNAL', `the guest copy stopped taking the upload after ${received} of ${sizeBytes} bytes (${(err as Error).message})`, {
        receivedBytes: received,
        sizeBytes,
      }, { cause: err });
    }
    received += next.value.length;
    onBytes(received);
  }
  if (received !== sizeBytes) {
    throw new VmgmtError('INVALID_REQUEST', `the upload ended after ${received} of ${sizeBytes} bytes: send the whole file`, {
      receivedBytes: received,
      sizeBytes,
    });
  }
}

const writeAsync = promisify(write);

/** Writes all of chunk to the pipe (a blocking fd: the thread pool waits for room). */
async function writeFully(fd: number, chunk: Buffer): Promise<void> {
  let done = 0;
  while (done < chunk.length) done += (await writeAsync(fd, chunk, done, chunk.length - done, null)).bytesWritten;
}

interface EventStream {
  progress(stage: TransferStage, bytes: number, totalBytes: number, final?: boolean): void;
  send(event: TransferEvent): void;
  fail(err: unknown, log: CoreLogger, fields: object): void;
  clientGone(): boolean;
  end(): void;
}

/**
 * Starts the 200 NDJSON answer; events written after the client went away are dropped. Each event is checked
 * against the API contract first: one that breaks it (a bug) is logged and sent as an INTERNAL error event.
 */
function startEvents(res: ServerResponse, nowMs: () => number, log: CoreLogger): EventStream {
  res.writeHead(200, { 'Content-Type': NDJSON_CONTENT_TYPE, 'Cache-Control': 'no-store', Connection: 'close' });
  res.flushHeaders();
  const throttles: Record<TransferStage, ProgressThrottle> = { upload: new ProgressThrottle(), guest: new ProgressThrottle() };
  const gone = (): boolean => res.destroyed || res.writableEnded;
  const send = (event: TransferEvent): void => {
    if (gone()) return;
    const checked = checkContract(transferEventSchema, event);
    if (!checked.ok) {
      const message = `a ${String(event.event)} event breaks the API contract: ${describeProblems(checked.problems)}`;
      log.error('file transfer event not sent (a bug: please report it)', { event, problems: checked.problems });
      res.write(encodeTransferEvent({ event: 'error', code: 'INTERNAL', message: `internal error in the daemon: ${message}`, details: { problems: checked.problems } }));
      return;
    }
    res.write(encodeTransferEvent(event));
  };
  return {
    progress(stage, bytes, totalBytes, final = false) {
      if (throttles[stage].take(nowMs(), bytes, totalBytes, final)) send({ event: 'progress', stage, bytes, totalBytes });
    },
    send,
    fail(err, log, fields) {
      const mapped = errorToResponse(err);
      const body = (mapped.response.kind === 'json' ? mapped.response.body : {}) as ApiErrorBody;
      if (mapped.unexpected) log.error('file transfer failed unexpectedly', { ...fields, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      else log.info('file transfer failed', { ...fields, code: body.code, error: body.message });
      send({ event: 'error', code: body.code, message: body.message, details: body.details });
    },
    clientGone: gone,
    end() {
      if (!gone()) res.end();
    },
  };
}
