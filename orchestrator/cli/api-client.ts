// Typed client for the daemon's control API over its UNIX socket. Rejects with ApiError when the daemon
// answers with an error, DaemonUnavailableError when it cannot be reached.
import { request } from 'node:http';
import { z } from 'zod';
import type { LogSource, VmDetails, VmSummary } from '../daemon/vm-manager-api.js';
import type { VmgmtErrorCode } from '../daemon/vmgmt-error.js';

export const DEFAULT_SOCKET_PATH = '/run/vmgmt/vmgmt.sock';

/** A daemon code, or BAD_RESPONSE when the answer itself was not what the API promises. */
export type ApiErrorCode = VmgmtErrorCode | 'BAD_RESPONSE';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export type DaemonUnavailableReason =
  /** No file at the socket path. */
  | 'no-socket'
  /** A socket file, but nothing listening on it (stale). */
  | 'refused'
  | 'permission-denied'
  /** Connected, then the connection broke before the answer was complete. */
  | 'disconnected'
  | 'other';

export class DaemonUnavailableError extends Error {
  override readonly name = 'DaemonUnavailableError';
  constructor(
    readonly socketPath: string,
    readonly reason: DaemonUnavailableReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** True when the daemon is simply not running (as opposed to unreachable for another reason). */
  get notRunning(): boolean {
    return this.reason === 'no-socket' || this.reason === 'refused';
  }
}

export interface HealthInfo {
  ok: true;
  version: string;
}

export interface ApiClient {
  readonly socketPath: string;
  health(): Promise<HealthInfo>;
  list(): Promise<{ vms: VmSummary[] }>;
  /** The body is sent as is: the daemon validates it and answers INVALID_DEFINITION with every problem. */
  create(definition: unknown): Promise<VmDetails>;
  inspect(name: string): Promise<VmDetails>;
  start(name: string): Promise<VmDetails>;
  stop(name: string, opts?: { timeoutMs?: number }): Promise<VmDetails>;
  kill(name: string): Promise<VmDetails>;
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  logs(name: string, opts?: { source?: LogSource; tailBytes?: number }): Promise<string>;
}

const errorBodySchema = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).default({}),
});

export interface RawReply {
  status: number;
  contentType: string;
  text: string;
}

export function createApiClient(opts: { socketPath: string }): ApiClient {
  const { socketPath } = opts;
  const vmPath = (name: string, suffix = ''): string => `/v1/vms/${encodeURIComponent(name)}${suffix}`;

  async function call(method: string, path: string, body?: unknown): Promise<RawReply> {
    const reply = await send(socketPath, method, path, body === undefined ? undefined : JSON.stringify(body));
    if (reply.status >= 200 && reply.status < 300) return reply;
    throw toApiError(method, path, reply);
  }

  async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const reply = await call(method, path, body);
    try {
      return JSON.parse(reply.text) as T;
    } catch {
      throw new ApiError(reply.status, 'BAD_RESPONSE', `the daemon answered ${method} ${path} with a body that is not JSON`, {
        body: reply.text.slice(0, 200),
      });
    }
  }

  return {
    socketPath,
    health: () => json('GET', '/v1/health'),
    list: () => json('GET', '/v1/vms'),
    create: (definition) => json('POST', '/v1/vms', definition),
    inspect: (name) => json('GET', vmPath(name)),
    start: (name) => json('POST', vmPath(name, '/start'), {}),
    stop: (name, o = {}) => json('POST', vmPath(name, '/stop'), o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    kill: (name) => json('POST', vmPath(name, '/kill'), {}),
    async remove(name, o = {}) {
      await call('DELETE', vmPath(name, `?force=${o.force === true}`));
    },
    async logs(name, o = {}) {
      const query = new URLSearchParams();
      if (o.source !== undefined) query.set('source', o.source);
      if (o.tailBytes !== undefined) query.set('tailBytes', String(o.tailBytes));
      const q = query.toString();
      return (await call('GET', vmPath(name, `/logs${q ? `?${q}` : ''}`))).text;
    },
  };
}

export function toApiError(method: string, path: string, reply: RawReply): ApiError {
  let parsed: z.infer<typeof errorBodySchema> | undefined;
  try {
    const result = errorBodySchema.safeParse(JSON.parse(reply.text));
    if (result.success) parsed = result.data;
  } catch {
    // not JSON: reported below
  }
  if (!parsed) {
    return new ApiError(
      reply.status,
      'BAD_RESPONSE',
      `the daemon answered ${method} ${path} with HTTP ${reply.status} and no error body: ${reply.text.slice(0, 200) || '(empty)'}`,
      { body: reply.text.slice(0, 200) },
    );
  }
  return new ApiError(reply.status, parsed.code as ApiErrorCode, parsed.message, parsed.details);
}

function send(socketPath: string, method: string, path: string, bodyText: string | undefined): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    let connected = false;
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (bodyText !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(bodyText));
    }
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', (err) => reject(unavailable(socketPath, err, true)));
    });
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('error', (err) => reject(unavailable(socketPath, err, connected)));
    req.end(bodyText);
  });
}

export function unavailable(socketPath: string, err: NodeJS.ErrnoException, connected: boolean): DaemonUnavailableError {
  const opts = { cause: err };
  if (!connected) {
    switch (err.code) {
      case 'ENOENT':
        return new DaemonUnavailableError(socketPath, 'no-socket', `no socket at ${socketPath}`, opts);
      case 'ECONNREFUSED':
        return new DaemonUnavailableError(socketPath, 'refused', `nothing is listening on ${socketPath} (stale socket)`, opts);
      case 'EACCES':
      case 'EPERM':
        return new DaemonUnavailableError(
          socketPath,
          'permission-denied',
          `permission denied on ${socketPath}: run as root or as a member of the socket's group`,
          opts,
        );
    }
    return new DaemonUnavailableError(socketPath, 'other', `cannot connect to the daemon at ${socketPath}: ${err.message}`, opts);
  }
  return new DaemonUnavailableError(
    socketPath,
    'disconnected',
    `the daemon at ${socketPath} closed the connection before answering (${err.message}): see its log (journalctl -u vmgmt)`,
    opts,
  );
}
