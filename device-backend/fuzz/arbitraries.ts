// Generators of what a hostile guest writes: numbers at the edges that break arithmetic, message slots of
// a valid type with bad fields, file-mode payloads whose offsets and lengths point just past the slice.
// Shared by the decoder properties, the core fuzz and the long run.
import fc from 'fast-check';
import {
  FILE_HANDLE_REQ, FILE_IO_REQ, FILE_LIST_REQ, FILE_OPEN_REQ, FILE_PATH_REQ, MAX_PATH_BYTES, MSG_HEADER, MSG_RESPONSE_BIT,
  MSG_TYPE, SET_MODE_REQ, AGENT_COPY_REQ,
} from '../layout/wire-layout.js';
import type { StructDef } from '../layout/struct-def.js';

const TWO_32 = 2 ** 32;
const TWO_53 = 2 ** 53;

/** u32 values where arithmetic goes wrong: 0, 1, around 2^31 and 2^32, around a slice or slot size. */
export function edgeU32(around: readonly number[] = []): fc.Arbitrary<number> {
  const near = around.flatMap((n) => [n - 1, n, n + 1]).filter((n) => n >= 0 && n < TWO_32);
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(0, 1, 2, 15, 16, 17, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffffe, 0xffffffff, ...near) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 4096 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: TWO_32 - 1 }) },
  );
}

/** u64 values, as bigint: around 2^32, 2^53 (where a JS number stops being exact) and 2^64. */
export function edgeU64(around: readonly number[] = []): fc.Arbitrary<bigint> {
  const near = around.flatMap((n) => [n - 1, n, n + 1]).filter((n) => n >= 0).map(BigInt);
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, ...near) },
    { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 1n << 20n }) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
  );
}

/** Offsets the core computes with, including ones that are not integers or not safe. */
export const wildNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: -5, max: 70_000 }),
  fc.constantFrom(-1, TWO_32 - 1, TWO_32, TWO_53 - 1, TWO_53, TWO_53 + 2, Number.MAX_VALUE, Infinity, -Infinity, NaN, 0.5, -0),
  fc.double(),
);

/** Fills a struct's fields with edge values (u64 fields as bigint), relative to a slice of `sliceBytes`. */
export function structBytes<F extends string>(def: StructDef<F>, sliceBytes: number): fc.Arbitrary<Uint8Array> {
  const fields = def.fields.filter((f) => !f.name.startsWith('_'));
  return fc
    .tuple(
      ...fields.map((f) =>
        f.type === 'u64' ? edgeU64([sliceBytes, 4096]).map((v) => v as number | bigint) : edgeU32([sliceBytes, MAX_PATH_BYTES]).map((v) => v as number | bigint),
      ),
      fc.boolean(),
    )
    .map((vals) => {
      const zeroReserved = vals[vals.length - 1] as boolean;
      const out = new Uint8Array(def.sizeBytes);
      const dv = new DataView(out.buffer);
      fields.forEach((f, i) => {
        const v = f.name === 'reserved' && zeroReserved ? 0 : vals[i]!;
        if (f.type === 'u64') dv.setBigUint64(f.offset, BigInt(v), true);
        else if (f.type === 'u16') dv.setUint16(f.offset, Number(v) & 0xffff, true);
        else dv.setUint32(f.offset, Number(v) >>> 0, true);
      });
      return out;
    });
}

/** A struct with small, plausible field values (a path near the slice start, a low handle): gets past decoding. */
export function plausibleStruct<F extends string>(def: StructDef<F>): fc.Arbitrary<Uint8Array> {
  const fields = def.fields.filter((f) => !f.name.startsWith('_'));
  const value = (name: string): fc.Arbitrary<number> =>
    name === 'reserved' ? fc.constant(0)
    : name === 'mode' && def === (SET_MODE_REQ as StructDef) ? fc.constantFrom(1, 1, 1, 5, 0, 2, 7)
    : name.endsWith('_len') ? fc.oneof(fc.constantFrom(1, 2, 3, 4, 5, 8, 11, 12, 16), fc.integer({ min: 0, max: 8192 }))
    : name === 'length' || name === 'buf_len' ? fc.integer({ min: 0, max: 8192 })
    : name.endsWith('offset') ? fc.constantFrom(0, 1, 16, 4096, 8192)
    : name === 'flags' || name === 'arg' ? fc.integer({ min: 0, max: 3 })
    : name === 'handle' ? fc.integer({ min: 0, max: 24 })
    : fc.integer({ min: 0, max: 1 << 20 });
  return fc.tuple(...fields.map((f) => value(f.name))).map((vals) => {
    const out = new Uint8Array(def.sizeBytes);
    const dv = new DataView(out.buffer);
    fields.forEach((f, i) => {
      if (f.type === 'u64') dv.setBigUint64(f.offset, BigInt(vals[i]!), true);
      else if (f.type === 'u16') dv.setUint16(f.offset, vals[i]! & 0xffff, true);
      else dv.setUint32(f.offset, vals[i]! >>> 0, true);
    });
    return out;
  });
}

/** Request payloads of every file-mode struct, plus SET_MODE and AGENT_COPY, with edge values; or random. */
export function payloadBytes(sliceBytes: number, maxBytes: number): fc.Arbitrary<Uint8Array> {
  const defs = [FILE_OPEN_REQ, FILE_PATH_REQ, FILE_IO_REQ, FILE_HANDLE_REQ, FILE_LIST_REQ, SET_MODE_REQ, AGENT_COPY_REQ] as const;
  return fc.oneof(
    { weight: 4, arbitrary: fc.oneof(...defs.map((d) => structBytes(d as StructDef, sliceBytes))) },
    { weight: 4, arbitrary: fc.oneof(...defs.map((d) => plausibleStruct(d as StructDef))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: Math.min(maxBytes, 64) }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxBytes }) },
  ).map((p) => p.subarray(0, maxBytes));
}

const KNOWN_TYPES = Object.values(MSG_TYPE);

/** A message's header fields, mostly plausible, sometimes each one wrong. */
export interface SlotSpec {
  type: number;
  flags: number;
  /** undefined: the payload's real length. */
  length: number | undefined;
  requestId: number;
  status: number;
  payload: Uint8Array;
}

/** The request struct each request type carries. */
const REQUEST_STRUCT: ReadonlyMap<number, StructDef> = new Map<number, StructDef>([
  [MSG_TYPE.SET_MODE, SET_MODE_REQ as StructDef],
  [MSG_TYPE.FILE_OPEN, FILE_OPEN_REQ as StructDef],
  [MSG_TYPE.FILE_READ, FILE_IO_REQ as StructDef],
  [MSG_TYPE.FILE_WRITE, FILE_IO_REQ as StructDef],
  [MSG_TYPE.FILE_CLOSE, FILE_HANDLE_REQ as StructDef],
  [MSG_TYPE.FILE_HASH, FILE_HANDLE_REQ as StructDef],
  [MSG_TYPE.FILE_STAT, FILE_PATH_REQ as StructDef],
  [MSG_TYPE.FILE_MKDIR, FILE_PATH_REQ as StructDef],
  [MSG_TYPE.FILE_REMOVE, FILE_PATH_REQ as StructDef],
  [MSG_TYPE.FILE_LIST, FILE_LIST_REQ as StructDef],
  [MSG_TYPE.AGENT_COPY, AGENT_COPY_REQ as StructDef],
]);

/** A request of a known type with that type's struct, fields plausible or at the edges. */
function coherentSpec(slotSizeBytes: number, sliceBytes: number): fc.Arbitrary<SlotSpec> {
  const maxPayload = slotSizeBytes - MSG_HEADER.sizeBytes;
  return fc.constantFrom(...KNOWN_TYPES).chain((type) => {
    const def = REQUEST_STRUCT.get(type);
    const payload = def ? fc.oneof({ weight: 3, arbitrary: plausibleStruct(def) }, { weight: 1, arbitrary: structBytes(def, sliceBytes) }) : fc.uint8Array({ maxLength: maxPayload });
    return fc.record({
      type: fc.constant(type),
      flags: fc.constant(0),
      length: fc.constant(undefined),
      requestId: fc.integer({ min: 0, max: 40 }),
      status: fc.constant(0),
      payload: payload.map((p) => p.subarray(0, maxPayload)),
    });
  });
}

export function slotSpec(slotSizeBytes: number, sliceBytes: number): fc.Arbitrary<SlotSpec> {
  return fc.oneof({ weight: 2, arbitrary: coherentSpec(slotSizeBytes, sliceBytes) }, { weight: 1, arbitrary: anySpec(slotSizeBytes, sliceBytes) });
}

/** Header fields each sometimes wrong, payload of any struct or random. */
function anySpec(slotSizeBytes: number, sliceBytes: number): fc.Arbitrary<SlotSpec> {
  const maxPayload = slotSizeBytes - MSG_HEADER.sizeBytes;
  return fc.record({
    type: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...KNOWN_TYPES) },
      { weight: 1, arbitrary: fc.constantFrom(...KNOWN_TYPES).map((t) => t | MSG_RESPONSE_BIT) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
    ),
    flags: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }),
    length: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: edgeU32([maxPayload, slotSizeBytes]) }),
    requestId: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0xffffffff, 0x80000000)),
    status: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
    payload: payloadBytes(sliceBytes, maxPayload),
  });
}

/** Writes a SlotSpec into a slot-sized buffer exactly as given (a bad length stays bad). */
export function slotFromSpec(spec: SlotSpec, slotSizeBytes: number): Uint8Array {
  const slot = new Uint8Array(slotSizeBytes);
  const dv = new DataView(slot.buffer);
  const o = MSG_HEADER.offsets;
  dv.setUint16(o.type, spec.type, true);
  dv.setUint16(o.flags, spec.flags, true);
  dv.setUint32(o.length, spec.length ?? spec.payload.byteLength, true);
  dv.setUint32(o.request_id, spec.requestId >>> 0, true);
  dv.setInt32(o.status, spec.status, true);
  slot.set(spec.payload.subarray(0, slotSizeBytes - MSG_HEADER.sizeBytes), MSG_HEADER.sizeBytes);
  return slot;
}

/** Guest paths: well-formed, escaping, absolute, with NUL, not UTF-8, temp names, too long. */
export const hostilePath: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(
    'a', 'b.txt', 'd', 'd/e', 'd/e/', '.', './', '..', '../x', 'd/../../x', '/etc/passwd', '//', 'd//e', '.vmgmt-put-0000',
    'd/.vmgmt-put-1', 'a\u0000b', 'lnk', 'lnk/x', 'fifo', '@vmgmt-transfer/x', '/@vmgmt-transfer/00', 'é', 'd/.', 'd/..',
  ).map((s) => new TextEncoder().encode(s)),
  fc.uint8Array({ minLength: 0, maxLength: 12 }),
  fc.constantFrom(new Uint8Array([0xff, 0xfe]), new Uint8Array([0xc3]), new Uint8Array([0xed, 0xa0, 0x80]), new Uint8Array(MAX_PATH_BYTES + 1).fill(0x61), new Uint8Array(MAX_PATH_BYTES).fill(0x61)),
);
