// Turns an HTTP request (method, URL, body text) into a typed action for the VM manager, or an error answer
// that says which part of the request is wrong. Bodies and queries are validated strictly: unknown fields are
// refused, with the schemas of the API contract (api-contract.ts). No I/O.
import type { z } from 'zod';
import {
  agentUpdateBodySchema,
  EXEC_ID_HEADER,
  EXEC_ID_PATTERN,
  execResizeBodySchema,
  chatCallBodySchema,
  chatPolicyQuerySchema,
  chatReplyBodySchema,
  chatSendBodySchema,
  EVENT_KINDS,
  eventsQuerySchema,
  type EventKind,
  emptyBodySchema,
  logsQuerySchema,
  mkdirQuerySchema,
  noQuerySchema,
  removeQuerySchema,
  stopBodySchema,
  statsQuerySchema,
  TRANSFER_ID_PATTERN,
  transferQuerySchema,
  VM_NAME_PATTERN,
  vmDefinitionSchema,
  type LogSource,
  type VmDefinition,
} from './api-contract.js';
import { errorResponse, type ApiResponse } from './api-responses.js';
import { describeProblems, prefixProblems, zodProblems, type FieldProblem } from './field-problems.js';
import { matchRoute, type ApiRoute, type RouteParams } from './api-routes.js';

export type ApiAction =
  | { kind: 'health' }
  | { kind: 'list' }
  | { kind: 'create'; definition: VmDefinition }
  | { kind: 'inspect'; name: string }
  | { kind: 'start'; name: string }
  | { kind: 'stop'; name: string; timeoutMs?: number }
  | { kind: 'kill'; name: string }
  | { kind: 'pause' | 'resume'; name: string }
  | { kind: 'remove'; name: string; force: boolean }
  | { kind: 'logs'; name: string; source: LogSource; tailBytes?: number; fromByte?: number }
  | { kind: 'update'; name: string; definition: VmDefinition }
  | { kind: 'host' }
  | { kind: 'chatPeers' }
  | { kind: 'chatSend'; to: string; data: Uint8Array; as?: string }
  | { kind: 'chatCall'; to: string; data: Uint8Array; timeoutMs: number; as?: string }
  | { kind: 'chatReply'; as: string; callId: number; status: number; data: Uint8Array }
  | { kind: 'chatPolicyCheck'; from: string; to: string }
  | { kind: 'vm-stats'; name: string; limit?: number }
  | { kind: 'stats' }
  | { kind: 'figures' }
  | { kind: 'dashboard' }

  | { kind: 'agentUpdate'; name: string; binary?: string; reportInMs?: number; probationMs?: number }
  | { kind: 'tree'; name: string; guestPath: string }
  | { kind: 'mkdir'; name: string; guestPath: string; mode: number }
  | { kind: 'execResize'; name: string; id: string; rows: number; cols: number };

/** Actions of the streaming routes: the server hands these over before reading the request body. */
export type StreamAction =
  | { kind: 'push'; name: string; guestPath: string; sizeBytes: number }
  | { kind: 'pull'; name: string; guestPath: string }
  | { kind: 'download'; id: string }
  /** `vmgmt vm exec`: the request line and stdin are in the body. */
  | { kind: 'exec'; name: string }
  /** The event stream: the kinds asked for, and a host-side chat name to hold while it is open. */
  | { kind: 'events'; kinds: EventKind[]; as?: string; vms?: string[]; afterId?: number };

/** What the server knows of a request before reading its body. */
export interface RawRequestHead {
  method: string;
  url: string;
  /** The Content-Length header as sent, if any. */
  contentLength?: string | undefined;
  /** The Transfer-Encoding header as sent, if any. */
  transferEncoding?: string | undefined;
  /** The Last-Event-ID header (an event stream that resumes), if any. */
  lastEventId?: string | undefined;
}

export type ParsedStreamingRequest =
  | { kind: 'buffered' }
  | { kind: 'stream'; action: StreamAction }
  | { kind: 'error'; response: ApiResponse };

export interface RawApiRequest {
  method: string;
  /** Request target as sent, e.g. `/v1/vms/a/logs?source=qemu`. */
  url: string;
  bodyText: string;
}

export type ParsedApiRequest = { ok: true; action: ApiAction } | { ok: false; response: ApiResponse };

export function parseApiRequest(req: RawApiRequest): ParsedApiRequest {
  const queryAt = req.url.indexOf('?');
  const path = queryAt === -1 ? req.url : req.url.slice(0, queryAt);
  const queryText = queryAt === -1 ? '' : req.url.slice(queryAt + 1);

  const match = matchRoute(req.method, path);
  switch (match.kind) {
    case 'not-found':
      return fail(errorResponse(404, 'NOT_FOUND', `no such API route: ${req.method} ${path}`, { method: req.method, path }));
    case 'method-not-allowed':
      return fail(
        errorResponse(
          405,
          'INVALID_REQUEST',
          `${req.method} is not allowed on ${path}: use ${match.allowed.join(' or ')}`,
          { method: req.method, path, allowed: match.allowed },
          { Allow: match.allowed.join(', ') },
        ),
      );
    case 'bad-path':
      return fail(errorResponse(400, 'INVALID_REQUEST', `bad request path ${path}: ${match.reason}`, { path }));
    case 'match':
      break;
  }

  const query = parseQuery(queryText);
  if (!query.ok) return query;
  return parseRouteRequest(match.route, match.params.name, query.values, req.bodyText, match.params.id);
}

function parseRouteRequest(
  route: ApiRoute,
  rawName: string | undefined,
  query: Record<string, string>,
  bodyText: string,
  rawId?: string,
): ParsedApiRequest {
  let name = '';
  if (route.segments.includes(':name')) {
    const checked = checkName(rawName ?? '');
    if (!checked.ok) return checked;
    name = checked.name;
  }

  switch (route.id) {
    case 'health':
    case 'list':
    case 'inspect': {
      const problems = [...checkQuery(noQuerySchema, query), ...checkNoBody(bodyText)];
      if (problems.length) return invalid(route, problems);
      return ok(route.id === 'inspect' ? { kind: 'inspect', name } : { kind: route.id });
    }
    case 'create': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: true });
      if (!body.ok) return body;
      const parsed = vmDefinitionSchema.safeParse(body.value);
      if (!parsed.success) {
        const problems = zodProblems(parsed.error);
        return fail(
          errorResponse(400, 'INVALID_DEFINITION', `invalid VM definition: ${describeProblems(problems)}`, { problems }),
        );
      }
      return ok({ kind: 'create', definition: parsed.data });
    }
    case 'start':
    case 'kill':
    case 'pause':
    case 'resume': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: false });
      if (!body.ok) return body;
      const parsed = emptyBodySchema.safeParse(body.value ?? {});
      if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
      return ok({ kind: route.id, name });
    }
    case 'stop': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: false });
      if (!body.ok) return body;
      const parsed = stopBodySchema.safeParse(body.value ?? {});
      if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
      return ok(parsed.data.timeoutMs === undefined ? { kind: 'stop', name } : { kind: 'stop', name, timeoutMs: parsed.data.timeoutMs });
    }
    case 'remove': {
      const parsed = removeQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      return ok({ kind: 'remove', name, force: parsed.data.force === 'true' });
    }
    case 'logs': {
      const parsed = logsQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      const { source, tailBytes, fromByte } = parsed.data;
      return ok({ kind: 'logs', name, source, ...(tailBytes === undefined ? {} : { tailBytes }), ...(fromByte === undefined ? {} : { fromByte }) });
    }
    case 'update': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: true });
      if (!body.ok) return body;
      const parsed = vmDefinitionSchema.safeParse(body.value);
      const problems = parsed.success ? [] : zodProblems(parsed.error);
      if (parsed.success && parsed.data.name !== name) problems.push({ path: 'name', message: `is ${JSON.stringify(parsed.data.name)}, but the request updates ${name}: a VM cannot be renamed` });
      if (!parsed.success || problems.length) {
        return fail(errorResponse(400, 'INVALID_DEFINITION', `invalid VM definition: ${describeProblems(problems)}`, { problems }));
      }
      return ok({ kind: 'update', name, definition: parsed.data });
    }
    case 'host': {
      const problems = [...checkQuery(noQuerySchema, query), ...checkNoBody(bodyText)];
      if (problems.length) return invalid(route, problems);
      return ok({ kind: 'host' });
    }
    case 'chatPeers': {
      const problems = [...checkQuery(noQuerySchema, query), ...checkNoBody(bodyText)];
      if (problems.length) return invalid(route, problems);
      return ok({ kind: 'chatPeers' });
    }
    case 'chatPolicyCheck': {
      const parsed = chatPolicyQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      return ok({ kind: 'chatPolicyCheck', from: parsed.data.from, to: parsed.data.to });
    }
    case 'chatSend':
    case 'chatCall':
    case 'chatReply': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: true });
      if (!body.ok) return body;
      if (route.id === 'chatSend') {
        const parsed = chatSendBodySchema.safeParse(body.value);
        if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
        const { to, as } = parsed.data;
        return ok({ kind: 'chatSend', to, data: payloadBytes(parsed.data), ...(as === undefined ? {} : { as }) });
      }
      if (route.id === 'chatCall') {
        const parsed = chatCallBodySchema.safeParse(body.value);
        if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
        const { to, as, timeoutMs } = parsed.data;
        return ok({ kind: 'chatCall', to, timeoutMs, data: payloadBytes(parsed.data), ...(as === undefined ? {} : { as }) });
      }
      const parsed = chatReplyBodySchema.safeParse(body.value);
      if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
      const { as, callId, status } = parsed.data;
      return ok({ kind: 'chatReply', as, callId, status, data: payloadBytes(parsed.data) });
    }
    case 'vm-stats': {
      const parsed = statsQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      return ok(parsed.data.limit === undefined ? { kind: 'vm-stats', name } : { kind: 'vm-stats', name, limit: parsed.data.limit });
    }
    case 'stats': {
      const problems = [...checkQuery(noQuerySchema, query), ...checkNoBody(bodyText)];
      if (problems.length) return invalid(route, problems);
      return ok({ kind: 'stats' });
    }
    case 'figures':
    case 'dashboard': {
      const problems = [...checkQuery(noQuerySchema, query), ...checkNoBody(bodyText)];
      if (problems.length) return invalid(route, problems);
      return ok({ kind: route.id });
    }
    case 'agentUpdate': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: false });
      if (!body.ok) return body;
      const parsed = agentUpdateBodySchema.safeParse(body.value ?? {});
      if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
      return ok({ kind: 'agentUpdate', name, ...parsed.data });
    }
    case 'tree': {
      const parsed = transferQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      return ok({ kind: 'tree', name, guestPath: parsed.data.guestPath });
    }
    case 'mkdir': {
      const parsed = mkdirQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      return ok({ kind: 'mkdir', name, guestPath: parsed.data.guestPath, mode: parseInt(parsed.data.mode ?? '755', 8) });
    }
    case 'execResize': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const id = rawId ?? '';
      if (!EXEC_ID_PATTERN.test(id)) return fail(errorResponse(404, 'NOT_FOUND', `no exec session ${JSON.stringify(id)}: exec ids are the UUIDs of a --tty exec answer's ${EXEC_ID_HEADER} header`, { id }));
      const body = parseJsonBody(bodyText, { required: true });
      if (!body.ok) return body;
      const parsed = execResizeBodySchema.safeParse(body.value);
      if (!parsed.success) return invalid(route, prefixProblems('body', zodProblems(parsed.error)));
      return ok({ kind: 'execResize', name, id, ...parsed.data });
    }
    case 'push':
    case 'pull':
    case 'download':
    case 'events':
    case 'exec':
      return fail(
        errorResponse(500, 'INTERNAL', `${route.method} /${route.segments.join('/')} is a streaming route and must not be read as a buffered request`, {
          route: route.id,
        }),
      );
  }
}

/**
 * For a request to a streaming route (file push, pull, download): the typed action or an error answer,
 * from the method, URL and body headers alone. Any other request: `buffered`, to be read and parsed by
 * parseApiRequest (which also answers unknown routes and wrong methods).
 */
export function parseStreamingRequest(head: RawRequestHead): ParsedStreamingRequest {
  const queryAt = head.url.indexOf('?');
  const path = queryAt === -1 ? head.url : head.url.slice(0, queryAt);
  const match = matchRoute(head.method, path);
  if (match.kind !== 'match' || match.route.streaming !== true) return { kind: 'buffered' };
  const parsed = parseStreamingRoute(match.route, match.params, queryAt === -1 ? '' : head.url.slice(queryAt + 1), head);
  return parsed.ok ? { kind: 'stream', action: parsed.action } : { kind: 'error', response: parsed.response };
}

function parseStreamingRoute(
  route: ApiRoute,
  params: RouteParams,
  queryText: string,
  head: RawRequestHead,
): { ok: true; action: StreamAction } | { ok: false; response: ApiResponse } {
  const query = parseQuery(queryText);
  if (!query.ok) return query;

  if (route.id === 'events') {
    const parsed = eventsQuerySchema.safeParse(query.values);
    const problems = [...(parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error))), ...checkNoRawBody(head)];
    if (problems.length || !parsed.success) return invalid(route, problems);
    const kinds = parseEventKinds(parsed.data.kinds);
    if (!kinds.ok) return invalid(route, [{ path: 'query.kinds', message: kinds.message }]);
    const vms = parsed.data.vm === undefined ? undefined : parsed.data.vm.split(',');
    const badVm = vms?.find((v) => !VM_NAME_PATTERN.test(v));
    if (badVm !== undefined) return invalid(route, [{ path: 'query.vm', message: `${JSON.stringify(badVm)} is not a VM name` }]);
    // The header is what a reconnecting EventSource sends; ?after= is the same for clients that cannot set it.
    const after = parsed.data.after ?? head.lastEventId;
    if (after !== undefined && !/^[0-9]{1,16}$/.test(after)) return invalid(route, [{ path: 'header.Last-Event-ID', message: `must be an event id (a whole number), got ${JSON.stringify(after.slice(0, 40))}` }]);
    return {
      ok: true,
      action: {
        kind: 'events',
        kinds: kinds.kinds,
        ...(parsed.data.as === undefined ? {} : { as: parsed.data.as }),
        ...(vms === undefined ? {} : { vms }),
        ...(after === undefined ? {} : { afterId: Number(after) }),
      },
    };
  }

  if (route.id === 'download') {
    const problems = [...checkQuery(noQuerySchema, query.values), ...checkNoRawBody(head)];
    if (problems.length) return invalid(route, problems);
    const id = params.id ?? '';
    if (!TRANSFER_ID_PATTERN.test(id)) {
      return fail(errorResponse(404, 'NOT_FOUND', `no download ${JSON.stringify(id)}: download ids are 32 hex digits from a pull's ready event`, { id }));
    }
    return { ok: true, action: { kind: 'download', id } };
  }

  const checked = checkName(params.name ?? '');
  if (!checked.ok) return checked;
  const { name } = checked;
  if (route.id === 'exec') {
    const problems = checkQuery(noQuerySchema, query.values);
    if (problems.length) return invalid(route, problems);
    return { ok: true, action: { kind: 'exec', name } };
  }
  const parsedQuery = transferQuerySchema.safeParse(query.values);
  const queryProblems = parsedQuery.success ? [] : prefixProblems('query', zodProblems(parsedQuery.error));

  if (route.id === 'pull') {
    const problems = [...queryProblems, ...checkNoRawBody(head)];
    if (problems.length || !parsedQuery.success) return invalid(route, problems);
    return { ok: true, action: { kind: 'pull', name, guestPath: parsedQuery.data.guestPath } };
  }

  if (head.transferEncoding !== undefined || head.contentLength === undefined) {
    return fail(
      errorResponse(
        411,
        'INVALID_REQUEST',
        `${route.method} ${'/' + route.segments.join('/')} needs the file's size in Content-Length: send the body with Content-Length, not chunked`,
        { transferEncoding: head.transferEncoding ?? null },
      ),
    );
  }
  const sizeBytes = /^[0-9]{1,15}$/.test(head.contentLength) ? Number(head.contentLength) : NaN;
  const problems = [...queryProblems];
  if (!Number.isSafeInteger(sizeBytes)) problems.push({ path: 'header.Content-Length', message: `must be a whole number of bytes (got ${JSON.stringify(head.contentLength)})` });
  if (problems.length || !parsedQuery.success) return invalid(route, problems);
  return { ok: true, action: { kind: 'push', name, guestPath: parsedQuery.data.guestPath, sizeBytes } };
}

/** `text` or `dataBase64` (the schema checked that exactly one is given) as bytes. */
function payloadBytes(p: { text?: string | undefined; dataBase64?: string | undefined }): Uint8Array {
  return p.text !== undefined ? new TextEncoder().encode(p.text) : new Uint8Array(Buffer.from(p.dataBase64 ?? '', 'base64'));
}

/** `chat.presence,chat.message` → the kinds; absent → every kind. */
function parseEventKinds(text: string | undefined): { ok: true; kinds: EventKind[] } | { ok: false; message: string } {
  if (text === undefined || text === '') return { ok: true, kinds: [...EVENT_KINDS] };
  const kinds: EventKind[] = [];
  for (const k of text.split(',')) {
    if (!(EVENT_KINDS as readonly string[]).includes(k)) return { ok: false, message: `unknown event kind ${JSON.stringify(k)}: use ${EVENT_KINDS.join(', ')}` };
    if (!kinds.includes(k as EventKind)) kinds.push(k as EventKind);
  }
  return { ok: true, kinds };
}

/** Routes without a body accept none, Content-Length: 0, or an empty chunked body (not read). */
function checkNoRawBody(head: RawRequestHead): FieldProblem[] {
  if (head.contentLength === undefined || head.contentLength === '0') return [];
  return [{ path: 'body', message: 'this route takes no request body' }];
}

function checkName(name: string): { ok: true; name: string } | { ok: false; response: ApiResponse } {
  if (VM_NAME_PATTERN.test(name)) return { ok: true, name };
  return fail(
    errorResponse(
      400,
      'INVALID_REQUEST',
      `invalid VM name ${JSON.stringify(name)}: use 1-32 characters: lower-case letters, digits, - and _, starting with a letter or digit`,
      { name },
    ),
  );
}

function parseQuery(text: string): { ok: true; values: Record<string, string> } | { ok: false; response: ApiResponse } {
  const values: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    if (Object.hasOwn(values, key)) {
      return fail(errorResponse(400, 'INVALID_REQUEST', `query parameter ${key} is given more than once`, { parameter: key }));
    }
    values[key] = value;
  }
  return { ok: true, values };
}

function checkQuery(schema: z.ZodType, query: Record<string, string>): FieldProblem[] {
  const parsed = schema.safeParse(query);
  return parsed.success ? [] : prefixProblems('query', zodProblems(parsed.error));
}

function checkNoBody(bodyText: string): FieldProblem[] {
  return bodyText.trim() === '' ? [] : [{ path: 'body', message: 'this route takes no request body' }];
}

function parseJsonBody(
  bodyText: string,
  opts: { required: boolean },
): { ok: true; value: unknown } | { ok: false; response: ApiResponse } {
  if (bodyText.trim() === '') {
    if (!opts.required) return { ok: true, value: undefined };
    return fail(errorResponse(400, 'INVALID_REQUEST', 'request body is empty: send a JSON object', {}));
  }
  try {
    return { ok: true, value: JSON.parse(bodyText) as unknown };
  } catch (err) {
    return fail(
      errorResponse(400, 'INVALID_REQUEST', `request body is not valid JSON: ${(err as Error).message}`, {
        bodyBytes: bodyText.length,
      }),
    );
  }
}

function invalid(route: ApiRoute, problems: FieldProblem[]): { ok: false; response: ApiResponse } {
  return fail(
    errorResponse(400, 'INVALID_REQUEST', `invalid ${route.method} /${route.segments.join('/')} request: ${describeProblems(problems)}`, {
      problems,
    }),
  );
}

function ok(action: ApiAction): ParsedApiRequest {
  return { ok: true, action };
}

function fail(response: ApiResponse): { ok: false; response: ApiResponse } {
  return { ok: false, response };
}
