// Properties of every decoder of guest-written bytes: arbitrary input never throws, gives a typed result
// with a reason, and what is accepted satisfies the documented bounds; encoders round-trip. Written as a
// list (describe/it below only collect them) so the unit suite (decoders.test.ts) and the long run
// (fuzz-cli.ts) run the same properties.
import fc from 'fast-check';
import { expect } from 'vitest';
import { silentLogger } from '../core/core-logger.js';
import { DeviceCore } from '../core/device-core.js';
import type { MessageService } from '../core/message-service.js';
import { decideSetMode, ModeRouter } from '../core/mode-routing.js';
import { pingService } from '../core/ping-service.js';
import { checkHeaderGeometry, writeFreshHeader } from '../core/region-header.js';
import { computeGeometry, type Geometry } from '../layout/geometry.js';
import type { StructDef } from '../layout/struct-def.js';
import {
  CHANNEL_STATE, DIRENT, FILE_HANDLE_REQ, FILE_IO_REQ, FILE_LIST_REQ, FILE_OPEN_REQ, FILE_PATH_REQ, HEADER, MAX_PATH_BYTES, MODE,
  MSG_HEADER, MSG_RESPONSE_BIT, MSG_TYPE, RING, SET_MODE_REQ, STATUS,
} from '../layout/wire-layout.js';
import { DataSlice } from '../memory/data-slice.js';
import { GuestMemory, GuestMemoryError } from '../memory/guest-memory.js';
import { decodeMessage, encodeMessage, readHeaderFields, responseTo } from '../protocol/message-codec.js';
import { RingConsumer, RingProducer } from '../ring/spsc-ring.js';
import { decodeHandle, decodeIo, decodeList, decodeOpen, decodePath, encodeInfo, encodeIoResult, encodeListResult, packDirents } from '../services/file/file-codec.js';
import { decodeGuestPath, splitGuestPath } from '../services/file/file-path.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { fileReq } from '../testing/file-requests.js';
import { AccessCheckedMemory } from './access-checked-memory.js';
import { edgeU32, edgeU64, hostilePath, slotFromSpec, slotSpec, structBytes, wildNumber } from './arbitraries.js';
import { decodeStatsRecord, encodeStatsRecord } from '../services/stats/stats-codec.js';

export interface DecoderProperty {
  group: string;
  name: string;
  /** Runs in the unit suite; the long run scales them. */
  runs: number;
  property: fc.IRawProperty<unknown[], false>;
}

const all: DecoderProperty[] = [];
let currentGroup = '';
type Made = { property: fc.IRawProperty<unknown[], false>; runs: number };
const check = <Ts extends unknown[]>(property: fc.IRawProperty<Ts>, runs: number): Made => ({ property: property as unknown as fc.IRawProperty<unknown[], false>, runs });
function describe(group: string, body: () => void): void {
  currentGroup = group;
  body();
}
function it(name: string, make: () => Made): void {
  const { property, runs } = make();
  all.push({ group: currentGroup, name, runs, property });
}

/** Every decoder property, built once. */
export function decoderProperties(): readonly DecoderProperty[] {
  if (all.length === 0) defineAll();
  return all;
}

function defineAll(): void {
const RUNS = 2000;
const STATUS_CODES: ReadonlySet<number> = new Set(Object.values(STATUS).map((s) => s.code));
const slotSizes = fc.integer({ min: 1, max: 64 }).map((n) => n * 64);
const isReason = (r: unknown): boolean => typeof r === 'string' && r.length > 0;

function geometry(opts: { regionSizeBytes: number; channelCount: number; ringSlots: number; slotSizeBytes: number }): Geometry {
  const r = computeGeometry({ ...opts, vectors: 2 });
  if (!r.ok) throw new Error(r.reason);
  return r.geometry;
}

describe('stats record properties', () => {
  it('decodes any payload without throwing; accepted records are in range; failures carry a stats status', () => {
    return check(
      fc.property(fc.uint8Array({ maxLength: 240 }), fc.boolean(), (bytes, plausible) => {
        // Half the cases start from a valid record with random bytes over part of it, to get past the size check.
        let p: Uint8Array = bytes;
        if (plausible) {
          p = encodeStatsRecord({ version: 1, sizeBytes: 208, seq: 1, intervalMs: 1000, uptimeMs: 1, cpu: { user: 0, nice: 0, system: 0, idle: 0, iowait: 0, irq: 0, softirq: 0, steal: 0 }, memTotalKiB: 10, memAvailableKiB: 5, load: [0, 0, 0], runnable: 0, cpus: 1, psi: { cpuSome: null, memSome: null, memFull: null, ioSome: null, ioFull: null }, demand: null, demandLeftMs: null, reason: '' });
          p.set(bytes.subarray(0, Math.max(0, 208 - 4)).subarray(0, 40), 4 + (bytes[0] ?? 0) % 160);
        }
        const r = decodeStatsRecord(p);
        if (r.ok) {
          expect(r.value.sizeBytes).toBe(p.byteLength);
          expect(r.value.memAvailableKiB).toBeLessThanOrEqual(r.value.memTotalKiB);
          expect(r.value.demand === null || (r.value.demand >= 0 && r.value.demand <= 100)).toBe(true);
          expect(r.value.cpus).toBeGreaterThanOrEqual(1);
          expect(new TextEncoder().encode(r.value.reason).byteLength).toBeLessThanOrEqual(48);
        } else {
          expect([STATUS.STATS_BAD_VERSION.code, STATUS.STATS_OUT_OF_RANGE.code]).toContain(r.status);
          expect(isReason(r.reason)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('message codec properties', () => {
  it('decodes any slot without throwing; accepted messages are in bounds; failures carry a status and reason', () => {
    return check(
      fc.property(slotSizes.chain((size) => fc.tuple(fc.constant(size), fc.uint8Array({ minLength: size, maxLength: size }))), ([size, slot]) => {
        const raw = readHeaderFields(slot);
        const r = decodeMessage(slot);
        if (r.ok) {
          expect(r.message.payload.byteLength).toBe(raw.length);
          expect(raw.length).toBeLessThanOrEqual(size - MSG_HEADER.sizeBytes);
          expect(raw.flags).toBe(0);
          expect(Object.values(MSG_TYPE)).toContain(r.message.type & ~MSG_RESPONSE_BIT);
          if ((r.message.type & MSG_RESPONSE_BIT) === 0) expect(r.message.status).toBe(0);
          expect(r.message.payload.buffer).not.toBe(slot.buffer); // a private copy
        } else {
          expect(STATUS_CODES.has(r.status)).toBe(true);
          expect(isReason(r.reason)).toBe(true);
          expect(r.requestId).toBe(raw.requestId);
          expect(r.type).toBe(raw.type);
        }
      }),
      RUNS,
    );
  });

  it('checks length, then flags, then type, then status, as the protocol says', () => {
    return check(
      fc.property(slotSizes.chain((size) => fc.tuple(fc.constant(size), slotSpec(size, 4096))), ([size, spec]) => {
        const r = decodeMessage(slotFromSpec(spec, size));
        const length = spec.length ?? Math.min(spec.payload.byteLength, size - MSG_HEADER.sizeBytes);
        const known = (Object.values(MSG_TYPE) as number[]).includes(spec.type & ~MSG_RESPONSE_BIT);
        const expected =
          length > size - MSG_HEADER.sizeBytes ? STATUS.BAD_LENGTH.code
          : spec.flags !== 0 ? STATUS.RESERVED_NONZERO.code
          : !known ? STATUS.UNKNOWN_TYPE.code
          : (spec.type & MSG_RESPONSE_BIT) === 0 && spec.status !== 0 ? STATUS.RESERVED_NONZERO.code
          : STATUS.OK.code;
        expect(r.ok ? STATUS.OK.code : r.status).toBe(expected);
      }),
      RUNS,
    );
  });

  it('round-trips encode → slot → decode, and responseTo keeps id and sets the response bit', () => {
    return check(
      fc.property(
        slotSizes.chain((size) =>
          fc.record({
            size: fc.constant(size),
            type: fc.constantFrom(...Object.values(MSG_TYPE)),
            response: fc.boolean(),
            requestId: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
            status: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
            payload: fc.uint8Array({ maxLength: size - MSG_HEADER.sizeBytes }),
          }),
        ),
        ({ size, type, response, requestId, status, payload }) => {
          const msg = { type: response ? type | MSG_RESPONSE_BIT : type, requestId, status: response ? status : 0, payload };
          const slot = new Uint8Array(size).fill(0xa5);
          slot.set(encodeMessage(msg, size));
          expect(decodeMessage(slot)).toEqual({ ok: true, message: msg });
          const answer = responseTo(msg, STATUS.OK.code);
          expect(answer.requestId).toBe(requestId);
          expect(answer.type).toBe(type | MSG_RESPONSE_BIT);
        },
      ),
      RUNS,
    );
  });

  it('encodeMessage refuses (RangeError) only a payload that does not fit the slot', () => {
    return check(
      fc.property(slotSizes, fc.integer({ min: 0, max: 4200 }), (size, len) => {
        const encode = () => encodeMessage({ type: MSG_TYPE.PING, requestId: 1, status: 0, payload: new Uint8Array(len) }, size);
        if (len > size - MSG_HEADER.sizeBytes) expect(encode).toThrow(RangeError);
        else expect(encode().byteLength).toBe(MSG_HEADER.sizeBytes + len);
      }),
      RUNS,
    );
  });
});

describe('ring index properties', () => {
  const slotsArb = fc.integer({ min: 1, max: 10 }).map((n) => 2 ** n);
  const indexArb = (slots: number) => fc.oneof(edgeU32([slots]), fc.integer({ min: 0, max: 3 * slots }));

  it('a consumer reading any published producer index gets empty, a slot inside the ring, or corrupt with a reason', () => {
    return check(
      fc.property(slotsArb.chain((slots) => fc.tuple(fc.constant(slots), indexArb(slots), indexArb(slots))), ([slots, start, prod]) => {
        const g = { ringOffset: 0, slotsOffset: RING.sizeBytes, slots, slotSizeBytes: 64 };
        const buffer = new ArrayBuffer(RING.sizeBytes + slots * 64);
        const mem = new GuestMemory(buffer);
        mem.storeU32(RING.offsets.cons, start);
        const cons = new RingConsumer(mem, g);
        cons.adoptPublishedIndex();
        mem.storeU32(RING.offsets.prod, prod);
        const r = cons.peek();
        const available = (prod - start) >>> 0;
        if (available === 0) expect(r.kind).toBe('empty');
        else if (available <= slots) expect(r.kind === 'slot' && r.bytes.byteLength).toBe(64);
        else expect(r.kind === 'corrupt' && isReason(r.reason)).toBe(true);
      }),
      RUNS,
    );
  });

  it('a producer reading any published consumer index gets 0..slots free or corrupt with a reason', () => {
    return check(
      fc.property(slotsArb.chain((slots) => fc.tuple(fc.constant(slots), indexArb(slots), indexArb(slots))), ([slots, start, cons]) => {
        const g = { ringOffset: 0, slotsOffset: RING.sizeBytes, slots, slotSizeBytes: 64 };
        const mem = new GuestMemory(new ArrayBuffer(RING.sizeBytes + slots * 64));
        mem.storeU32(RING.offsets.prod, start);
        const prod = new RingProducer(mem, g);
        prod.adoptPublishedIndex();
        mem.storeU32(RING.offsets.cons, cons);
        const r = prod.space();
        const used = (start - cons) >>> 0;
        if (used <= slots) expect(r).toEqual({ kind: 'space', free: slots - used });
        else expect(r.kind === 'corrupt' && isReason(r.reason)).toBe(true);
      }),
      RUNS,
    );
  });

  it('pushes land only in the ring’s slots, wherever the free-running index is', () => {
    return check(
      fc.property(slotsArb.chain((slots) => fc.tuple(fc.constant(slots), edgeU32([slots]), fc.integer({ min: 1, max: 3 * slots }))), ([slots, start, pushes]) => {
        const g = { ringOffset: 0, slotsOffset: RING.sizeBytes, slots, slotSizeBytes: 64 };
        const mem = new GuestMemory(new ArrayBuffer(RING.sizeBytes + slots * 64 + 64));
        mem.storeU32(RING.offsets.prod, start);
        const prod = new RingProducer(mem, g);
        prod.adoptPublishedIndex();
        // The consumer keeps up: it has released every slot before each push.
        for (let i = 0; i < pushes; i++) {
          mem.storeU32(RING.offsets.cons, (start + i) >>> 0);
          prod.push(new Uint8Array(64).fill(0xee));
        }
        expect([...mem.copyOut(RING.sizeBytes + slots * 64, 64)].every((b) => b === 0)).toBe(true);
        expect(mem.loadU32(RING.offsets.prod)).toBe((start + pushes) >>> 0);
      }),
      RUNS / 4,
    );
  });
});

describe('file codec properties', () => {
  const SLICE = 64 * 1024;
  const decoders = [
    ['vmgmt_file_open', decodeOpen, FILE_OPEN_REQ],
    ['vmgmt_file_path', decodePath, FILE_PATH_REQ],
    ['vmgmt_file_io', decodeIo, FILE_IO_REQ],
    ['vmgmt_file_handle', decodeHandle, FILE_HANDLE_REQ],
    ['vmgmt_file_list', decodeList, FILE_LIST_REQ],
  ] as const;

  for (const [cName, decode, def] of decoders) it(`${cName}: any bytes decode to a value of safe integers with reserved zero, or a status and reason`, () => {
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 40 }), structBytes(def as StructDef, SLICE), fc.uint8Array({ minLength: def.sizeBytes, maxLength: def.sizeBytes }));
    return check(
      fc.property(bytes, (payload) => {
        const r = decode(payload);
        if (!r.ok) {
          expect([STATUS.BAD_LENGTH.code, STATUS.RESERVED_NONZERO.code]).toContain(r.status);
          expect(isReason(r.reason)).toBe(true);
          return;
        }
        expect(payload.byteLength).toBe(def.sizeBytes);
        const numbers = JSON.stringify(r.value, (_k, v: unknown) => v);
        for (const n of numbers.match(/-?\d+(\.\d+)?(e[+-]?\d+)?/g) ?? []) expect(Number.isSafeInteger(Number(n))).toBe(true);
        const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        const reserved = def.fields.find((f) => f.name === 'reserved');
        if (reserved) expect(dv.getUint32(reserved.offset, true)).toBe(0);
        for (const f of def.fields.filter((x) => x.type === 'u64')) expect(dv.getBigUint64(f.offset, true) <= BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
      }),
      RUNS,
    );
  });

  it('decoders round-trip what the driver-style builders encode', () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    return check(
      fc.property(u32, u32, u32, u32, u53, u32, (a, b, c, d, big, e) => {
        expect(decodeOpen(fileReq.open(a, b, c, big, d).payload)).toEqual({ ok: true, value: { path: { offset: a, length: b }, flags: c, mode: d, sizeBytes: big } });
        expect(decodeIo(fileReq.read(a, b, big, c).payload)).toEqual({ ok: true, value: { handle: a, length: b, fileOffset: big, bufOffset: c } });
        expect(decodePath(fileReq.mkdir(a, b, c).payload)).toEqual({ ok: true, value: { path: { offset: a, length: b }, arg: c } });
        expect(decodeHandle(fileReq.close(a, b).payload)).toEqual({ ok: true, value: { handle: a, flags: b } });
        expect(decodeList(fileReq.list(a, b, c, d, e).payload)).toEqual({ ok: true, value: { path: { offset: a, length: b }, bufOffset: c, bufLength: d, cookie: e } });
      }),
      RUNS,
    );
  });

  it('a u64 field of 2^53 or more is refused, one below is accepted', () => {
    return check(
      fc.property(edgeU64(), (size) => {
        const payload = fileReq.open(0, 1, 1).payload;
        new DataView(payload.buffer, payload.byteOffset).setBigUint64(FILE_OPEN_REQ.offsets.size, size, true);
        const r = decodeOpen(payload);
        expect(r.ok).toBe(size <= BigInt(Number.MAX_SAFE_INTEGER));
      }),
      RUNS,
    );
  });

  it('encoders of answers write exactly their struct sizes; packDirents fits the capacity and parses back', () => {
    const entry = fc.record({
      name: fc.string({ minLength: 1, maxLength: 40 }),
      type: fc.integer({ min: 1, max: 4 }),
      sizeBytes: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      mtimeNs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      mode: fc.integer({ min: 0, max: 0o7777 }),
    });
    return check(
      fc.property(fc.array(entry, { maxLength: 20 }), fc.integer({ min: 0, max: 2000 }), (entries, capacity) => {
        expect(encodeInfo({ handle: 1, type: 1, sizeBytes: entries.length, mtimeNs: 0n, mode: 0 }).byteLength).toBe(32);
        expect(encodeIoResult(capacity).byteLength).toBe(8);
        expect(encodeListResult(1, capacity, 2).byteLength).toBe(16);
        const { bytes, count } = packDirents(entries, capacity);
        expect(bytes.byteLength).toBeLessThanOrEqual(capacity);
        const dv = new DataView(bytes.buffer);
        let at = 0;
        for (let i = 0; i < count; i++) {
          const e = entries[i]!;
          const nameLen = dv.getUint16(at + DIRENT.offsets.name_len, true);
          expect(new TextDecoder().decode(bytes.subarray(at + DIRENT.sizeBytes, at + DIRENT.sizeBytes + nameLen))).toBe(e.name);
          expect(dv.getBigUint64(at + DIRENT.offsets.size, true)).toBe(BigInt(e.sizeBytes));
          at += Math.ceil((DIRENT.sizeBytes + nameLen) / 8) * 8;
        }
        expect(at).toBe(bytes.byteLength);
      }),
      RUNS / 2,
    );
  });
});

describe('guest path properties', () => {
  it('decodeGuestPath: any bytes give a relative UTF-8 path of 1..4096 bytes without NUL, or BAD_PATH / PATH_ESCAPES', () => {
    return check(
      fc.property(fc.oneof(hostilePath, fc.uint8Array({ maxLength: 64 }), fc.string({ unit: 'binary' }).map((s) => new TextEncoder().encode(s))), (bytes) => {
        const r = decodeGuestPath(bytes);
        if (!r.ok) {
          expect([STATUS.BAD_PATH.code, STATUS.PATH_ESCAPES.code]).toContain(r.status);
          expect(isReason(r.reason)).toBe(true);
          return;
        }
        expect(bytes.byteLength).toBeGreaterThanOrEqual(1);
        expect(bytes.byteLength).toBeLessThanOrEqual(MAX_PATH_BYTES);
        expect(r.path.includes('\0')).toBe(false);
        expect(r.path.startsWith('/')).toBe(false);
        expect(new TextEncoder().encode(r.path)).toEqual(bytes); // valid UTF-8, nothing replaced
      }),
      RUNS,
    );
  });

  it('decodeGuestPath round-trips every relative path without NUL', () => {
    return check(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => !s.startsWith('/') && !s.includes('\0')), (s) => {
        expect(decodeGuestPath(new TextEncoder().encode(s))).toEqual({ ok: true, path: s });
      }),
      RUNS,
    );
  });

  it('splitGuestPath: the name is one component other than . and ..; parent/name is the path without trailing slashes', () => {
    const segment = fc.oneof(fc.constantFrom('.', '..', '', 'a', 'b c', '.vmgmt-put-x', 'é'), fc.string({ maxLength: 5 }));
    return check(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => s.join('/')), (path) => {
        const r = splitGuestPath(path);
        const trimmed = path.replace(/\/+$/, '');
        if (!r.ok) {
          expect([STATUS.BAD_PATH.code, STATUS.PATH_ESCAPES.code]).toContain(r.status);
          return;
        }
        const { parent, name } = r.split;
        expect(name).not.toMatch(/^\.{0,2}$/);
        expect(name.includes('/')).toBe(false);
        expect(parent === '.' ? [name, `./${name}`, `/${name}`] : [`${parent}/${name}`]).toContain(trimmed);
      }),
      RUNS,
    );
  });
});

describe('mode routing and SET_MODE properties', () => {
  const modes = fc.oneof(fc.constantFrom(...Object.values(MODE)), edgeU32());
  const fileLike: MessageService = { name: 'file-like', modes: [MODE.FILE, MODE.AGENT], types: [MSG_TYPE.FILE_OPEN, MSG_TYPE.FILE_READ], handle: (r) => responseTo(r, 0) };

  it('decideSetMode accepts only a known, available mode from NONE, and says why otherwise', () => {
    return check(
      fc.property(modes, modes, fc.subarray([...Object.values(MODE)]), (current, requested, available) => {
        const r = decideSetMode(current, requested, new Set(available));
        if (r.ok) {
          expect(r.mode).toBe(requested);
          expect(current).toBe(MODE.NONE);
          expect(requested).not.toBe(MODE.NONE);
          expect(available).toContain(requested);
        } else {
          expect([STATUS.UNKNOWN_MODE.code, STATUS.WRONG_MODE.code, STATUS.MODE_UNAVAILABLE.code]).toContain(r.status);
          expect(isReason(r.reason)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('the router sends a type only to the service that claims it, and only in that service’s modes', () => {
    const router = new ModeRouter([pingService, fileLike]);
    return check(
      fc.property(modes, fc.integer({ min: 0, max: 0xffff }), (mode, type) => {
        const r = router.route(mode, type);
        if (r.ok) {
          expect(r.service.types).toContain(type);
          if (r.service.modes !== 'any') expect(r.service.modes).toContain(mode);
        } else {
          expect([STATUS.UNKNOWN_TYPE.code, STATUS.WRONG_MODE.code]).toContain(r.status);
        }
      }),
      RUNS,
    );
  });

  it('SET_MODE with any payload gets one answer with a SET_MODE status, and the mode changes only on OK', () => {
    const g = geometry({ regionSizeBytes: 256 * 1024, channelCount: 2, ringSlots: 4, slotSizeBytes: 128 });
    return check(
      fc.property(fc.oneof(structBytes(SET_MODE_REQ, 0), fc.uint8Array({ maxLength: 20 })), fc.boolean(), (payload, twice) => {
        const mem = new GuestMemory(new ArrayBuffer(g.regionSizeBytes));
        const core = DeviceCore.initialize({ mem, geometry: g, services: [pingService, fileLike], notifyGuest: () => {}, log: silentLogger });
        const guest = new FakeGuest(mem, g, 0);
        guest.claim(7);
        core.process();
        guest.afterReset();
        const sends = twice ? 2 : 1;
        for (let i = 0; i < sends; i++) guest.send({ type: MSG_TYPE.SET_MODE, requestId: 40 + i, status: 0, payload });
        core.process();
        const answers = guest.receiveAll();
        expect(answers.map((a) => a.requestId)).toEqual(twice ? [40, 41] : [40]);
        const allowed = [STATUS.OK, STATUS.BAD_LENGTH, STATUS.RESERVED_NONZERO, STATUS.UNKNOWN_MODE, STATUS.WRONG_MODE, STATUS.MODE_UNAVAILABLE].map((s) => s.code);
        for (const a of answers) expect(allowed).toContain(a.status);
        const ok = answers[0]!.status === STATUS.OK.code;
        const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        if (ok) {
          expect(guest.readChannel('mode')).toBe(dv.getUint32(0, true));
          if (twice) expect(answers[1]!.status).toBe(STATUS.WRONG_MODE.code);
        } else expect(guest.readChannel('mode')).toBe(MODE.NONE);
      }),
      RUNS / 4,
    );
  });
});

describe('region header and data slice properties', () => {
  const g = geometry({ regionSizeBytes: 128 * 1024, channelCount: 2, ringSlots: 2, slotSizeBytes: 64 });

  it('checkHeaderGeometry: any header bytes give a reason or undefined, and undefined only for our geometry', () => {
    return check(
      fc.property(fc.uint8Array({ minLength: HEADER.sizeBytes, maxLength: HEADER.sizeBytes }), fc.subarray([...HEADER.fields]), (garbage, keep) => {
        const mem = new GuestMemory(new ArrayBuffer(g.regionSizeBytes));
        writeFreshHeader(mem, g);
        const fresh = mem.copyOut(0, HEADER.sizeBytes);
        mem.write(0, garbage);
        for (const f of keep) mem.write(f.offset, fresh.subarray(f.offset, f.offset + f.sizeBytes)); // some fields intact
        const r = checkHeaderGeometry(mem, g);
        const checked = ['magic', 'channel_count', 'region_size', 'channels_offset', 'channel_stride', 'ring_slots', 'slot_size', 'data_offset', 'data_slice_size'];
        const same = (name: string) => {
          const f = HEADER.fields.find((x) => x.name === name)!;
          return mem.copyOut(f.offset, f.sizeBytes).every((b, i) => b === fresh[f.offset + i]);
        };
        const versionSame = mem.copyOut(HEADER.offsets.version_major, 2).every((b, i) => b === fresh[HEADER.offsets.version_major + i]);
        if (r === undefined) expect(checked.every(same) && versionSame).toBe(true);
        else expect(isReason(r)).toBe(true);
        if (checked.every(same) && versionSame) expect(r).toBeUndefined();
      }),
      RUNS,
    );
  });

  it('reattach to a region of garbage refuses with a reason or, with our header, serves without leaving the channels', () => {
    return check(
      fc.property(fc.boolean(), fc.array(fc.tuple(fc.integer({ min: 0, max: g.regionSizeBytes - 1 }), fc.uint8Array({ minLength: 1, maxLength: 64 })), { maxLength: 40 }), (keepHeader, writes) => {
        const buffer = new ArrayBuffer(g.regionSizeBytes);
        const plain = new GuestMemory(buffer);
        writeFreshHeader(plain, g);
        for (const [at, bytes] of writes) {
          if (keepHeader && at < HEADER.sizeBytes) continue;
          plain.write(at, bytes.subarray(0, g.regionSizeBytes - at));
        }
        const mem = new AccessCheckedMemory(buffer, g);
        mem.phase = 'reattach';
        let core: DeviceCore;
        try {
          core = DeviceCore.reattach({ mem, geometry: g, services: [pingService], notifyGuest: () => {}, log: silentLogger });
        } catch (err) {
          expect(keepHeader).toBe(false);
          expect((err as Error).message).toMatch(/cannot re-attach to the region: header field/);
          return;
        }
        mem.phase = 'serve';
        for (let i = 0; i < 3; i++) {
          mem.beginPass();
          core.process();
        }
        expect(mem.violations).toEqual([]);
        // A channel that was in a mode is shut until its owner resets it.
        for (let ch = 0; ch < g.channelCount; ch++) {
          const guest = new FakeGuest(plain, g, ch);
          if (guest.readChannel('mode') !== MODE.NONE && guest.readChannel('reset_request') === guest.readChannel('reset_done')) expect(guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
        }
      }),
      RUNS / 4,
    );
  });

  it('DataSlice: any offset and length give a copy/view inside the slice, or BAD_BUFFER', () => {
    return check(
      fc.property(fc.integer({ min: 0, max: g.channelCount - 1 }), fc.oneof(wildNumber, edgeU32([g.dataSliceBytes])), fc.oneof(wildNumber, edgeU32([g.dataSliceBytes])), (ch, offset, length) => {
        const mem = new AccessCheckedMemory(new ArrayBuffer(g.regionSizeBytes), g);
        const slice = new DataSlice(mem, g.dataOffset + ch * g.dataSliceBytes, g.dataSliceBytes);
        mem.serviceChannel = ch;
        for (const r of [slice.copyOut(offset, length), slice.view(offset, length)]) {
          if (r.ok) {
            expect(offset + length).toBeLessThanOrEqual(g.dataSliceBytes);
            expect(r.bytes.byteLength).toBe(length + 0); // -0 is a length of 0
          } else {
            expect(r.status).toBe(STATUS.BAD_BUFFER.code);
            expect(isReason(r.reason)).toBe(true);
          }
        }
        expect(mem.violations).toEqual([]);
      }),
      RUNS,
    );
  });

  it('GuestMemory refuses every access outside the region with a GuestMemoryError, never another error', () => {
    const size = 4096;
    const mem = new GuestMemory(new ArrayBuffer(size));
    return check(
      fc.property(wildNumber, wildNumber, (offset, len) => {
        const attempts = [() => mem.loadU32(offset), () => mem.storeU64(offset, 1n), () => mem.copyOut(offset, len), () => mem.view(offset, len), () => mem.fill(offset, len)];
        for (const attempt of attempts) {
          try {
            attempt();
          } catch (err) {
            expect(err).toBeInstanceOf(GuestMemoryError);
          }
        }
      }),
      RUNS,
    );
  });
});
}
