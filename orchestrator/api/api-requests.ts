// Turns an HTTP request (method, URL, body text) into a typed action for the VM manager, or an error answer
// that says which part of the request is wrong. Bodies and queries are validated strictly: unknown fields are
// refused. No I/O.
import { z } from 'zod';
import { definitionProblems, vmDefinitionSchema, VM_NAME_PATTERN, type FieldProblem, type VmDefinition } from '../daemon/vm-definition.js';
import type { LogSource } from '../daemon/vm-manager-api.js';
import { errorResponse, type ApiResponse } from './api-responses.js';
import { matchRoute, type ApiRoute } from './api-routes.js';

export type ApiAction =
  | { kind: 'health' }
  | { kind: 'list' }
  | { kind: 'create'; definition: VmDefinition }
  | { kind: 'inspect'; name: string }
  | { kind: 'start'; name: string }
  | { kind: 'stop'; name: string; timeoutMs?: number }
  | { kind: 'kill'; name: string }
  | { kind: 'remove'; name: string; force: boolean }
  | { kind: 'logs'; name: string; source: LogSource; tailBytes?: number };

export interface RawApiRequest {
  method: string;
  /** Request target as sent, e.g. `/v1/vms/a/logs?source=qemu`. */
  url: string;
  bodyText: string;
}

export type ParsedApiRequest = { ok: true; action: ApiAction } | { ok: false; response: ApiResponse };

export const MAX_STOP_TIMEOUT_MS = 600_000;

const emptyBodySchema = z.object({}).strict();

export const stopBodySchema = z
  .object({ timeoutMs: z.number().int().min(0).max(MAX_STOP_TIMEOUT_MS).optional() })
  .strict();

const noQuerySchema = z.object({}).strict();

const removeQuerySchema = z
  .object({ force: z.enum(['true', 'false']).optional() })
  .strict();

const logsQuerySchema = z
  .object({
    source: z.enum(['console', 'qemu', 'daemon']).default('console'),
    tailBytes: z
      .string()
      .regex(/^[0-9]{1,12}$/, 'must be a positive whole number of bytes')
      .transform(Number)
      .pipe(z.number().int().min(1))
      .optional(),
  })
  .strict();

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
  return parseRouteRequest(match.route, match.params.name, query.values, req.bodyText);
}

function parseRouteRequest(
  route: ApiRoute,
  rawName: string | undefined,
  query: Record<string, string>,
  bodyText: string,
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
        const problems = definitionProblems(parsed.error);
        return fail(
          errorResponse(400, 'INVALID_DEFINITION', `invalid VM definition: ${describeProblems(problems)}`, { problems }),
        );
      }
      return ok({ kind: 'create', definition: parsed.data });
    }
    case 'start':
    case 'kill': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: false });
      if (!body.ok) return body;
      const parsed = emptyBodySchema.safeParse(body.value ?? {});
      if (!parsed.success) return invalid(route, prefixed('body', definitionProblems(parsed.error)));
      return ok({ kind: route.id, name });
    }
    case 'stop': {
      const queryProblems = checkQuery(noQuerySchema, query);
      if (queryProblems.length) return invalid(route, queryProblems);
      const body = parseJsonBody(bodyText, { required: false });
      if (!body.ok) return body;
      const parsed = stopBodySchema.safeParse(body.value ?? {});
      if (!parsed.success) return invalid(route, prefixed('body', definitionProblems(parsed.error)));
      return ok(parsed.data.timeoutMs === undefined ? { kind: 'stop', name } : { kind: 'stop', name, timeoutMs: parsed.data.timeoutMs });
    }
    case 'remove': {
      const parsed = removeQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixed('query', definitionProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      return ok({ kind: 'remove', name, force: parsed.data.force === 'true' });
    }
    case 'logs': {
      const parsed = logsQuerySchema.safeParse(query);
      const problems = [...(parsed.success ? [] : prefixed('query', definitionProblems(parsed.error))), ...checkNoBody(bodyText)];
      if (problems.length || !parsed.success) return invalid(route, problems);
      const { source, tailBytes } = parsed.data;
      return ok(tailBytes === undefined ? { kind: 'logs', name, source } : { kind: 'logs', name, source, tailBytes });
    }
  }
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
  return parsed.success ? [] : prefixed('query', definitionProblems(parsed.error));
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

function invalid(route: ApiRoute, problems: FieldProblem[]): ParsedApiRequest {
  return fail(
    errorResponse(400, 'INVALID_REQUEST', `invalid ${route.method} /${route.segments.join('/')} request: ${describeProblems(problems)}`, {
      problems,
    }),
  );
}

/** `a: why; b: why`: the one-line form of a problem list, for messages. */
export function describeProblems(problems: readonly FieldProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
}

function prefixed(prefix: string, problems: FieldProblem[]): FieldProblem[] {
  return problems.map((p) => ({ path: p.path === '(top level)' ? prefix : `${prefix}.${p.path}`, message: p.message }));
}

function ok(action: ApiAction): ParsedApiRequest {
  return { ok: true, action };
}

function fail(response: ApiResponse): { ok: false; response: ApiResponse } {
  return { ok: false, response };
}
