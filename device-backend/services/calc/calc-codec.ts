// Calculation-mode payloads in, answers out. Pure: the payload is already a private copy.
import { CALC_BEGIN_REQ, CALC_IO_REQ, CALC_IO_RESP, CALC_JOB_REQ, CALC_LIMITS, CALC_RESULT, STATUS } from '../../layout/wire-layout.js';
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
