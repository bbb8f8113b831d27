// The management core for one VM's region: device and channel resets, draining guest→core rings,
// dispatching to services and answering on core→guest rings. Pure: memory comes through GuestMemory,
// notifications go out through the notifyGuest callback, and nothing here does I/O or keeps time.
import { channelOffset, dataSliceOffset, type Geometry, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, CHANNEL_STATE, HEADER, LIMITS, MODE, MSG_RESPONSE_BIT, MSG_TYPE, SET_MODE_REQ, STATUS, VECTOR } from '../layout/wire-layout.js';
import { DataSlice } from '../memory/data-slice.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { decodeMessage, encodeMessage, isResponse, type Message, responseTo } from '../protocol/message-codec.js';
import { RingConsumer, RingProducer, type RingGeometry } from '../ring/spsc-ring.js';
import { checkHeaderGeometry, writeFreshHeader } from './region-header.js';
import type { CoreLogger } from './core-logger.js';
import type { MessageService } from './message-service.js';
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
}

export interface CoreCounters {
  doorbells: number;
  messages: number;
  protocolErrors: number;
  notificationsSent: number;
  channelResets: number;
  deviceResets: number;
}

export interface ProcessResult {
  /** Work is left over (a full response ring or the batch limit): call process() again soon. */
  more: boolean;
}

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
  readonly pending: Message[];
  /** Requests the core started on this channel, by request id, waiting for the guest's answer. */
  readonly outstanding: Map<number, { type: number; resolve: (m: Message) => void; reject: (e: Error) => void }>;
}

export class CoreRequestError extends Error {
  override readonly name = 'CoreRequestError';
  constructor(
    readonly code: 'CHANNEL_RESET' | 'NOT_READY' | 'BUSY',
    message: string,
  ) {
    super(message);
  }
}

export class DeviceCore {
  readonly counters: CoreCounters = { doorbells: 0, messages: 0, protocolErrors: 0, notificationsSent: 0, channelResets: 0, deviceResets: 0 };
  private readonly channels: ChannelEnd[];
  private readonly router: ModeRouter;
  private nextRequestId = 1;
  private readonly maxErrors: number;
  private readonly batchLimit: number;

  private constructor(private readonly opts: DeviceCoreOptions) {
    const g = opts.geometry;
    this.maxErrors = opts.maxErrorsBeforeReset ?? 16;
    this.batchLimit = opts.batchLimit ?? 256;
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
      pending: [],
      outstanding: new Map(),
    }));
  }

  /** A new region: writes the header; every channel starts idle. */
  static initialize(opts: DeviceCoreOptions): DeviceCore {
    writeFreshHeader(opts.mem, opts.geometry);
    const core = new DeviceCore(opts);
    for (const ch of core.channels) ch.g2c.setNeedWakeup(true);
    return core;
  }

  /** A region found again after a daemon restart: check it, then carry on from the published indices. */
  static reattach(opts: DeviceCoreOptions): DeviceCore {
    const mismatch = checkHeaderGeometry(opts.mem, opts.geometry);
    if (mismatch) throw new Error(`cannot re-attach to the region: ${mismatch}`);
    const core = new DeviceCore(opts);
    const mem = opts.mem;
    mem.storeU32(H.core_generation, (mem.loadU32(H.core_generation) + 1) >>> 0);
    for (const ch of core.channels) {
      ch.g2c.adoptPublishedIndex();
      ch.c2g.adoptPublishedIndex();
      ch.g2c.setNeedWakeup(true);
      // Answers in flight died with the old core, and so did the services' state: the channel's owner
      // must reset it before using a mode again. PING keeps working.
      ch.mode = mem.loadU32(ch.base + C.mode);
      if (ch.mode !== MODE.NONE) core.markNeedsReset(ch, STATUS.NEEDS_RESET.code, 'the core restarted while the channel was in a mode');
    }
    return core;
  }

  /** Called on every doorbell, and again while process() reports more work. Never throws for guest input. */
  process(): ProcessResult {
    this.counters.doorbells++;
    this.handleDeviceReset();
    let more = false;
    for (const ch of this.channels) {
      if (this.serveChannel(ch)) more = true;
    }
    return { more };
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
    mem.storeU64(H.guest_features, 0n);
    mem.storeU32(H.device_status, 0);
    mem.storeU32(H.reset_done, requested);
    this.counters.deviceResets++;
    this.opts.log.info('device reset by the guest', { resetRequest: requested });
    this.opts.notifyGuest(VECTOR.RING);
  }

  private resetChannel(ch: ChannelEnd): void {
    const mem = this.opts.mem;
    ch.g2c.reset();
    ch.c2g.reset();
    ch.g2c.setNeedWakeup(true);
    ch.epoch++;
    ch.inFlight = 0;
    ch.pending.length = 0;
    for (const o of ch.outstanding.values()) o.reject(new CoreRequestError('CHANNEL_RESET', `channel ${ch.index} was reset before the guest answered`));
    ch.outstanding.clear();
    ch.mode = MODE.NONE;
    mem.storeU32(ch.base + C.mode, MODE.NONE);
    mem.storeU32(ch.base + C.error_count, 0);
    mem.storeI32(ch.base + C.last_status, 0);
    for (const s of this.opts.services) s.channelReset?.(ch.index);
  }

  /** Returns whether work is left on this channel. */
  private serveChannel(ch: ChannelEnd): boolean {
    const mem = this.opts.mem;
    const requested = mem.loadU32(ch.base + C.reset_request);
    if (requested !== mem.loadU32(ch.base + C.reset_done)) {
      this.resetChannel(ch);
      mem.storeU32(ch.base + C.state, CHANNEL_STATE.READY);
      mem.storeU32(ch.base + C.reset_done, requested);
      this.counters.channelResets++;
      this.opts.notifyGuest(VECTOR.RING);
      return false;
    }
    if (mem.loadU32(ch.base + C.state) !== CHANNEL_STATE.READY) return false;

    let more = false;
    let responded = this.flush(ch);
    ch.g2c.setNeedWakeup(false);
    for (let handled = 0; ; handled++) {
      if (handled === this.batchLimit) {
        more = true;
        break;
      }
      const space = ch.c2g.space();
      if (space.kind === 'corrupt') {
        this.markNeedsReset(ch, STATUS.BAD_INDEX.code, space.reason);
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
        this.markNeedsReset(ch, STATUS.BAD_INDEX.code, next.reason);
        break;
      }
      // Every request gets an answer: take one only when its answer is sure to have room. Answers in
      // flight wake us when they land.
      if (ch.inFlight + ch.pending.length >= LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) break;
      if (space.free <= ch.pending.length) {
        more = true; // the guest is not taking answers: poll again
        break;
      }
      const answer = this.handle(ch, next.bytes);
      ch.g2c.advance();
      if (answer instanceof Promise) {
        const epoch = ch.epoch;
        ch.inFlight++;
        answer.then(
          (response) => this.complete(ch, epoch, response),
          (err: unknown) => {
            this.opts.log.error('service failed', { channel: ch.index, error: (err as Error).stack });
            this.complete(ch, epoch, undefined);
          },
        );
      } else if (answer) {
        ch.c2g.push(encodeMessage(answer, this.opts.geometry.slotSizeBytes));
        responded = true;
      }
      if (mem.loadU32(ch.base + C.state) !== CHANNEL_STATE.READY) break;
    }
    // Answers or host requests still waiting for room: the guest frees c2g slots without ringing, so poll.
    if (ch.pending.length > 0) more = true;
    ch.g2c.setNeedWakeup(true);
    if (responded && ch.c2g.consumerWantsWakeup()) {
      this.counters.notificationsSent++;
      this.opts.notifyGuest(VECTOR.RING);
    }
    return more;
  }

  /** Pushes answers that waited for room; returns whether any went out. */
  private flush(ch: ChannelEnd): boolean {
    let pushed = false;
    while (ch.pending.length > 0) {
      const space = ch.c2g.space();
      if (space.kind !== 'space' || space.free === 0) break;
      ch.c2g.push(encodeMessage(ch.pending.shift()!, this.opts.geometry.slotSizeBytes));
      pushed = true;
    }
    return pushed;
  }

  private complete(ch: ChannelEnd, epoch: number, response: Message | undefined): void {
    if (ch.epoch !== epoch) return; // the channel was reset meanwhile
    ch.inFlight--;
    if (response) ch.pending.push(response);
    this.opts.onWorkPending?.();
  }

  private handle(ch: ChannelEnd, slot: Uint8Array): Message | Promise<Message> | undefined {
    const decoded = decodeMessage(slot);
    if (!decoded.ok) {
      this.protocolError(ch, decoded.status, decoded.reason);
      return isResponse(decoded.type) ? undefined : responseTo(decoded, decoded.status);
    }
    const msg = decoded.message;
    if (isResponse(msg.type)) {
      const waiting = ch.outstanding.get(msg.requestId);
      if (!waiting || (msg.type & ~MSG_RESPONSE_BIT) !== waiting.type) {
        const why = waiting ? `to a request of type ${waiting.type}` : 'with no request outstanding';
        this.protocolError(ch, STATUS.BAD_RESPONSE.code, `response type ${msg.type} id ${msg.requestId} ${why}`);
        return undefined;
      }
      ch.outstanding.delete(msg.requestId);
      waiting.resolve(msg);
      return undefined;
    }
    if (msg.type === MSG_TYPE.SET_MODE) return this.setMode(ch, msg);
    const route = this.router.route(ch.mode, msg.type);
    if (!route.ok) {
      this.protocolError(ch, route.status, route.reason);
      return responseTo(msg, route.status);
    }
    this.counters.messages++;
    return route.service.handle(msg, { channel: ch.index, slice: ch.slice });
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
    return responseTo(msg, STATUS.OK.code);
  }

  private protocolError(ch: ChannelEnd, status: number, reason: string): void {
    const mem = this.opts.mem;
    this.counters.protocolErrors++;
    const errors = (mem.loadU32(ch.base + C.error_count) + 1) >>> 0;
    mem.storeU32(ch.base + C.error_count, errors);
    mem.storeI32(ch.base + C.last_status, status);
    this.opts.log.warn('guest protocol error', { channel: ch.index, status, reason });
    if (errors >= this.maxErrors) this.markNeedsReset(ch, status, `${errors} protocol errors since the last reset`);
  }

  /** Channels whose owner put them into `mode` (e.g. the agent's). */
  channelsInMode(mode: number): number[] {
    return this.channels.filter((ch) => ch.mode === mode && this.opts.mem.loadU32(ch.base + C.state) === CHANNEL_STATE.READY).map((ch) => ch.index);
  }

  /**
   * Starts a request from the host side on a channel's c2g ring; the guest answers on g2c. Timeouts are
   * the caller's (this code keeps no time); a channel reset rejects it.
   */
  request(channel: number, type: number, payload: Uint8Array): Promise<Message> {
    const ch = this.channels[channel];
    if (!ch || this.opts.mem.loadU32(ch.base + C.state) !== CHANNEL_STATE.READY) {
      return Promise.reject(new CoreRequestError('NOT_READY', `channel ${channel} is not ready`));
    }
    if (ch.outstanding.size + ch.pending.length >= LIMITS.MAX_IN_FLIGHT_PER_CHANNEL) {
      return Promise.reject(new CoreRequestError('BUSY', `channel ${channel} has ${ch.outstanding.size} host requests outstanding`));
    }
    const requestId = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1) >>> 0 || 1;
    return new Promise<Message>((resolve, reject) => {
      ch.outstanding.set(requestId, { type, resolve, reject });
      ch.pending.push({ type, requestId, status: 0, payload });
      if (this.flush(ch) && ch.c2g.consumerWantsWakeup()) {
        this.counters.notificationsSent++;
        this.opts.notifyGuest(VECTOR.RING);
      }
      // No room in c2g: the guest frees slots without ringing, so have the shell poll until it goes out.
      if (ch.pending.length > 0) this.opts.onWorkPending?.();
    });
  }

  /** The device is going away: services drop their state. */
  close(): void {
    for (const s of this.opts.services) s.close?.();
  }

  private markNeedsReset(ch: ChannelEnd, status: number, reason: string): void {
    const mem = this.opts.mem;
    mem.storeI32(ch.base + C.last_status, status);
    mem.storeU32(ch.base + C.state, CHANNEL_STATE.NEEDS_RESET);
    this.counters.protocolErrors++;
    this.opts.log.warn('channel needs reset; ignoring it until the guest resets it', { channel: ch.index, status, reason });
    this.opts.notifyGuest(VECTOR.RING);
  }
}
