// The metrics and dashboard listener: node:http on a loopback address (config `metrics`), apart from the
// control socket. Every request has its Host and Origin checked (access-check.ts); what reads or changes
// state needs the token in `Authorization: Bearer`:
//
//   GET /metrics                 Prometheus text (token unless metrics.auth is "none")
//   GET /v1/events               the API's event stream (token)
//   GET|POST|DELETE /v1/...      the control API's buffered routes, as on the socket (token); file
//                                transfers stay on the socket
//   GET /, /assets/...           the dashboard's page and scripts (no token: they hold no data; the page
//                                takes the token from its URL's #fragment, which the browser never sends)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { handleEventStream } from '../api/api-events.js';
import type { DashboardInfo } from '../api/api-contract.js';
import { dispatchApiRequest, type DispatchOptions } from '../api/api-dispatch.js';
import { parseStreamingRequest } from '../api/api-requests.js';
import { errorResponse, serializeJson, type ApiResponse } from '../api/api-responses.js';
import type { ApiEventHub } from '../api/event-hub.js';
import type { ChatApi, VmManagerApi } from '../daemon/vm-manager-api.js';
import { checkAccess, listenerHosts, type AccessPolicy } from './access-check.js';
import { DashboardAssets } from './dashboard-assets.js';
import { METRICS_CONTENT_TYPE, type DaemonMetrics } from './metrics.js';

const MAX_BODY_BYTES = 1024 * 1024;

export interface ObserveServerOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  token: string;
  tokenFile: string;
  metricsAuth: 'token' | 'none';
  metrics: DaemonMetrics;
  events: ApiEventHub;
  manager: VmManagerApi;
  chat?: ChatApi;
  dispatch: Omit<DispatchOptions, 'chat'>;
  log: CoreLogger;
  assets?: DashboardAssets;
}

export interface ObserveServer {
  readonly port: number;
  info(): DashboardInfo;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;

export async function startObserveServer(opts: ObserveServerOptions): Promise<ObserveServer> {
  const { log } = opts;
  const assets = opts.assets ?? DashboardAssets.load();
  let policy: AccessPolicy = { hosts: new Set(), token: opts.token };

  const server = createServer((req, res) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    void handle(req, res).catch((err: unknown) => {
      log.error('dashboard request failed', { method: req.method, url: req.url, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      write(res, errorResponse(500, 'INTERNAL', `internal error in the daemon: ${(err as Error).message}`, {}));
    });
  });
  server.requestTimeout = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    const needsToken = path === '/metrics' ? opts.metricsAuth === 'token' : path.startsWith('/v1/');
    const access = checkAccess({ host: req.headers.host, origin: header(req.headers.origin), authorization: header(req.headers.authorization) }, policy, needsToken);
    if (!access.ok) {
      log.warn('dashboard request refused', { method, url: path, code: access.code, host: req.headers.host ?? null, origin: req.headers.origin ?? null });
      if (access.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="vmgmt"');
      req.resume();
      return write(res, errorResponse(access.status, access.code === 'NO_TOKEN' || access.code === 'BAD_TOKEN' ? 'UNAUTHORIZED' : 'FORBIDDEN', access.reason, { refusal: access.code }));
    }
    if (path === '/metrics') {
      if (method !== 'GET') return write(res, errorResponse(405, 'INVALID_REQUEST', '/metrics takes GET', {}));
      const text = await opts.metrics.render();
      res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE }).end(text);
      return;
    }
    if (path.startsWith('/v1/')) return api(req, res, method, url);
    if (method !== 'GET' && method !== 'HEAD') return write(res, errorResponse(405, 'INVALID_REQUEST', `${path} takes GET`, {}));
    const asset = assets.get(path);
    if (!asset) return write(res, errorResponse(404, 'NOT_FOUND', `no such page: ${path}`, {}));
    res.writeHead(200, { 'Content-Type': asset.contentType, 'Content-Length': asset.body.byteLength });
    res.end(method === 'HEAD' ? undefined : asset.body);
  }

  async function api(req: IncomingMessage, res: ServerResponse, method: string, url: string): Promise<void> {
    const head = parseStreamingRequest({ method, url, contentLength: req.headers['content-length'], transferEncoding: req.headers['transfer-encoding'], lastEventId: header(req.headers['last-event-id']) });
    if (head.kind === 'error') return write(res, head.response);
    if (head.kind === 'stream') {
      if (head.action.kind !== 'events') {
        req.resume();
        return write(res, errorResponse(404, 'NOT_FOUND', 'file transfers are served on the control socket only (`vmgmt cp`)', {}));
      }
      const outcome = handleEventStream(head.action, req, res, { events: opts.events, log, ...(opts.chat ? { chat: opts.chat } : {}) });
      if (outcome.kind === 'answer') write(res, outcome.response);
      return;
    }
    const body = await readBody(req);
    if (body === undefined) return write(res, errorResponse(413, 'INVALID_REQUEST', `request body is larger than ${MAX_BODY_BYTES} bytes`, { limitBytes: MAX_BODY_BYTES }));
    const result = await dispatchApiRequest(opts.manager, { method, url, bodyText: body }, { ...opts.dispatch, dashboard: info, ...(opts.chat ? { chat: opts.chat } : {}) });
    if (result.unexpectedError !== undefined) log.error('dashboard API request failed unexpectedly', { method, url, error: String((result.unexpectedError as Error)?.stack ?? result.unexpectedError) });
    if (method !== 'GET') log.info('dashboard API request', { method, url, status: result.response.status });
    write(res, result.response);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  policy = { hosts: listenerHosts(opts.host, port), token: opts.token };
  const base = `http://${opts.host === '::1' ? '[::1]' : opts.host}:${port}`;
  log.info('dashboard and metrics listening', { url: base, metricsAuth: opts.metricsAuth, tokenFile: opts.tokenFile });
  function info(): DashboardInfo {
    return { url: `${base}/#token=${opts.token}`, metricsUrl: `${base}/metrics`, tokenFile: opts.tokenFile, token: opts.token, metricsAuth: opts.metricsAuth };
  }

  return {
    port,
    info,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
    },
  };
}

function header(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function write(res: ServerResponse, response: ApiResponse): void {
  if (res.headersSent || res.destroyed) return;
  switch (response.kind) {
    case 'empty':
      res.writeHead(204).end();
      return;
    case 'text':
      res.writeHead(response.status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(response.body);
      return;
    case 'json':
      res.writeHead(response.status, { ...response.headers, 'Content-Type': 'application/json' }).end(serializeJson(response.body) + '\n');
  }
}
