// The control API's route table and the pure matcher from (method, path) to a route. No I/O.

export const API_ROUTE_IDS = [
  'health',
  'list',
  'create',
  'inspect',
  'remove',
  'start',
  'stop',
  'kill',
  'pause',
  'resume',
  'exec',
  'logs',
  'push',
  'pull',
  'download',
  'chatPeers',
  'chatSend',
  'chatCall',
  'chatReply',
  'chatPolicyCheck',
  'events',
  'vm-stats',
  'stats',
  'update',
  'host',
  'figures',
  'dashboard',
  'agentUpdate',
  'tree',
  'mkdir',
  'execResize',
] as const;
export type ApiRouteId = (typeof API_ROUTE_IDS)[number];

export interface ApiRoute {
  id: ApiRouteId;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path segments; `:name` and `:id` capture one segment. */
  segments: readonly string[];
  /** The server hands the request over before reading its body (file transfers, no 1 MiB limit). */
  streaming?: true;
}

export const API_ROUTES: readonly ApiRoute[] = [
  { id: 'health', method: 'GET', segments: ['v1', 'health'] },
  { id: 'list', method: 'GET', segments: ['v1', 'vms'] },
  { id: 'create', method: 'POST', segments: ['v1', 'vms'] },
  { id: 'inspect', method: 'GET', segments: ['v1', 'vms', ':name'] },
  { id: 'remove', method: 'DELETE', segments: ['v1', 'vms', ':name'] },
  { id: 'start', method: 'POST', segments: ['v1', 'vms', ':name', 'start'] },
  { id: 'stop', method: 'POST', segments: ['v1', 'vms', ':name', 'stop'] },
  { id: 'kill', method: 'POST', segments: ['v1', 'vms', ':name', 'kill'] },
  { id: 'pause', method: 'POST', segments: ['v1', 'vms', ':name', 'pause'] },
  { id: 'resume', method: 'POST', segments: ['v1', 'vms', ':name', 'resume'] },
  /** One JSON line, then stdin; the answer streams exec frames (api-exec.ts). */
  { id: 'exec', method: 'POST', segments: ['v1', 'vms', ':name', 'exec'], streaming: true },
  { id: 'logs', method: 'GET', segments: ['v1', 'vms', ':name', 'logs'] },
  { id: 'push', method: 'POST', segments: ['v1', 'vms', ':name', 'files', 'push'], streaming: true },
  { id: 'pull', method: 'POST', segments: ['v1', 'vms', ':name', 'files', 'pull'], streaming: true },
  { id: 'download', method: 'GET', segments: ['v1', 'transfers', ':id'], streaming: true },
  { id: 'chatPeers', method: 'GET', segments: ['v1', 'chat', 'peers'] },
  { id: 'chatSend', method: 'POST', segments: ['v1', 'chat', 'send'] },
  { id: 'chatCall', method: 'POST', segments: ['v1', 'chat', 'call'] },
  { id: 'chatReply', method: 'POST', segments: ['v1', 'chat', 'reply'] },
  { id: 'chatPolicyCheck', method: 'GET', segments: ['v1', 'chat', 'policy', 'check'] },
  /** Server-sent events: chat presence and messages; later VM state changes and metrics. */
  { id: 'events', method: 'GET', segments: ['v1', 'events'], streaming: true },
  { id: 'vm-stats', method: 'GET', segments: ['v1', 'vms', ':name', 'stats'] },
  { id: 'stats', method: 'GET', segments: ['v1', 'stats'] },
  /** Replaces the definition of a VM that is not running (body: the definition, checked as at create). */
  { id: 'update', method: 'PUT', segments: ['v1', 'vms', ':name'] },
  { id: 'host', method: 'GET', segments: ['v1', 'host'] },
  /** What the daemon sees of each VM now: `vmgmt top` and the dashboard. */
  { id: 'figures', method: 'GET', segments: ['v1', 'figures'] },
  /** The dashboard's address and token: `vmgmt dashboard`. */
  { id: 'dashboard', method: 'GET', segments: ['v1', 'dashboard'] },
  { id: 'agentUpdate', method: 'POST', segments: ['v1', 'vms', ':name', 'agent', 'update'] },
  /** `vmgmt cp -r` from a VM: the guest tree under ?guestPath, every name checked on the host. */
  { id: 'tree', method: 'GET', segments: ['v1', 'vms', ':name', 'files', 'tree'] },
  /** `vmgmt cp -r` to a VM: makes the guest directory ?guestPath (&mode, octal). */
  { id: 'mkdir', method: 'POST', segments: ['v1', 'vms', ':name', 'files', 'mkdir'] },
  /** `vmgmt vm exec --tty`: the client's terminal changed size (body {rows, cols}); :id is the exec answer's EXEC_ID_HEADER. */
  { id: 'execResize', method: 'POST', segments: ['v1', 'vms', ':name', 'exec', ':id', 'resize'] },
];

export interface RouteParams {
  name?: string;
  id?: string;
}

export type RouteMatch =
  | { kind: 'match'; route: ApiRoute; params: RouteParams }
  | { kind: 'not-found'; path: string }
  | { kind: 'method-not-allowed'; path: string; method: string; allowed: string[] }
  | { kind: 'bad-path'; path: string; reason: string };

/** Matches a request path (without the query string); one trailing slash is ignored. */
export function matchRoute(method: string, path: string, routes: readonly ApiRoute[] = API_ROUTES): RouteMatch {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (!trimmed.startsWith('/')) return { kind: 'bad-path', path, reason: 'the path must start with /' };
  const raw = trimmed.slice(1).split('/');
  let segments: string[];
  try {
    segments = raw.map((s) => decodeURIComponent(s));
  } catch {
    return { kind: 'bad-path', path, reason: 'the path has a malformed %-escape' };
  }
  const allowed: string[] = [];
  for (const route of routes) {
    const params = matchSegments(route.segments, segments);
    if (!params) continue;
    if (route.method === method) return { kind: 'match', route, params };
    allowed.push(route.method);
  }
  if (allowed.length > 0) return { kind: 'method-not-allowed', path, method, allowed };
  return { kind: 'not-found', path };
}

function matchSegments(pattern: readonly string[], segments: readonly string[]): RouteParams | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: RouteParams = {};
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i] as string;
    const got = segments[i] as string;
    if (want === ':name' || want === ':id') {
      if (got === '') return undefined;
      params[want === ':name' ? 'name' : 'id'] = got;
    } else if (want !== got) {
      return undefined;
    }
  }
  return params;
}
