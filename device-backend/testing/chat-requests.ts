// Chat-mode request payloads as a guest writes them, for unit tests (including malformed ones).
import { CHAT_FLAG, CHAT_NAME_REQ, CHAT_SEND_REQ } from '../layout/wire-layout.js';

const enc = new TextEncoder();

export function nameReq(name: string | Uint8Array, reserved = 0): Uint8Array {
  const n = typeof name === 'string' ? enc.encode(name) : name;
  const p = new Uint8Array(CHAT_NAME_REQ.sizeBytes + n.byteLength);
  const dv = new DataView(p.buffer);
  dv.setUint32(0, n.byteLength, true);
  dv.setUint32(4, reserved, true);
  p.set(n, CHAT_NAME_REQ.sizeBytes);
  return p;
}

export interface SendFields {
  from?: string;
  target: string;
  data?: Uint8Array;
  inSlice?: { offset: number; length: number };
  timeoutMs?: number;
  replyOffset?: number;
  replyCap?: number;
  flags?: number;
  reserved?: number;
}

export function sendReq(f: SendFields): Uint8Array {
  const from = enc.encode(f.from ?? '');
  const target = enc.encode(f.target);
  const data = f.inSlice ? new Uint8Array() : (f.data ?? new Uint8Array());
  const p = new Uint8Array(CHAT_SEND_REQ.sizeBytes + from.byteLength + target.byteLength + data.byteLength);
  const dv = new DataView(p.buffer);
  const o = CHAT_SEND_REQ.offsets;
  dv.setUint32(o.flags, f.flags ?? (f.inSlice ? CHAT_FLAG.IN_SLICE : 0), true);
  dv.setUint16(o.from_len, from.byteLength, true);
  dv.setUint16(o.target_len, target.byteLength, true);
  dv.setUint32(o.data_len, f.inSlice ? f.inSlice.length : data.byteLength, true);
  dv.setUint32(o.data_offset, f.inSlice?.offset ?? 0, true);
  dv.setUint32(o.timeout_ms, f.timeoutMs ?? 0, true);
  dv.setUint32(o.reply_offset, f.replyOffset ?? 0, true);
  dv.setUint32(o.reply_cap, f.replyCap ?? 0, true);
  dv.setUint32(o.reserved, f.reserved ?? 0, true);
  p.set(from, CHAT_SEND_REQ.sizeBytes);
  p.set(target, CHAT_SEND_REQ.sizeBytes + from.byteLength);
  p.set(data, CHAT_SEND_REQ.sizeBytes + from.byteLength + target.byteLength);
  return p;
}

