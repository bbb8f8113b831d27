// Exec-mode payloads in, answers and pushes out. Pure: the payload is already a private copy.
import { EXEC_ATTACH_REQ, EXEC_EXIT_REQ, EXEC_FLAG, EXEC_IO_REQ, EXEC_IO_RESP, EXEC_LIMITS, EXEC_RESIZE_MSG, EXEC_SIGNAL_MSG, EXEC_SPEC, EXEC_START_REQ, STATUS } from '../../layout/wire-layout.js';
import { type Decoded, decodeStruct } from '../../protocol/struct-codec.js';

export const EXEC_TOKEN_BYTES = 16;

/** What the host asks the guest to run. */
export interface ExecSpec {
  argv: string[];
  /** NAME=VALUE entries added to the guest agent's environment. */
  env: string[];
  /** Working directory in the guest; '' leaves the agent's (/). */
  cwd: string;
  tty: boolean;
  rows: number;
  cols: number;
}

export interface IoReq {
  stream: number;
  length: number;
  bufOffset: number;
}

export function encodeStart(token: Uint8Array, tty: boolean): Uint8Array {
  const out = new Uint8Array(EXEC_START_REQ.sizeBytes);
  out.set(token, EXEC_START_REQ.offsets.token);
  new DataView(out.buffer).setUint32(EXEC_START_REQ.offsets.flags, tty ? EXEC_FLAG.TTY : 0, true);
  return out;
}

/** The token of an EXEC_ATTACH, as hex. */
export function decodeAttach(p: Uint8Array): Decoded<string> {
  if (p.byteLength !== EXEC_ATTACH_REQ.sizeBytes) return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `vmgmt_exec_attach of ${p.byteLength} bytes, expected ${EXEC_ATTACH_REQ.sizeBytes}` };
  return { ok: true, value: Buffer.from(p.subarray(0, EXEC_TOKEN_BYTES)).toString('hex') };
}

export const decodeIo = (p: Uint8Array): Decoded<IoReq> =>
  decodeStruct(EXEC_IO_REQ, p, (g) => ({ stream: g('stream'), length: g('length'), bufOffset: g('buf_offset') }));

export function decodeExit(p: Uint8Array): Decoded<{ exitCode: number; signal: number }> {
  if (p.byteLength !== EXEC_EXIT_REQ.sizeBytes) return { ok: false, status: STATUS.BAD_LENGTH.code, reason: `vmgmt_exec_exit of ${p.byteLength} bytes, expected ${EXEC_EXIT_REQ.sizeBytes}` };
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const exitCode = dv.getInt32(EXEC_EXIT_REQ.offsets.exit_code, true);
  const signal = dv.getInt32(EXEC_EXIT_REQ.offsets.signal, true);
  if (exitCode < -1 || exitCode > 255 || signal < 0 || signal > 64 || (exitCode === -1) === (signal === 0)) {
    return { ok: false, status: STATUS.EXEC_BAD_STEP.code, reason: `exit_code ${exitCode} with signal ${signal}: want 0..255 and no signal, or -1 and a signal 1..64` };
  }
  return { ok: true, value: { exitCode, signal } };
}

/** The command line as it goes into the slice: cwd NUL, each arg NUL, each env entry NUL. */
export function encodeSpecBytes(spec: ExecSpec): Decoded<Uint8Array> {
  const strings = [spec.cwd, ...spec.argv, ...spec.env];
  if (spec.argv.length < 1 || spec.argv.length > EXEC_LIMITS.MAX_ARGS || spec.env.length > EXEC_LIMITS.MAX_ARGS) {
    return { ok: false, status: STATUS.EXEC_TOO_LARGE.code, reason: `${spec.argv.length} args and ${spec.env.length} env entries: want 1..${EXEC_LIMITS.MAX_ARGS} args` };
  }
  if (strings.some((s) => s.includes('\0'))) return { ok: false, status: STATUS.EXEC_TOO_LARGE.code, reason: 'an argument, env entry or the cwd contains a NUL byte' };
  const bytes = new TextEncoder().encode(strings.map((s) => `${s}\0`).join(''));
  if (bytes.byteLength > EXEC_LIMITS.MAX_SPEC_BYTES) {
    return { ok: false, status: STATUS.EXEC_TOO_LARGE.code, reason: `the command line is ${bytes.byteLength} bytes, more than ${EXEC_LIMITS.MAX_SPEC_BYTES}` };
  }
  return { ok: true, value: bytes };
}

export function encodeSpecAnswer(spec: ExecSpec, specBytes: number): Uint8Array {
  const out = new Uint8Array(EXEC_SPEC.sizeBytes);
  const dv = new DataView(out.buffer);
  dv.setUint32(EXEC_SPEC.offsets.spec_bytes, specBytes, true);
  dv.setUint32(EXEC_SPEC.offsets.argc, spec.argv.length, true);
  dv.setUint32(EXEC_SPEC.offsets.envc, spec.env.length, true);
  dv.setUint32(EXEC_SPEC.offsets.flags, spec.tty ? EXEC_FLAG.TTY : 0, true);
  dv.setUint16(EXEC_SPEC.offsets.rows, spec.rows, true);
  dv.setUint16(EXEC_SPEC.offsets.cols, spec.cols, true);
  return out;
}

export function encodeIoResult(bytes: number, eof: boolean): Uint8Array {
  const out = new Uint8Array(EXEC_IO_RESP.sizeBytes);
  const dv = new DataView(out.buffer);
  dv.setUint32(EXEC_IO_RESP.offsets.bytes, bytes, true);
  dv.setUint32(EXEC_IO_RESP.offsets.eof, eof ? 1 : 0, true);
  return out;
}

export function encodeSignal(signal: number): Uint8Array {
  const out = new Uint8Array(EXEC_SIGNAL_MSG.sizeBytes);
  new DataView(out.buffer).setUint32(EXEC_SIGNAL_MSG.offsets.signal, signal, true);
  return out;
}

export function encodeResize(rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(EXEC_RESIZE_MSG.sizeBytes);
  const dv = new DataView(out.buffer);
  dv.setUint16(EXEC_RESIZE_MSG.offsets.rows, rows, true);
  dv.setUint16(EXEC_RESIZE_MSG.offsets.cols, cols, true);
  return out;
}
