// The calculation mode over a real core with a fake guest on the rings: streamed input, results read back
// through the data slice, and every refusal in its own status.
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import { DeviceCore } from '../../core/device-core.js';
import { computeGeometry, dataSliceOffset, DEFAULT_GEOMETRY, type Geometry } from '../../layout/geometry.js';
import { CALC_BEGIN_REQ, CALC_ENTRY, CALC_FLAG, CALC_IO_REQ, CALC_IO_RESP, CALC_JOB_REQ, CALC_KIND, CALC_LIMITS, CALC_LIST_REQ, CALC_LIST_RESULT, CALC_RESULT, MODE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { loadNative } from '../../native/index.js';
import type { Message } from '../../protocol/message-codec.js';
import { FakeGuest } from '../../testing/fake-guest.js';
import { deviceServices } from '../device-services.js';
import { BUILTIN_CATALOG } from './calc-programs.js';

let nextId = 10;
const BUDGET_BYTES = 1_500_000;
const msg = (type: number, payload: Uint8Array): Message => ({ type, requestId: nextId++, status: 0, payload });
/** inputSize undefined: a streamed input (CALC_FLAG.STREAM_INPUT). Arguments, when given, sit at args.at of the slice. */
const begin = (name: string, inputSize: number | undefined, args?: { argc: number; len: number; at: number }): Message => {
  const n = new TextEncoder().encode(name);
  const p = new Uint8Array(CALC_BEGIN_REQ.sizeBytes + n.byteLength);
  const dv = new DataView(p.buffer);
  dv.setUint32(CALC_BEGIN_REQ.offsets.name_len, n.byteLength, true);
  dv.setUint32(CALC_BEGIN_REQ.offsets.flags, inputSize === undefined ? CALC_FLAG.STREAM_INPUT : 0, true);
  dv.setBigUint64(CALC_BEGIN_REQ.offsets.input_size, BigInt(inputSize ?? 0), true);
  if (args) {
    dv.setUint32(CALC_BEGIN_REQ.offsets.argc, args.argc, true);
    dv.setUint32(CALC_BEGIN_REQ.offsets.args_len, args.len, true);
    dv.setUint32(CALC_BEGIN_REQ.offsets.args_offset, args.at, true);
  }
  p.set(n, CALC_BEGIN_REQ.sizeBytes);
  return msg(MSG_TYPE.CALC_BEGIN, p);
};
const jobReq = (type: number, job: number): Message => {
  const p = new Uint8Array(CALC_JOB_REQ.sizeBytes);
  new DataView(p.buffer).setUint32(CALC_JOB_REQ.offsets.job, job, true);
  return msg(type, p);
};
const io = (type: number, job: number, length: number, offset: number, bufOffset: number): Message => {
  const p = new Uint8Array(CALC_IO_REQ.sizeBytes);
  const dv = new DataView(p.buffer);
  dv.setUint32(CALC_IO_REQ.offsets.job, job, true);
  dv.setUint32(CALC_IO_REQ.offsets.length, length, true);
  dv.setBigUint64(CALC_IO_REQ.offsets.offset, BigInt(offset), true);
  dv.setUint32(CALC_IO_REQ.offsets.buf_offset, bufOffset, true);
  return msg(type, p);
};
const u32 = (m: Message, off: number): number => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(off, true);

describe('CalcService', () => {
  let mem: GuestMemory;
  let geometry: Geometry;
  let core: DeviceCore;
  let guest: FakeGuest;
  const CHUNK = 64 * 1024;

  beforeEach(() => {
    const r = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: 4 * 1024 * 1024, ringSlots: 8, channelCount: 2 });
    if (!r.ok) throw new Error(r.reason);
    geometry = r.geometry;
    mem = new GuestMemory(new ArrayBuffer(geometry.regionSizeBytes));
    // The built-ins, with a 1.5 MB output budget for the VM (calc.outputBudgetBytes).
    const calc = { ...BUILTIN_CATALOG, outputBudgetBytes: () => BUDGET_BYTES };
    core = DeviceCore.initialize({ mem, geometry, services: deviceServices({ native: loadNative(), log: silentLogger, calc }).services, notifyGuest: () => {}, log: silentLogger });
    guest = new FakeGuest(mem, geometry, 0);
    guest.claim(77);
    core.process();
    guest.afterReset();
    const p = new Uint8Array(8);
    new DataView(p.buffer).setUint32(0, MODE.CALC, true);
    guest.send({ type: MSG_TYPE.SET_MODE, requestId: 1, status: 0, payload: p });
    core.process();
    expect(guest.receiveAll().map((m) => m.status)).toEqual([0]);
  });
  afterEach(() => core.close());

  const slice = (): number => dataSliceOffset(geometry, 0);
  async function call(m: Message): Promise<Message> {
    guest.send(m);
    // zlib works on the thread pool: wait on the clock, not on a number of turns.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      core.process();
      const [got] = guest.receiveAll();
      if (got) return got;
      await new Promise((r) => setTimeout(r, 1));
    }
    throw new Error('no answer');
  }

  /** BEGIN, INPUT in slice-sized chunks, RUN, OUTPUT until the end, END: what a guest driver does. */
  async function compute(name: string, input: Uint8Array, opts: { stream?: boolean } = {}): Promise<{ status: number; output?: Uint8Array }> {
    const b = await call(begin(name, opts.stream ? undefined : input.byteLength));
    if (b.status !== 0) return { status: b.status };
    const job = u32(b, CALC_JOB_REQ.offsets.job);
    for (let at = 0; at < input.byteLength; at += CHUNK) {
      const part = input.subarray(at, at + CHUNK);
      mem.write(slice(), part);
      const r = await call(io(MSG_TYPE.CALC_INPUT, job, part.byteLength, at, 0));
      if (r.status !== 0) return { status: r.status };
      expect(u32(r, CALC_IO_RESP.offsets.bytes)).toBe(part.byteLength);
    }
    const run = await call(jobReq(MSG_TYPE.CALC_RUN, job));
    if (run.status !== 0) return { status: run.status };
    const size = Number(new DataView(run.payload.buffer, run.payload.byteOffset).getBigUint64(CALC_RESULT.offsets.output_size, true));
    const parts: Uint8Array[] = [];
    for (let at = 0; at < size; ) {
      const r = await call(io(MSG_TYPE.CALC_OUTPUT, job, CHUNK, at, 0));
      const n = u32(r, CALC_IO_RESP.offsets.bytes);
      parts.push(mem.copyOut(slice(), n));
      at += n;
    }
    expect((await call(jobReq(MSG_TYPE.CALC_END, job))).status).toBe(0);
    return { status: 0, output: Buffer.concat(parts) };
  }

  const data = new Uint8Array(1_000_000).map((_, i) => (i * 7 + (i >> 11)) & 0xff);

  it('computes sha256 and gzip of a megabyte streamed through the slice', async () => {
    const sha = await compute('sha256', data);
    expect(Buffer.from(sha.output!).toString('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    const gz = await compute('gzip', data);
    expect(Buffer.from(gunzipSync(gz.output!)).equals(Buffer.from(data))).toBe(true);
    expect(core.serviceCounters().calc).toMatchObject({ jobs_sha256: 1, jobs_gzip: 1, input_bytes: 2 * data.byteLength });
  });

  it('refuses with a status of its own: unknown function, a second job, input out of order or past its size, bad gzip', async () => {
    expect((await compute('rm-rf', data)).status).toBe(STATUS.CALC_NO_FUNCTION.code);
    const first = await call(begin('sha256', 10));
    const job = u32(first, CALC_JOB_REQ.offsets.job);
    expect((await call(begin('sha256', 10))).status).toBe(STATUS.CALC_BUSY.code);
    expect((await call(io(MSG_TYPE.CALC_INPUT, job, 4, 3, 0))).status).toBe(STATUS.CALC_BAD_JOB.code);
    expect((await call(io(MSG_TYPE.CALC_INPUT, job, 11, 0, 0))).status).toBe(STATUS.WRITE_PAST_SIZE.code);
    expect((await call(jobReq(MSG_TYPE.CALC_RUN, job))).status).toBe(STATUS.CALC_BAD_JOB.code); // 0 of 10 bytes given
    expect((await call(io(MSG_TYPE.CALC_INPUT, job, 8, 0, geometry.dataSliceBytes - 4))).status).toBe(STATUS.BAD_BUFFER.code);
    expect((await call(jobReq(MSG_TYPE.CALC_END, job + 1))).status).toBe(STATUS.CALC_BAD_JOB.code);
    expect((await call(jobReq(MSG_TYPE.CALC_END, job))).status).toBe(0);
    expect((await compute('gunzip', new TextEncoder().encode('this is not gzip'))).status).toBe(STATUS.CALC_FAILED.code);
    expect((await call(begin('sha256', 2 * 1024 ** 3))).status).toBe(STATUS.CALC_TOO_LARGE.code);
    // After all that the channel still computes.
    const after = await compute('crc32c', new TextEncoder().encode('123456789'));
    expect(after.status).toBe(0);
    expect([...after.output!]).toEqual([0x83, 0x92, 0x06, 0xe3]);
  });

  it('a streamed input (size not known up front) ends at CALC_RUN; past 1 GiB it is too large', async () => {
    const sha = await compute('sha256', data, { stream: true });
    expect(Buffer.from(sha.output!).toString('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    const empty = await compute('sha256', new Uint8Array(0), { stream: true });
    expect(Buffer.from(empty.output!).toString('hex')).toBe(createHash('sha256').digest('hex'));
    const b = await call(begin('crc32c', undefined));
    const job = u32(b, CALC_JOB_REQ.offsets.job);
    expect((await call(io(MSG_TYPE.CALC_INPUT, job, 8, CALC_LIMITS.MAX_JOB_BYTES - 4, 0))).status).toBe(STATUS.CALC_BAD_JOB.code); // not the next offset
    expect((await call(io(MSG_TYPE.CALC_INPUT, job, 4, 0, 0))).status).toBe(0);
    expect((await call(jobReq(MSG_TYPE.CALC_END, job))).status).toBe(0);
  });

  it('guest arguments: a built-in takes none; they are read from the slice and checked', async () => {
    const args = new TextEncoder().encode('-n\0');
    mem.write(slice() + 4096, args);
    const r = await call(begin('sha256', 0, { argc: 1, len: args.byteLength, at: 4096 }));
    expect(r.status).toBe(STATUS.CALC_BAD_ARGS.code);
    expect((await call(begin('sha256', 0, { argc: 1, len: 8, at: geometry.dataSliceBytes - 4 }))).status).toBe(STATUS.BAD_BUFFER.code);
    expect((await call(begin('sha256', 0, { argc: 2, len: args.byteLength, at: 4096 }))).status).toBe(STATUS.CALC_BAD_ARGS.code);
    expect((await compute('sha256', data)).status).toBe(0);
  });

  it('a channel reset drops its job', async () => {
    const b = await call(begin('sha256', 4));
    const job = u32(b, CALC_JOB_REQ.offsets.job);
    guest.claim(77);
    core.process();
    guest.afterReset();
    const p = new Uint8Array(8);
    new DataView(p.buffer).setUint32(0, MODE.CALC, true);
    expect((await call({ type: MSG_TYPE.SET_MODE, requestId: 2, status: 0, payload: p })).status).toBe(0);
    expect((await call(jobReq(MSG_TYPE.CALC_RUN, job))).status).toBe(STATUS.CALC_BAD_JOB.code);
    expect((await call(begin('sha256', 4))).status).toBe(0);
  });

  it('the VM output budget: a job whose output would pass it is refused, and what it held is freed', async () => {
    const big = new Uint8Array(randomBytes(BUDGET_BYTES + 100_000));
    expect((await compute('gunzip', gzipSync(big))).status).toBe(STATUS.CALC_OUTPUT_BUDGET.code);
    const fits = big.subarray(0, 1_200_000);
    const again = await compute('gunzip', gzipSync(fits));
    expect(again.status).toBe(0);
    expect(Buffer.from(again.output!).equals(Buffer.from(fits))).toBe(true);
  });

  it('CALC_LIST: every function this VM may call with its kind and description, paged by cookie', async () => {
    const list = async (cookie: number, room: number): Promise<{ status: number; names: string[]; next: number }> => {
      const p = new Uint8Array(CALC_LIST_REQ.sizeBytes);
      const dv = new DataView(p.buffer);
      dv.setUint32(CALC_LIST_REQ.offsets.buf_offset, 0, true);
      dv.setUint32(CALC_LIST_REQ.offsets.buf_len, room, true);
      dv.setUint32(CALC_LIST_REQ.offsets.cookie, cookie, true);
      const r = await call(msg(MSG_TYPE.CALC_LIST, p));
      if (r.status !== 0) return { status: r.status, names: [], next: 0 };
      const count = u32(r, CALC_LIST_RESULT.offsets.count);
      const bytes = mem.copyOut(slice(), u32(r, CALC_LIST_RESULT.offsets.bytes));
      const ev = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const names: string[] = [];
      for (let i = 0, at = 0; i < count; i++) {
        const nameLen = ev.getUint8(at + CALC_ENTRY.offsets.name_len);
        const descLen = ev.getUint16(at + CALC_ENTRY.offsets.desc_len, true);
        expect(ev.getUint8(at + CALC_ENTRY.offsets.kind)).toBe(CALC_KIND.BUILTIN);
        const name = new TextDecoder().decode(bytes.subarray(at + CALC_ENTRY.sizeBytes, at + CALC_ENTRY.sizeBytes + nameLen));
        const desc = new TextDecoder().decode(bytes.subarray(at + CALC_ENTRY.sizeBytes + nameLen, at + CALC_ENTRY.sizeBytes + nameLen + descLen));
        names.push(`${name}: ${desc}`);
        at += (CALC_ENTRY.sizeBytes + nameLen + descLen + 3) & ~3;
      }
      return { status: 0, names, next: u32(r, CALC_LIST_RESULT.offsets.next_cookie) };
    };
    const all = await list(0, 4096);
    expect(all.next).toBe(0);
    expect(all.names).toEqual(BUILTIN_CATALOG.list().map((f) => `${f.name}: ${f.description}`));
    const pages: string[] = [];
    for (let cookie = 0, n = 0; n === 0 || cookie !== 0; n++) {
      const page = await list(cookie, 100);
      expect(page.status).toBe(0);
      pages.push(...page.names);
      cookie = page.next;
    }
    expect(pages).toEqual(all.names);
    expect((await list(0, 8)).status).toBe(STATUS.BAD_BUFFER.code);
  });
});
