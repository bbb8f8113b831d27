// The API's event stream (`GET /v1/events`) without sockets: one hub per daemon that numbers events and
// hands each to the subscribers that asked for its kind (and its VM), as SSE frames (api-contract.ts: the
// envelope). Each subscriber writes into a sink (the HTTP response) whose buffered bytes are bounded: a
// client that falls behind by more than maxBufferedBytes is sent a final `stream.dropped` event and closed,
// so a slow client costs at most its bound, never unbounded memory.
//
// Published events are also kept in a bounded replay buffer (replayEvents events, replayBytes bytes), so a
// client that reconnects with the id of the last event it saw (Last-Event-ID) is sent what it missed first,
// and is told whether that was everything (`stream.open`'s `resume.complete`). Pure: no node: imports.
import type { ApiEvent, ApiEventData, ApiEventKind, EventKind } from './api-contract.js';

export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
export const DEFAULT_REPLAY_EVENTS = 2000;
export const DEFAULT_REPLAY_BYTES = 2 * 1024 * 1024;

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
  /** The first event's id; default 1. The daemon starts at its start time in µs, so ids grow across restarts. */
  firstId?: number;
  /** Bounds of the replay buffer. */
  replayEvents?: number;
  replayBytes?: number;
}

export interface SubscribeOptions {
  /** The host-side chat name the stream holds. */
  as?: string;
  /** Only events about these VMs; undefined: every event. */
  vms?: readonly string[];
  /** Resume: buffered events with a greater id are sent first. */
  afterId?: number;
}

/** One SSE frame: `id:`, `event:` and the envelope's JSON as `data:` (JSON has no newlines to split). */
export function encodeSseFrame(event: ApiEvent): string {
  return `id: ${event.id}\nevent: ${event.kind}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** The VM an event is about, or null (host-side chat names, stream.*). */
export function eventVm(event: ApiEvent): string | null {
  switch (event.kind) {
    case 'vm.state':
    case 'stats.record':
    case 'transfer':
      return event.data.vm;
    case 'chat.presence':
      return event.data.peer.vm;
    case 'chat.message':
      return event.data.from.vm;
    default:
      return null;
  }
}

type Select = (s: EventSubscriber) => boolean;

interface Buffered {
  event: ApiEvent;
  frame: string;
  select: Select | undefined;
}

export class EventSubscriber {
  #open = true;
  #onClose: ((reason: 'dropped' | 'closed' | 'ended') => void) | undefined;
  readonly vms: ReadonlySet<string> | undefined;

  constructor(
    private readonly hub: ApiEventHub,
    readonly kinds: ReadonlySet<EventKind>,
    /** The host-side chat name this stream holds, if any: messages to it come only on this stream. */
    readonly as: string | undefined,
    private readonly sink: EventSink,
    private readonly maxBufferedBytes: number,
    vms?: readonly string[],
  ) {
    this.vms = vms === undefined ? undefined : new Set(vms);
  }

  get open(): boolean {
    return this.#open;
  }

  /** Called once when the stream stops: dropped (too slow), ended (daemon stopping) or closed (by the client). */
  onClose(fn: (reason: 'dropped' | 'closed' | 'ended') => void): void {
    this.#onClose = fn;
  }

  /** Whether the stream asked for this event (its kind, its VM). stream.* always. */
  wants(event: ApiEvent): boolean {
    if (event.kind.startsWith('stream.')) return true;
    if (!this.kinds.has(event.kind as EventKind)) return false;
    if (this.vms === undefined) return true;
    const vm = eventVm(event);
    return vm !== null && this.vms.has(vm);
  }

  /** Sends a new event of a kind it asked for; false when it is not open (or was just dropped for being slow). */
  offer<K extends ApiEventKind>(kind: K, data: ApiEventData<K>): boolean {
    if (!this.#open) return false;
    if (!kind.startsWith('stream.') && !this.kinds.has(kind as EventKind)) return true;
    const event = this.hub.envelope(kind, data);
    return this.offerFrame(encodeSseFrame(event));
  }

  /** @internal an event already numbered and encoded (published to many, or replayed). */
  offerFrame(frame: string): boolean {
    if (!this.#open) return false;
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
  #nextId: number;
  readonly #subscribers = new Set<EventSubscriber>();
  readonly maxBufferedBytes: number;
  readonly #nowIso: () => string;
  readonly #replay: Buffered[] = [];
  #replayBytes = 0;
  /** Events with an id up to this one may be missing from the buffer (evicted, or from before this hub). */
  #lostUpTo: number;
  readonly #maxReplayEvents: number;
  readonly #maxReplayBytes: number;
  /** Events published, and subscribers dropped for being slow. */
  readonly counters = { published: 0, dropped: 0 };

  constructor(opts: EventHubOptions = {}) {
    this.maxBufferedBytes = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#nowIso = opts.nowIso ?? (() => new Date().toISOString());
    this.#nextId = opts.firstId ?? 1;
    this.#lostUpTo = this.#nextId - 1;
    this.#maxReplayEvents = opts.replayEvents ?? DEFAULT_REPLAY_EVENTS;
    this.#maxReplayBytes = opts.replayBytes ?? DEFAULT_REPLAY_BYTES;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** Events in the replay buffer now. */
  get replayCount(): number {
    return this.#replay.length;
  }

  /**
   * A new stream: it is sent `stream.open` at once, then (resuming) the buffered events after `afterId`
   * that it asked for. The `as` string is the older signature's third argument.
   */
  subscribe(kinds: readonly EventKind[], sink: EventSink, opts: SubscribeOptions | string = {}): EventSubscriber {
    const o: SubscribeOptions = typeof opts === 'string' ? { as: opts } : opts;
    const sub = new EventSubscriber(this, new Set(kinds), o.as, sink, this.maxBufferedBytes, o.vms);
    this.#subscribers.add(sub);
    const missed = o.afterId === undefined ? [] : this.#replay.filter((b) => b.event.id > o.afterId! && sub.wants(b.event) && (!b.select || b.select(sub)));
    const resume = o.afterId === undefined ? null : { afterId: o.afterId, replayed: missed.length, complete: o.afterId >= this.#lostUpTo && o.afterId < this.#nextId };
    sub.offer('stream.open', { kinds: [...kinds], as: o.as ?? null, maxBufferedBytes: this.maxBufferedBytes, vms: o.vms ? [...o.vms] : null, resume });
    for (const b of missed) if (!sub.offerFrame(b.frame)) break;
    return sub;
  }

  /** To every subscriber that asked for the kind (and the VM, and that `select` picks, when given). */
  publish<K extends EventKind>(kind: K, data: ApiEventData<K>, select?: Select): void {
    this.counters.published++;
    const event = this.envelope(kind, data);
    const frame = encodeSseFrame(event);
    this.#keep({ event, frame, select });
    for (const sub of [...this.#subscribers]) {
      if (!sub.wants(event) || (select && !select(sub))) continue;
      if (!sub.offerFrame(frame)) this.counters.dropped++;
    }
  }

  #keep(b: Buffered): void {
    this.#replay.push(b);
    this.#replayBytes += b.frame.length;
    while (this.#replay.length > this.#maxReplayEvents || (this.#replayBytes > this.#maxReplayBytes && this.#replay.length > 1)) {
      const gone = this.#replay.shift()!;
      this.#replayBytes -= gone.frame.length;
      this.#lostUpTo = gone.event.id;
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
