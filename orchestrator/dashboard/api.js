// The daemon's API as the dashboard uses it: every request carries the token in an Authorization header
// (never a cookie). The event stream is read with fetch (EventSource cannot send headers) and resumed with
// Last-Event-ID after a break, so nothing still buffered in the daemon is missed.
import { SseParser } from './sse.js';

const TOKEN_KEY = 'vmgmt.dashboard.token';

/** The token from the URL's #token= (then removed from the address bar), or the one kept for this tab. */
export function takeToken() {
  const m = /(?:^#|&)token=([0-9a-f]{64})/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, '', `${location.pathname}#/`);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? 'HTTP';
  }
}

export function createApi(token) {
  const headers = (extra = {}) => ({ Authorization: `Bearer ${token}`, ...extra });

  async function call(method, path, body) {
    const res = await fetch(path, { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }), body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const json = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text;
    if (!res.ok) throw new ApiError(res.status, json);
    return json;
  }

  /**
   * Follows GET /v1/events until stop(): onEvent(envelope) for each event, onState('live'|'down') as the
   * connection comes and goes. Reconnects after a second with the id of the last event seen.
   */
  function follow(query, onEvent, onState) {
    let lastId;
    let stopped = false;
    let controller;
    (async () => {
      while (!stopped) {
        controller = new AbortController();
        try {
          const res = await fetch(`/v1/events${query ? `?${query}` : ''}`, { headers: headers(lastId === undefined ? {} : { 'Last-Event-ID': String(lastId) }), signal: controller.signal });
          if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => undefined));
          onState('live');
          const reader = res.body.getReader();
          const parser = new SseParser();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            for (const frame of parser.push(value)) {
              let event;
              try {
                event = JSON.parse(frame.data);
              } catch {
                continue;
              }
              // stream.open's id counts with the events: a stream that saw none yet resumes from its own start.
              if (!event.kind.startsWith('stream.') || event.kind === 'stream.open') lastId = Math.max(lastId ?? 0, event.id);
              onEvent(event);
            }
          }
        } catch (err) {
          if (stopped) return;
          if (err instanceof ApiError && err.status === 401) {
            onState('down', err.message);
            return;
          }
        }
        if (stopped) return;
        onState('down');
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return { stop() { stopped = true; controller?.abort(); } };
  }

  return { call, follow, get: (p) => call('GET', p), post: (p, b) => call('POST', p, b ?? {}) };
}
