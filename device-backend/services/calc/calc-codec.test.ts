import { describe, expect, it } from 'vitest';
import { CALC_BEGIN_REQ, CALC_ENTRY, CALC_FAILURE, CALC_FLAG, CALC_LIMITS, CALC_LIST_REQ, STATUS } from '../../layout/wire-layout.js';
import { decodeArgs, decodeBegin, decodeList, encodeFailure, encodeList } from './calc-codec.js';

describe('calc codec', () => {
  it('a program failure: exit status, signal, totals, and as much stderr as the slot holds', () => {
    const stderr = new TextEncoder().encode('x'.repeat(CALC_LIMITS.MAX_STDERR_BYTES));
    const p = encodeFailure({ exitCode: 3, signal: 0, stderr, stderrTotal: 5000 }, 240);
    expect(p.byteLength).toBe(240);
    const dv = new DataView(p.buffer);
    expect([dv.getInt32(CALC_FAILURE.offsets.exit_code, true), dv.getUint32(CALC_FAILURE.offsets.signal, true), dv.getUint32(CALC_FAILURE.offsets.stderr_len, true), dv.getUint32(CALC_FAILURE.offsets.stderr_total, true)]).toEqual([3, 0, 224, 5000]);
    const killed = encodeFailure({ exitCode: -1, signal: 9, stderr: new Uint8Array(0), stderrTotal: 0 }, 4080);
    expect(killed.byteLength).toBe(CALC_FAILURE.sizeBytes);
    expect(new DataView(killed.buffer).getInt32(CALC_FAILURE.offsets.exit_code, true)).toBe(-1);
  });

  it('list records are padded to 4 bytes and never cut; the cookie says where to go on', () => {
    const entries = [
      { name: 'a', kind: 1, description: 'one' },
      { name: 'bb', kind: 2, description: 'd'.repeat(500) },
    ];
    const all = encodeList(entries, 0, 4096);
    const first = (CALC_ENTRY.sizeBytes + 1 + 3 + 3) & ~3;
    const second = (CALC_ENTRY.sizeBytes + 2 + CALC_LIMITS.MAX_DESCRIPTION_BYTES + 3) & ~3;
    expect(all).toMatchObject({ count: 2, nextCookie: 0 });
    expect(all.bytes.byteLength).toBe(first + second);
    expect(new DataView(all.bytes.buffer).getUint16(first + CALC_ENTRY.offsets.desc_len, true)).toBe(CALC_LIMITS.MAX_DESCRIPTION_BYTES);
    expect(encodeList(entries, 0, first + second - 1)).toMatchObject({ count: 1, nextCookie: 1 });
    expect(encodeList(entries, 1, 4096)).toMatchObject({ count: 1, nextCookie: 0 });
  });

  it('CALC_LIST requests: exact size, reserved zero', () => {
    const p = new Uint8Array(CALC_LIST_REQ.sizeBytes);
    new DataView(p.buffer).setUint32(CALC_LIST_REQ.offsets.buf_len, 64, true);
    expect(decodeList(p)).toEqual({ ok: true, value: { bufOffset: 0, bufLen: 64, cookie: 0 } });
    new DataView(p.buffer).setUint32(CALC_LIST_REQ.offsets.reserved, 1, true);
    expect(decodeList(p)).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeList(p.subarray(0, 12))).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
  });

  const begin = (f: { flags?: number; inputSize?: number; argc?: number; argsLen?: number; reserved?: number }): Uint8Array => {
    const name = new TextEncoder().encode('sha256');
    const p = new Uint8Array(CALC_BEGIN_REQ.sizeBytes + name.byteLength);
    const dv = new DataView(p.buffer);
    dv.setUint32(CALC_BEGIN_REQ.offsets.name_len, name.byteLength, true);
    dv.setUint32(CALC_BEGIN_REQ.offsets.flags, f.flags ?? 0, true);
    dv.setBigUint64(CALC_BEGIN_REQ.offsets.input_size, BigInt(f.inputSize ?? 0), true);
    dv.setUint32(CALC_BEGIN_REQ.offsets.argc, f.argc ?? 0, true);
    dv.setUint32(CALC_BEGIN_REQ.offsets.args_len, f.argsLen ?? 0, true);
    dv.setUint32(CALC_BEGIN_REQ.offsets.reserved, f.reserved ?? 0, true);
    p.set(name, CALC_BEGIN_REQ.sizeBytes);
    return p;
  };

  it('CALC_BEGIN: a declared size, or a streamed input (size 0, flag); unknown flags and reserved refused', () => {
    expect(decodeBegin(begin({ inputSize: 10 }))).toMatchObject({ ok: true, value: { name: 'sha256', inputSize: 10, argc: 0 } });
    expect(decodeBegin(begin({ flags: CALC_FLAG.STREAM_INPUT }))).toMatchObject({ ok: true, value: { inputSize: undefined } });
    expect(decodeBegin(begin({ flags: CALC_FLAG.STREAM_INPUT, inputSize: 5 }))).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
    expect(decodeBegin(begin({ flags: 2 }))).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeBegin(begin({ reserved: 1 }))).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeBegin(begin({ inputSize: CALC_LIMITS.MAX_JOB_BYTES + 1 }))).toMatchObject({ ok: false, status: STATUS.CALC_TOO_LARGE.code });
    expect(decodeBegin(begin({ argc: 1, argsLen: 0 }))).toMatchObject({ ok: false, status: STATUS.CALC_BAD_ARGS.code });
    expect(decodeBegin(begin({ argc: CALC_LIMITS.MAX_ARGS + 1, argsLen: 100 }))).toMatchObject({ ok: false, status: STATUS.CALC_BAD_ARGS.code });
    expect(decodeBegin(begin({ argc: 1, argsLen: CALC_LIMITS.MAX_ARGS_BYTES + 1 }))).toMatchObject({ ok: false, status: STATUS.CALC_BAD_ARGS.code });
  });

  it('arguments: exactly argc NUL-terminated UTF-8 strings, no control characters', () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
    expect(decodeArgs(enc('a\0bc\0'), 2)).toEqual({ ok: true, value: ['a', 'bc'] });
    expect(decodeArgs(enc('\0'), 1)).toEqual({ ok: true, value: [''] });
    expect(decodeArgs(enc('a\0b'), 2)).toMatchObject({ ok: false, reason: expect.stringMatching(/NUL-terminated/) });
    expect(decodeArgs(enc('a\0b\0'), 3)).toMatchObject({ ok: false, status: STATUS.CALC_BAD_ARGS.code });
    expect(decodeArgs(enc('a\nb\0'), 1)).toMatchObject({ ok: false, reason: expect.stringMatching(/control character/) });
    expect(decodeArgs(Uint8Array.of(0xff, 0), 1)).toMatchObject({ ok: false, reason: expect.stringMatching(/UTF-8/) });
  });
});
