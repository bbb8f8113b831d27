// The stats mode: the record codec and validator fed bytes, the hub's bounded series, and the service over
// a real core with a fake guest agent (claim, interval push, records accepted and refused, share push).
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import { DeviceCore } from '../../core/device-core.js';
import { computeGeometry, DEFAULT_GEOMETRY } from '../../layout/geometry.js';
import { MODE, MSG_TYPE, STATS_CONFIG_MSG, STATS_RECORD, STATS_SHARE_MSG, STATUS } from '../../layout/wire-layout.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { loadNative } from '../../native/index.js';
import { FakeGuest } from '../../testing/fake-guest.js';
import { deviceServices } from '../device-services.js';
import { decodeStatsRecord, encodeStatsRecord, type StatsRecord } from './stats-codec.js';
import { StatsHub } from './stats-hub.js';

const record = (over: Partial<StatsRecord> = {}): StatsRecord => ({
  version: 1,
  sizeBytes: STATS_RECORD.sizeBytes,
  seq: 1,
  intervalMs: 1000,
  uptimeMs: 5000,
  cpu: { user: 100, nice: 0, system: 50, idle: 800, iowait: 10, irq: 0, softirq: 0, steal: 0 },
  memTotalKiB: 250_000,
  memAvailableKiB: 200_000,
  load: [0.5, 0.25, 0.1],
  runnable: 1,
  cpus: 1,
  psi: { cpuSome: 120, memSome: 0, memFull: 0, ioSome: null, ioFull: null },
  demand: 90,
  demandLeftMs: null,
  reason: 'batch job',
  ...over,
});

const status = (p: Uint8Array): number => {
  const d = decodeStatsRecord(p);
  return d.ok ? 0 : d.status;
};

describe('stats record codec', () => {
  it('round-trips a version 1 record', () => {
    const d = decodeStatsRecord(encodeStatsRecord(record()));
    expect(d).toEqual({ ok: true, value: record() });
  });

  it('reads the version 1 part of a larger, newer record', () => {
    const p = encodeStatsRecord(record({ sizeBytes: 224, version: 2 }));
    p.fill(0xab, STATS_RECORD.sizeBytes);
    const d = decodeStatsRecord(p);
    expect(d.ok && d.value.demand).toBe(90);
  });

  it('refuses bad versions and sizes with STATS_BAD_VERSION, bad fields with STATS_OUT_OF_RANGE', () => {
    const v0 = encodeStatsRecord(record());
    new DataView(v0.buffer).setUint16(0, 0, true);
    expect(status(v0)).toBe(STATUS.STATS_BAD_VERSION.code);
    expect(status(encodeStatsRecord(record()).subarray(0, 100))).toBe(STATUS.STATS_BAD_VERSION.code);
    expect(status(new Uint8Array(2))).toBe(STATUS.STATS_BAD_VERSION.code);
    const demand = encodeStatsRecord(record());
    demand[STATS_RECORD.offsets.demand] = 101;
    expect(status(demand)).toBe(STATUS.STATS_OUT_OF_RANGE.code);
    expect(status(encodeStatsRecord(record({ memAvailableKiB: 300_000 })))).toBe(STATUS.STATS_OUT_OF_RANGE.code);
    expect(status(encodeStatsRecord(record({ cpus: 0 })))).toBe(STATUS.STATS_OUT_OF_RANGE.code);
    expect(status(encodeStatsRecord(record({ psi: { cpuSome: 10_001, memSome: null, memFull: null, ioSome: null, ioFull: null } })))).toBe(STATUS.STATS_OUT_OF_RANGE.code);
    const reserved = encodeStatsRecord(record());
    reserved[STATS_RECORD.offsets.reserved] = 1;
    expect(status(reserved)).toBe(STATUS.STATS_OUT_OF_RANGE.code);
    const reasonLen = encodeStatsRecord(record());
    new DataView(reasonLen.buffer).setUint16(STATS_RECORD.offsets.reason_len, 49, true);
    expect(status(reasonLen)).toBe(STATUS.STATS_OUT_OF_RANGE.code);
  });
});

describe('StatsHub', () => {
  it('keeps a bounded series, computes the CPU split, refuses counters that go back and records too frequent', () => {
    let now = 0;
    const hub = new StatsHub({ intervalMs: () => 1000, nowMs: () => now, samples: 3 });
    expect(hub.accept('a', 1, record())).toEqual({ ok: true });
    now += 1000;
    const next = record({ seq: 2, uptimeMs: 6000, cpu: { user: 150, nice: 0, system: 75, idle: 825, iowait: 10, irq: 0, softirq: 0, steal: 0 } });
    expect(hub.accept('a', 1, next)).toEqual({ ok: true });
    expect(hub.view('a').samples[1]!.cpu).toMatchObject({ user: 50, system: 25, idle: 25, busy: 75 });
    now += 1000;
    expect(hub.accept('a', 1, record({ seq: 3, uptimeMs: 7000 }))).toMatchObject({ ok: false, status: STATUS.STATS_COUNTER_BACKWARDS.code });
    expect(hub.accept('a', 1, { ...next, seq: 2, uptimeMs: 7000 })).toMatchObject({ ok: false, status: STATUS.STATS_COUNTER_BACKWARDS.code });
    expect(hub.view('a').samples).toHaveLength(2);
    for (let i = 0; i < 10; i++) hub.accept('a', 1, { ...next, seq: 10 + i, uptimeMs: 8000 + i });
    expect(hub.view('a').samples).toHaveLength(3);
    expect(hub.accept('a', 1, { ...next, seq: 100, uptimeMs: 9000 })).toMatchObject({ ok: false, status: STATUS.STATS_TOO_FREQUENT.code });
    now += 60_000;
    expect(hub.accept('a', 1, { ...next, seq: 101, uptimeMs: 9001 })).toEqual({ ok: true });
    expect(hub.demand('a')).toEqual({ demand: 90, reason: 'batch job' });
    now += 10_000;
    expect(hub.demand('a')).toBeNull();
  });
});

describe('StatsService over a core', () => {
  function setUp() {
    const r = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: 1024 * 1024, ringSlots: 8, channelCount: 2 });
    if (!r.ok) throw new Error(r.reason);
    const mem = new GuestMemory(new ArrayBuffer(r.geometry.regionSizeBytes));
    let now = 1_000_000;
    const hub = new StatsHub({ intervalMs: () => 1000, nowMs: () => now });
    const built = deviceServices({ native: loadNative(), log: silentLogger, stats: hub });
    const core = DeviceCore.initialize({ mem, geometry: r.geometry, services: built.services, notifyGuest: () => {}, log: silentLogger, vm: { name: 'vm1' } });
    const guest = new FakeGuest(mem, r.geometry, 1);
    guest.claim(77);
    core.process();
    guest.afterReset();
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setUint32(0, MODE.STATS, true);
    guest.send({ type: MSG_TYPE.SET_MODE, requestId: 1, status: 0, payload });
    core.process();
    return { core, guest, hub, stats: built.stats!, tick: (ms: number) => (now += ms) };
  }

  it('pushes the interval at the claim, takes records, refuses bad ones without harm, pushes the share', () => {
    const { core, guest, hub, stats, tick } = setUp();
    const first = guest.receiveAll();
    expect(first.map((m) => m.type).sort()).toEqual([MSG_TYPE.SET_MODE | 0x8000, MSG_TYPE.STATS_CONFIG].sort());
    const config = first.find((m) => m.type === MSG_TYPE.STATS_CONFIG)!;
    expect(config.requestId).toBe(0);
    expect(new DataView(config.payload.buffer, config.payload.byteOffset).getUint32(STATS_CONFIG_MSG.offsets.interval_ms, true)).toBe(1000);

    guest.send({ type: MSG_TYPE.STATS_RECORD, requestId: 2, status: 0, payload: encodeStatsRecord(record()) });
    core.process();
    expect(guest.receiveAll().map((m) => m.status)).toEqual([STATUS.OK.code]);
    tick(1000);
    const bad = encodeStatsRecord(record({ seq: 2 }));
    bad[STATS_RECORD.offsets.demand] = 200;
    guest.send({ type: MSG_TYPE.STATS_RECORD, requestId: 3, status: 0, payload: bad });
    guest.send({ type: MSG_TYPE.STATS_RECORD, requestId: 4, status: 0, payload: new Uint8Array(3) });
    core.process();
    expect(guest.receiveAll().map((m) => m.status)).toEqual([STATUS.STATS_OUT_OF_RANGE.code, STATUS.STATS_BAD_VERSION.code]);
    expect(hub.view('vm1').samples).toHaveLength(1);
    expect(core.serviceCounters()['stats']).toMatchObject({ records: 1, records_refused: 2 });

    expect(stats.pushShare({ weight: 340, baseWeight: 100, capPercent: null, boostLeftMs: 15_000, flags: 3, demand: 90, reason: 'demand 90: boosted' })).toBe(1);
    core.process();
    const [share] = guest.receiveAll();
    expect(share!.type).toBe(MSG_TYPE.STATS_SHARE);
    const dv = new DataView(share!.payload.buffer, share!.payload.byteOffset);
    expect(dv.getUint32(STATS_SHARE_MSG.offsets.weight, true)).toBe(340);
    expect(new TextDecoder().decode(share!.payload.subarray(STATS_SHARE_MSG.offsets.reason, STATS_SHARE_MSG.offsets.reason + dv.getUint32(STATS_SHARE_MSG.offsets.reason_len, true)))).toBe('demand 90: boosted');
    core.close();
  });
});
