// The streaming side of the control API client: push a file's bytes, read a push's or pull's NDJSON events
// (each checked against the API contract), open a pulled file's download. Rejects with ApiError (an error answer or error event) or
// DaemonUnavailableError (no daemon, or the connection broke before the last event).
import { request, type IncomingMessage } from 'node:http';
import { decodeTransferEvent, HTTP_STATUS, isErrorCode, NDJSON_CONTENT_TYPE, type TransferEvent } from '../api/api-contract.js';
import { ApiError, toApiError, unavailable } from './api-client.js';
import { NdjsonLineSplitter } from './ndjson-lines.js';

export type ProgressEvent = TransferEvent & { event: 'progress' };

export interface PushOptions {
  guestPath: string;
  sizeBytes: number;
  /** Exactly sizeBytes bytes; none for an empty file. */
  body?: NodeJS.ReadableStream;
  onEvent?: (event: TransferEvent) => void;
}

export interface PullOptions {
  guestPath: string;
  onEvent?: (event: TransferEvent) => void;
}

export interface OpenDownload {
  body: IncomingMessage;
  sizeBytes: number;
}

const vmFilesPath = (name: string, op: 'push' | 'pull', guestPath: string): string =>
  `/v1/vms/${encodeURIComponent(name)}/files/${op}?${new URLSearchParams({ guestPath }).toString()}`;

/** Sends the file; resolves with the done event once the guest has it. */
export async function pushFile(socketPath: string, name: string, opts: PushOptions): Promise<{ bytes: number }> {
  const path = vmFilesPath(name, 'push', opts.guestPath);
  const last = await streamEvents(socketPath, 'POST', path, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(opts.sizeBytes) },
    ...(opts.body ? { body: opts.body } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
  if (last.event !== 'done') throw badResponse('POST', path, `expected a done event, got ${last.event}`);
  return { bytes: last.bytes };
}

/**
 * Asks the daemon to copy the guest file out; resolves with the ready event (its download path) as soon as
 * the guest has opened the file. The download streams while the copy runs; `outcome` settles when the pull's
 * event stream ends: undefined when the copy succeeded, else the error that ended it.
 */
export async function pullFile(socketPath: string, name: string, opts: PullOptions): Promise<{ bytes: number; download: string; outcome: Promise<Error | undefined> }> {
  const path = vmFilesPath(name, 'pull', opts.guestPath);
  const last = await streamEvents(socketPath, 'POST', path, {
    headers: { 'Content-Length': '0' },
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
  if (last.event !== 'ready') throw badResponse('POST', path, `expected a ready event, got ${last.event}`);
  return { bytes: last.bytes, download: last.download, outcome: last.rest };
}

/** Starts the one download of a pulled file; the caller reads body to its end. */
export function openDownload(socketPath: string, downloadPath: string): Promise<OpenDownload> {
  return new Promise((resolve, reject) => {
    let connected = false;
    const req = request({ socketPath, method: 'GET', path: downloadPath }, (res) => {
      if (res.statusCode !== 200) {
        void readText(res).then(
          (text) => reject(toApiError('GET', downloadPath, { status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text })),
          (err: NodeJS.ErrnoException) => reject(unavailable(socketPath, err, true)),
        );
        return;
      }
      const sizeBytes = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
        res.destroy();
        reject(badResponse('GET', downloadPath, `the download has no valid Content-Length (${String(res.headers['content-length'])})`));
        return;
      }
      resolve({ body: res, sizeBytes });
    });
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('error', (err) => reject(unavailable(socketPath, err, connected)));
    req.end();
  });
}

type Terminal = TransferEvent & { event: 'done' | 'ready' } & { rest: Promise<Error | undefined> };

/**
 * One request whose 200 answer is NDJSON events: each is passed to onEvent; resolves with the done or
 * ready event, rejects on an error event, an error answer, or a stream that ends without either.
 */
function streamEvents(
  socketPath: string,
  method: string,
  path: string,
  opts: { headers: Record<string, string>; body?: NodeJS.ReadableStream; onEvent?: (event: TransferEvent) => void },
): Promise<Terminal> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let answered = false;
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
    };
    const headers = { Accept: NDJSON_CONTENT_TYPE, ...opts.headers, ...(opts.body ? { Expect: '100-continue' } : {}) };
    const req = request({ socketPath, method, path, headers }, (res) => {
      answered = true;
      if (res.statusCode !== 200) {
        opts.body?.unpipe(req);
        // The body was not sent (or not all of it): this connection cannot carry another request.
        res.once('end', () => req.destroy());
        void readText(res).then(
          (text) => settle(() => reject(toApiError(method, path, { status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text }))),
          (err: NodeJS.ErrnoException) => settle(() => reject(unavailable(socketPath, err, true))),
        );
        return;
      }
      const splitter = new NdjsonLineSplitter();
      let outcome: { kind: 'terminal'; event: Terminal } | { kind: 'error'; error: Error } | undefined;
      // After a ready event the stream goes on (guest progress, an error if the copy fails): `rest`.
      let endRest: (err: Error | undefined) => void = () => {};
      const rest = new Promise<Error | undefined>((r) => (endRest = r));
      let lateError: Error | undefined;
      const takeLate = (chunk: ReturnType<NdjsonLineSplitter['push']>): void => {
        if (!chunk.ok || lateError) return;
        for (const line of chunk.lines) {
          const decoded = decodeTransferEvent(line);
          if (!decoded.ok) continue;
          if (decoded.event.event === 'error') {
            lateError = eventError(decoded.event);
            return;
          }
          opts.onEvent?.(decoded.event);
        }
      };
      const take = (chunk: ReturnType<NdjsonLineSplitter['push']>): void => {
        if (outcome?.kind === 'terminal' && outcome.event.event === 'ready') {
          takeLate(chunk);
          return;
        }
        if (outcome) return;
        if (!chunk.ok) {
          outcome = { kind: 'error', error: badResponse(method, path, chunk.reason) };
          return;
        }
        for (const line of chunk.lines) {
          const decoded = decodeTransferEvent(line);
          if (!decoded.ok) {
            outcome = { kind: 'error', error: badResponse(method, path, `${decoded.reason}: ${line.slice(0, 200)}`) };
            return;
          }
          const event = decoded.event;
          if (event.event === 'error') {
            outcome = { kind: 'error', error: eventError(event) };
            return;
          }
          opts.onEvent?.(event);
          if (event.event === 'done' || event.event === 'ready') {
            outcome = { kind: 'terminal', event: { ...event, rest } };
            if (event.event === 'ready') {
              // Settle now: the caller downloads while the rest of the stream comes.
              settle(() => resolve({ ...event, rest }));
              takeLate({ ok: true, lines: chunk.lines.slice(chunk.lines.indexOf(line) + 1) });
            }
            return;
          }
        }
      };
      res.on('data', (c: Buffer) => take(splitter.push(c)));
      res.on('end', () => {
        take(splitter.end());
        endRest(lateError);
        settle(() => {
          if (outcome?.kind === 'terminal') resolve(outcome.event);
          else if (outcome?.kind === 'error') reject(outcome.error);
          else reject(badResponse(method, path, 'the event stream ended without a done, ready or error event'));
        });
      });
      res.on('close', () => {
        if (res.complete) return;
        endRest(lateError ?? unavailable(socketPath, Object.assign(new Error('the event stream broke off'), { code: 'ECONNRESET' }), true));
        settle(() => {
          if (outcome?.kind === 'terminal') resolve(outcome.event);
          else if (outcome?.kind === 'error') reject(outcome.error);
          else reject(unavailable(socketPath, Object.assign(new Error('the event stream broke off'), { code: 'ECONNRESET' }), true));
        });
      });
    });
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('error', (err) => {
      // Once the daemon has answered, the answer tells what happened (it may stop reading the body early).
      if (!answered) settle(() => reject(unavailable(socketPath, err, connected)));
    });
    if (opts.body) {
      const body = opts.body;
      body.once('error', (err) => {
        req.destroy();
        settle(() => reject(err));
      });
      // Sent with `Expect: 100-continue`: the body goes only after the daemon's go-ahead, so an error
      // answer (no such VM) comes back before any of it is sent.
      req.once('continue', () => body.pipe(req));
    } else {
      req.end();
    }
  });
}

function eventError(event: TransferEvent & { event: 'error' }): ApiError {
  return new ApiError(isErrorCode(event.code) ? HTTP_STATUS[event.code] : 500, event.code, event.message, event.details);
}

function badResponse(method: string, path: string, what: string): ApiError {
  return new ApiError(200, 'BAD_RESPONSE', `the daemon's answer to ${method} ${path} is not what the API promises: ${what}`);
}

function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
