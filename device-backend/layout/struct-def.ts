// A tiny declarative description of C-compatible structs. The wire layout is written once with it
// (wire-layout.ts); TypeScript reads offsets from it and the C header is generated from it.

export type ScalarType = 'u8' | 'u16' | 'u32' | 'u64' | 'i32';

export interface FieldDef {
  readonly name: string;
  readonly type: ScalarType;
  /** Array length; 1 for a scalar. */
  readonly count: number;
  readonly offset: number;
  readonly sizeBytes: number;
  readonly doc: string;
}

export interface StructDef<F extends string = string> {
  readonly cName: string;
  readonly doc: string;
  readonly sizeBytes: number;
  readonly fields: readonly FieldDef[];
  readonly offsets: Readonly<Record<F, number>>;
}

export const SCALAR_SIZE_BYTES: Readonly<Record<ScalarType, number>> = { u8: 1, u16: 2, u32: 4, u64: 8, i32: 4 };

export type FieldSpec<F extends string> = readonly [name: F, type: ScalarType, doc: string, count?: number];

/**
 * Lays fields out in order with natural alignment, then pads to `sizeBytes`. Throws if a field would
 * need implicit padding (every gap must be an explicit field, so C and TypeScript cannot disagree) or if
 * the fields do not fit.
 */
export function defineStruct<F extends string>(
  cName: string,
  doc: string,
  sizeBytes: number,
  specs: readonly FieldSpec<F>[],
): StructDef<F> {
  const fields: FieldDef[] = [];
  const offsets = {} as Record<F, number>;
  let offset = 0;
  for (const [name, type, fieldDoc, count = 1] of specs) {
    const elem = SCALAR_SIZE_BYTES[type];
    if (offset % elem !== 0) {
      throw new Error(`${cName}.${name}: offset ${offset} is not aligned to ${elem}; add an explicit pad field`);
    }
    fields.push({ name, type, count, offset, sizeBytes: elem * count, doc: fieldDoc });
    offsets[name] = offset;
    offset += elem * count;
  }
  if (offset > sizeBytes) throw new Error(`${cName}: fields take ${offset} bytes, more than its size ${sizeBytes}`);
  if (offset < sizeBytes) {
    fields.push({ name: '_reserved', type: 'u8', count: sizeBytes - offset, offset, sizeBytes: sizeBytes - offset, doc: 'reserved, must be zero' });
  }
  return { cName, doc, sizeBytes, fields, offsets };
}
