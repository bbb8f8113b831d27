// One chat channel of a VM as the hub sees it: an endpoint holding the channel's names, with the
// receiver's bounded queue and the pump that moves queued messages into the ring (through the core's push
// queue) and large ones into the receive area. A sender is told "delivered" only from the push's onSent:
// the message is then in the receiver's ring in guest memory, which survives a daemon restart.
import { CHAT_RX, MSG_HEADER, MSG_TYPE, CHAT_PRESENCE_REASON } from '../../layout/wire-layout.js';
import type { ChannelPort, ServiceCounters } from '../../core/message-service.js';
import type { CoreLogger } from '../../core/core-logger.js';
import { deliverOverhead, encodeDeliver, encodePresence } from './chat-codec.js';
import { refuse, type ChatRefusalCode } from './chat-error.js';
import type { ChatEndpoint, ChatHub, ChatMessage, ChatOutcome, PresenceEvent, Timers } from './chat-hub.js';
import { type ChatParty, displayVm } from './chat-policy.js';
import { ChatQueue, type ChatQueueLimits } from './chat-queue.js';
import { allocateRx, type RxGeometry } from './rx-area.js';

/**
 * Deliveries in the core's push queue (handed over, not yet in the ring) per channel. One: the rest wait in
 * this channel's own queue, where a delivery that is not taken in time can be withdrawn and refused; the
 * pump refills the ring as soon as the guest makes room (several per doorbell), and presence events always
 * fit the core's bound of 64.
 */
export const HANDED_MAX = 1;
/** A message not in the receiver's ring after this long is withdrawn and refused QUEUE_FULL. */
export const DEFAULT_DELIVERY_TIMEOUT_MS = 10_000;

interface Pending {
  readonly queuedAtMs: number;
  readonly source: string;
  readonly bytes: number;
  readonly message: ChatMessage;
  resolve(o: ChatOutcome): void;
}

export interface ChatChannelDeps {
  port: ChannelPort;
  hub: ChatHub;
  vm: string;
  group: string | undefined;
  limits: ChatQueueLimits;
  rx: RxGeometry;
  counters: ServiceCounters;
  log: CoreLogger;
  timers: Timers;
  now: () => number;
  deliveryTimeoutMs: number;
}

const RX = CHAT_RX.offsets;

export class ChatChannel implements ChatEndpoint {
  readonly names: string[] = [];
  watching = false;
  private readonly queue: ChatQueue<Pending>;
  private readonly handed = new Set<Pending>();
  private head: number;
  private gone = false;
  private pumpScheduled = false;
  private sweep: unknown;
  private waitingFlag: boolean;

  /**
   * `fresh`: a new claim (the ring is empty, the owner a new process): the receive area starts over.
   * Otherwise (a restart) its positions are read back from guest memory.
   */
  constructor(
    private readonly d: ChatChannelDeps,
    fresh: boolean,
  ) {
    this.queue = new ChatQueue(d.limits);
    if (fresh) {
      for (const f of ['host_head', 'guest_tail', 'host_waiting'] as const) this.writeRx(f, 0);
    }
    this.head = this.readRx('host_head');
    this.waitingFlag = this.readRx('host_waiting') !== 0;
  }

  get channel(): number {
    return this.d.port.channel;
  }

  party(): ChatParty {
    return { vm: this.d.vm, name: this.names[0] ?? '', group: this.d.group };
  }

  private readRx(field: 'host_head' | 'guest_tail' | 'host_waiting'): number {
    const r = this.d.port.slice.copyOut(RX[field], 4);
    return r.ok ? new DataView(r.bytes.buffer, r.bytes.byteOffset).getUint32(0, true) : 0;
  }

  private writeRx(field: 'host_head' | 'guest_tail' | 'host_waiting', value: number): void {
    const r = this.d.port.slice.view(RX[field], 4);
    if (r.ok) new DataView(r.bytes.buffer, r.bytes.byteOffset, 4).setUint32(0, value >>> 0, true);
  }

  deliver(message: ChatMessage): Promise<ChatOutcome> {
    if (this.gone) return Promise.resolve(refuse('PEER_GONE', `channel ${this.channel} of ${this.d.vm} went away`));
    const maxInline = this.d.port.slotSizeBytes - MSG_HEADER.sizeBytes;
    const header = this.header(message);
    if (deliverOverhead(header) + message.data.byteLength > maxInline && message.data.byteLength > this.d.rx.size) {
      return Promise.resolve(refuse('TOO_LARGE', `${message.data.byteLength} bytes do not fit ${this.d.vm}'s ${this.d.rx.size}-byte receive area`));
    }
    return new Promise<ChatOutcome>((resolve) => {
      const pending: Pending = { queuedAtMs: this.d.now(), source: message.from.vm ?? '@host', bytes: message.data.byteLength, message, resolve };
      const offered = this.queue.offer(pending);
      if (!offered.ok) {
        this.d.counters.add('queue_full');
        resolve(refuse('QUEUE_FULL', `${message.to}: ${offered.reason}`));
        return;
      }
      this.pump();
      this.armSweep();
    });
  }

  /** While messages wait, looks every second for ones older than the delivery timeout (FIFO: oldest first). */
  private armSweep(): void {
    if (this.sweep !== undefined || this.gone || this.queue.size.waiting === 0) return;
    this.sweep = this.d.timers.setTimeout(() => {
      this.sweep = undefined;
      this.expire();
      this.armSweep();
    }, Math.min(1000, this.d.deliveryTimeoutMs));
  }

  private expire(): void {
    const limit = this.d.now() - this.d.deliveryTimeoutMs;
    for (let next = this.queue.peek(); next && next.queuedAtMs <= limit; next = this.queue.peek()) {
      this.queue.take();
      this.queue.release(next);
      this.d.counters.add('delivery_timeouts');
      next.resolve(refuse('QUEUE_FULL', `${next.message.to} did not take the message within ${this.d.deliveryTimeoutMs} ms`));
    }
  }

  private header(m: ChatMessage) {
    return { fromVm: displayVm(m.from) ?? '', fromName: m.from.name, toName: m.to, call: m.callId !== 0, callId: m.callId, broadcast: m.broadcast };
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Hands waiting messages to the core, in order, while it takes them and the receive area has room. */
  pump(): void {
    const maxInline = this.d.port.slotSizeBytes - MSG_HEADER.sizeBytes;
    let blocked = false;
    while (!this.gone && this.handed.size < HANDED_MAX) {
      const next = this.queue.peek();
      if (!next) break;
      const header = this.header(next.message);
      let payload: Uint8Array;
      let headAfter: number | undefined;
      if (deliverOverhead(header) + next.message.data.byteLength <= maxInline) {
        payload = encodeDeliver(header, next.message.data);
      } else {
        const alloc = allocateRx(this.d.rx, this.head, this.readRx('guest_tail'), next.message.data.byteLength);
        if (!alloc.ok && alloc.kind === 'full') {
          blocked = true;
          break;
        }
        if (!alloc.ok) {
          this.queue.take();
          this.queue.release(next);
          this.d.log.warn('chat delivery refused: receive area', { channel: this.channel, reason: alloc.reason });
          next.resolve(refuse(alloc.kind === 'too-large' ? 'TOO_LARGE' : 'PEER_GONE', alloc.reason));
          continue;
        }
        const view = this.d.port.slice.view(alloc.offset, next.message.data.byteLength);
        if (!view.ok) break; // cannot happen: the area lies inside the slice
        view.bytes.set(next.message.data);
        headAfter = alloc.rxEnd;
        payload = encodeDeliver(header, next.message.data, { offset: alloc.offset, rxEnd: alloc.rxEnd });
      }
      // Published before the push: the guest may see the delivery as soon as the core writes it.
      if (headAfter !== undefined) this.writeRx('host_head', headAfter);
      this.queue.take();
      this.handed.add(next); // before the push: onSent may run inside it
      const pushed = this.d.port.push(MSG_TYPE.CHAT_DELIVER, payload, { onSent: () => this.sent(next) });
      if (!pushed.ok) {
        this.handed.delete(next);
        if (headAfter !== undefined) this.writeRx('host_head', this.head);
        if (pushed.code === 'QUEUE_FULL') {
          this.queue.putBack(next);
          break;
        }
        this.queue.release(next);
        next.resolve(refuse('PEER_GONE', `channel ${this.channel} of ${this.d.vm}: ${pushed.reason}`));
        continue;
      }
      if (headAfter !== undefined) this.head = headAfter;
    }
    // Deliveries wait for the guest: for ring slots (handed to the core, not yet sent) or receive-area
    // space. The guest sends CHAT_RX_FREED once it has taken messages while the flag is up; the core
    // hears nothing when a guest only consumes its ring.
    this.setWaiting(!this.gone && (blocked || this.handed.size > 0));
  }

  private setWaiting(waiting: boolean): void {
    if (waiting === this.waitingFlag) return;
    this.waitingFlag = waiting;
    this.writeRx('host_waiting', waiting ? 1 : 0);
  }

  private sent(p: Pending): void {
    if (!this.handed.delete(p)) return;
    this.queue.release(p);
    this.d.counters.add('delivered');
    this.d.counters.add('delivered_bytes', p.bytes);
    p.resolve({ ok: true });
    this.schedulePump();
  }

  /** The guest took messages (ring slots, receive-area space) while host_waiting was up: CHAT_RX_FREED. */
  rxFreed(): void {
    this.pump();
  }

  presence(event: PresenceEvent): void {
    if (!this.watching || this.gone) return;
    const payload = encodePresence(event.event, event.reason, displayVm(event.peer) ?? '', event.peer.name);
    const r = this.d.port.push(MSG_TYPE.CHAT_PRESENCE, payload);
    if (!r.ok) this.d.counters.add('presence_dropped');
  }

  /** The channel is gone (reset, reclaimed, the VM stopped): names leave, queued messages fail PEER_GONE. */
  drop(reason: PresenceEvent['reason'] = CHAT_PRESENCE_REASON.PROCESS_GONE): void {
    if (this.gone) return;
    this.gone = true;
    if (this.sweep !== undefined) this.d.timers.clearTimeout(this.sweep);
    this.sweep = undefined;
    this.d.hub.watch(this, false);
    for (const name of this.names.splice(0)) this.d.hub.unregister(this, name, reason);
    const code: ChatRefusalCode = 'PEER_GONE';
    for (const p of [...this.handed, ...this.queue.takeAll()]) {
      this.queue.release(p);
      p.resolve(refuse(code, `channel ${this.channel} of ${this.d.vm} went away before the message reached its ring`));
    }
    this.handed.clear();
  }

  /** Receive-area position, kept in the snapshot for diagnostics (guest memory is the truth). */
  get rxHead(): number {
    return this.head;
  }
}
