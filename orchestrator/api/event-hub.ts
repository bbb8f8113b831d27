// The API's event stream (`GET /v1/events`) without sockets: one hub per daemon that numbers events and
// hands each to the subscribers that asked for its kind, as SSE frames (api-contract.ts: the envelope).
// Each subscriber writes into a sink (the HTTP response) whose buffered bytes are bounded: a client that
// falls behind by more than maxBufferedBytes is sent a final `stream.dropped` event and closed, so a slow
// client costs at most its bound, never unbounded memory. Pure: no node: imports.
import type { ApiEvent, ApiEventData, ApiEventKind, EventKind } from './api-contract.js';

export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

/** Where a subscriber's frames go: the HTTP response, or a test's array. */
export interface EventSink {
  write(frame: string): void;
  /** Bytes written but not yet taken by the client (the response's writableLength). */
  bufferedBytes(): number;
  end(): void;
}

export interface EventHubOptions {
  maxBufferedBytes?: number;
  nowIso?: () => string;
}

/** One SSE frame: `id:`, `event:` and the envelope's JSON as `data:` (JSON has no newlines to split). */
export function encodeSseFrame(event: ApiEvent): string {
  return `id: ${event.id}\nevent: ${event.kind}\ndata: ${JSON.stringify(event)}\n\n`;
}

export class EventSubscriber {
  #open = true;
  #onClose: ((reason: 'dropped' | 'closed' | 'ended') => void) | undefined;

  constructor(
    private readonly hub: ApiEventHub,
    readonly kinds: ReadonlySet<EventKind>,
    /** The host-side chat name this stream holds, if any: messages to it come only on this stream. */
    readonly as: string | undefined,
    private readonly sink: EventSink,
    private readonly maxBufferedBytes: number,
  ) {}

  get open(): boolean {
    return this.#open;
  }

  /** Called once when the stream stops: dropped (too slow), ended (daemon stopping) or closed (by the client). */
  onClose(fn: (reason: 'dropped' | 'closed' | 'ended') => void): void {
    this.#onClose = fn;
  }

  /** Sends an event of a kind it asked for; false when it is not open (or was just dropped for being slow). */
  offer<K extends ApiEventKind>(kind: K, data: ApiEventData<K>): boolean {
    if (!this.#open) return false;
    if (!kind.startsWith('stream.') && !this.kinds.has(kind as EventKind)) return true;
    const frame = encodeSseFrame(this.hub.envelope(kind, data));
    const buffered = this.sink.bufferedBytes();
    if (buffered + frame.length > this.maxBufferedBytes) {
      this.sink.write(encodeSseFrame(this.hub.envelope('stream.dropped', { reason: `the client fell behind by more than ${this.maxBufferedBytes} bytes: reconnect (and list again)`, bufferedBytes: buffered, maxBufferedBytes: this.maxBufferedBytes })));
      this.#finish('dropped');
      return false;
    }
    this.sink.write(frame);
    return true;
  }

  /** An SSE comment that keeps idle connections open; skipped while the client is behind. */
  keepalive(): void {
    if (this.#open && this.sink.bufferedBytes() === 0) this.sink.write(': keepalive\n\n');
  }

  /** The client went away. */
  close(): void {
    if (this.#open) this.#finish('closed');
  }

  /** The daemon stops: a last `stream.end`. */
  end(reason: string): void {
    if (!this.#open) return;
    this.sink.write(encodeSseFrame(this.hub.envelope('stream.end', { reason })));
    this.#finish('ended');
  }

  #finish(reason: 'dropped' | 'closed' | 'ended'): void {
    this.#open = false;
    this.hub.forget(this);
    if (reason !== 'closed') this.sink.end();
    this.#onClose?.(reason);
  }
}

export class ApiEventHub {
  #nextId = 1;
  readonly #subscribers = new Set<EventSubscriber>();
  readonly maxBufferedBytes: number;
  readonly #nowIso: () => string;
  /** Events published, and subscribers dropped for being slow. */
  readonly counters = { published: 0, dropped: 0 };

  constructor(opts: EventHubOptions = {}) {
    this.maxBufferedBytes = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#nowIso = opts.nowIso ?? (() => new Date().toISOString());
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** A new stream: it is sent `stream.open` at once. */
  subscribe(kinds: readonly EventKind[], sink: EventSink, as?: string): EventSubscriber {
    const sub = new EventSubscriber(this, new Set(kinds), as, sink, this.maxBufferedBytes);
    this.#subscribers.add(sub);
    sub.offer('stream.open', { kinds: [...kinds], as: as ?? null, maxBufferedBytes: this.maxBufferedBytes });
    return sub;
  }

  /** To every subscriber that asked for the kind (and that `select` picks, when given). */
  publish<K extends EventKind>(kind: K, data: ApiEventData<K>, select?: (s: EventSubscriber) => boolean): void {
    this.counters.published++;
    for (const sub of [...this.#subscribers]) {
      if (!sub.kinds.has(kind) || (select && !select(sub))) continue;
      if (!sub.offer(kind, data)) this.counters.dropped++;
    }
  }

  keepalive(): void {
    for (const sub of this.#subscribers) sub.keepalive();
  }

  /** Every stream gets `stream.end` and is closed (the daemon stops). */
  endAll(reason: string): void {
    for (const sub of [...this.#subscribers]) sub.end(reason);
  }

  /** @internal the next envelope, numbered. */
  envelope<K extends ApiEventKind>(kind: K, data: ApiEventData<K>): ApiEvent {
    return { id: this.#nextId++, kind, at: this.#nowIso(), data } as ApiEvent;
  }

  /** @internal */
  forget(sub: EventSubscriber): void {
    this.#subscribers.delete(sub);
  }
}
