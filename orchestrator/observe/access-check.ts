// Who may use the metrics and dashboard listener, decided from a request's headers alone. Pure.
//
// - Host must name this listener (127.0.0.1:PORT, localhost:PORT, [::1]:PORT): a page of another site whose
//   name was rebound to 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
// - Origin, when the browser sends one, must be this listener too: another site's page in the same browser
//   is refused even before the token is looked at.
// - The token rides in `Authorization: Bearer TOKEN`, never a cookie, so a browser never adds it by itself.

export interface AccessPolicy {
  /** Host header values that name this listener (host:port). */
  readonly hosts: ReadonlySet<string>;
  readonly token: string;
}

export interface RequestHeaders {
  host?: string | undefined;
  origin?: string | undefined;
  authorization?: string | undefined;
}

export type AccessDecision = { ok: true } | { ok: false; status: 401 | 403; code: 'BAD_HOST' | 'BAD_ORIGIN' | 'NO_TOKEN' | 'BAD_TOKEN'; reason: string };

/** The Host values a listener on this address and port answers to. */
export function listenerHosts(bound: string, port: number): Set<string> {
  const names = new Set([bound === '::1' ? '[::1]' : bound, '127.0.0.1', 'localhost', '[::1]']);
  return new Set([...names].map((n) => `${n}:${port}`));
}

/** Compares without stopping at the first difference (the time taken says nothing of the token). */
export function sameSecret(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

export function checkAccess(h: RequestHeaders, policy: AccessPolicy, needsToken: boolean): AccessDecision {
  const host = (h.host ?? '').toLowerCase();
  if (!policy.hosts.has(host)) {
    return { ok: false, status: 403, code: 'BAD_HOST', reason: `Host ${JSON.stringify(h.host ?? '')} is not this listener (${[...policy.hosts].join(', ')}): open the address \`vmgmt dashboard\` prints` };
  }
  if (h.origin !== undefined && !policy.hosts.has(originHost(h.origin))) {
    return { ok: false, status: 403, code: 'BAD_ORIGIN', reason: `requests from ${JSON.stringify(h.origin)} are refused: only the dashboard's own pages may call it` };
  }
  if (!needsToken) return { ok: true };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h.authorization ?? '');
  if (!m) return { ok: false, status: 401, code: 'NO_TOKEN', reason: 'this needs the dashboard token in an `Authorization: Bearer TOKEN` header: `vmgmt dashboard` prints it' };
  if (!sameSecret(m[1]!, policy.token)) return { ok: false, status: 401, code: 'BAD_TOKEN', reason: 'the token is not this daemon\'s: `vmgmt dashboard` prints the right one' };
  return { ok: true };
}

/** `http://127.0.0.1:9479` → `127.0.0.1:9479`; anything that is not http://host:port → ''. */
function originHost(origin: string): string {
  const m = /^http:\/\/([^/]+)$/i.exec(origin.trim());
  return m ? m[1]!.toLowerCase() : '';
}
