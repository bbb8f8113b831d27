import { describe, expect, it } from 'vitest';
import { AGENT_HELLO_REQ, AGENT_UPDATE_REQ, AGENT_UPDATE_RESULT_REQ, STATUS } from '../../layout/wire-layout.js';
import { binaryVersion, decodeAgentHello, decodeAgentUpdateResult, encodeAgentUpdate, VERSION_MARKER } from './agent-update-codec.js';

const enc = new TextEncoder();
const withMarker = (version: string): Uint8Array => {
  const tail = enc.encode(`${VERSION_MARKER}${version}\0tail`);
  const out = new Uint8Array(100 + tail.byteLength);
  out.set(tail, 100);
  return out;
};

function hello(fields: { pid?: number; flags?: number; prevPid?: number; gapUs?: number; reserved?: number }, version: string, lenOverride?: number): Uint8Array {
  const v = enc.encode(version);
  const p = new Uint8Array(AGENT_HELLO_REQ.sizeBytes + v.byteLength);
  const dv = new DataView(p.buffer);
  const o = AGENT_HELLO_REQ.offsets;
  dv.setUint32(o.pid, fields.pid ?? 7, true);
  dv.setUint32(o.flags, fields.flags ?? 0, true);
  dv.setUint32(o.prev_pid, fields.prevPid ?? 0, true);
  dv.setUint32(o.gap_us, fields.gapUs ?? 0, true);
  dv.setUint32(o.version_len, lenOverride ?? v.byteLength, true);
  dv.setUint32(o.reserved, fields.reserved ?? 0, true);
  p.set(v, AGENT_HELLO_REQ.sizeBytes);
  return p;
}

describe('binaryVersion', () => {
  it('reads the version after the marker up to the NUL', () => {
    expect(binaryVersion(withMarker('1.0.1-test'))).toEqual({ ok: true, version: '1.0.1-test' });
  });
  it('refuses a binary without the marker, with a bad version, or with two markers', () => {
    expect(binaryVersion(enc.encode('just an ELF')).ok).toBe(false);
    expect(binaryVersion(withMarker('bad version!')).ok).toBe(false);
    const two = new Uint8Array([...withMarker('1.0'), ...withMarker('2.0')]);
    expect(binaryVersion(two)).toMatchObject({ ok: false, reason: expect.stringMatching(/more than one/) });
  });
});

describe('AGENT_UPDATE encoding', () => {
  it('lays out sha256, deadlines, version and path', () => {
    const sha = new Uint8Array(32).fill(0xab);
    const p = encodeAgentUpdate({ sha256: sha, reportInMs: 15000, probationMs: 3000, version: '1.2', guestPath: '/run/x' });
    const dv = new DataView(p.buffer);
    expect(p.byteLength).toBe(AGENT_UPDATE_REQ.sizeBytes + 3 + 6);
    expect([...p.subarray(0, 32)]).toEqual([...sha]);
    expect(dv.getUint32(AGENT_UPDATE_REQ.offsets.report_in_ms, true)).toBe(15000);
    expect(dv.getUint32(AGENT_UPDATE_REQ.offsets.probation_ms, true)).toBe(3000);
    expect(new TextDecoder().decode(p.subarray(AGENT_UPDATE_REQ.sizeBytes))).toBe('1.2/run/x');
  });
  it('throws on a digest that is not 32 bytes', () => {
    expect(() => encodeAgentUpdate({ sha256: new Uint8Array(31), reportInMs: 1, probationMs: 0, version: '1', guestPath: '/x' })).toThrow(RangeError);
  });
});

describe('AGENT_HELLO decoding', () => {
  it('decodes a takeover hello', () => {
    expect(decodeAgentHello(hello({ pid: 99, flags: 1, prevPid: 42, gapUs: 1234 }, '1.0.0'))).toEqual({
      ok: true,
      value: { pid: 99, takeover: true, prevPid: 42, gapUs: 1234, version: '1.0.0' },
    });
  });
  it('refuses short payloads, wrong lengths, reserved bits and bad versions', () => {
    expect(decodeAgentHello(new Uint8Array(4))).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
    expect(decodeAgentHello(hello({}, '1.0', 9))).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
    expect(decodeAgentHello(hello({ reserved: 1 }, '1.0'))).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeAgentHello(hello({ flags: 2 }, '1.0'))).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeAgentHello(hello({}, 'a b'))).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
  });
  it('copies the payload before reading it (the guest may change it meanwhile)', () => {
    const p = hello({ pid: 5 }, '1.0');
    const d = decodeAgentHello(p);
    p.fill(0);
    expect(d).toMatchObject({ ok: true, value: { pid: 5, version: '1.0' } });
  });
});

describe('AGENT_UPDATE_RESULT decoding', () => {
  const result = (status: number, reason: string): Uint8Array => {
    const r = enc.encode(reason);
    const p = new Uint8Array(AGENT_UPDATE_RESULT_REQ.sizeBytes + r.byteLength);
    const dv = new DataView(p.buffer);
    dv.setInt32(AGENT_UPDATE_RESULT_REQ.offsets.status, status, true);
    dv.setUint32(AGENT_UPDATE_RESULT_REQ.offsets.new_pid, 77, true);
    dv.setUint32(AGENT_UPDATE_RESULT_REQ.offsets.reason_len, r.byteLength, true);
    p.set(r, AGENT_UPDATE_RESULT_REQ.sizeBytes);
    return p;
  };
  it('decodes a rollback and makes its reason printable', () => {
    expect(decodeAgentUpdateResult(result(STATUS.UPDATE_ROLLED_BACK.code, 'crashed\n\x1b[31m'))).toEqual({
      ok: true,
      value: { status: STATUS.UPDATE_ROLLED_BACK.code, newPid: 77, reason: 'crashed??[31m' },
    });
  });
  it('refuses a status that is not an update outcome', () => {
    expect(decodeAgentUpdateResult(result(0, 'fine')).ok).toBe(false);
  });
});
