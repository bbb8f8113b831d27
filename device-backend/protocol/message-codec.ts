// Encoding and validation of ring messages. Pure: bytes in, values out.
import { MSG_HEADER, MSG_RESPONSE_BIT, MSG_TYPE, STATUS, type StatusCode } from '../layout/wire-layout.js';

export interface Message {
  type: number;
  requestId: number;
  status: number;
  payload: Uint8Array;
}

export type DecodeResult =
  | { ok: true; message: Message }
  | { ok: false; status: StatusCode; requestId: number; type: number; reason: string };

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(MSG_TYPE));
const O = MSG_HEADER.offsets;

export const isResponse = (type: number): boolean => (type & MSG_RESPONSE_BIT) !== 0;

export interface HeaderFields {
  type: number;
  flags: number;
  length: number;
  requestId: number;
  status: number;
}

/** The raw header fields of a slot, unvalidated. */
export function readHeaderFields(slot: Uint8Array): HeaderFields {
  const dv = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  return {
    type: dv.getUint16(O.type, true),
    flags: dv.getUint16(O.flags, true),
    length: dv.getUint32(O.length, true),
    requestId: dv.getUint32(O.request_id, true),
    status: dv.getInt32(O.status, true),
  };
}

/** Decodes a private copy of one ring slot. `slot` must be the whole slot (header + payload area). */
export function decodeMessage(slot: Uint8Array): DecodeResult {
  const { type, flags, length, requestId, status } = readHeaderFields(slot);
  const fail = (s: (typeof STATUS)[keyof typeof STATUS], reason: string): DecodeResult => ({ ok: false, status: s.code, requestId, type, reason });
  const maxPayload = slot.byteLength - MSG_HEADER.sizeBytes;
  if (length > maxPayload) return fail(STATUS.BAD_LENGTH, `length ${length} > ${maxPayload} bytes of slot payload`);
  if (flags !== 0) return fail(STATUS.RESERVED_NONZERO, `flags ${flags} must be 0`);
  const base = type & ~MSG_RESPONSE_BIT;
  if (!KNOWN_TYPES.has(base)) return fail(STATUS.UNKNOWN_TYPE, `type ${type}`);
  if (!isResponse(type) && status !== 0) return fail(STATUS.RESERVED_NONZERO, `status ${status} must be 0 in a request`);
  const payload = slot.slice(MSG_HEADER.sizeBytes, MSG_HEADER.sizeBytes + length);
  return { ok: true, message: { type, requestId, status, payload } };
}

/** Encodes a message into a fresh slot-sized buffer. Throws if the payload does not fit: that is our bug. */
export function encodeMessage(message: Message, slotSizeBytes: number): Uint8Array {
  const maxPayload = slotSizeBytes - MSG_HEADER.sizeBytes;
  if (message.payload.byteLength > maxPayload) {
    throw new RangeError(`payload of ${message.payload.byteLength} bytes does not fit a ${slotSizeBytes}-byte slot`);
  }
  const out = new Uint8Array(MSG_HEADER.sizeBytes + message.payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint16(O.type, message.type, true);
  dv.setUint16(O.flags, 0, true);
  dv.setUint32(O.length, message.payload.byteLength, true);
  dv.setUint32(O.request_id, message.requestId >>> 0, true);
  dv.setInt32(O.status, message.status, true);
  out.set(message.payload, MSG_HEADER.sizeBytes);
  return out;
}

export function responseTo(request: { type: number; requestId: number }, status: number, payload: Uint8Array = new Uint8Array(0)): Message {
  return { type: (request.type | MSG_RESPONSE_BIT) & 0xffff, requestId: request.requestId, status, payload };
}
