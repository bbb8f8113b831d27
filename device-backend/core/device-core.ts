// The management core for one VM's region: device and channel resets, draining guest→core rings,
// dispatching to services and answering on core→guest rings. Pure: memory comes through GuestMemory,
// notifications go out through the notifyGuest callback, and nothing here does I/O or keeps time.
import { channelOffset, type Geometry, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, CHANNEL_STATE, HEADER, STATUS, VECTOR } from '../layout/wire-layout.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { decodeMessage, encodeMessage, isResponse, type Message, responseTo } from '../protocol/message-codec.js';
import { RingConsumer, RingProducer, type RingGeometry } from '../ring/spsc-ring.js';
import { checkHeaderGeometry, writeFreshHeader } from './region-header.js';
import type { CoreLogger } from './core-logger.js';
import type { MessageService } from './message-service.js';

const H = HEADER.offsets;
const C = CHANNEL.offsets;

export interface DeviceCoreOptions {
  mem: GuestMemory;
  geometry: Geometry;
  services: readonly MessageService[];
  notifyGuest: (vector: number) => void;
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
}

export class DeviceCore {
  readonly counters: CoreCounters = { doorbells: 0, messages: 0, protocolErrors: 0, notificationsSent: 0, channelResets: 0, deviceResets: 0 };
  private readonly channels: ChannelEnd[];
  private readonly handlers = new Map<number, MessageService>();
  private readonly maxErrors: number;
  private readonly batchLimit: number;

  private constructor(private readonly opts: DeviceCoreOptions) {
    const g = opts.geometry;
    this.maxErrors = opts.maxErrorsBeforeReset ?? 16;
    this.batchLimit = opts.batchLimit ?? 256;
    for (const s of opts.services) for (const t of s.types) {
      const taken = this.handlers.get(t);
      if (taken) throw new Error(`message type ${t} is claimed by both ${taken.name} and ${s.name}`);
      this.handlers.set(t, s);
    }
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
    mem.storeU32(ch.base + C.error_count, 0);
    mem.storeI32(ch.base + C.last_status, 0);
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

    let responded = false;
    let more = false;
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
      if (space.free === 0) {
        more = true; // the guest is not taking responses; leave the request in place
        break;
      }
      const response = this.handle(ch, next.bytes);
      ch.g2c.advance();
      if (response) {
        ch.c2g.push(encodeMessage(response, this.opts.geometry.slotSizeBytes));
        responded = true;
      }
      if (mem.loadU32(ch.base + C.state) !== CHANNEL_STATE.READY) break;
    }
    ch.g2c.setNeedWakeup(true);
    if (responded && ch.c2g.consumerWantsWakeup()) {
      this.counters.notificationsSent++;
      this.opts.notifyGuest(VECTOR.RING);
    }
    return more;
  }

  private handle(ch: ChannelEnd, slot: Uint8Array): Message | undefined {
    const decoded = decodeMessage(slot);
    if (!decoded.ok) {
      this.protocolError(ch, decoded.status, decoded.reason);
      return isResponse(decoded.type) ? undefined : responseTo(decoded, decoded.status);
    }
    const msg = decoded.message;
    if (isResponse(msg.type)) {
      this.protocolError(ch, STATUS.BAD_RESPONSE.code, `response type ${msg.type} id ${msg.requestId} with no request outstanding`);
      return undefined;
    }
    const service = this.handlers.get(msg.type);
    if (!service) {
      this.protocolError(ch, STATUS.UNKNOWN_TYPE.code, `no service for type ${msg.type}`);
      return responseTo(msg, STATUS.UNKNOWN_TYPE.code);
    }
    this.counters.messages++;
    return service.handle(msg, { channel: ch.index });
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

  private markNeedsReset(ch: ChannelEnd, status: number, reason: string): void {
    const mem = this.opts.mem;
    mem.storeI32(ch.base + C.last_status, status);
    mem.storeU32(ch.base + C.state, CHANNEL_STATE.NEEDS_RESET);
    this.counters.protocolErrors++;
    this.opts.log.warn('channel needs reset; ignoring it until the guest resets it', { channel: ch.index, status, reason });
    this.opts.notifyGuest(VECTOR.RING);
  }
}
