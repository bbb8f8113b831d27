// Calculation-mode payloads in, answers out. Pure: the payload is already a private copy.
import { CALC_BEGIN_REQ, CALC_ENTRY, CALC_FLAG, CALC_FAILURE, CALC_IO_REQ, CALC_IO_RESP, CALC_JOB_REQ, CALC_LIMITS, CALC_LIST_REQ, CALC_LIST_RESULT, CALC_RESULT, STATUS } from '../../layout/wire-layout.js';
import { type Decoded, decodeStruct } from '../../protocol/struct-codec.js';

export interface BeginReq {
  name: string;
  /** Declared input bytes; undefined when the input is streamed (CALC_FLAG.STREAM_INPUT). */
  inputSize: number | undefined;
  argc: number;
  argsLen: number;
  argsOffset: number;
}
export interface JobReq { job: number }
export interface IoReq { job: number; length: number; offset: number; bufOffset: number }

const NAME = /^[a-z0-9][a-z0-9._-]*$/;
const KNOWN_FLAGS = CALC_FLAG.STREAM_INPUT;

export function decodeBegin(p: Uint8Array): Decoded<BeginReq> {
  const head = decodeStruct(
    CALC_BEGIN_REQ,
    p,
    (g) => ({ nameLen: g('name_len'), flags: g('flags'), inputSize: g('input_size'), argc: g('argc'), argsLen: g('args_len'), argsOffset: g('args_offset'), reserved: g('reserved') }),
    { trailing: true },
  );
  if (!head.ok) return head;
  const { nameLen, flags, inputSize, argc, argsLen, argsOffset, reserved } = head.value;
  if ((flags & ~KNOWN_FLAGS) !== 0) return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: `vmgmt_calc_begin.flags ${flags} has bits other than CALC_FLAG's` };
  if (reserved !== 0) return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: `vmgmt_calc_begin.reserved is ${reserved}, must be 0` };
  if (nameLen < 1 || nameLen > CALC_LIMITS.MAX_FUNCTION_NAME_BYTES || CALC_BEGIN_REQ.sizeBytes + nameLen !== p.byteLength) {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `function name of ${nameLen} bytes in a payload of ${p.byteLength}` };
  }
  const name = new TextDecoder().decode(p.subarray(CALC_BEGIN_REQ.sizeBytes));
  if (!NAME.test(name)) return { ok: false, status: STATUS.CALC_NO_FUNCTION.code, reason: `function name ${JSON.stringify(name)} is not a-z 0-9 . _ -` };
  const stream = (flags & CALC_FLAG.STREAM_INPUT) !== 0;
  if (stream && inputSize !== 0) return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `input_size ${inputSize} with CALC_FLAG.STREAM_INPUT, which needs 0` };
  if (inputSize > CALC_LIMITS.MAX_JOB_BYTES) return { ok: false, status: STATUS.CALC_TOO_LARGE.code, reason: `input of ${inputSize} bytes > ${CALC_LIMITS.MAX_JOB_BYTES}` };
  if (argc > CALC_LIMITS.MAX_ARGS || argsLen > CALC_LIMITS.MAX_ARGS_BYTES || (argc === 0) !== (argsLen === 0) || argsLen < argc) {
    return { ok: false, status: STATUS.CALC_BAD_ARGS.code, reason: `${argc} arguments in ${argsLen} bytes (at most ${CALC_LIMITS.MAX_ARGS} in ${CALC_LIMITS.MAX_ARGS_BYTES}, each NUL-terminated)` };
  }
  return { ok: true, value: { name, inputSize: stream ? undefined : inputSize, argc, argsLen, argsOffset } };
}

/** The arguments of a CALC_BEGIN, copied out of the slice: exactly `argc` NUL-terminated UTF-8 strings filling
 * the bytes, none with a control character. Pure. */
export function decodeArgs(bytes: Uint8Array, argc: number): Decoded<string[]> {
  const bad = (why: string): Decoded<string[]> => ({ ok: false, status: STATUS.CALC_BAD_ARGS.code, reason: why });
  if (argc === 0) return bytes.byteLength === 0 ? { ok: true, value: [] } : bad(`${bytes.byteLength} argument bytes for 0 arguments`);
  if (bytes[bytes.byteLength - 1] !== 0) return bad('the last argument is not NUL-terminated');
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < bytes.byteLength; i++) {
    if (bytes[i] !== 0) continue;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, i));
    } catch {
      return bad(`argument ${parts.length + 1} is not UTF-8`);
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(text)) return bad(`argument ${parts.length + 1} has a control character`);
    parts.push(text);
    start = i + 1;
  }
  if (parts.length !== argc) return bad(`${parts.length} NUL-terminated arguments where argc says ${argc}`);
  return { ok: true, value: parts };
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
