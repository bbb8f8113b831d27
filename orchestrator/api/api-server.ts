// The control API's server glue: node:http on a UNIX socket, request bodies read with a size limit, each
// request handed to dispatchApiRequest and its answer written back. Requests to the streaming routes (file
// transfers) go to api-transfers.ts before their body is read. Everything it decides is in the pure files
// next to it.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { ChatApi, VmManagerApi } from '../daemon/vm-manager-api.js';
import { handleEventStream } from './api-events.js';
import { handleExec } from './api-exec.js';
import { ExecTerminals } from './exec-terminals.js';
import { ApiEventHub } from './event-hub.js';
import { findRepoRoot } from '../vm/repo-root.js';
import { dispatchApiRequest } from './api-dispatch.js';
import { parseStreamingRequest } from './api-requests.js';
import { errorResponse, serializeJson, type ApiResponse } from './api-responses.js';
import { bindUnixSocket, unlinkBoundSocket } from './api-socket.js';
import { handleStreamAction } from './api-transfers.js';
import { DEFAULT_DOWNLOAD_TTL_MS, TransferStore } from './transfer-store.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import type { DashboardInfo, VmFiguresList } from './api-contract.js';

export const MAX_REQUEST_BODY_BYTES = 1024 * 1024;
export const DEFAULT_SOCKET_MODE = 0o660;

export interface ApiServerOptions {
  socketPath: string;
  manager: VmManagerApi;
  log: CoreLogger;
  /** File mode of the socket; default 0o660 (owner and group may control VMs). */
  socketMode?: number;
  /** Group id to give the socket, e.g. a `vmgmt` group whose members may use the CLI. */
  socketGroup?: number;
  /** Reported by GET /v1/health; default: package.json's version. */
  version?: string;
  /** How long close() lets requests in flight finish before cutting their connections; default 2000. */
  closeGraceMs?: number;
  /** Where pushed and pulled files wait (created 0700); default `transfers` next to the socket. */
  transferDir?: string;
  /** How long a pulled file waits for its download; default 60000. */
  downloadTtlMs?: number;
  /**
   * The largest file a pull takes from a guest; default DEFAULT_MAX_PULL_BYTES (16 GiB). A function is
   * asked at each pull: the daemon passes its config's `transfers.maxPullBytes`, which SIGHUP may change.
   */
  maxPullBytes?: number | (() => number);
  /** The daemon's chat hub, host side (the /v1/chat routes and `?as=` of the event stream). */
  chat?: ChatApi;
  /** The event stream's hub (`GET /v1/events`); default: a new one, with nothing published but stream.*. */
  events?: ApiEventHub;
  /** How often idle event streams get a keepalive comment; default 15000. */
  keepaliveMs?: number;
  /** `GET /v1/figures` and `GET /v1/dashboard` (orchestrator/observe/). */
  figures?: () => VmFiguresList;
  dashboard?: () => DashboardInfo;
}

export interface ApiServer {
  socketPath: string;
  close(): Promise<void>;
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { manager, log } = opts;
  const events = opts.events ?? new ApiEventHub();
  const keepalive = setInterval(() => events.keepalive(), opts.keepaliveMs ?? 15_000);
  keepalive.unref();
  const version = opts.version ?? packageVersion();
  const store = new TransferStore(
    opts.transferDir ?? path.join(path.dirname(opts.socketPath), 'transfers'),
    log,
    opts.downloadTtlMs ?? DEFAULT_DOWNLOAD_TTL_MS,
    opts.maxPullBytes,
  );
  await store.open();
  const terminals = new ExecTerminals();
  const server = createServer((req, res) => {
    void handle(req, res, false);
  });
  // `Expect: 100-continue`: a push is told to send its body only once the VM is known to take it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res, true);
  });
  // Stopping a VM waits up to its powerdown deadline; the socket is local, so no request deadline.
  server.requestTimeout = 0;

  async function handle(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
    const startedAt = performance.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    let response: ApiResponse;
    try {
      const head = parseStreamingRequest({
        method,
        url,
        contentLength: req.headers['content-length'],
        transferEncoding: req.headers['transfer-encoding'],
        lastEventId: headerValue(req.headers['last-event-id']),
      });
      if (head.kind !== 'buffered') {
        const outcome =
          head.kind === 'error'
            ? { kind: 'answer' as const, response: head.response }
            : head.action.kind === 'events'
              ? handleEventStream(head.action, req, res, { events, log, ...(opts.chat ? { chat: opts.chat } : {}) })
              : head.action.kind === 'exec'
                ? await handleExec(head.action.name, req, res, { manager, log, terminals })
                : await handleStreamAction(head.action, req, res, {
                manager,
                store,
                log,
                nowMs: () => performance.now(),
                acceptBody: () => {
                  if (expectsContinue) res.writeContinue();
                },
              });
        if (outcome.kind === 'answer') {
          // node:http drains an unread body to keep the connection; a client that waits for 100 Continue
          // never sends it, so that connection is closed instead.
          if (expectsContinue) res.setHeader('Connection', 'close');
          writeResponse(res, outcome.response, log);
        }
        const status = outcome.kind === 'answer' ? outcome.response.status : outcome.status;
        log.info('API request', { method, url, status, durationMs: Math.round(performance.now() - startedAt) });
        return;
      }
      if (expectsContinue && !(Number(req.headers['content-length']) > MAX_REQUEST_BODY_BYTES)) res.writeContinue();
      const body = await readBody(req, MAX_REQUEST_BODY_BYTES);
      if (!body.ok) {
        response = errorResponse(
          413,
          'INVALID_REQUEST',
          `request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes (${body.declared ? `Content-Length ${body.seenBytes}` : `${body.seenBytes} bytes received so far`}): send a smaller body`,
          { limitBytes: MAX_REQUEST_BODY_BYTES, seenBytes: body.seenBytes },
        );
        res.setHeader('Connection', 'close');
      } else {
        const result = await dispatchApiRequest(manager, { method, url, bodyText: body.text }, {
          version,
          ...(opts.chat ? { chat: opts.chat } : {}),
          ...(opts.figures ? { figures: opts.figures } : {}),
          ...(opts.dashboard ? { dashboard: opts.dashboard } : {}),
          execTerminals: terminals,
        });
        response = result.response;
        if (result.unexpectedError !== undefined) {
          const err = result.unexpectedError;
          log.error('API request failed unexpectedly', {
            method,
            url,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          });
        }
      }
    } catch (err) {
      log.error('API request handling failed', { method, url, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      response = errorResponse(500, 'INTERNAL', `internal error in the daemon: ${(err as Error).message}`, {});
    }
    writeResponse(res, response, log);
    if (method !== 'GET' || response.status >= 500) {
      log.info('API request', { method, url, status: response.status, durationMs: Math.round(performance.now() - startedAt) });
    }
  }

  const bound = await bindUnixSocket(server, {
    socketPath: opts.socketPath,
    socketMode: opts.socketMode ?? DEFAULT_SOCKET_MODE,
    ...(opts.socketGroup === undefined ? {} : { socketGroup: opts.socketGroup }),
  });
  log.info('API listening', { socketPath: opts.socketPath, socketMode: (opts.socketMode ?? DEFAULT_SOCKET_MODE).toString(8) });

  let closing: Promise<void> | undefined;
  return {
    socketPath: opts.socketPath,
    close() {
      closing ??= (async () => {
        clearInterval(keepalive);
        events.endAll('the daemon is stopping');
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // First: streamed pulls waiting for a download fail now (their event streams end with the error).
        await store.close();
        const grace = setTimeout(() => server.closeAllConnections(), opts.closeGraceMs ?? 2000);
        await closed;
        clearTimeout(grace);
        await unlinkBoundSocket(bound);
      })();
      return closing;
    },
  };
}

type BodyResult = { ok: true; text: string } | { ok: false; seenBytes: number; declared: boolean };

function readBody(req: IncomingMessage, limitBytes: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    return Promise.resolve({ ok: false, seenBytes: declared, declared: true });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let seenBytes = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      seenBytes += chunk.length;
      if (seenBytes > limitBytes) {
        tooLarge = true;
        chunks.length = 0;
        resolve({ ok: false, seenBytes, declared: false });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!tooLarge) resolve({ ok: true, text: Buffer.concat(chunks).toString('utf8') });
    });
    req.on('error', reject);
  });
}

function writeResponse(res: ServerResponse, response: ApiResponse, log: CoreLogger): void {
  if (res.destroyed) return;
  if (res.headersSent) {
    // A streamed answer that failed half way: cutting the connection is the only signal left.
    if (!res.writableEnded) res.destroy();
    return;
  }
  try {
    switch (response.kind) {
      case 'empty':
        res.writeHead(204).end();
        return;
      case 'text':
        res.writeHead(response.status, { ...response.headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(response.body);
        return;
      case 'json': {
        const text = serializeJson(response.body) + '\n';
        res.writeHead(response.status, { ...response.headers, 'Content-Type': 'application/json' }).end(text);
        return;
      }
    }
  } catch (err) {
    log.error('cannot write API response', { status: response.status, error: (err as Error).message });
    if (!res.headersSent) {
      res
        .writeHead(500, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ code: 'INTERNAL', message: `cannot serialise the answer: ${(err as Error).message}`, details: {} }) + '\n');
    } else {
      res.destroy();
    }
  }
}

/** package.json's version (GET /v1/health). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(findRepoRoot(), 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}
