import { describe, expect, it } from 'vitest';
import { computeGeometry, DEFAULT_GEOMETRY } from '../layout/geometry.js';
import { CHANNEL_STATE, HEADER, MODE, MSG_RESPONSE_BIT, MSG_TYPE, STATUS, VMGMT_MAGIC } from '../layout/wire-layout.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { silentLogger } from './core-logger.js';
import { ANSWER_OTHER, DeviceCore, type DeviceCoreOptions } from './device-core.js';
import { checkHeaderGeometry } from './region-header.js';
import { pingService } from './ping-service.js';

function setup(overrides: Partial<DeviceCoreOptions> = {}) {
  const r = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: 1024 * 1024, ringSlots: 8 });
  if (!r.ok) throw new Error(r.reason);
  const mem = new GuestMemory(new ArrayBuffer(r.geometry.regionSizeBytes));
  const notifications: number[] = [];
  const opts: DeviceCoreOptions = { mem, geometry: r.geometry, services: [pingService], notifyGuest: (v) => notifications.push(v), log: silentLogger, ...overrides };
  const core = DeviceCore.initialize(opts);
  const guest = new FakeGuest(mem, r.geometry, 0);
  guest.claim(1234);
  core.process();
  guest.afterReset();
  return { mem, core, guest, notifications, opts, geometry: r.geometry };
}

const ping = (id: number, bytes = [1, 2, 3]) => ({ type: MSG_TYPE.PING, requestId: id, status: 0, payload: new Uint8Array(bytes) });

describe('DeviceCore', () => {
  it('publishes a valid header', () => {
    const { mem, geometry } = setup();
    expect(mem.loadU32(HEADER.offsets.magic)).toBe(VMGMT_MAGIC);
    expect(mem.loadU32(HEADER.offsets.ring_slots)).toBe(geometry.ringSlots);
  });

  it('resets a claimed channel to READY and acknowledges the reset', () => {
    const { guest } = setup();
    expect(guest.readChannel('state')).toBe(CHANNEL_STATE.READY);
    expect(guest.readChannel('reset_done')).toBe(guest.readChannel('reset_request'));
  });

  it('answers PING with the same payload and id', () => {
    const { core, guest } = setup();
    guest.send(ping(5, [9, 8, 7]));
    core.process();
    const [reply] = guest.receiveAll();
    expect(reply).toEqual({ type: MSG_TYPE.PING | MSG_RESPONSE_BIT, requestId: 5, status: 0, payload: new Uint8Array([9, 8, 7]) });
  });

  it('rings the guest only when it asked to be woken, once per batch', () => {
    const { core, guest, notifications } = setup();
    notifications.length = 0;
    guest.send(ping(1));
    core.process();
    expect(notifications).toEqual([]);
    guest.setWantsWakeup(true);
    for (let i = 0; i < 3; i++) guest.send(ping(10 + i));
    core.process();
    expect(notifications).toEqual([0]);
    expect(guest.receiveAll().map((m) => m.requestId)).toEqual([1, 10, 11, 12]);
  });

  it('leaves need_wakeup set when idle so the guest knows to ring', () => {
    const { core, guest } = setup();
    core.process();
    expect(guest.coreWantsWakeup()).toBe(true);
  });

  it('answers an unknown type with UNKNOWN_TYPE and counts the error', () => {
    const { core, guest } = setup();
    guest.send({ type: 0x0777, requestId: 3, status: 0, payload: new Uint8Array() });
    core.process();
    expect(guest.receiveAll()).toEqual([{ type: 0x0777 | MSG_RESPONSE_BIT, requestId: 3, status: STATUS.UNKNOWN_TYPE.code, payload: new Uint8Array() }]);
    expect(guest.readChannel('error_count')).toBe(1);
    expect(guest.readChannel('last_status')).toBe(STATUS.UNKNOWN_TYPE.code);
  });

  it('counts answers by mode, request type and status', () => {
    const { core, guest } = setup();
    guest.send(ping(1));
    guest.send(ping(2));
    guest.send({ type: 0x0777, requestId: 3, status: 0, payload: new Uint8Array() });
    core.process();
    expect(guest.receiveAll()).toHaveLength(3);
    expect(core.answerCounters().sort((a, b) => b.type - a.type)).toEqual([
      { mode: MODE.NONE, type: MSG_TYPE.PING, status: STATUS.OK.code, count: 2 },
      { mode: MODE.NONE, type: ANSWER_OTHER, status: STATUS.UNKNOWN_TYPE.code, count: 1 },
    ]);
  });

  it('counts what happened on each channel apart, and its mode', () => {
    const { core, guest, mem, geometry } = setup();
    const other = new FakeGuest(mem, geometry, 3);
    other.claim(99);
    core.process();
    other.afterReset();
    other.claim(99);
    core.process();
    other.afterReset();
    guest.send(ping(1));
    guest.send(ping(2));
    other.send({ type: 0x0777, requestId: 3, status: 0, payload: new Uint8Array() });
    other.send(ping(4));
    core.process();
    expect(guest.receiveAll()).toHaveLength(2);
    expect(other.receiveAll()).toHaveLength(2);
    const counts = core.channelCounters();
    expect(counts).toHaveLength(geometry.channelCount);
    expect(counts[0]).toEqual({ channel: 0, mode: MODE.NONE, messages: 2, protocolErrors: 0, resets: 1, answers: [{ status: STATUS.OK.code, count: 2 }] });
    expect(counts[3]).toEqual({
      channel: 3,
      mode: MODE.NONE,
      messages: 1,
      protocolErrors: 1,
      resets: 2,
      answers: [
        { status: STATUS.UNKNOWN_TYPE.code, count: 1 },
        { status: STATUS.OK.code, count: 1 },
      ],
    });
    for (const c of counts.filter((c) => c.channel !== 0 && c.channel !== 3)) expect(c).toEqual({ channel: c.channel, mode: MODE.NONE, messages: 0, protocolErrors: 0, resets: 0, answers: [] });
    // The channels add up to the device's totals.
    const sum = (k: 'messages' | 'protocolErrors' | 'resets') => counts.reduce((n, c) => n + c[k], 0);
    expect([sum('messages'), sum('protocolErrors'), sum('resets')]).toEqual([core.counters.messages, core.counters.protocolErrors, core.counters.channelResets]);
  });

  it('answers a garbage length with BAD_LENGTH', () => {
    const { core, guest } = setup();
    const slot = new Uint8Array(16);
    new DataView(slot.buffer).setUint16(0, MSG_TYPE.PING, true);
    new DataView(slot.buffer).setUint32(4, 0xfffffff0, true);
    new DataView(slot.buffer).setUint32(8, 77, true);
    guest.sendRaw(slot);
    core.process();
    expect(guest.receiveAll()[0]).toMatchObject({ requestId: 77, status: STATUS.BAD_LENGTH.code });
  });

  it('marks the channel NEEDS_RESET when the guest moves its producer index past the ring, and serves again after a reset', () => {
    const { core, guest, geometry } = setup();
    guest.pokeRing('g2c', 'prod', geometry.ringSlots + 5);
    core.process();
    expect(guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
    expect(guest.readChannel('last_status')).toBe(STATUS.BAD_INDEX.code);
    expect(core.counters.protocolErrors).toBe(1);
    guest.send(ping(1));
    core.process();
    expect(guest.receiveAll()).toEqual([]);
    guest.claim(1234);
    core.process();
    guest.afterReset();
    guest.send(ping(2));
    core.process();
    expect(guest.receiveAll().map((m) => m.requestId)).toEqual([2]);
  });

  it('stops serving a channel after repeated garbage', () => {
    const { core, guest } = setup({ maxErrorsBeforeReset: 3 });
    for (let i = 0; i < 5; i++) guest.send({ type: 0x0777, requestId: i, status: 0, payload: new Uint8Array() });
    core.process();
    expect(guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
    expect(guest.receiveAll().length).toBe(3);
    // Three messages refused, three errors: reaching the limit is not one more.
    expect(core.counters.protocolErrors).toBe(3);
    expect(core.channelCounters()[0]!.protocolErrors).toBe(3);
  });

  it('leaves requests in place while the response ring is full, and resumes', () => {
    const { core, guest, geometry } = setup();
    for (let i = 0; i < geometry.ringSlots; i++) guest.send(ping(i));
    expect(core.process().more).toBe(false);
    for (let i = 0; i < 2; i++) guest.send(ping(100 + i));
    expect(core.process().more).toBe(true);
    expect(guest.receiveAll().length).toBe(geometry.ringSlots);
    expect(core.process().more).toBe(false);
    expect(guest.receiveAll().map((m) => m.requestId)).toEqual([100, 101]);
  });

  it('keeps polling while a host request waits for room in a full response ring, so it goes out once the guest drains', () => {
    // Found by the core fuzz: with c2g full and g2c empty, process() said "no more work" and the request
    // waited for a doorbell that a guest with nothing more to send never rings.
    let wakeups = 0;
    const { core, guest, geometry } = setup({ onWorkPending: () => wakeups++ });
    for (let i = 0; i < geometry.ringSlots; i++) guest.send(ping(i));
    core.process();
    let settled = false;
    void core.request(0, MSG_TYPE.AGENT_COPY, new Uint8Array([1])).then(() => (settled = true), () => (settled = true));
    expect(wakeups).toBe(1); // the shell is told to call process() although no doorbell comes
    expect(core.process().more).toBe(true);
    expect(guest.receiveAll().length).toBe(geometry.ringSlots);
    expect(core.process().more).toBe(false);
    const [req] = guest.receiveAll();
    expect(req).toMatchObject({ type: MSG_TYPE.AGENT_COPY, status: 0 });
    expect(settled).toBe(false);
  });

  it('takes the answer to a host request only with the request’s type; another type is BAD_RESPONSE', async () => {
    // Found by the core fuzz: a PING response carrying the id of an outstanding AGENT_COPY resolved it.
    const { core, guest } = setup();
    const answer = core.request(0, MSG_TYPE.AGENT_COPY, new Uint8Array([1]));
    const [req] = guest.receiveAll();
    guest.send({ type: MSG_TYPE.PING | MSG_RESPONSE_BIT, requestId: req!.requestId, status: 0, payload: new Uint8Array() });
    core.process();
    expect(guest.readChannel('last_status')).toBe(STATUS.BAD_RESPONSE.code);
    guest.send({ type: MSG_TYPE.AGENT_COPY | MSG_RESPONSE_BIT, requestId: req!.requestId, status: 7, payload: new Uint8Array() });
    core.process();
    expect(await answer).toMatchObject({ type: MSG_TYPE.AGENT_COPY | MSG_RESPONSE_BIT, status: 7 });
  });

  it('garbage in one channel does not disturb another', () => {
    const { core, guest, mem, geometry } = setup();
    const other = new FakeGuest(mem, geometry, 1);
    other.claim(99);
    core.process();
    other.afterReset();
    guest.pokeRing('g2c', 'prod', 0x80000000);
    other.send(ping(4));
    core.process();
    expect(guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
    expect(other.receiveAll().map((m) => m.requestId)).toEqual([4]);
  });

  it('device reset frees every channel and acknowledges', () => {
    const { core, guest, mem } = setup();
    const req = guest.requestDeviceReset();
    core.process();
    expect(mem.loadU32(HEADER.offsets.reset_done)).toBe(req);
    expect(guest.readChannel('owner')).toBe(0);
    expect(guest.readChannel('state')).toBe(CHANNEL_STATE.IDLE);
  });

  it('device reset puts back a header the guest scribbled over, keeping the guest\'s reset counters', () => {
    const { core, guest, mem, geometry } = setup();
    const H = HEADER.offsets;
    // Fields the reset itself sets, or leaves to the guest: compared on their own below.
    const own = [H.device_status, H.reset_request, H.reset_done, H.core_generation];
    const coreHalf = (): Uint8Array => {
      const bytes = mem.copyOut(0, HEADER.sizeBytes);
      for (const off of own) bytes.fill(0, off, off + 4);
      return bytes;
    };
    const pristine = coreHalf();
    for (let off = 0; off < HEADER.sizeBytes; off += 4) mem.storeU32(off, (0xdead0000 + off) >>> 0);
    const req = guest.requestDeviceReset();
    core.process();
    expect(checkHeaderGeometry(mem, geometry)).toBeUndefined();
    expect(coreHalf()).toEqual(pristine); // geometry, features offered, reserved bytes zero again
    expect(mem.loadU32(H.reset_done)).toBe(req);
    expect(mem.loadU32(H.reset_request)).toBe(req);
    expect(mem.loadU32(H.device_status)).toBe(0);
    expect(mem.loadU64(H.guest_features)).toBe(0n);
  });

  it('re-attaches to a live region and carries on from the published indices', () => {
    const { core, guest, opts, mem } = setup();
    guest.send(ping(1));
    core.process();
    guest.receiveAll();
    const generation = mem.loadU32(HEADER.offsets.core_generation);
    const again = DeviceCore.reattach(opts);
    expect(mem.loadU32(HEADER.offsets.core_generation)).toBe(generation + 1);
    guest.send(ping(2));
    again.process();
    expect(guest.receiveAll().map((m) => m.requestId)).toEqual([2]);
  });

  it('refuses to re-attach to a region with another geometry', () => {
    const { opts } = setup();
    expect(() => DeviceCore.reattach({ ...opts, geometry: { ...opts.geometry, ringSlots: 16 } })).toThrow(/ring_slots/);
  });
});

describe('DeviceCore modes', () => {
  const FILE_TYPE_REQ = 0x0101; // a FILE_OPEN-typed request, answered by the fake file service below
  function setMode(mode: number, id = 90) {
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setUint32(0, mode, true);
    return { type: MSG_TYPE.SET_MODE, requestId: id, status: 0, payload };
  }
  function withFakeFileService() {
    const resolvers: (() => void)[] = [];
    const resets: number[] = [];
    const service = {
      name: 'fake-file',
      modes: [MODE.FILE],
      types: [FILE_TYPE_REQ],
      handle: (req: import('../protocol/message-codec.js').Message) =>
        new Promise<import('../protocol/message-codec.js').Message>((resolve) => resolvers.push(() => resolve({ type: req.type | MSG_RESPONSE_BIT, requestId: req.requestId, status: 0, payload: new Uint8Array([7]) }))),
      channelReset: (ch: number) => resets.push(ch),
    };
    let pending = 0;
    const env = setup({ services: [pingService, service], onWorkPending: () => pending++ });
    return { ...env, resolvers, resets, pendingWork: () => pending };
  }
  const fileReq = (id: number) => ({ type: FILE_TYPE_REQ, requestId: id, status: 0, payload: new Uint8Array() });

  it('refuses a mode command before SET_MODE, unknown and unavailable modes', () => {
    const { core, guest } = withFakeFileService();
    guest.send(fileReq(1));
    guest.send(setMode(77, 2));
    guest.send(setMode(MODE.STATS, 3));
    core.process();
    expect(guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([
      [1, STATUS.WRONG_MODE.code],
      [2, STATUS.UNKNOWN_MODE.code],
      [3, STATUS.MODE_UNAVAILABLE.code],
    ]);
  });

  it('routes to the mode service after SET_MODE, answers asynchronously, and refuses a second SET_MODE', async () => {
    const { core, guest, resolvers, pendingWork } = withFakeFileService();
    guest.send(setMode(MODE.FILE, 1));
    guest.send(fileReq(2));
    guest.send(setMode(MODE.FILE, 3));
    guest.send(ping(4));
    core.process();
    expect(guest.readChannel('mode')).toBe(MODE.FILE);
    expect(guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([[1, 0], [3, STATUS.WRONG_MODE.code], [4, 0]]);
    resolvers[0]!();
    await Promise.resolve();
    await Promise.resolve();
    expect(pendingWork()).toBe(1);
    core.process();
    expect(guest.receiveAll().map((m) => [m.requestId, m.status, [...m.payload]])).toEqual([[2, 0, [7]]]);
  });

  it('a channel reset returns it to MODE.NONE, tells the services, and drops answers from before', async () => {
    const { core, guest, resolvers, resets } = withFakeFileService();
    guest.send(setMode(MODE.FILE, 1));
    guest.send(fileReq(2));
    core.process();
    guest.receiveAll();
    guest.claim(1234);
    core.process();
    guest.afterReset();
    expect(guest.readChannel('mode')).toBe(MODE.NONE);
    expect(resets).toContain(0);
    resolvers[0]!();
    await Promise.resolve();
    await Promise.resolve();
    core.process();
    expect(guest.receiveAll()).toEqual([]);
  });

  it('a re-attached core asks channels that were in a mode to reset', () => {
    const { core, guest, opts } = withFakeFileService();
    guest.send(setMode(MODE.FILE, 1));
    core.process();
    const again = DeviceCore.reattach(opts);
    expect(guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
    // The restart is the core's doing, not a fault of the guest.
    expect(again.counters.protocolErrors).toBe(0);
    expect(again.channelCounters()[0]).toMatchObject({ mode: MODE.FILE, protocolErrors: 0 });
  });
});
