// The driver update's payloads (AGENT_UPDATE, AGENT_HELLO, AGENT_UPDATE_RESULT) and the version a driver
// binary carries. Pure: guest bytes are copied before they are read, and every decoder returns a result.
import { AGENT_HELLO_REQ, AGENT_UPDATE_LIMITS, AGENT_UPDATE_REQ, AGENT_UPDATE_RESULT_REQ, MAX_PATH_BYTES, STATUS } from '../../layout/wire-layout.js';

/** What vmgmt-guest embeds (guest-driver/src/update.c): the marker, then the version, then a NUL. */
export const VERSION_MARKER = '@@VMGMT-GUEST-VERSION@@=';
const VERSION_PATTERN = /^[A-Za-z0-9._+~-]{1,64}$/;

export type Decoded<T> = { ok: true; value: T } | { ok: false; status: number; reason: string };

/** The version a vmgmt-guest binary reports, read from its bytes (the binary is never run on the host). */
export function binaryVersion(binary: Uint8Array): { ok: true; version: string } | { ok: false; reason: string } {
  const marker = Buffer.from(VERSION_MARKER, 'latin1');
  const bytes = Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength);
  const at = bytes.indexOf(marker);
  if (at < 0) return { ok: false, reason: `no ${VERSION_MARKER} marker: not a vmgmt-guest binary (or one built before driver updates)` };
  const start = at + marker.byteLength;
  const end = bytes.indexOf(0, start);
  const version = bytes.subarray(start, end < 0 ? Math.min(bytes.byteLength, start + 65) : Math.min(end, start + 65)).toString('latin1');
  if (!VERSION_PATTERN.test(version)) return { ok: false, reason: `the version after the marker (${JSON.stringify(version.slice(0, 70))}) is not 1..64 of A-Z a-z 0-9 . _ + ~ -` };
  if (bytes.indexOf(marker, start) >= 0) return { ok: false, reason: `the binary has more than one ${VERSION_MARKER} marker` };
  return { ok: true, version };
}

export interface AgentUpdateRequest {
  sha256: Uint8Array;
  reportInMs: number;
  probationMs: number;
  version: string;
  /** The staged binary's absolute path in the guest. */
  guestPath: string;
}

export function encodeAgentUpdate(req: AgentUpdateRequest): Uint8Array {
  const enc = new TextEncoder();
  const version = enc.encode(req.version);
  const gpath = enc.encode(req.guestPath);
  if (req.sha256.byteLength !== 32) throw new RangeError('sha256 must be 32 bytes');
  if (version.byteLength < 1 || version.byteLength > AGENT_UPDATE_LIMITS.MAX_VERSION_BYTES) throw new RangeError(`version must be 1..${AGENT_UPDATE_LIMITS.MAX_VERSION_BYTES} bytes`);
  if (gpath.byteLength < 1 || gpath.byteLength > MAX_PATH_BYTES) throw new RangeError('guest path too long');
  const out = new Uint8Array(AGENT_UPDATE_REQ.sizeBytes + version.byteLength + gpath.byteLength);
  const dv = new DataView(out.buffer);
  out.set(req.sha256, AGENT_UPDATE_REQ.offsets.sha256);
  dv.setUint32(AGENT_UPDATE_REQ.offsets.report_in_ms, req.reportInMs, true);
  dv.setUint32(AGENT_UPDATE_REQ.offsets.probation_ms, req.probationMs, true);
  dv.setUint32(AGENT_UPDATE_REQ.offsets.version_len, version.byteLength, true);
  dv.setUint32(AGENT_UPDATE_REQ.offsets.path_len, gpath.byteLength, true);
  out.set(version, AGENT_UPDATE_REQ.sizeBytes);
  out.set(gpath, AGENT_UPDATE_REQ.sizeBytes + version.byteLength);
  return out;
}

export interface AgentHello {
  pid: number;
  takeover: boolean;
  prevPid: number;
  gapUs: number;
  version: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeAgentHello(payload: Uint8Array): Decoded<AgentHello> {
  const p = payload.slice();
  if (p.byteLength < AGENT_HELLO_REQ.sizeBytes) return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `AGENT_HELLO of ${p.byteLength} bytes, shorter than its ${AGENT_HELLO_REQ.sizeBytes}-byte struct` };
  const dv = new DataView(p.buffer);
  const o = AGENT_HELLO_REQ.offsets;
  const versionLen = dv.getUint32(o.version_len, true);
  if (versionLen < 1 || versionLen > AGENT_UPDATE_LIMITS.MAX_VERSION_BYTES || p.byteLength !== AGENT_HELLO_REQ.sizeBytes + versionLen) {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `AGENT_HELLO version_len ${versionLen} with a ${p.byteLength}-byte payload` };
  }
  if (dv.getUint32(o.reserved, true) !== 0 || (dv.getUint32(o.flags, true) & ~1) !== 0) return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: 'AGENT_HELLO reserved field or unknown flag set' };
  let version: string;
  try {
    version = utf8.decode(p.subarray(AGENT_HELLO_REQ.sizeBytes));
  } catch {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: 'AGENT_HELLO version is not UTF-8' };
  }
  if (!VERSION_PATTERN.test(version)) return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `AGENT_HELLO version ${JSON.stringify(version)} is not 1..64 of A-Z a-z 0-9 . _ + ~ -` };
  return {
    ok: true,
    value: { pid: dv.getUint32(o.pid, true), takeover: (dv.getUint32(o.flags, true) & 1) !== 0, prevPid: dv.getUint32(o.prev_pid, true), gapUs: dv.getUint32(o.gap_us, true), version },
  };
}

export interface AgentUpdateResult {
  status: number;
  newPid: number;
  reason: string;
}

export function decodeAgentUpdateResult(payload: Uint8Array): Decoded<AgentUpdateResult> {
  const p = payload.slice();
  if (p.byteLength < AGENT_UPDATE_RESULT_REQ.sizeBytes) return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `AGENT_UPDATE_RESULT of ${p.byteLength} bytes` };
  const dv = new DataView(p.buffer);
  const o = AGENT_UPDATE_RESULT_REQ.offsets;
  const reasonLen = dv.getUint32(o.reason_len, true);
  if (reasonLen > AGENT_UPDATE_LIMITS.MAX_REASON_BYTES || p.byteLength !== AGENT_UPDATE_RESULT_REQ.sizeBytes + reasonLen) {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `AGENT_UPDATE_RESULT reason_len ${reasonLen} with a ${p.byteLength}-byte payload` };
  }
  if (dv.getUint32(o.reserved, true) !== 0) return { ok: false, status: STATUS.RESERVED_NONZERO.code, reason: 'AGENT_UPDATE_RESULT reserved field set' };
  const status = dv.getInt32(o.status, true);
  if (status !== STATUS.UPDATE_ROLLED_BACK.code && status !== STATUS.UPDATE_FAILED.code) {
    return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `AGENT_UPDATE_RESULT status ${status} is neither UPDATE_ROLLED_BACK nor UPDATE_FAILED` };
  }
  // Guest text, shown to the admin: printable only.
  const reason = new TextDecoder('utf-8').decode(p.subarray(AGENT_UPDATE_RESULT_REQ.sizeBytes)).replace(/[^\x20-\x7e]/g, '?');
  return { ok: true, value: { status, newPid: dv.getUint32(o.new_pid, true), reason } };
}
