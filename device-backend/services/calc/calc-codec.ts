// Calculation-mode payloads in, answers out. Pure: the payload is already a private copy.
import { CALC_BEGIN_REQ, CALC_ENTRY, CALC_FAILURE, CALC_IO_REQ, CALC_IO_RESP, CALC_JOB_REQ, CALC_LIMITS, CALC_LIST_REQ, CALC_LIST_RESULT, CALC_RESULT, STATUS } from '../../layout/wire-layout.js';
import { type Decoded, decodeStruct } from '../../protocol/struct-codec.js';

export interface BeginReq { name: string; inputSize: number }
export interface JobReq { job: number }
export interface IoReq { job: number; length: number; offset: number; bufOffset: number }

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

export function decodeBegin(p: Uint8Array): Decoded<BeginReq> {
  const head = decodeStruct(CALC_BEGIN_REQ, p, (g) => ({ nameLen: g('name_len'), flags: g('flags'), inputSize: g('input_size') }), { trailing: true });
  if (!head.ok) return head;
  const { nameLen, flags, inputSize } = head.value;
  if (flags !== 0) return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: `vmgmt_calc_begin.flags ${flags} must be 0` };
  if (nameLen < 1 || nameLen > CALC_LIMITS.MAX_FUNCTION_NAME_BYTES || CALC_BEGIN_REQ.sizeBytes + nameLen !== p.byteLength) {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `function name of ${nameLen} bytes in a payload of ${p.byteLength}` };
  }
  const name = new TextDecoder().decode(p.subarray(CALC_BEGIN_REQ.sizeBytes));
  if (!NAME.test(name)) return { ok: false, status: STATUS.CALC_NO_FUNCTION.code, reason: `function name ${JSON.stringify(name)} is not a-z 0-9 . _ -` };
  if (inputSize > CALC_LIMITS.MAX_JOB_BYTES) return { ok: false, status: STATUS.CALC_TOO_LARGE.code, reason: `input of ${inputSize} bytes > ${CALC_LIMITS.MAX_JOB_BYTES}` };
  return { ok: true, value: { name, inputSize } };
}

export const decodeJob = (p: Uint8Array): Decoded<JobReq> => decodeStruct(CALC_JOB_REQ, p, (g) => ({ job: g('job') }));
export const decodeIo = (p: Uint8Array): Decoded<IoReq> =>
  decodeStruct(CALC_IO_REQ, p, (g) => ({ job: g('job'), length: g('length'), offset: g('offset'), bufOffset: g('buf_offset') }));

export function encodeJob(job: number): Uint8Array {
  const out = new Uint8Array(CALC_JOB_REQ.sizeBytes);
  new DataView(out.buffer).setUint32(CALC_JOB_REQ.offsets.job, job, true);
  return out;
}

export function encodeIoResult(bytes: number): Uint8Array {
  const out = new Uint8Array(CALC_IO_RESP.sizeBytes);
  new DataView(out.buffer).setUint32(CALC_IO_RESP.offsets.bytes, bytes, true);
  return out;
}

export function encodeResult(outputSize: number): Uint8Array {
  const out = new Uint8Array(CALC_RESULT.sizeBytes);
  new DataView(out.buffer).setBigUint64(CALC_RESULT.offsets.output_size, BigInt(outputSize), true);
  return out;
}

export interface ProgramFailure {
  /** -1 when a signal ended it. */
  exitCode: number;
  signal: number;
  /** The first bytes of its stderr (at most CALC_LIMITS.MAX_STDERR_BYTES). */
  stderr: Uint8Array;
  stderrTotal: number;
}

/** The CALC_PROGRAM_FAILED answer payload: vmgmt_calc_failure, then as much stderr as fits `roomBytes`. */
export function encodeFailure(f: ProgramFailure, roomBytes: number): Uint8Array {
  const n = Math.max(0, Math.min(f.stderr.byteLength, CALC_LIMITS.MAX_STDERR_BYTES, roomBytes - CALC_FAILURE.sizeBytes));
  const out = new Uint8Array(CALC_FAILURE.sizeBytes + n);
  const dv = new DataView(out.buffer);
  dv.setInt32(CALC_FAILURE.offsets.exit_code, f.exitCode, true);
  dv.setUint32(CALC_FAILURE.offsets.signal, f.signal, true);
  dv.setUint32(CALC_FAILURE.offsets.stderr_len, n, true);
  dv.setUint32(CALC_FAILURE.offsets.stderr_total, Math.min(f.stderrTotal, 0xffffffff), true);
  out.set(f.stderr.subarray(0, n), CALC_FAILURE.sizeBytes);
  return out;
}

export interface ListReq { bufOffset: number; bufLen: number; cookie: number }

export function decodeList(p: Uint8Array): Decoded<ListReq> {
  const d = decodeStruct(CALC_LIST_REQ, p, (g) => ({ bufOffset: g('buf_offset'), bufLen: g('buf_len'), cookie: g('cookie'), reserved: g('reserved') }));
  if (!d.ok) return d;
  if (d.value.reserved !== 0) return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: `vmgmt_calc_list.reserved ${d.value.reserved} must be 0` };
  return { ok: true, value: { bufOffset: d.value.bufOffset, bufLen: d.value.bufLen, cookie: d.value.cookie } };
}

export interface ListEntry { name: string; kind: number; description: string }

/**
 * CALC_LIST records from entry `cookie` on, as many as fit `room` bytes: the records, how many, and the
 * cookie to continue at (0 when done). An entry too large for an empty buffer is cut to its name.
 */
export function encodeList(entries: readonly ListEntry[], cookie: number, room: number): { bytes: Uint8Array; count: number; nextCookie: number } {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let used = 0;
  let i = cookie;
  for (; i < entries.length; i++) {
    const e = entries[i]!;
    const name = enc.encode(e.name);
    let desc = enc.encode(e.description);
    if (desc.byteLength > CALC_LIMITS.MAX_DESCRIPTION_BYTES) desc = desc.subarray(0, CALC_LIMITS.MAX_DESCRIPTION_BYTES);
    const size = (CALC_ENTRY.sizeBytes + name.byteLength + desc.byteLength + 3) & ~3;
    if (used + size > room) break;
    const rec = new Uint8Array(size);
    const dv = new DataView(rec.buffer);
    dv.setUint8(CALC_ENTRY.offsets.name_len, name.byteLength);
    dv.setUint8(CALC_ENTRY.offsets.kind, e.kind);
    dv.setUint16(CALC_ENTRY.offsets.desc_len, desc.byteLength, true);
    rec.set(name, CALC_ENTRY.sizeBytes);
    rec.set(desc, CALC_ENTRY.sizeBytes + name.byteLength);
    parts.push(rec);
    used += size;
  }
  const bytes = new Uint8Array(used);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return { bytes, count: i - cookie, nextCookie: i < entries.length ? i : 0 };
}

export function encodeListResult(count: number, bytes: number, nextCookie: number): Uint8Array {
  const out = new Uint8Array(CALC_LIST_RESULT.sizeBytes);
  const dv = new DataView(out.buffer);
  dv.setUint32(CALC_LIST_RESULT.offsets.count, count, true);
  dv.setUint32(CALC_LIST_RESULT.offsets.bytes, bytes, true);
  dv.setUint32(CALC_LIST_RESULT.offsets.next_cookie, nextCookie, true);
  return out;
}
