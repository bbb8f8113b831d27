// Single-producer single-consumer ring over guest memory. Pure: all access goes through GuestMemory.
// Each side keeps its own index in a private shadow and only publishes it; the other side's index is
// read from shared memory and validated, because the guest can write anything anywhere in its region.
import { RING } from '../layout/wire-layout.js';
import type { GuestMemory } from '../memory/guest-memory.js';

export interface RingGeometry {
  ringOffset: number;
  slotsOffset: number;
  slots: number;
  slotSizeBytes: number;
}

export type PeekResult =
  | { kind: 'empty' }
  | { kind: 'slot'; bytes: Uint8Array }
  | { kind: 'corrupt'; reason: string };

export type SpaceResult = { kind: 'space'; free: number } | { kind: 'corrupt'; reason: string };

const R = RING.offsets;

function slotOffset(g: RingGeometry, index: number): number {
  return g.slotsOffset + (index & (g.slots - 1)) * g.slotSizeBytes;
}

export class RingConsumer {
  private cons = 0;

  constructor(
    private readonly mem: GuestMemory,
    readonly geometry: RingGeometry,
  ) {}

  get index(): number {
    return this.cons;
  }

  /** Empties the ring: both indices and the wake-up flag to zero. Only while the producer is quiescent. */
  reset(): void {
    this.cons = 0;
    this.mem.storeU32(this.geometry.ringOffset + R.prod, 0);
    this.mem.storeU32(this.geometry.ringOffset + R.cons, 0);
    this.mem.storeU32(this.geometry.ringOffset + R.need_wakeup, 0);
  }

  /** Takes over the index this side published before (daemon restart). */
  adoptPublishedIndex(): void {
    this.cons = this.mem.loadU32(this.geometry.ringOffset + R.cons);
  }

  /** A private copy of the next slot, if the producer published one. */
  peek(): PeekResult {
    const prod = this.mem.loadU32(this.geometry.ringOffset + R.prod);
    const available = (prod - this.cons) >>> 0;
    if (available === 0) return { kind: 'empty' };
    if (available > this.geometry.slots) {
      return { kind: 'corrupt', reason: `producer index ${prod} is ${available} ahead of consumer index ${this.cons} in a ${this.geometry.slots}-slot ring` };
    }
    return { kind: 'slot', bytes: this.mem.copyOut(slotOffset(this.geometry, this.cons), this.geometry.slotSizeBytes) };
  }

  /** Releases the slot returned by the last peek. */
  advance(): void {
    this.cons = (this.cons + 1) >>> 0;
    this.mem.storeU32(this.geometry.ringOffset + R.cons, this.cons);
  }

  setNeedWakeup(wanted: boolean): void {
    this.mem.storeU32(this.geometry.ringOffset + R.need_wakeup, wanted ? 1 : 0);
  }
}

export class RingProducer {
  private prod = 0;

  constructor(
    private readonly mem: GuestMemory,
    readonly geometry: RingGeometry,
  ) {}

  get index(): number {
    return this.prod;
  }

  reset(): void {
    this.prod = 0;
    this.mem.storeU32(this.geometry.ringOffset + R.prod, 0);
    this.mem.storeU32(this.geometry.ringOffset + R.cons, 0);
    this.mem.storeU32(this.geometry.ringOffset + R.need_wakeup, 0);
  }

  adoptPublishedIndex(): void {
    this.prod = this.mem.loadU32(this.geometry.ringOffset + R.prod);
  }

  space(): SpaceResult {
    const cons = this.mem.loadU32(this.geometry.ringOffset + R.cons);
    const used = (this.prod - cons) >>> 0;
    if (used > this.geometry.slots) {
      return { kind: 'corrupt', reason: `consumer index ${cons} is ${(cons - this.prod) >>> 0} past producer index ${this.prod}` };
    }
    return { kind: 'space', free: this.geometry.slots - used };
  }

  /**
   * Writes one message into the next slot and publishes it, unless no slot is free: the consumer index
   * (guest-written) may have moved under the caller, so this never trusts an earlier space() and never
   * overwrites a slot the consumer has not released.
   */
  tryPush(message: Uint8Array): { ok: true } | { ok: false; reason: string } {
    if (message.byteLength > this.geometry.slotSizeBytes) {
      throw new RangeError(`message of ${message.byteLength} bytes exceeds the ${this.geometry.slotSizeBytes}-byte slot`);
    }
    const space = this.space();
    if (space.kind !== 'space') return { ok: false, reason: space.reason };
    if (space.free === 0) return { ok: false, reason: `ring full: no free slot at producer index ${this.prod}` };
    this.mem.write(slotOffset(this.geometry, this.prod), message);
    this.prod = (this.prod + 1) >>> 0;
    this.mem.storeU32(this.geometry.ringOffset + R.prod, this.prod);
    return { ok: true };
  }

  /** tryPush for callers that checked space() and own both ends (tests): a full ring throws. */
  push(message: Uint8Array): void {
    const r = this.tryPush(message);
    if (!r.ok) throw new RangeError(r.reason.startsWith('ring full') ? r.reason : `ring full: no free slot at producer index ${this.prod} (${r.reason})`);
  }

  /** Whether the consumer said it may sleep; read after publishing (Atomics are sequentially consistent). */
  consumerWantsWakeup(): boolean {
    return this.mem.loadU32(this.geometry.ringOffset + R.need_wakeup) !== 0;
  }
}
