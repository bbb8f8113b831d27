// A guest driver written in TypeScript over the same GuestMemory, for unit tests of the core: it plays
// the guest's half of the protocol (and can misbehave), so the core is tested by feeding it bytes.
import { channelOffset, type Geometry, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, HEADER, MSG_HEADER, RING } from '../layout/wire-layout.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { encodeMessage, type Message, readHeaderFields } from '../protocol/message-codec.js';
import { RingConsumer, RingProducer } from '../ring/spsc-ring.js';

export class FakeGuest {
  readonly g2c: RingProducer;
  readonly c2g: RingConsumer;

  constructor(
    readonly mem: GuestMemory,
    readonly geometry: Geometry,
    readonly channel: number,
  ) {
    const ring = (dir: 'g2c' | 'c2g') => ({ ringOffset: ringOffset(geometry, channel, dir), slotsOffset: slotsOffset(geometry, channel, dir), slots: geometry.ringSlots, slotSizeBytes: geometry.slotSizeBytes });
    this.g2c = new RingProducer(mem, ring('g2c'));
    this.c2g = new RingConsumer(mem, ring('c2g'));
  }

  private ctl(field: keyof typeof CHANNEL.offsets): number {
    return channelOffset(this.geometry, this.channel) + CHANNEL.offsets[field];
  }

  readChannel(field: keyof typeof CHANNEL.offsets): number {
    return field === 'last_status' ? this.mem.loadI32(this.ctl(field)) : this.mem.loadU32(this.ctl(field));
  }

  claim(owner: number): void {
    this.mem.storeU32(this.ctl('owner'), owner);
    this.mem.storeU32(this.ctl('generation'), this.readChannel('generation') + 1);
    this.mem.storeU32(this.ctl('reset_request'), this.readChannel('reset_request') + 1);
    this.g2c.adoptPublishedIndex();
    this.c2g.adoptPublishedIndex();
  }

  /** After the core acknowledged the reset, the guest starts from index 0 like the core. */
  afterReset(): void {
    this.g2c.adoptPublishedIndex();
    this.c2g.adoptPublishedIndex();
  }

  requestDeviceReset(): number {
    const next = (this.mem.loadU32(HEADER.offsets.reset_request) + 1) >>> 0;
    this.mem.storeU32(HEADER.offsets.reset_request, next);
    return next;
  }

  send(message: Message): void {
    this.g2c.push(encodeMessage(message, this.geometry.slotSizeBytes));
  }

  sendRaw(slot: Uint8Array): void {
    this.g2c.push(slot);
  }

  /** Overwrites a ring index the guest has no business writing, or its own, with garbage. */
  pokeRing(dir: 'g2c' | 'c2g', field: 'prod' | 'cons', value: number): void {
    this.mem.storeU32(ringOffset(this.geometry, this.channel, dir) + RING.offsets[field], value);
  }

  receiveAll(): Message[] {
    const out: Message[] = [];
    for (;;) {
      const next = this.c2g.peek();
      if (next.kind !== 'slot') return out;
      const { type, length, requestId, status } = readHeaderFields(next.bytes);
      if (length > next.bytes.byteLength - MSG_HEADER.sizeBytes) throw new Error(`core sent a bad length ${length}`);
      out.push({ type, requestId, status, payload: next.bytes.slice(MSG_HEADER.sizeBytes, MSG_HEADER.sizeBytes + length) });
      this.c2g.advance();
    }
  }

  setWantsWakeup(wanted: boolean): void {
    this.c2g.setNeedWakeup(wanted);
  }

  coreWantsWakeup(): boolean {
    return this.g2c.consumerWantsWakeup();
  }
}
