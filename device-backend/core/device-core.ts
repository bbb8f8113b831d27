// The management core for one VM's region: device and channel resets, draining guest→core rings,
// dispatching to services and answering on core→guest rings, and sending what services queue (pushes and
// host requests) when the rings have room. Pure: memory comes through GuestMemory, notifications go out
// through the notifyGuest callback, and nothing here does I/O or keeps time (timeouts are AbortSignals).
import { channelOffset, dataSliceOffset, type Geometry, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, CHANNEL_STATE, HEADER, LIMITS, MODE, MSG_HEADER, MSG_RESPONSE_BIT, MSG_TYPE, SET_MODE_REQ, STATUS, VECTOR } from '../layout/wire-layout.js';
import { DataSlice } from '../memory/data-slice.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { decodeMessage, encodeMessage, isResponse, type Message, responseTo } from '../protocol/message-codec.js';
import { RingConsumer, RingProducer, type RingGeometry } from '../ring/spsc-ring.js';
import { checkHeaderGeometry, writeCoreHeaderFields, writeFreshHeader } from './region-header.js';
import { CodedError } from '../errors/coded-error.js';
import type { CoreLogger } from './core-logger.js';
import type { ChannelPort, HostRequestOptions, MessageService, PushOptions, PushResult, ServiceHost, VmIdentity } from './message-service.js';
import { decideSetMode, ModeRouter } from './mode-routing.js';

const H = HEADER.offsets;
const C = CHANNEL.offsets;

export interface DeviceCoreOptions {
  mem: GuestMemory;
  geometry: Geometry;
  services: readonly MessageService[];
  notifyGuest: (vector: number) => void;
  /** An asynchronous answer arrived: call process() soon (the shell schedules it). */
  onWorkPending?: () => void;
  log: CoreLogger;
  /** Protocol errors on one channel before the core stops serving it until the guest resets it. */
  maxErrorsBeforeReset?: number;
  /** Messages handled per channel per pass, so one busy channel cannot starve the others. */
  batchLimit?: number;
  /** Whose device this is; services shared across VMs tell VMs apart by it. */
  vm?: VmIdentity;
  /** Messages one service may have queued on one channel (pushes and host requests not yet sent). */
  pushQueueLimit?: number;
  /** A service said its snapshot changed: the shell saves snapshotServices() soon. */
  onServiceStateChanged?: () => void;
}

/** Host requests aborted after they were sent whose late answers are dropped quietly, per channel. */
const ABANDONED_IDS_KEPT = 64;
export const DEFAULT_PUSH_QUEUE_LIMIT = 64;

export interface CoreCounters {
  doorbells: number;
  messages: number;
  protocolErrors: number;
  notificationsSent: number;
  channelResets: number;
  deviceResets: number;
  /** Requests a service failed on (threw, rejected, or answered with something that cannot be sent). */
  serviceFailures: number;
}

export interface ProcessResult {
  /** Work is left over (the batch limit, or answers waiting for room): call process() again. */
  more: boolean;
  /**
   * All that is left waits for room in a c2g ring, and a guest frees slots without ringing: call process()
   * again after a short wait (a timer, so a guest that never reads costs no spinning core).
   */
  waitingForGuest: boolean;
}

type ChannelWork = 'idle' | 'more' | 'waiting';

interface ChannelEnd {
  readonly index: number;
  readonly base: number;
  readonly g2c: RingConsumer;
  readonly c2g: RingProducer;
  readonly slice: DataSlice;
  mode: number;
  /** Bumped on every reset, so answers to requests from before a reset are dropped. */
  epoch: number;
  inFlight: number;
  /** Answers waiting for room in the c2g ring; bounded by MAX_IN_FLIGHT_PER_CHANNEL. */
  readonly answers: Message[];
  /** What services queued (pushes, host requests), sent in order when the ring has room beyond answers owed. */
  readonly outbox: OutboxEntry[];
  /** Requests the core started on this channel, by request id, waiting for the guest's answer. */
  readonly outstanding: Map<number, Outstanding>;
  /** Ids of sent host requests whose caller gave up: their answers are not protocol errors. */
  readonly abandoned: number[];
  /** What happened on this channel since the core started (the per-channel share of CoreCounters). */
  readonly counts: ChannelCounts;
}

interface ChannelCounts {
  messages: number;
  protocolErrors: number;
  resets: number;
  /** Answers to the guest's requests by status (ANSWER_OTHER for values the layout does not name). */
  readonly answers: Map<number, number>;
}

interface OutboxEntry {
  readonly service: string;
  readonly message: Message;
  readonly onSent?: () => void;
}

interface Outstanding {
  readonly service: string;
  /** The request's type: only an answer of this type (with the response bit) matches. */
  readonly type: number;
  resolve(m: Message): void;
  reject(e: Error): void;
}

/** The type or status of answers counted whose value the wire layout does not name. */
export const ANSWER_OTHER = -1;
const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(MSG_TYPE));
const KNOWN_STATUSES: ReadonlySet<number> = new Set(Object.values(STATUS).map((s) => s.code));

/**
 * One channel's share of the core's counters: guest requests routed, protocol errors, resets the guest
 * asked for, answers by status; and the channel's mode now. A device has a fixed number of channels
 * (set by the host), and statuses outside the layout fold into ANSWER_OTHER, so this stays bounded.
 */
export interface ChannelCount {
  channel: number;
  mode: number;
  messages: number;
  protocolErrors: number;
  resets: number;
  answers: Array<{ status: number; count: number }>;
}

/** How many answers of one request type, in one mode, had one status. */
export interface AnswerCount {
  mode: number;
  type: number;
  status: number;
  count: number;
}

export type CoreRequestErrorCode = 'CHANNEL_RESET' | 'NOT_READY' | 'BUSY' | 'ABORTED' | 'CLOSED';

export class CoreRequestError extends CodedError<CoreRequestErrorCode> {
  override readonly name = 'CoreRequestError';
}

/** A service's handle() result, with what the core needs to answer for it if it fails. */
type Handled = { kind: 'none' } | { kind: 'sync'; answer: Message } | { kind: 'async'; request: Message; service: string; answer: Promise<Message> };

export class DeviceCore {
  readonly counters: CoreCounters = { doorbells: 0, messages: 0, protocolErrors: 0, notificationsSent: 0, channelResets: 0, deviceResets: 0, serviceFailures: 0 };
  private readonly channels: ChannelEnd[];
  private readonly router: ModeRouter;
  private nextRequestId = 1;
  private readonly maxErrors: number;
  private readonly batchLimit: number;
  private readonly pushQueueLimit: number;
  private readonly ports = new Map<MessageService, ChannelPort[]>();
  private readonly serviceCounts = new Map<string, Map<string, number>>();
  /** Answers sent to the guest's requests, by `mode/type/status` (the channel's mode when answered). */
  private readonly answerCounts = new Map<string, AnswerCount>();
  private closed = false;

  private constructor(private readonly opts: DeviceCoreOptions) {
    const g = opts.geometry;
    this.maxErrors = opts.maxErrorsBeforeReset ?? 16;
    this.batchLimit = opts.batchLimit ?? 256;
    this.pushQueueLimit = opts.pushQueueLimit ?? DEFAULT_PUSH_QUEUE_LIMIT;
    this.router = new ModeRouter(opts.services);
    const ring = (ch: number, dir: 'g2c' | 'c2g'): RingGeometry => ({
      ringOffset: ringOffset(g, ch, dir),
      slotsOffset: slotsOffset(g, ch, dir),
      slots: g.ringSlots,
      slotSizeBytes: g.slotSizeBytes,
    });
    this.channels = Array.from({ length: g.channelCount }, (_, index) => ({
      index,
      base: channelOffset(g, index),
      g2c: new RingConsumer(opts.mem, ring(index, 'g2c')),
      c2g: new RingProducer(opts.mem, ring(index, 'c2g')),
      slice: new DataSlice(opts.mem, dataSliceOffset(g, index), g.dataSliceBytes),
      mode: MODE.NONE,
      epoch: 0,
      inFlight: 0,
      answers: [],
      outbox: [],
      outstanding: new Map(),
      abandoned: [],
      counts: { messages: 0, protocolErrors: 0, resets: 0, answers: new Map() },
    }));
    for (const s of opts.services) s.attach?.(this.hostFor(s));
  }

  /** A new region: writes the header; every channel starts idle. */
  static initialize(opts: DeviceCoreOptions): DeviceCore {
    writeFreshHeader(opts.mem, opts.geometry);
    const core = new DeviceCore(opts);
    for (const ch of core.channels) ch.g2c.setNeedWakeup(true);
    return core;
  }

  /**
   * A region found again after a daemon restart: check it, then carry on from the published indices.
   * `restored` holds the services' snapshots saved by the previous daemon (snapshotServices()).
   */
  static reattach(opts: DeviceCoreOptions, restored: Readonly<Record<string, unknown>> = {}): DeviceCore {
    const mismatch = checkHeaderGeometry(opts.mem, opts.geometry);
    if (mismatch) throw new Error(`cannot re-attach to the region: ${mismatch}`);
    const core = new DeviceCore(opts);
    const mem = opts.mem;
    mem.storeU32(H.core_generation, (mem.loadU32(H.core_generation) + 1) >>> 0);
    for (const ch of core.channels) {
      ch.g2c.adoptPublishedIndex();
      ch.c2g.adoptPublishedIndex();
      ch.g2c.setNeedWakeup(true);
      ch.mode = mem.loadU32(ch.base + C.mode);
    }
    // Answers in flight died with the old core. A channel in a mode carries on only if every service of
    // that mode restored its state for it; otherwise its owner must reset it first. PING keeps working.
    const carryOn = core.restoreServices(restored);
    for (const ch of core.channels) {
      if (ch.mode !== MODE.NONE && !carryOn.has(ch.mode)) core.markNeedsReset(ch, STATUS.NEEDS_RESET.code, 'the core restarted while the channel was in a mode');
    }
    // Waiters asleep on the interrupt (the agent) see the new core_generation now, not at their next check.
    opts.notifyGuest(VECTOR.RING);
    return core;
  }

  /** The modes whose channels carry on after a restart: every service serving the mode restored. */
  private restoreServices(restored: Readonly<Record<string, unknown>>): Set<number> {
    const restoredOk = new Set<MessageService>();
    for (const s of this.opts.services) {
      if (s.modes === 'any' || !s.restore || !(s.name in restored)) continue;
      const channels = this.channels.filter((ch) => (s.modes as readonly number[]).includes(ch.mode)).map((ch) => ch.index);
      try {
        if (s.restore(restored[s.name], channels)) restoredOk.add(s);
      } catch (err) {
        this.counters.serviceFailures++;
        this.opts.log.error('service failed to restore its state; its channels must be reset', { service: s.name, error: (err as Error).stack });
      }
    }
    const carryOn = new Set<number>();
    for (const mode of this.router.availableModes) {
      const serving = this.opts.services.filter((s) => s.modes !== 'any' && (s.modes as readonly number[]).includes(mode));
      if (serving.length > 0 && serving.every((s) => restoredOk.has(s))) carryOn.add(mode);
    }
    return carryOn;
  }

  /** Every service's snapshot, by service name, for the shell to keep across a daemon restart. */
  snapshotServices(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const s of this.opts.services) {
      if (!s.snapshot) continue;
      try {
        out[s.name] = s.snapshot();
      } catch (err) {
        this.counters.serviceFailures++;
        this.opts.log.error('service failed to take a snapshot', { service: s.name, error: (err as Error).stack });
      }
    }
    return out;
  }

  /** Answers sent, by mode, request type and status. */
  answerCounters(): AnswerCount[] {
    return [...this.answerCounts.values()].map((a) => ({ ...a }));
  }

  private countAnswer(ch: ChannelEnd, answer: Message): void {
    // A guest picks the types it sends and a callee the status of its reply: fold values the wire layout
    // does not know into one bucket each (ANSWER_OTHER), so what is counted stays bounded.
    const rawType = answer.type & ~MSG_RESPONSE_BIT;
    const type = KNOWN_TYPES.has(rawType) ? rawType : ANSWER_OTHER;
    const status = KNOWN_STATUSES.has(answer.status) ? answer.status : ANSWER_OTHER;
    const key = `${ch.mode}/${type}/${status}`;
    const entry = this.answerCounts.get(key);
    if (entry) entry.count++;
    else this.answerCounts.set(key, { mode: ch.mode, type, status, count: 1 });
    ch.counts.answers.set(status, (ch.counts.answers.get(status) ?? 0) + 1);
  }

  /** Every channel's counters and mode, in channel order. */
  channelCounters(): ChannelCount[] {
    return this.channels.map((ch) => ({
      channel: ch.index,
      mode: ch.mode,
      messages: ch.counts.messages,
      protocolErrors: ch.counts.protocolErrors,
      resets: ch.counts.resets,
      answers: [...ch.counts.answers].map(([status, count]) => ({ status, count })),
    }));
  }

  /** What each service counted, by service name. */
  serviceCounters(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.serviceCounts].map(([name, counts]) => [name, Object.fromEntries(counts)]));
  }

  /** Called on every doorbell, and again while process() reports more work. Never throws for guest input. */
  process(): ProcessResult {
    this.counters.doorbells++;
    this.handleDeviceReset();
    let busy = false;
    let waiting = false;
    for (const ch of this.channels) {
      const work = this.serveChannel(ch);
      if (work === 'more') busy = true;
      if (work === 'waiting') waiting = true;
    }
    return { more: busy || waiting, waitingForGuest: waiting && !busy };
  }

  private handleDeviceReset(): void {
    const mem = this.opts.mem;
    const requested = mem.loadU32(H.reset_request);
    if (requested === mem.loadU32(H.reset_done)) return;
    for (const ch of this.channels) {
      mem.storeU32(ch.base + C.owner, 0);
      this.resetChannel(ch);
      mem.storeU32(ch.base + C.state, CHANNEL_STATE.IDLE);
      mem.storeU32(ch.base + C.reset_done, mem.loadU32(ch.base + C.reset_request));
    }
    // The guest may have written over the core's half of the header too: a reset puts it back.
    writeCoreHeaderFields(mem, this.opts.geometry);
    mem.storeU64(H.guest_features, 0n);
    mem.storeU32(H.device_status, 0);
    mem.storeU32(H.reset_done, requested);
    this.counters.deviceResets++;
    this.opts.log.info('device reset by the guest', { resetRequest: requested });
    this.eachService('deviceReset', (s) => s.deviceReset?.());
    this.opts.notifyGuest(VECTOR.RING);
  }

  /** Runs a hook on every service; a hook that throws is logged and counted, never escapes. */
  private eachService(hook: string, run: (s: MessageService) => void, only?: (s: MessageService) => boolean): void {
    for (const s of this.opts.services) {
      if (only && !only(s)) continue;
      try {
        run(s);
      } catch (err) {
        this.counters.serviceFailures++;
        this.opts.log.error(`service failed in ${hook}`, { service: s.name, error: (err as Error).stack });
      }
    }
  }

  private resetChannel(ch: ChannelEnd): void {
    const mem = this.opts.mem;
    ch.g2c.reset();
    ch.c2g.reset();
    ch.g2c.setNeedWakeup(true);
    ch.epoch++;
    ch.inFlight = 0;
    ch.answers.length = 0;
    ch.outbox.length = 0;
    ch.abandoned.length = 0;
    this.rejectOutstanding(ch, 'CHANNEL_RESET', `channel ${ch.index} was reset before the guest answered`);
    ch.mode = MODE.NONE;
    mem.storeU32(ch.base + C.mode, MODE.NONE);
    mem.storeU32(ch.base + C.error_count, 0);
    mem.storeI32(ch.base + C.last_status, 0);
    this.eachService('channelReset', (s) => s.channelReset?.(ch.index));
  }

  private rejectOutstanding(ch: ChannelEnd, code: CoreRequestErrorCode, reason: string): void {
    const waiting = [...ch.outstanding.values()];
    ch.outstanding.clear();
    for (const o of waiting) o.reject(new CoreRequestError(code, reason));
  }

  /** Returns whether work is left on this channel, and whether it waits for the guest to make room. */
  private serveChannel(ch: ChannelEnd): ChannelWork {
    const mem = this.opts.mem;
    const requested = mem.loadU32(ch.base + C.reset_request);
    if (requested !== mem.loadU32(ch.base + C.reset_done)) {
      this.resetChannel(ch);
      mem.storeU32(ch.base + C.state, CHANNEL_STATE.READY);
      mem.storeU32(ch.base + C.reset_done, requested);
      this.counters.channelResets++;
      ch.counts.resets++;
      this.opts.notifyGuest(VECTOR.RING);
      return 'idle';
    }
    if (mem.loadU32(ch.base + C.state) !== CHANNEL_STATE.READY) return 'idle';

    let more = false;
    let waiting = false;
    let responded = this.flush(ch);
    ch.g2c.setNeedWakeup(false);
    for (let taken = 0; ; taken++) {
      if (taken === this.batchLimit) {
        more = true;
        break;
      }
      const space = ch.c2g.space();
      if (space.kind === 'corrupt') {
        this.ringFault(ch, space.reason);
        break;
      }
      const next = ch.g2c.peek();
      if (next.kind === 'empty') {
        // Publish that we may sleep, then look once more: a message produced in between is not missed.
        ch.g2c.setNeedWakeup(true);
        if (ch.g2c.peek().kind === 'empty') break;
        ch.g2c.setNeedWakeup(false);
        continue;
      }
      if (next.kind === 'corrupt') {
        this.ringFault(ch, next.reason);
        break;
      }
      // Every request gets an answer: take one only when its answer is sure to have room. Answers in
      // flight wake us when they land.
      if (ch.inFlight + ch.answers.length >= LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) break;
      if (space.free <= ch.answers.length) {
        waiting = true; // the guest is not taking answers: poll again
        break;
      }
      // The answer to this request is owed from here on: pushes its handling makes (a service that sends
      // what waited for room) must leave its slot, as they leave those of the answers in flight.
      ch.inFlight++;
      const handled = this.handle(ch, next.bytes);
      ch.inFlight--;
      ch.g2c.advance();
      if (handled.kind === 'async') {
        const epoch = ch.epoch;
        ch.inFlight++;
        handled.answer.then(
          (response) => this.complete(ch, epoch, handled.request, handled.service, response),
          (err: unknown) => this.complete(ch, epoch, handled.request, handled.service, this.serviceFailed(ch, handled.service, handled.request, err)),
        );
      } else if (handled.kind === 'sync') {
        this.countAnswer(ch, handled.answer);
        if (!this.send(ch, handled.answer)) break;
        responded = true;
      }
      if (mem.loadU32(ch.base + C.state) !== CHANNEL_STATE.READY) break;
    }
    if (this.flush(ch)) responded = true;
    // Answers or host requests still waiting for room: the guest frees c2g slots without ringing, so the
    // shell polls (on a timer: a guest that never reads costs a timer, not a spinning core). Pushes wait for
    // the guest's next doorbell.
    if (ch.answers.length > 0 || ch.outbox.some((e) => e.message.requestId !== 0)) waiting = true;
    ch.g2c.setNeedWakeup(true);
    if (responded && ch.c2g.consumerWantsWakeup()) {
      this.counters.notificationsSent++;
      this.opts.notifyGuest(VECTOR.RING);
    }
    return more ? 'more' : waiting ? 'waiting' : 'idle';
  }

  /**
   * Sends answers that waited for room, then what services queued, while the ring has room beyond the
   * answers still owed (queued output never takes the slots answers need). Returns whether any went out.
   */
  private flush(ch: ChannelEnd): boolean {
    let pushed = false;
    const free = (): number => {
      const space = ch.c2g.space();
      return space.kind === 'space' ? space.free : 0;
    };
    while (ch.answers.length > 0 && free() > 0) {
      if (!this.send(ch, ch.answers.shift()!)) return pushed;
      pushed = true;
    }
    while (ch.outbox.length > 0 && free() > ch.inFlight + ch.answers.length) {
      const entry = ch.outbox.shift()!;
      if (!this.send(ch, entry.message)) return pushed;
      pushed = true;
      if (entry.onSent) this.eachService('onSent', () => entry.onSent!(), (s) => s.name === entry.service);
    }
    return pushed;
  }

  /**
   * Writes one message into the c2g ring. False when the guest moved its consumer index so that no slot is
   * free after all (it wrote garbage between our look and the write): the channel then needs a reset.
   */
  private send(ch: ChannelEnd, message: Message): boolean {
    const r = ch.c2g.tryPush(encodeMessage(message, this.opts.geometry.slotSizeBytes));
    if (!r.ok) this.ringFault(ch, r.reason);
    return r.ok;
  }

  private complete(ch: ChannelEnd, epoch: number, request: Message, service: string, response: Message): void {
    if (ch.epoch !== epoch) return; // the channel was reset meanwhile
    ch.inFlight--;
    const answer = this.checkedAnswer(ch, service, request, response);
    this.countAnswer(ch, answer);
    ch.answers.push(answer);
    this.opts.onWorkPending?.();
  }

  /** A service's answer as sent: one that does not answer this request or does not fit a slot is our bug. */
  private checkedAnswer(ch: ChannelEnd, service: string, request: Message, answer: unknown): Message {
    const a = answer as Partial<Message> | undefined;
    const maxPayload = this.opts.geometry.slotSizeBytes - MSG_HEADER.sizeBytes;
    const problem =
      !a || !(a.payload instanceof Uint8Array) || typeof a.status !== 'number'
        ? 'not a message'
        : a.type !== (request.type | MSG_RESPONSE_BIT) || a.requestId !== request.requestId
          ? `answers type ${a.type} id ${a.requestId}, not the request's`
          : a.payload.byteLength > maxPayload
            ? `payload of ${a.payload.byteLength} bytes does not fit a ${this.opts.geometry.slotSizeBytes}-byte slot`
            : undefined;
    if (problem === undefined) return a as Message;
    return this.serviceFailed(ch, service, request, new Error(`service ${service} answered type ${request.type} with a message that cannot be sent: ${problem}`));
  }

  /** A service failed on a request: log it with the VM's channel, count it, answer INTERNAL_ERROR. */
  private serviceFailed(ch: ChannelEnd, service: string, request: Message, err: unknown): Message {
    this.counters.serviceFailures++;
    this.opts.log.error('service failed; answered INTERNAL_ERROR', {
      channel: ch.index,
      service,
      type: request.type,
      requestId: request.requestId,
      error: err instanceof Error ? err.stack : String(err),
    });
    return responseTo(request, STATUS.INTERNAL_ERROR.code);
  }

  private handle(ch: ChannelEnd, slot: Uint8Array): Handled {
    const decoded = decodeMessage(slot);
    if (!decoded.ok) {
      this.protocolError(ch, decoded.status, decoded.reason);
      return isResponse(decoded.type) ? { kind: 'none' } : { kind: 'sync', answer: responseTo(decoded, decoded.status) };
    }
    const msg = decoded.message;
    if (isResponse(msg.type)) {
      this.answerArrived(ch, msg);
      return { kind: 'none' };
    }
    if (msg.type === MSG_TYPE.SET_MODE) return { kind: 'sync', answer: this.setMode(ch, msg) };
    const route = this.router.route(ch.mode, msg.type);
    if (!route.ok) {
      this.protocolError(ch, route.status, route.reason);
      return { kind: 'sync', answer: responseTo(msg, route.status) };
    }
    this.counters.messages++;
    ch.counts.messages++;
    const service = route.service;
    let answer: Message | Promise<Message>;
    try {
      answer = service.handle(msg, this.portOf(service, ch));
    } catch (err) {
      return { kind: 'sync', answer: this.serviceFailed(ch, service.name, msg, err) };
    }
    if (answer instanceof Promise) return { kind: 'async', request: msg, service: service.name, answer };
    return { kind: 'sync', answer: this.checkedAnswer(ch, service.name, msg, answer) };
  }

  private answerArrived(ch: ChannelEnd, msg: Message): void {
    const waiting = ch.outstanding.get(msg.requestId);
    if (waiting && (msg.type & ~MSG_RESPONSE_BIT) === waiting.type) {
      ch.outstanding.delete(msg.requestId);
      waiting.resolve(msg);
      return;
    }
    if (waiting) {
      this.protocolError(ch, STATUS.BAD_RESPONSE.code, `response type ${msg.type} id ${msg.requestId} to a request of type ${waiting.type}`);
      return;
    }
    const abandoned = ch.abandoned.indexOf(msg.requestId);
    if (abandoned >= 0) {
      ch.abandoned.splice(abandoned, 1);
      this.opts.log.info('dropped the late answer to a host request its caller gave up on', { channel: ch.index, requestId: msg.requestId });
      return;
    }
    this.protocolError(ch, STATUS.BAD_RESPONSE.code, `response type ${msg.type} id ${msg.requestId} with no request outstanding`);
  }

  private setMode(ch: ChannelEnd, msg: Message): Message {
    if (msg.payload.byteLength !== SET_MODE_REQ.sizeBytes) {
      this.protocolError(ch, STATUS.BAD_LENGTH.code, `SET_MODE payload of ${msg.payload.byteLength} bytes, expected ${SET_MODE_REQ.sizeBytes}`);
      return responseTo(msg, STATUS.BAD_LENGTH.code);
    }
    const dv = new DataView(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength);
    if (dv.getUint32(SET_MODE_REQ.offsets.reserved, true) !== 0) return responseTo(msg, STATUS.RESERVED_NONZERO.code);
    const decision = decideSetMode(ch.mode, dv.getUint32(SET_MODE_REQ.offsets.mode, true), this.router.availableModes);
    if (!decision.ok) {
      this.opts.log.warn('SET_MODE refused', { channel: ch.index, status: decision.status, reason: decision.reason });
      return responseTo(msg, decision.status);
    }
    ch.mode = decision.mode;
    this.opts.mem.storeU32(ch.base + C.mode, decision.mode);
    this.counters.messages++;
    ch.counts.messages++;
    this.eachService('channelClaimed', (s) => s.channelClaimed?.(this.portOf(s, ch)), (s) => s.modes !== 'any' && (s.modes as readonly number[]).includes(decision.mode));
    return responseTo(msg, STATUS.OK.code);
  }

  private protocolError(ch: ChannelEnd, status: number, reason: string): void {
    const mem = this.opts.mem;
    this.counters.protocolErrors++;
    ch.counts.protocolErrors++;
    const errors = (mem.loadU32(ch.base + C.error_count) + 1) >>> 0;
    mem.storeU32(ch.base + C.error_count, errors);
    mem.storeI32(ch.base + C.last_status, status);
    this.opts.log.warn('guest protocol error', { channel: ch.index, status, reason });
    if (errors >= this.maxErrors) this.markNeedsReset(ch, status, `${errors} protocol errors since the last reset`);
  }

  /** Channels whose owner put them into `mode` and that are ready. */
  channelsInMode(mode: number): number[] {
    return this.channels.filter((ch) => ch.mode === mode && this.ready(ch)).map((ch) => ch.index);
  }

  private ready(ch: ChannelEnd): boolean {
    return !this.closed && this.opts.mem.loadU32(ch.base + C.state) === CHANNEL_STATE.READY;
  }

  /** The one port a service has on a channel. */
  private portOf(service: MessageService, ch: ChannelEnd): ChannelPort {
    let ports = this.ports.get(service);
    if (!ports) this.ports.set(service, (ports = []));
    let port = ports[ch.index];
    if (!port) {
      const core = this;
      port = ports[ch.index] = {
        channel: ch.index,
        slice: ch.slice,
        slotSizeBytes: this.opts.geometry.slotSizeBytes,
        get mode() {
          return ch.mode;
        },
        request: (type, payload, opts) => core.startRequest(service.name, ch, type, payload, opts),
        push: (type, payload, opts) => core.push(service.name, ch, type, payload, opts),
      };
    }
    return port;
  }

  private hostFor(service: MessageService): ServiceHost {
    const counts = new Map<string, number>();
    this.serviceCounts.set(service.name, counts);
    return {
      vm: this.opts.vm ?? { name: 'unnamed' },
      channelCount: this.channels.length,
      port: (channel) => {
        const ch = this.channels[channel];
        return ch ? this.portOf(service, ch) : undefined;
      },
      counters: { add: (name, by = 1) => counts.set(name, (counts.get(name) ?? 0) + by) },
      log: this.opts.log,
      stateChanged: () => this.opts.onServiceStateChanged?.(),
    };
  }

  private queued(ch: ChannelEnd, service: string): number {
    let n = 0;
    for (const e of ch.outbox) if (e.service === service) n++;
    return n;
  }

  /** Queues output of a service and sends what fits now; wakes the guest if it asked. */
  private enqueue(ch: ChannelEnd, entry: OutboxEntry): void {
    ch.outbox.push(entry);
    if (this.flush(ch) && ch.c2g.consumerWantsWakeup()) {
      this.counters.notificationsSent++;
      this.opts.notifyGuest(VECTOR.RING);
    }
  }

  private push(service: string, ch: ChannelEnd, type: number, payload: Uint8Array, opts: PushOptions = {}): PushResult {
    if (!this.ready(ch)) return { ok: false, code: 'NOT_READY', reason: `channel ${ch.index} is not ready` };
    const maxPayload = this.opts.geometry.slotSizeBytes - MSG_HEADER.sizeBytes;
    if (payload.byteLength > maxPayload) return { ok: false, code: 'TOO_LARGE', reason: `payload of ${payload.byteLength} bytes, a slot takes ${maxPayload}` };
    if (this.queued(ch, service) >= this.pushQueueLimit) {
      return { ok: false, code: 'QUEUE_FULL', reason: `${this.pushQueueLimit} messages of ${service} wait for the guest on channel ${ch.index}` };
    }
    this.enqueue(ch, { service, message: { type, requestId: 0, status: 0, payload }, ...(opts.onSent ? { onSent: opts.onSent } : {}) });
    return { ok: true };
  }

  /**
   * Starts a request from the host side on a channel's c2g ring; the guest answers on g2c. Timeouts are
   * the caller's, through opts.signal (this code keeps no time); a channel reset or close rejects it.
   */
  private startRequest(service: string, ch: ChannelEnd, type: number, payload: Uint8Array, opts: HostRequestOptions = {}): Promise<Message> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(new CoreRequestError('ABORTED', `request on channel ${ch.index} aborted before it started`, {}, { cause: signal.reason }));
    if (!this.ready(ch)) return Promise.reject(new CoreRequestError('NOT_READY', `channel ${ch.index} is not ready`));
    const maxPayload = this.opts.geometry.slotSizeBytes - MSG_HEADER.sizeBytes;
    if (payload.byteLength > maxPayload) return Promise.reject(new RangeError(`request payload of ${payload.byteLength} bytes does not fit a ${this.opts.geometry.slotSizeBytes}-byte slot`));
    if (ch.outstanding.size >= LIMITS.MAX_IN_FLIGHT_PER_CHANNEL || this.queued(ch, service) >= this.pushQueueLimit) {
      return Promise.reject(new CoreRequestError('BUSY', `channel ${ch.index} has ${ch.outstanding.size} host requests outstanding`));
    }
    const requestId = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1) >>> 0 || 1;
    return new Promise<Message>((resolve, reject) => {
      const entry: OutboxEntry = { service, message: { type, requestId, status: 0, payload } };
      const onAbort = (): void => {
        if (ch.outstanding.get(requestId) !== waiting) return;
        ch.outstanding.delete(requestId);
        const queuedAt = ch.outbox.indexOf(entry);
        if (queuedAt >= 0) ch.outbox.splice(queuedAt, 1);
        else {
          ch.abandoned.push(requestId);
          if (ch.abandoned.length > ABANDONED_IDS_KEPT) ch.abandoned.shift();
        }
        reject(new CoreRequestError('ABORTED', `request ${requestId} on channel ${ch.index} aborted`, {}, { cause: signal?.reason }));
      };
      const waiting: Outstanding = {
        service,
        type,
        resolve: (m) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(m);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      ch.outstanding.set(requestId, waiting);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.enqueue(ch, entry);
      // No room in c2g: the guest frees slots without ringing, so have the shell poll until it goes out.
      if (ch.outbox.includes(entry)) this.opts.onWorkPending?.();
    });
  }

  /** Starts a host request on a channel for no service in particular (tools and tests). */
  request(channel: number, type: number, payload: Uint8Array, opts?: HostRequestOptions): Promise<Message> {
    const ch = this.channels[channel];
    if (!ch) return Promise.reject(new CoreRequestError('NOT_READY', `channel ${channel} does not exist`));
    return this.startRequest('host', ch, type, payload, opts);
  }

  /** The device is going away: host requests fail now with the reason, and services drop their state. */
  close(reason = 'the device closed'): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of this.channels) {
      ch.outbox.length = 0;
      this.rejectOutstanding(ch, 'CLOSED', reason);
    }
    this.eachService('close', (s) => s.close?.());
  }

  /** The guest's ring indices are garbage: one protocol error, and the channel waits for a reset. */
  private ringFault(ch: ChannelEnd, reason: string): void {
    this.counters.protocolErrors++;
    ch.counts.protocolErrors++;
    this.markNeedsReset(ch, STATUS.BAD_INDEX.code, reason);
  }

  /**
   * Stops serving the channel until its owner resets it. Counts nothing itself: the caller counted the
   * guest's fault (protocolError, ringFault), and a re-attach that asks for a reset is no fault of the guest.
   */
  private markNeedsReset(ch: ChannelEnd, status: number, reason: string): void {
    const mem = this.opts.mem;
    mem.storeI32(ch.base + C.last_status, status);
    mem.storeU32(ch.base + C.state, CHANNEL_STATE.NEEDS_RESET);
    this.opts.log.warn('channel needs reset; ignoring it until the guest resets it', { channel: ch.index, status, reason });
    this.opts.notifyGuest(VECTOR.RING);
  }
}
