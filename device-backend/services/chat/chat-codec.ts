// Chat-mode payloads: decoders of guest requests (copies of ring slots) that return results saying why a
// request is malformed, and encoders of what the core pushes. Pure: bytes in, values out.
import {
  CHAT_CALL_RESULT, CHAT_DELIVER_MSG, CHAT_FLAG, CHAT_LIMITS, CHAT_LIST_REQ, CHAT_LIST_RESULT, CHAT_NAME_PATTERN, CHAT_NAME_REQ,
  CHAT_PEER, CHAT_PRESENCE_MSG, CHAT_REPLY_REQ, CHAT_SEND_REQ, CHAT_SEND_RESULT, CHAT_WATCH_REQ, STATUS,
} from '../../layout/wire-layout.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; status: number; reason: string };

const fail = (s: { code: number }, reason: string): { ok: false; status: number; reason: string } => ({ ok: false, status: s.code, reason });
const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const enc = new TextEncoder();

/** A chat name is 1..64 bytes of a-z 0-9 . _ - ; returns why not, or undefined. */
export function nameProblem(name: string): string | undefined {
  return CHAT_NAME_PATTERN.test(name) ? undefined : `name ${JSON.stringify(name.slice(0, 80))} is not 1..${CHAT_LIMITS.MAX_NAME_BYTES} bytes of a-z 0-9 . _ -`;
}

function ascii(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return '\ufffd';
  }
}

/** Where a message's data is: inline (already copied out of the slot) or in the sender's data slice. */
export type DataRef = { kind: 'inline'; bytes: Uint8Array } | { kind: 'slice'; offset: number; lengthBytes: number };

function dataRef(flags: number, p: Uint8Array, at: number, dataLen: number, dataOffset: number, what: string): Decoded<DataRef> {
  if (dataLen > CHAT_LIMITS.MAX_MESSAGE_BYTES) return fail(STATUS.CHAT_TOO_LARGE, `${what} of ${dataLen} bytes, at most ${CHAT_LIMITS.MAX_MESSAGE_BYTES}`);
  if (flags & CHAT_FLAG.IN_SLICE) {
    if (p.byteLength !== at) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, expected ${at} (the ${what} is in the slice)`);
    return { ok: true, value: { kind: 'slice', offset: dataOffset, lengthBytes: dataLen } };
  }
  if (dataOffset !== 0) return fail(STATUS.RESERVED_NONZERO, `data_offset ${dataOffset} must be 0 for inline ${what}`);
  if (p.byteLength !== at + dataLen) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, expected ${at + dataLen} for ${dataLen} bytes of inline ${what}`);
  return { ok: true, value: { kind: 'inline', bytes: p.slice(at) } };
}

export function decodeName(p: Uint8Array): Decoded<string> {
  const S = CHAT_NAME_REQ;
  if (p.byteLength < S.sizeBytes) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, a vmgmt_chat_name is ${S.sizeBytes}`);
  const dv = view(p);
  const len = dv.getUint32(S.offsets.name_len, true);
  if (dv.getUint32(S.offsets.reserved, true) !== 0) return fail(STATUS.RESERVED_NONZERO, 'vmgmt_chat_name.reserved is not zero');
  if (p.byteLength !== S.sizeBytes + len) return fail(STATUS.BAD_LENGTH, `name_len ${len} does not match ${p.byteLength - S.sizeBytes} bytes after the struct`);
  const name = ascii(p.subarray(S.sizeBytes));
  const bad = nameProblem(name);
  return bad ? fail(STATUS.CHAT_BAD_NAME, bad) : { ok: true, value: name };
}

export interface SendRequest {
  /** '' when the guest left it to the core (the channel's first name, or none). */
  from: string;
  /** A name, 'host', or '@' (the sender's chat group). */
  target: string;
  data: DataRef;
  timeoutMs: number;
  replyOffset: number;
  replyCap: number;
}

export function decodeSend(p: Uint8Array, call: boolean): Decoded<SendRequest> {
  const S = CHAT_SEND_REQ;
  if (p.byteLength < S.sizeBytes) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, a vmgmt_chat_send is ${S.sizeBytes}`);
  const dv = view(p);
  const o = S.offsets;
  const flags = dv.getUint32(o.flags, true);
  if (flags & ~CHAT_FLAG.IN_SLICE) return fail(STATUS.RESERVED_NONZERO, `vmgmt_chat_send.flags 0x${flags.toString(16)} has bits other than IN_SLICE`);
  if (dv.getUint32(o.reserved, true) !== 0) return fail(STATUS.RESERVED_NONZERO, 'vmgmt_chat_send.reserved is not zero');
  const fromLen = dv.getUint16(o.from_len, true);
  const targetLen = dv.getUint16(o.target_len, true);
  const timeoutMs = dv.getUint32(o.timeout_ms, true);
  const replyOffset = dv.getUint32(o.reply_offset, true);
  const replyCap = dv.getUint32(o.reply_cap, true);
  if (!call && (timeoutMs !== 0 || replyOffset !== 0 || replyCap !== 0)) return fail(STATUS.RESERVED_NONZERO, 'timeout_ms, reply_offset and reply_cap must be 0 in CHAT_SEND');
  if (call && (timeoutMs < 1 || timeoutMs > CHAT_LIMITS.MAX_CALL_TIMEOUT_MS)) return fail(STATUS.BAD_LENGTH, `call timeout_ms ${timeoutMs} is not 1..${CHAT_LIMITS.MAX_CALL_TIMEOUT_MS}`);
  const at = S.sizeBytes + fromLen + targetLen;
  if (p.byteLength < at) return fail(STATUS.BAD_LENGTH, `from_len ${fromLen} + target_len ${targetLen} run past the ${p.byteLength}-byte payload`);
  const from = fromLen === 0 ? '' : ascii(p.subarray(S.sizeBytes, S.sizeBytes + fromLen));
  if (from !== '' && nameProblem(from)) return fail(STATUS.CHAT_BAD_NAME, `sender ${nameProblem(from)}`);
  const target = ascii(p.subarray(S.sizeBytes + fromLen, at));
  if (target !== '@' && nameProblem(target)) return fail(STATUS.CHAT_BAD_NAME, `target ${nameProblem(target)}`);
  if (call && target === '@') return fail(STATUS.CHAT_BAD_NAME, 'a call goes to one name, not to the group ("@")');
  const data = dataRef(flags, p, at, dv.getUint32(o.data_len, true), dv.getUint32(o.data_offset, true), 'message');
  if (!data.ok) return data;
  return { ok: true, value: { from, target, data: data.value, timeoutMs, replyOffset, replyCap } };
}

export interface ReplyRequest {
  callId: number;
  status: number;
  data: DataRef;
}

export function decodeReply(p: Uint8Array): Decoded<ReplyRequest> {
  const S = CHAT_REPLY_REQ;
  if (p.byteLength < S.sizeBytes) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, a vmgmt_chat_reply is ${S.sizeBytes}`);
  const dv = view(p);
  const flags = dv.getUint32(S.offsets.flags, true);
  if (flags & ~CHAT_FLAG.IN_SLICE) return fail(STATUS.RESERVED_NONZERO, `vmgmt_chat_reply.flags 0x${flags.toString(16)} has bits other than IN_SLICE`);
  if (dv.getUint32(S.offsets.reserved, true) !== 0) return fail(STATUS.RESERVED_NONZERO, 'vmgmt_chat_reply.reserved is not zero');
  const data = dataRef(flags, p, S.sizeBytes, dv.getUint32(S.offsets.data_len, true), dv.getUint32(S.offsets.data_offset, true), 'reply');
  if (!data.ok) return data;
  return { ok: true, value: { callId: dv.getUint32(S.offsets.call_id, true), status: dv.getInt32(S.offsets.status, true), data: data.value } };
}

export interface ListRequest {
  bufOffset: number;
  bufLen: number;
  cookie: number;
}

export function decodeList(p: Uint8Array): Decoded<ListRequest> {
  const S = CHAT_LIST_REQ;
  if (p.byteLength !== S.sizeBytes) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, a vmgmt_chat_list is ${S.sizeBytes}`);
  const dv = view(p);
  if (dv.getUint32(S.offsets.reserved, true) !== 0) return fail(STATUS.RESERVED_NONZERO, 'vmgmt_chat_list.reserved is not zero');
  return { ok: true, value: { bufOffset: dv.getUint32(S.offsets.buf_offset, true), bufLen: dv.getUint32(S.offsets.buf_len, true), cookie: dv.getUint32(S.offsets.cookie, true) } };
}

export function decodeWatch(p: Uint8Array): Decoded<boolean> {
  const S = CHAT_WATCH_REQ;
  if (p.byteLength !== S.sizeBytes) return fail(STATUS.BAD_LENGTH, `${p.byteLength} payload bytes, a vmgmt_chat_watch is ${S.sizeBytes}`);
  const dv = view(p);
  const on = dv.getUint32(S.offsets.on, true);
  if (dv.getUint32(S.offsets.reserved, true) !== 0 || on > 1) return fail(STATUS.RESERVED_NONZERO, `vmgmt_chat_watch: on ${on} is not 0 or 1, or reserved is not zero`);
  return { ok: true, value: on === 1 };
}

export function encodeSendResult(delivered: number, refused: number): Uint8Array {
  const out = new Uint8Array(CHAT_SEND_RESULT.sizeBytes);
  const dv = view(out);
  dv.setUint32(CHAT_SEND_RESULT.offsets.delivered, delivered, true);
  dv.setUint32(CHAT_SEND_RESULT.offsets.refused, refused, true);
  return out;
}

/** The answer of a call: the reply inline, or (inSlice) only its length, the bytes written to the caller's slice. */
export function encodeCallResult(replyStatus: number, data: Uint8Array, inSlice: boolean): Uint8Array {
  const S = CHAT_CALL_RESULT;
  const out = new Uint8Array(S.sizeBytes + (inSlice ? 0 : data.byteLength));
  const dv = view(out);
  dv.setUint32(S.offsets.flags, inSlice ? CHAT_FLAG.IN_SLICE : 0, true);
  dv.setUint32(S.offsets.data_len, data.byteLength, true);
  dv.setInt32(S.offsets.reply_status, replyStatus, true);
  if (!inSlice) out.set(data, S.sizeBytes);
  return out;
}

export interface DeliverHeader {
  fromVm: string;
  fromName: string;
  toName: string;
  call: boolean;
  callId: number;
  broadcast: boolean;
}

const strings = (...s: string[]): Uint8Array[] => s.map((x) => enc.encode(x));

/** Bytes a CHAT_DELIVER takes before its data (to decide inline or slice). */
export function deliverOverhead(h: DeliverHeader): number {
  return CHAT_DELIVER_MSG.sizeBytes + strings(h.fromVm, h.fromName, h.toName).reduce((n, b) => n + b.byteLength, 0);
}

/** CHAT_DELIVER: `data` inline, or `slice` = where the core wrote it in the receive area. */
export function encodeDeliver(h: DeliverHeader, data: Uint8Array, slice?: { offset: number; rxEnd: number }): Uint8Array {
  const S = CHAT_DELIVER_MSG;
  const [vm, from, to] = strings(h.fromVm, h.fromName, h.toName) as [Uint8Array, Uint8Array, Uint8Array];
  const head = S.sizeBytes + vm.byteLength + from.byteLength + to.byteLength;
  const out = new Uint8Array(head + (slice ? 0 : data.byteLength));
  const dv = view(out);
  const flags = (slice ? CHAT_FLAG.IN_SLICE : 0) | (h.call ? CHAT_FLAG.CALL : 0) | (h.broadcast ? CHAT_FLAG.BROADCAST : 0);
  dv.setUint32(S.offsets.flags, flags, true);
  dv.setUint32(S.offsets.call_id, h.callId, true);
  dv.setUint8(S.offsets.from_vm_len, vm.byteLength);
  dv.setUint8(S.offsets.from_name_len, from.byteLength);
  dv.setUint8(S.offsets.to_name_len, to.byteLength);
  dv.setUint32(S.offsets.data_len, data.byteLength, true);
  dv.setUint32(S.offsets.data_offset, slice?.offset ?? 0, true);
  dv.setUint32(S.offsets.rx_end, slice?.rxEnd ?? 0, true);
  out.set(vm, S.sizeBytes);
  out.set(from, S.sizeBytes + vm.byteLength);
  out.set(to, S.sizeBytes + vm.byteLength + from.byteLength);
  if (!slice) out.set(data, head);
  return out;
}

export function encodePresence(event: number, reason: number, vm: string, name: string): Uint8Array {
  const S = CHAT_PRESENCE_MSG;
  const [v, n] = strings(vm, name) as [Uint8Array, Uint8Array];
  const out = new Uint8Array(S.sizeBytes + v.byteLength + n.byteLength);
  const dv = view(out);
  dv.setUint8(S.offsets.event, event);
  dv.setUint8(S.offsets.reason, reason);
  dv.setUint8(S.offsets.vm_len, v.byteLength);
  dv.setUint8(S.offsets.name_len, n.byteLength);
  out.set(v, S.sizeBytes);
  out.set(n, S.sizeBytes + v.byteLength);
  return out;
}

/** One vmgmt_chat_peer entry, padded to 4 bytes. */
export function encodePeer(vm: string, name: string, flags: number): Uint8Array {
  const [v, n] = strings(vm, name) as [Uint8Array, Uint8Array];
  const used = CHAT_PEER.sizeBytes + v.byteLength + n.byteLength;
  const out = new Uint8Array(Math.ceil(used / 4) * 4);
  const dv = view(out);
  dv.setUint8(CHAT_PEER.offsets.vm_len, v.byteLength);
  dv.setUint8(CHAT_PEER.offsets.name_len, n.byteLength);
  dv.setUint16(CHAT_PEER.offsets.flags, flags, true);
  out.set(v, CHAT_PEER.sizeBytes);
  out.set(n, CHAT_PEER.sizeBytes + v.byteLength);
  return out;
}

export function encodeListResult(count: number, bytes: number, nextCookie: number): Uint8Array {
  const out = new Uint8Array(CHAT_LIST_RESULT.sizeBytes);
  const dv = view(out);
  dv.setUint32(CHAT_LIST_RESULT.offsets.count, count, true);
  dv.setUint32(CHAT_LIST_RESULT.offsets.bytes, bytes, true);
  dv.setUint32(CHAT_LIST_RESULT.offsets.next_cookie, nextCookie, true);
  return out;
}
