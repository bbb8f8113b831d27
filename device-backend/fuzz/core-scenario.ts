// What a core fuzz scenario is made of: the geometries, the roles of the channels, and the operations
// (plain data, so fast-check can shrink and print them) with their generators.
import fc from 'fast-check';
import { channelOffset, computeGeometry, dataSliceOffset, type Geometry, type GeometryOptions, ringOffset, slotsOffset } from '../layout/geometry.js';
import { CHANNEL, HEADER, MODE, MSG_HEADER, MSG_TYPE, RING, STATUS } from '../layout/wire-layout.js';
import type { Message } from '../protocol/message-codec.js';
import { edgeU32, hostilePath, type SlotSpec, slotSpec } from './arbitraries.js';

// Geometries and roles

/** Small regions, so random writes hit rings and slots often; a 2-slot ring, and 4 KiB slots. */
export const FUZZ_GEOMETRIES: readonly GeometryOptions[] = [
  { regionSizeBytes: 256 * 1024, channelCount: 4, ringSlots: 8, slotSizeBytes: 256, vectors: 2 },
  { regionSizeBytes: 128 * 1024, channelCount: 3, ringSlots: 2, slotSizeBytes: 64, vectors: 2 },
  { regionSizeBytes: 512 * 1024, channelCount: 5, ringSlots: 32, slotSizeBytes: 128, vectors: 2 },
  { regionSizeBytes: 2 * 1024 * 1024, channelCount: 3, ringSlots: 16, slotSizeBytes: 4096, vectors: 1 },
  { regionSizeBytes: 1024 * 1024, channelCount: 3, ringSlots: 1024, slotSizeBytes: 64, vectors: 2 },
];
export const DEVICE_B_GEOMETRY: GeometryOptions = { regionSizeBytes: 256 * 1024, channelCount: 2, ringSlots: 8, slotSizeBytes: 256, vectors: 2 };

export function geometryOf(opts: GeometryOptions): Geometry {
  const r = computeGeometry(opts);
  if (!r.ok) throw new Error(r.reason);
  return r.geometry;
}

export const GOOD = 0;
export const NOISY = 1;
export const PATH_AT = 0;
export const BUF_AT = 4096;
export const GOOD_DIR = 'good';
export const GOOD_NAMES = ['f0', 'f1', 'f2'] as const;
const STATUS_NAME = new Map<number, string>(Object.entries(STATUS).map(([k, v]) => [v.code, k]));
export const statusName = (s: number): string => STATUS_NAME.get(s) ?? `status ${s}`;

// ---------------------------------------------------------------------------------------------------
// Operations

export type GoodScript =
  | { s: 'put'; name: string; data: Uint8Array; commit: boolean }
  | { s: 'get'; name: string }
  | { s: 'hash'; name: string }
  | { s: 'stat'; name: string }
  | { s: 'list' }
  | { s: 'remove'; name: string };

export type Dir = 'g2c' | 'c2g';
export type CtlField = keyof typeof CHANNEL.offsets;

export type Op =
  | { k: 'ping'; dev: 0 | 1; payload: Uint8Array }
  | { k: 'file'; dev: 0 | 1; script: GoodScript }
  | { k: 'good'; dev: 0 | 1 }
  | { k: 'noisy'; spec: SlotSpec }
  | { k: 'noisyDrain' }
  | { k: 'noisyReset'; mode: number }
  | { k: 'raw'; at: number; bytes: Uint8Array }
  | { k: 'hSend'; ch: number; spec: SlotSpec }
  | { k: 'hIndex'; ch: number; dir: Dir; field: 'prod' | 'cons' | 'need_wakeup'; how: 'rollback' | 'jump' | 'wrap' | 'set'; n: number }
  | { k: 'hCtl'; ch: number; field: CtlField; value: number }
  | { k: 'hReset'; ch: number }
  | { k: 'header'; field: string; value: number }
  | { k: 'slice'; ch: number; at: number; bytes: Uint8Array }
  | { k: 'hostRequest'; ch: number; payload: Uint8Array }
  | { k: 'doorbell'; dev: 0 | 1 }
  | { k: 'settle' }
  | { k: 'restart' }
  | { k: 'transfer'; dir: 'to' | 'from'; flags: number; sizeBytes: number }
  | { k: 'handleIo'; type: number; length: number; fileOffset: number; bufOffset: number; closeFlags: number };

/** Offsets worth aiming at in device A: header fields, hostile channels' fields, slots, slice edges, gaps. */
function interestingOffsets(g: Geometry): number[] {
  const out: number[] = HEADER.fields.map((f) => f.offset);
  out.push(HEADER.sizeBytes, g.channelsOffset - 4);
  for (let ch = 2; ch < g.channelCount; ch++) {
    const base = channelOffset(g, ch);
    out.push(...CHANNEL.fields.map((f) => base + f.offset));
    for (const dir of ['g2c', 'c2g'] as const) {
      out.push(ringOffset(g, ch, dir) + RING.offsets.prod, ringOffset(g, ch, dir) + RING.offsets.cons, ringOffset(g, ch, dir) + RING.offsets.need_wakeup);
      out.push(slotsOffset(g, ch, dir), slotsOffset(g, ch, dir) + g.slotSizeBytes - 8);
    }
    out.push(base + g.channelStrideBytes - 8, dataSliceOffset(g, ch), dataSliceOffset(g, ch) + g.dataSliceBytes - 8);
  }
  out.push(g.dataOffset + g.channelCount * g.dataSliceBytes, g.regionSizeBytes - 16);
  return out.filter((o) => o >= 0 && o < g.regionSizeBytes);
}

export function opArb(g: Geometry): fc.Arbitrary<Op> {
  const hostile = fc.integer({ min: 2, max: g.channelCount - 1 });
  const anyMsgChannel = fc.integer({ min: NOISY, max: g.channelCount - 1 });
  const spec = slotSpec(g.slotSizeBytes, g.dataSliceBytes);
  const dev = fc.constantFrom<0 | 1>(0, 0, 0, 1);
  const name = fc.constantFrom(...GOOD_NAMES);
  const data = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 10_000 }));
  const script: fc.Arbitrary<GoodScript> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ s: fc.constant('put' as const), name, data, commit: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ s: fc.constant('get' as const), name }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('hash' as const), name }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('stat' as const), name }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('list' as const) }) },
    { weight: 1, arbitrary: fc.record({ s: fc.constant('remove' as const), name }) },
  );
  const maxPing = g.slotSizeBytes - MSG_HEADER.sizeBytes;
  const offsets = interestingOffsets(g);
  const rawAt = fc.oneof(
    fc.tuple(fc.constantFrom(...offsets), fc.integer({ min: -8, max: 8 })).map(([o, d]) => Math.max(0, Math.min(g.regionSizeBytes - 1, o + d))),
    fc.integer({ min: 0, max: g.regionSizeBytes - 1 }),
  );
  const sliceAt = fc.oneof(fc.constantFrom(0, 1, 16, 4096, g.dataSliceBytes - 1, g.dataSliceBytes - 16), fc.integer({ min: 0, max: g.dataSliceBytes - 1 }));
  const headerFields = HEADER.fields.filter((f) => !f.name.startsWith('_')).map((f) => f.name);
  const ctlFields = CHANNEL.fields.filter((f) => !f.name.startsWith('_')).map((f) => f.name as CtlField);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ k: fc.constant('ping' as const), dev, payload: fc.uint8Array({ maxLength: maxPing }) }) },
    { weight: 5, arbitrary: fc.record({ k: fc.constant('file' as const), dev, script }) },
    { weight: 10, arbitrary: fc.record({ k: fc.constant('good' as const), dev }) },
    { weight: 8, arbitrary: fc.record({ k: fc.constant('noisy' as const), spec }) },
    { weight: 3, arbitrary: fc.constant({ k: 'noisyDrain' as const }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('noisyReset' as const), mode: fc.constantFrom(0, MODE.FILE, MODE.FILE, MODE.AGENT) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('raw' as const), at: rawAt, bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }) }) },
    { weight: 8, arbitrary: fc.record({ k: fc.constant('hSend' as const), ch: hostile, spec }) },
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('hIndex' as const), ch: hostile, dir: fc.constantFrom<Dir>('g2c', 'c2g'), field: fc.constantFrom('prod' as const, 'cons' as const, 'need_wakeup' as const),
        how: fc.constantFrom('rollback' as const, 'jump' as const, 'wrap' as const, 'set' as const), n: edgeU32([g.ringSlots]),
      }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('hCtl' as const), ch: hostile, field: fc.constantFrom(...ctlFields), value: edgeU32() }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('hReset' as const), ch: hostile }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('header' as const), field: fc.constantFrom(...headerFields), value: edgeU32() }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('slice' as const), ch: anyMsgChannel, at: sliceAt, bytes: fc.oneof(hostilePath, fc.uint8Array({ minLength: 1, maxLength: 32 })) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('hostRequest' as const), ch: anyMsgChannel, payload: fc.uint8Array({ maxLength: Math.min(maxPing, 48) }) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('doorbell' as const), dev }) },
    { weight: 1, arbitrary: fc.constant({ k: 'settle' as const }) },
    { weight: 1, arbitrary: fc.constant({ k: 'restart' as const }) },
    {
      weight: 2,
      arbitrary: fc.record({ k: fc.constant('transfer' as const), dir: fc.constantFrom('to' as const, 'from' as const), flags: fc.constantFrom(1, 1, 2, 2, 3, 0), sizeBytes: fc.oneof(fc.integer({ min: 0, max: 1 << 16 }), fc.constant(2 ** 30)) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        k: fc.constant('handleIo' as const),
        type: fc.constantFrom(MSG_TYPE.FILE_READ, MSG_TYPE.FILE_WRITE, MSG_TYPE.FILE_READ, MSG_TYPE.FILE_WRITE, MSG_TYPE.FILE_HASH, MSG_TYPE.FILE_CLOSE),
        length: fc.oneof(fc.integer({ min: 0, max: 8192 }), edgeU32([g.dataSliceBytes])),
        fileOffset: fc.oneof(fc.integer({ min: 0, max: 1 << 16 }), fc.constantFrom(2 ** 30 - 1, 2 ** 32, 2 ** 53 - 1)),
        bufOffset: fc.oneof(fc.integer({ min: 0, max: 8192 }), edgeU32([g.dataSliceBytes])),
        closeFlags: fc.constantFrom(0, 1, 1, 2),
      }),
    },
  );
}

/** The core's own limits for device A: the defaults, a tiny batch (the "more work" path), one error or many. */
export interface Tuning {
  batchLimit: number;
  maxErrorsBeforeReset: number;
}

export interface Scenario {
  geometry: GeometryOptions;
  tuning: Tuning;
  ops: Op[];
}

const tuningArb: fc.Arbitrary<Tuning> = fc.record({
  batchLimit: fc.constantFrom(256, 256, 3, 1),
  maxErrorsBeforeReset: fc.constantFrom(16, 16, 1, 1000),
});

export function scenarioArb(maxOps: number): fc.Arbitrary<Scenario> {
  return fc.constantFrom(...FUZZ_GEOMETRIES).chain((geometry) => fc.record({ geometry: fc.constant(geometry), tuning: tuningArb, ops: fc.array(opArb(geometryOf(geometry)), { minLength: 1, maxLength: maxOps, size: 'max' }) }));
}

export const u32At = (m: Message, off: number): number => new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength).getUint32(off, true);
