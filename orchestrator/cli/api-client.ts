// Typed client for the daemon's control API over its UNIX socket. Every answer is checked against the API
// contract (orchestrator/api/api-contract.ts) before it is handed on: one that does not match is a
// BAD_RESPONSE naming the field. Rejects with ApiError when the daemon answers with an error (or an answer
// that breaks the contract), DaemonUnavailableError when it cannot be reached.
import { request, type ClientRequest } from 'node:http';
import { SseParser } from './sse-parser.js';
import type { z } from 'zod';
import {
  agentUpdateResultSchema,
  guestTreeSchema,
  mkdirResultSchema,
  type GuestTreeAnswer,
  type AgentUpdateBody,
  type AgentUpdateResult,
  chatCallResultSchema,
  chatPeersSchema,
  chatPolicyCheckSchema,
  chatReplyResultSchema,
  chatSendResultSchema,
  decodeEvent,
  type ApiEvent,
  type ChatCallResult,
  type ChatPeers,
  type ChatPolicyCheck,
  type ChatSendResult,
  type EventKind,
  checkContract,
  describeProblems,
  errorBodySchema,
  healthSchema,
  hostInfoSchema,
  LOG_END_HEADER,
  LOG_RESTART_AT_HEADER,
  LOG_VM_STATE_HEADER,
  VM_STATES,
  type VmStateName,
  type ExecResizeBody,
  statsListSchema,
  vmDetailsSchema,
  vmListSchema,
  vmStatsSchema,
  dashboardInfoSchema,
  vmFiguresListSchema,
  type DashboardInfo,
  type VmFiguresList,
  type ErrorCode,
  type HealthInfo,
  type HostInfo,
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
  pause(name: string): Promise<VmDetails>;
  resume(name: string): Promise<VmDetails>;
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  logs(name: string, opts?: { source?: LogSource; tailBytes?: number }): Promise<string>;
  /**
   * A piece of a log (its tail, or from fromByte on), the offset just past it, and the VM's state when it was
   * read (with when a crashed VM restarts, if it does), for `vm logs -f`.
   */
  logChunk(name: string, opts: { source?: LogSource; tailBytes?: number; fromByte?: number }): Promise<{ text: string; endByte: number; vmState: VmStateName; restartAt: string | null }>;
  /** Replaces a stopped VM's definition (sent as is: the daemon validates it as at create). */
  update(name: string, definition: unknown): Promise<VmDetails>;
  /** `vm exec --tty`: the terminal's new size, for the session whose answer carried EXEC_ID_HEADER `id`. */
  execResize(name: string, id: string, size: ExecResizeBody): Promise<void>;
  host(): Promise<HostInfo>;
  /** The VM's stats series (newest `limit` samples), host figures and CPU share. */
  vmStats(name: string, opts?: { limit?: number }): Promise<VmStats>;
  /** Every VM with its newest sample. */
  stats(): Promise<StatsList>;
  /** Replaces the VM's guest agent in place with a new vmgmt-guest. */
  agentUpdate(name: string, body: AgentUpdateBody): Promise<AgentUpdateResult>;
  /** `vmgmt cp -r` from a VM: the guest tree under guestPath, checked by the daemon. */
  guestTree(name: string, guestPath: string): Promise<GuestTreeAnswer>;
  /** `vmgmt cp -r` to a VM: makes a guest directory (an existing one is fine). */
  makeGuestDir(name: string, guestPath: string, mode: number): Promise<void>;
  chatPeers(): Promise<ChatPeers>;
  chatSend(body: ChatMessageBody): Promise<ChatSendResult>;
  chatCall(body: ChatMessageBody & { timeoutMs?: number }): Promise<ChatCallResult>;
  chatReply(body: { as: string; callId: number; status: number; text?: string; dataBase64?: string }): Promise<{ callId: number; replied: true }>;
  chatPolicyCheck(from: string, to: string): Promise<ChatPolicyCheck>;
  /** Follows `GET /v1/events`; each event checked against the contract (kinds this CLI does not know are skipped). */
  events(opts: { kinds?: readonly EventKind[]; as?: string; vms?: readonly string[]; afterId?: number }, onEvent: (event: ApiEvent) => void): EventStream;
  /** What the daemon sees of each VM now (`vmgmt top`). */
  figures(): Promise<VmFiguresList>;
  /** The dashboard's address and token (`vmgmt dashboard`). */
  dashboard(): Promise<DashboardInfo>;
}

export interface ChatMessageBody {
  to: string;
  as?: string;
  text?: string;
  dataBase64?: string;
}

export interface EventStream {
  /** Resolves at `stream.open`; rejects with ApiError (an error answer) or DaemonUnavailableError. */
  readonly opened: Promise<void>;
  /** How the stream stopped: `stream.end`, `stream.dropped`, closed by close(), or the connection broke. */
  readonly done: Promise<{ reason: 'ended' | 'dropped' | 'closed' | 'disconnected'; message: string }>;
  close(): void;
}

export interface RawReply {
  status: number;
  contentType: string;
  text: string;
  headers?: Record<string, string | string[] | undefined>;
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

  function events(o: { kinds?: readonly EventKind[]; as?: string; vms?: readonly string[]; afterId?: number }, onEvent: (event: ApiEvent) => void): EventStream {
    const query = new URLSearchParams();
    if (o.kinds) query.set('kinds', o.kinds.join(','));
    if (o.as !== undefined) query.set('as', o.as);
    if (o.vms !== undefined) query.set('vm', o.vms.join(','));
    const path = `/v1/events${query.size ? `?${query}` : ''}`;
    let req: ClientRequest | undefined;
    let closedByUs = false;
    let settleOpen!: { resolve: () => void; reject: (e: unknown) => void };
    let settleDone!: (r: Awaited<EventStream['done']>) => void;
    const opened = new Promise<void>((resolve, reject) => (settleOpen = { resolve, reject }));
    const done = new Promise<Awaited<EventStream['done']>>((resolve) => (settleDone = resolve));
    opened.catch(() => {});
    let connected = false;
    let last: Awaited<EventStream['done']> | undefined;
    const headers: Record<string, string> = { Accept: 'text/event-stream', ...(o.afterId === undefined ? {} : { 'Last-Event-ID': String(o.afterId) }) };
    req = request({ socketPath, method: 'GET', path, headers }, (res) => {
      if ((res.statusCode ?? 0) !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const err = toApiError('GET', path, { status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') });
          settleOpen.reject(err);
          settleDone({ reason: 'closed', message: err.message });
        });
        return;
      }
      const parser = new SseParser();
      res.on('data', (chunk: Buffer) => {
        let frames;
        try {
          frames = parser.push(chunk);
        } catch (err) {
          last = { reason: 'disconnected', message: (err as Error).message };
          res.destroy();
          return;
        }
        for (const f of frames) {
          const decoded = decodeEvent(f.data);
          if (!decoded.ok) {
            if (decoded.kind === 'unknown-kind') continue;
            settleOpen.reject(new ApiError(200, 'BAD_RESPONSE', `the daemon's event stream sent an event that is not what the API promises: ${decoded.reason}`, {}));
            continue;
          }
          const e = decoded.event;
          if (e.kind === 'stream.open') settleOpen.resolve();
          else if (e.kind === 'stream.end') last = { reason: 'ended', message: e.data.reason };
          else if (e.kind === 'stream.dropped') last = { reason: 'dropped', message: e.data.reason };
          onEvent(e);
        }
      });
      const finish = (): void => settleDone(closedByUs ? { reason: 'closed', message: 'closed' } : (last ?? { reason: 'disconnected', message: `the daemon at ${socketPath} closed the event stream` }));
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
    });
    req.on('socket', (sock) => sock.once('connect', () => (connected = true)));
    req.on('error', (err) => {
      if (closedByUs) return settleDone({ reason: 'closed', message: 'closed' });
      const e = unavailable(socketPath, err as NodeJS.ErrnoException, connected);
      settleOpen.reject(e);
      settleDone({ reason: 'disconnected', message: e.message });
    });
    req.end();
    return {
      opened,
      done,
      close() {
        closedByUs = true;
        req?.destroy();
        settleDone({ reason: 'closed', message: 'closed' });
      },
    };
  }

  return {
    socketPath,
    events,
    chatPeers: () => json(chatPeersSchema, 'GET', '/v1/chat/peers'),
    chatSend: (body) => json(chatSendResultSchema, 'POST', '/v1/chat/send', body),
    chatCall: (body) => json(chatCallResultSchema, 'POST', '/v1/chat/call', body),
    chatReply: (body) => json(chatReplyResultSchema, 'POST', '/v1/chat/reply', body),
    chatPolicyCheck: (from, to) => json(chatPolicyCheckSchema, 'GET', `/v1/chat/policy/check?${new URLSearchParams({ from, to })}`),
    health: () => json(healthSchema, 'GET', '/v1/health'),
    list: () => json(vmListSchema, 'GET', '/v1/vms'),
    create: (definition) => json(vmDetailsSchema, 'POST', '/v1/vms', definition),
    inspect: (name) => json(vmDetailsSchema, 'GET', vmPath(name)),
    start: (name) => json(vmDetailsSchema, 'POST', vmPath(name, '/start'), {}),
    stop: (name, o = {}) => json(vmDetailsSchema, 'POST', vmPath(name, '/stop'), o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    kill: (name) => json(vmDetailsSchema, 'POST', vmPath(name, '/kill'), {}),
    update: (name, definition) => json(vmDetailsSchema, 'PUT', vmPath(name), definition),
    host: () => json(hostInfoSchema, 'GET', '/v1/host'),
    async logChunk(name, o) {
      const query = new URLSearchParams();
      if (o.source !== undefined) query.set('source', o.source);
      if (o.tailBytes !== undefined) query.set('tailBytes', String(o.tailBytes));
      if (o.fromByte !== undefined) query.set('fromByte', String(o.fromByte));
      const path = vmPath(name, `/logs?${query.toString()}`);
      const reply = await call('GET', path);
      const end = Number(reply.headers?.[LOG_END_HEADER]);
      if (!Number.isSafeInteger(end) || end < 0) {
        throw new ApiError(reply.status, 'BAD_RESPONSE', `the daemon answered GET ${path} without a valid ${LOG_END_HEADER} header (an older daemon?)`, {});
      }
      const vmState = reply.headers?.[LOG_VM_STATE_HEADER];
      if (!(VM_STATES as readonly string[]).includes(String(vmState))) {
        throw new ApiError(reply.status, 'BAD_RESPONSE', `the daemon answered GET ${path} without a valid ${LOG_VM_STATE_HEADER} header (an older daemon?)`, {});
      }
      const restartAt = reply.headers?.[LOG_RESTART_AT_HEADER];
      return { text: reply.text, endByte: end, vmState: vmState as VmStateName, restartAt: typeof restartAt === 'string' && restartAt !== '' ? restartAt : null };
    },
    pause: (name) => json(vmDetailsSchema, 'POST', vmPath(name, '/pause'), {}),
    resume: (name) => json(vmDetailsSchema, 'POST', vmPath(name, '/resume'), {}),
    async execResize(name, id, size) {
      await call('POST', vmPath(name, `/exec/${encodeURIComponent(id)}/resize`), size);
    },
    async remove(name, o = {}) {
      await call('DELETE', vmPath(name, `?force=${o.force === true}`));
    },
    vmStats: (name, o = {}) => json(vmStatsSchema, 'GET', vmPath(name, `/stats${o.limit === undefined ? '' : `?limit=${o.limit}`}`)),
    stats: () => json(statsListSchema, 'GET', '/v1/stats'),
    figures: () => json(vmFiguresListSchema, 'GET', '/v1/figures'),
    dashboard: () => json(dashboardInfoSchema, 'GET', '/v1/dashboard'),
    agentUpdate: (name, body) => json(agentUpdateResultSchema, 'POST', vmPath(name, '/agent/update'), body),
    guestTree: (name, guestPath) => json(guestTreeSchema, 'GET', vmPath(name, `/files/tree?${new URLSearchParams({ guestPath }).toString()}`)),
    async makeGuestDir(name, guestPath, mode) {
      await json(mkdirResultSchema, 'POST', vmPath(name, `/files/mkdir?${new URLSearchParams({ guestPath, mode: (mode & 0o7777).toString(8) }).toString()}`));
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
          headers: res.headers,
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
