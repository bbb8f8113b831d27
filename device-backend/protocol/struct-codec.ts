// Decoding of fixed-size request structs (wire-layout.ts) from a private copy of a guest payload: the exact
// size, no u64 above 2^53, reserved fields zero, each refusal with its status and why. Pure.
import type { StructDef } from '../layout/struct-def.js';
import { STATUS } from '../layout/wire-layout.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; status: number; reason: string };

/**
 * `payload` must be exactly def.sizeBytes (or, with `trailing`, at least that: the bytes after it are the
 * caller's, e.g. a name that follows the struct).
 */
export function decodeStruct<F extends string, T>(def: StructDef<F>, payload: Uint8Array, build: (get: (field: F) => number) => T, opts: { trailing?: boolean } = {}): Decoded<T> {
  if (opts.trailing ? payload.byteLength < def.sizeBytes : payload.byteLength !== def.sizeBytes) {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `${def.cName} payload of ${payload.byteLength} bytes, expected ${def.sizeBytes}` };
  }
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const get = (field: string): number => {
    const f = def.fields.find((x) => x.name === field)!;
    return f.type === 'u64' ? Number(dv.getBigUint64(f.offset, true)) : f.type === 'u16' ? dv.getUint16(f.offset, true) : dv.getUint32(f.offset, true);
  };
  for (const f of def.fields) {
    if (f.type === 'u64' && dv.getBigUint64(f.offset, true) > BigInt(Number.MAX_SAFE_INTEGER)) {
      return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `${def.cName}.${f.name} is larger than 2^53` };
    }
  }
  if (def.fields.some((f) => f.name === 'reserved') && get('reserved') !== 0) {
    return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: `${def.cName}.reserved is not zero` };
  }
  return { ok: true, value: build(get) };
}
