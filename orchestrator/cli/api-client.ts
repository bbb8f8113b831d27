// Typed client for the daemon's control API over its UNIX socket. Every answer is checked against the API
// contract (orchestrator/api/api-contract.ts) before it is handed on: one that does not match is a
// BAD_RESPONSE naming the field. Rejects with ApiError when the daemon answers with an error (or an answer
// that breaks the contract), DaemonUnavailableError when it cannot be reached.
import { request } from 'node:http';
import type { z } from 'zod';
import {
  checkContract,
  describeProblems,
  errorBodySchema,
  healthSchema,
  statsListSchema,
  vmDetailsSchema,
  vmListSchema,
  vmStatsSchema,
  type ErrorCode,
  type HealthInfo,
  type LogSource,
  type VmDetails,
  type VmList,
  type StatsList,
  type VmStats,
} from '../api/api-contract.js';

export const DEFAULT_SOCKET_PATH = '/run/vmgmt/vmgmt.sock';

/**
 * A code of the contract, or BAD_RESPONSE when the answer itself was not what the API promises. A newer
 * daemon may send a code this CLI does not know; it is passed on as sent.
 */
export type ApiErrorCode = ErrorCode | 'BAD_RESPONSE' | (string & {});

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

export type { HealthInfo };

export interface ApiClient {
  readonly socketPath: string;
  health(): Promise<HealthInfo>;
  list(): Promise<VmList>;
  /** The body is sent as is: the daemon validates it and answers INVALID_DEFINITION with every problem. */
  create(definition: unknown): Promise<VmDetails>;
  inspect(name: string): Promise<VmDetails>;
  start(name: string): Promise<VmDetails>;
  stop(name: string, opts?: { timeoutMs?: number }): Promise<VmDetails>;
  kill(name: string): Promise<VmDetails>;
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  logs(name: string, opts?: { source?: LogSource; tailBytes?: number }): Promise<string>;
  /** The VM's stats series (newest `limit` samples), host figures and CPU share. */
  vmStats(name: string, opts?: { limit?: number }): Promise<VmStats>;
  /** Every VM with its newest sample. */
  stats(): Promise<StatsList>;
}

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

  /** A 2xx answer's JSON body, checked against the contract's schema for it. */
  async function json<S extends z.ZodType>(schema: S, method: string, path: string, body?: unknown): Promise<z.output<S>> {
    const reply = await call(method, path, body);
    let value: unknown;
    try {
      value = JSON.parse(reply.text);
    } catch {
      throw new ApiError(reply.status, 'BAD_RESPONSE', `the daemon answered ${method} ${path} with a body that is not JSON`, {
        body: reply.text.slice(0, 200),
      });
    }
    const checked = checkContract(schema, value);
    if (checked.ok) return checked.value;
    throw new ApiError(
      reply.status,
      'BAD_RESPONSE',
      `the daemon's answer to ${method} ${path} is not what the API promises: ${describeProblems(checked.problems)}`,
      { problems: checked.problems },
    );
  }

  return {
    socketPath,
    health: () => json(healthSchema, 'GET', '/v1/health'),
    list: () => json(vmListSchema, 'GET', '/v1/vms'),
    create: (definition) => json(vmDetailsSchema, 'POST', '/v1/vms', definition),
    inspect: (name) => json(vmDetailsSchema, 'GET', vmPath(name)),
    start: (name) => json(vmDetailsSchema, 'POST', vmPath(name, '/start'), {}),
    stop: (name, o = {}) => json(vmDetailsSchema, 'POST', vmPath(name, '/stop'), o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    kill: (name) => json(vmDetailsSchema, 'POST', vmPath(name, '/kill'), {}),
    async remove(name, o = {}) {
      await call('DELETE', vmPath(name, `?force=${o.force === true}`));
    },
    vmStats: (name, o = {}) => json(vmStatsSchema, 'GET', vmPath(name, `/stats${o.limit === undefined ? '' : `?limit=${o.limit}`}`)),
    stats: () => json(statsListSchema, 'GET', '/v1/stats'),
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
    const checked = checkContract(errorBodySchema, JSON.parse(reply.text));
    if (checked.ok) parsed = checked.value;
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
  return new ApiError(reply.status, parsed.code, parsed.message, parsed.details);
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
