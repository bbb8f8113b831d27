// A client of the daemon's event stream for integration tests: over the control socket or the dashboard
// listener (with its token), optionally resuming with Last-Event-ID. Keeps every event it got, in order.
import http from 'node:http';
import type { ApiEvent } from '../../orchestrator/api/api-contract.js';
import { decodeEvent } from '../../orchestrator/api/api-contract.js';
import { SseParser } from '../../orchestrator/cli/sse-parser.js';

export interface TestEventStream {
  readonly events: ApiEvent[];
  readonly opened: Promise<ApiEvent & { kind: 'stream.open' }>;
  waitFor(what: string, pred: (e: ApiEvent) => boolean, timeoutMs?: number): Promise<ApiEvent>;
  close(): void;
}

export function openEventStream(target: { socketPath: string } | { url: string; token?: string }, query = '', lastEventId?: number): TestEventStream {
  const events: ApiEvent[] = [];
  const waiters = new Set<() => void>();
  let openResolve!: (e: ApiEvent & { kind: 'stream.open' }) => void;
  let openReject!: (e: Error) => void;
  const opened = new Promise<ApiEvent & { kind: 'stream.open' }>((res, rej) => ((openResolve = res), (openReject = rej)));
  const headers: Record<string, string> = { Accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
  const path = `/v1/events${query ? `?${query}` : ''}`;
  let options: http.RequestOptions;
  if ('socketPath' in target) options = { socketPath: target.socketPath, path, headers };
  else {
    const u = new URL(target.url);
    if (target.token) headers['Authorization'] = `Bearer ${target.token}`;
    options = { host: u.hostname, port: Number(u.port), path, headers };
  }
  const req = http.get(options, (res) => {
    if (res.statusCode !== 200) {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => openReject(new Error(`event stream answered ${res.statusCode}: ${text}`)));
      return;
    }
    const parser = new SseParser();
    res.on('error', () => {}); // the daemon went away: the stream just ends
    res.on('data', (chunk: Buffer) => {
      for (const f of parser.push(chunk)) {
        const d = decodeEvent(f.data);
        if (!d.ok) throw new Error(`bad event: ${d.reason}`);
        events.push(d.event);
        if (d.event.kind === 'stream.open') openResolve(d.event as ApiEvent & { kind: 'stream.open' });
        for (const w of [...waiters]) w();
      }
    });
  });
  req.on('error', (err) => openReject(err));
  return {
    events,
    opened,
    waitFor(what, pred, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = events.find(pred);
          if (!found) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${events.map((e) => e.kind).join(', ')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      req.destroy();
    },
  };
}

/** GET on the dashboard listener with the token (or without: `token` undefined), raw. */
export function dashboardGet(url: string, token: string | undefined, extraHeaders: Record<string, string> = {}): Promise<{ status: number; contentType: string; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...extraHeaders };
    if (token !== undefined) headers['Authorization'] = `Bearer ${token}`;
    const req = http.get({ host: u.hostname, port: Number(u.port), path: `${u.pathname}${u.search}`, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text }));
    });
    req.on('error', reject);
  });
}
