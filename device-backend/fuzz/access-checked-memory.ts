// A GuestMemory that checks every access the core (and the services through it) makes against the region
// map: which part of which channel it lands in, whether the core may write that field, and whether the
// channel it belongs to is the one being served. The core gets this one; the fake guests use a plain
// GuestMemory over the same buffer, so every access recorded here is the host's. Production code is
// unchanged: this is a subclass handed in where the core takes its GuestMemory.
import { channelOffset, dataSliceOffset, type Geometry, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, DEVICE_STATUS, HEADER, HOST_FEATURES, RING, VMGMT_MAGIC, VMGMT_VERSION_MAJOR, VMGMT_VERSION_MINOR } from '../layout/wire-layout.js';
import { GuestMemory } from '../memory/guest-memory.js';

export type AccessOp = 'load' | 'store' | 'copyOut' | 'write' | 'fill' | 'view';

/** Where an access lands. `field` is set when it is exactly one field of a struct. */
export type Area =
  | { kind: 'header'; field: string | undefined }
  | { kind: 'ctl'; channel: number; field: string | undefined }
  | { kind: 'ring'; channel: number; dir: 'g2c' | 'c2g'; field: string | undefined }
  | { kind: 'slot'; channel: number; dir: 'g2c' | 'c2g'; index: number; atStart: boolean }
  | { kind: 'slice'; channel: number }
  | { kind: 'outside'; why: string };

function fieldAt(def: { fields: readonly { name: string; offset: number; sizeBytes: number }[] }, rel: number, len: number): string | undefined {
  return def.fields.find((f) => f.offset === rel && f.sizeBytes === len)?.name;
}

/** Classifies [offset, offset + len) against the geometry; an access must lie inside one part. */
export function classify(g: Geometry, offset: number, len: number): Area {
  const end = offset + len;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || end > g.regionSizeBytes) {
    return { kind: 'outside', why: 'outside the region' };
  }
  if (offset < HEADER.sizeBytes) {
    // version_major and version_minor are read and written as one aligned word.
    const field = offset === HEADER.offsets.version_major && len === 4 ? 'version' : fieldAt(HEADER, offset, len);
    return end <= HEADER.sizeBytes ? { kind: 'header', field } : { kind: 'outside', why: 'straddles the header end' };
  }
  const channelsEnd = g.channelsOffset + g.channelCount * g.channelStrideBytes;
  if (offset >= g.channelsOffset && offset < channelsEnd) {
    const ch = Math.floor((offset - g.channelsOffset) / g.channelStrideBytes);
    const base = channelOffset(g, ch);
    if (offset < base + CHANNEL.sizeBytes) {
      return end <= base + CHANNEL.sizeBytes ? { kind: 'ctl', channel: ch, field: fieldAt(CHANNEL, offset - base, len) } : { kind: 'outside', why: `straddles channel ${ch}'s control block` };
    }
    for (const dir of ['g2c', 'c2g'] as const) {
      const r = ringOffset(g, ch, dir);
      if (offset >= r && offset < r + RING.sizeBytes) {
        return end <= r + RING.sizeBytes ? { kind: 'ring', channel: ch, dir, field: fieldAt(RING, offset - r, len) } : { kind: 'outside', why: `straddles channel ${ch}'s ${dir} ring` };
      }
      const s = slotsOffset(g, ch, dir);
      if (offset >= s && offset < s + g.ringSlots * g.slotSizeBytes) {
        const index = Math.floor((offset - s) / g.slotSizeBytes);
        const slotStart = s + index * g.slotSizeBytes;
        return end <= slotStart + g.slotSizeBytes
          ? { kind: 'slot', channel: ch, dir, index, atStart: offset === slotStart }
          : { kind: 'outside', why: `straddles channel ${ch}'s ${dir} slot ${index}` };
      }
    }
    return { kind: 'outside', why: `padding of channel ${ch}` };
  }
  const sliceEnd = g.dataOffset + g.channelCount * g.dataSliceBytes;
  if (offset >= g.dataOffset && offset < sliceEnd) {
    const ch = Math.floor((offset - g.dataOffset) / g.dataSliceBytes);
    return end <= dataSliceOffset(g, ch) + g.dataSliceBytes ? { kind: 'slice', channel: ch } : { kind: 'outside', why: `straddles channel ${ch}'s data slice` };
  }
  return { kind: 'outside', why: 'a gap between the parts of the region' };
}

/** Fields the core may write, and with which values (a guest-owned field only when resetting it to 0). */
const CORE_WRITES: Record<string, (v: number, phase: Phase) => boolean> = {
  'header.reset_done': () => true,
  'header.guest_features': (v) => v === 0,
  'header.device_status': (v) => (v & ~DEVICE_STATUS.NEEDS_RESET) === 0,
  'header.core_generation': (_v, phase) => phase === 'reattach',
  'ctl.owner': (v) => v === 0,
  'ctl.reset_done': () => true,
  'ctl.state': () => true,
  'ctl.last_status': () => true,
  'ctl.error_count': () => true,
  'ctl.mode': () => true,
  'g2c.prod': (v) => v === 0,
  'g2c.cons': () => true,
  'g2c.need_wakeup': (v) => v === 0 || v === 1,
  'c2g.prod': () => true,
  'c2g.cons': (v) => v === 0,
  'c2g.need_wakeup': (v) => v === 0,
};

/** init: the core lays out a fresh region (anything goes); reattach: it may bump core_generation. */
export type Phase = 'init' | 'reattach' | 'serve';

export class AccessCheckedMemory extends GuestMemory {
  readonly violations: string[] = [];
  accesses = 0;
  phase: Phase = 'serve';
  /** While a service handles a request synchronously: the channel it handles it for. */
  serviceChannel: number | undefined;
  /** Highest channel touched in this pass; the core serves channels in order, so it never goes back. */
  private lastChannel = -1;
  private nested = 0;
  private readonly recent: string[] = [];

  constructor(
    buffer: ArrayBuffer,
    readonly geometry: Geometry,
  ) {
    super(buffer);
  }

  /** A new pass of the core (process(), request(), reattach) starts: channel order starts over. */
  beginPass(): void {
    this.lastChannel = -1;
  }

  /** The last accesses, for a failure report. */
  recentAccesses(): string[] {
    return [...this.recent];
  }

  private violation(what: string): void {
    if (this.violations.length < 20) this.violations.push(`${what} (recent: ${this.recent.slice(-6).join('; ')})`);
  }

  private record(op: AccessOp, offset: number, len: number, value?: number): void {
    if (this.nested > 0) return;
    this.accesses++;
    const area = classify(this.geometry, offset, len);
    const name = area.kind === 'outside' ? `outside(${area.why})` : area.kind === 'slice' || area.kind === 'slot' ? `${area.kind}${area.channel}` : `${area.kind}${'channel' in area ? area.channel : ''}.${'dir' in area ? area.dir + '.' : ''}${area.field}`;
    this.recent.push(`${op} ${offset}+${len}${value === undefined ? '' : `=${value}`} ${name}`);
    if (this.recent.length > 12) this.recent.shift();
    if (this.phase === 'init' || len === 0) return; // a zero-length access touches no byte
    const where = `${op} of ${len} bytes at ${offset}`;
    if (area.kind === 'outside') return this.violation(`${where}: ${area.why}`);

    if (this.serviceChannel !== undefined) {
      if (area.kind !== 'slice' || area.channel !== this.serviceChannel || (op !== 'copyOut' && op !== 'view')) {
        this.violation(`${where}: a service handling channel ${this.serviceChannel}'s request touched ${name}`);
      }
      return;
    }
    if (area.kind === 'slice') return this.violation(`${where}: the core touched channel ${area.channel}'s data slice outside a service call`);

    if (area.kind !== 'header') {
      // Re-attaching reads every channel's mode, asks the services to restore, then marks channels: two
      // ordered walks in one call. Serving passes walk once.
      if (area.channel < this.lastChannel && this.phase !== 'reattach') this.violation(`${where}: touched channel ${area.channel} after channel ${this.lastChannel} in the same pass`);
      this.lastChannel = Math.max(this.lastChannel, area.channel);
    }
    const isWrite = op === 'store' || op === 'write' || op === 'fill';
    if (area.kind === 'slot') {
      if (area.dir === 'g2c' && !(op === 'copyOut' && area.atStart && len === this.geometry.slotSizeBytes)) this.violation(`${where}: g2c slots are only copied out whole`);
      if (area.dir === 'c2g' && !(op === 'write' && area.atStart)) this.violation(`${where}: c2g slots are only written from their start`);
      return;
    }
    if (area.kind === 'header' && isWrite && this.isCoreHeaderRewrite(op, offset, len, area.field, value)) return;
    if (op !== 'load' && op !== 'store') return this.violation(`${where}: ${op} of a control field`);
    const key = area.kind === 'header' ? `header.${area.field}` : area.kind === 'ctl' ? `ctl.${area.field}` : `${area.dir}.${area.field}`;
    if (area.field === undefined) return this.violation(`${where}: not a whole field (${key})`);
    if (isWrite) {
      const allowed = CORE_WRITES[key];
      if (!allowed || !allowed(value ?? 0, this.phase)) this.violation(`${where}: the core may not write ${key} = ${value}`);
      if (key === 'header.reset_done') this.lastChannel = -1; // a device reset went through every channel; serving starts over
    }
  }

  /**
   * A device reset rewrites the core's half of the header (writeCoreHeaderFields): only with this device's
   * own geometry, version and magic, and zeroes over the reserved bytes.
   */
  private isCoreHeaderRewrite(op: AccessOp, offset: number, len: number, field: string | undefined, value: number | undefined): boolean {
    const g = this.geometry;
    const H = HEADER.offsets;
    const reservedStart = H.data_slice_size + 4;
    if (op === 'fill') return offset === reservedStart && len === HEADER.sizeBytes - reservedStart;
    if (op !== 'store') return false;
    if (offset === H.version_major && len === 4) return value === (VMGMT_VERSION_MAJOR | (VMGMT_VERSION_MINOR << 16));
    const features = BigInt(HOST_FEATURES);
    const expected: Record<string, number> = {
      magic: VMGMT_MAGIC,
      header_size: HEADER.sizeBytes,
      channel_count: g.channelCount,
      region_size: g.regionSizeBytes,
      host_features: Number(features & 0xffffffffn) + Number(features >> 32n),
      channels_offset: g.channelsOffset,
      channel_stride: g.channelStrideBytes,
      ring_slots: g.ringSlots,
      slot_size: g.slotSizeBytes,
      data_offset: g.dataOffset,
      data_size: g.dataSizeBytes,
      vectors: g.vectors,
      core_peer_id: 0,
      data_slice_size: g.dataSliceBytes,
    };
    return field !== undefined && field in expected && value === expected[field];
  }

  override loadU32(offset: number): number {
    this.record('load', offset, 4);
    return super.loadU32(offset);
  }

  override loadI32(offset: number): number {
    this.record('load', offset, 4);
    return super.loadI32(offset);
  }

  override storeU32(offset: number, value: number): void {
    this.record('store', offset, 4, value >>> 0);
    super.storeU32(offset, value);
  }

  override storeI32(offset: number, value: number): void {
    this.record('store', offset, 4, value | 0);
    super.storeI32(offset, value);
  }

  override loadU64(offset: number): bigint {
    this.record('load', offset, 8);
    this.nested++;
    try {
      return super.loadU64(offset);
    } finally {
      this.nested--;
    }
  }

  override storeU64(offset: number, value: bigint): void {
    this.record('store', offset, 8, Number(value & 0xffffffffn) + Number(value >> 32n));
    this.nested++;
    try {
      super.storeU64(offset, value);
    } finally {
      this.nested--;
    }
  }

  override copyOut(offset: number, lengthBytes: number): Uint8Array {
    this.record('copyOut', offset, lengthBytes);
    return super.copyOut(offset, lengthBytes);
  }

  override write(offset: number, data: Uint8Array): void {
    this.record('write', offset, data.byteLength);
    super.write(offset, data);
  }

  override fill(offset: number, lengthBytes: number, value = 0): void {
    this.record('fill', offset, lengthBytes);
    super.fill(offset, lengthBytes, value);
  }

  override view(offset: number, lengthBytes: number): Uint8Array {
    this.record('view', offset, lengthBytes);
    return super.view(offset, lengthBytes);
  }
}
