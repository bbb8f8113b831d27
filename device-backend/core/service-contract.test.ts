// The service contract seen from the guest's side of the rings: a failing service is contained, host
// requests are cancelled and cleaned up, pushes wait for room without taking the answers' slots, hooks
// run, counters count, and a restored service's channels carry on across a core restart.
import { describe, expect, it } from 'vitest';
import { computeGeometry, DEFAULT_GEOMETRY } from '../layout/geometry.js';
import { CHANNEL_STATE, LIMITS, MODE, MSG_RESPONSE_BIT, MSG_TYPE, STATUS } from '../layout/wire-layout.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { Message } from '../protocol/message-codec.js';
import { responseTo } from '../protocol/message-codec.js';
import { FakeGuest } from '../testing/fake-guest.js';
import { type CoreLogger } from './core-logger.js';
import { CoreRequestError, DeviceCore, type DeviceCoreOptions } from './device-core.js';
import type { ChannelPort, MessageService, ServiceHost } from './message-service.js';
import { pingService } from './ping-service.js';

const T = MSG_TYPE.FILE_OPEN; // any request type a mode service may claim
const NOTIFY = MSG_TYPE.AGENT_COPY; // a c2g type

function setMode(mode: number, id: number): Message {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setUint32(0, mode, true);
  return { type: MSG_TYPE.SET_MODE, requestId: id, status: 0, payload };
}
const req = (id: number, type = T): Message => ({ type, requestId: id, status: 0, payload: new Uint8Array() });
const ping = (id: number): Message => ({ type: MSG_TYPE.PING, requestId: id, status: 0, payload: new Uint8Array([1]) });
const ticks = async (n = 4): Promise<void> => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

interface TestService extends MessageService {
  host?: ServiceHost;
  claimed: number[];
  resets: number[];
  deviceResets: number;
}

function service(handle: MessageService['handle'], extra: Partial<MessageService> = {}): TestService {
  const s: TestService = {
    name: 'test',
    modes: [MODE.FILE],
    types: [T],
    handle,
    claimed: [],
    resets: [],
    deviceResets: 0,
    attach: (host) => {
      s.host = host;
    },
    channelClaimed: (port) => s.claimed.push(port.channel),
    channelReset: (ch) => s.resets.push(ch),
    deviceReset: () => s.deviceResets++,
    ...extra,
  };
  return s;
}

function setup(services: MessageService[], overrides: Partial<DeviceCoreOptions> = {}) {
  const r = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: 1024 * 1024, ringSlots: 8, channelCount: 4 });
  if (!r.ok) throw new Error(r.reason);
  const mem = new GuestMemory(new ArrayBuffer(r.geometry.regionSizeBytes));
  const errors: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  const log: CoreLogger = { info: () => {}, warn: () => {}, error: (message, fields) => errors.push({ message, fields }) };
  const opts: DeviceCoreOptions = { mem, geometry: r.geometry, services: [pingService, ...services], notifyGuest: () => {}, log, vm: { name: 'vm-a' }, ...overrides };
  const core = DeviceCore.initialize(opts);
  const guests = [0, 1].map((channel) => {
    const g = new FakeGuest(mem, r.geometry, channel);
    g.claim(100 + channel);
    return g;
  });
  core.process();
  for (const g of guests) g.afterReset();
  return { core, guest: guests[0]!, other: guests[1]!, errors, opts, mem };
}

/** Channel 0 in MODE.FILE, answered. */
function inMode(env: ReturnType<typeof setup>): void {
  env.guest.send(setMode(MODE.FILE, 1));
  env.core.process();
  expect(env.guest.receiveAll().map((m) => m.status)).toEqual([STATUS.OK.code]);
}

describe('service contract: a failing service is contained', () => {
  it('a service that throws gets INTERNAL_ERROR answered, the slot advanced, and every channel keeps serving', () => {
    const env = setup([service(() => { throw new Error('bug in the service'); })]);
    inMode(env);
    env.guest.send(req(2));
    env.guest.send(ping(3));
    env.other.send(ping(4));
    expect(() => env.core.process()).not.toThrow();
    expect(env.guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([[2, STATUS.INTERNAL_ERROR.code], [3, 0]]);
    expect(env.other.receiveAll().map((m) => [m.requestId, m.status])).toEqual([[4, 0]]);
    expect(env.guest.readChannel('state')).toBe(CHANNEL_STATE.READY);
    expect(env.core.counters.serviceFailures).toBe(1);
    expect(env.errors[0]).toMatchObject({ fields: { channel: 0, service: 'test', type: T, requestId: 2, error: expect.stringContaining('bug in the service') } });
    // The next request is served again (not the same slot retried).
    env.guest.send(req(5));
    env.core.process();
    expect(env.guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([[5, STATUS.INTERNAL_ERROR.code]]);
  });

  it('a service whose answer rejects gets INTERNAL_ERROR answered', async () => {
    const env = setup([service(() => Promise.reject(new Error('async bug')))]);
    inMode(env);
    env.guest.send(req(2));
    env.core.process();
    await ticks();
    env.core.process();
    expect(env.guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([[2, STATUS.INTERNAL_ERROR.code]]);
    env.guest.send(ping(3));
    env.core.process();
    expect(env.guest.receiveAll().map((m) => m.requestId)).toEqual([3]);
  });

  it('an answer that cannot be sent (wrong id, too large) becomes INTERNAL_ERROR instead of escaping', async () => {
    let n = 0;
    const env = setup([
      service((r) => {
        n++;
        if (n === 1) return { ...responseTo(r, 0), requestId: r.requestId + 1 };
        if (n === 2) return responseTo(r, 0, new Uint8Array(4096));
        return Promise.resolve(responseTo(r, 0, new Uint8Array(4096)));
      }),
    ]);
    inMode(env);
    for (const id of [2, 3, 4]) env.guest.send(req(id));
    expect(() => env.core.process()).not.toThrow();
    await ticks();
    expect(() => env.core.process()).not.toThrow();
    expect(env.guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([
      [2, STATUS.INTERNAL_ERROR.code],
      [3, STATUS.INTERNAL_ERROR.code],
      [4, STATUS.INTERNAL_ERROR.code],
    ]);
    expect(env.core.counters.serviceFailures).toBe(3);
  });

  it('a hook that throws is logged and counted, never escapes', () => {
    const env = setup([service(() => { throw new Error('x'); }, { channelClaimed: () => { throw new Error('hook bug'); } })]);
    env.guest.send(setMode(MODE.FILE, 1));
    expect(() => env.core.process()).not.toThrow();
    expect(env.guest.receiveAll().map((m) => m.status)).toEqual([0]);
    expect(env.core.counters.serviceFailures).toBe(1);
  });
});

describe('service contract: host requests', () => {
  it('40 requests whose callers timed out leave the channel serving and the next request answered', async () => {
    const svc = service(() => { throw new Error('unused'); });
    const env = setup([svc]);
    inMode(env);
    const port = svc.host!.port(0)!;
    for (let i = 0; i < 40; i++) {
      const controller = new AbortController();
      const p = port.request(NOTIFY, new Uint8Array([i]), { signal: controller.signal });
      controller.abort(new Error('timed out'));
      await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    }
    // The guest answers the ones it saw late: dropped quietly, not protocol errors.
    const seen = env.guest.receiveAll();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThanOrEqual(8);
    for (const m of seen) env.guest.send({ type: m.type | MSG_RESPONSE_BIT, requestId: m.requestId, status: 0, payload: new Uint8Array() });
    env.core.process();
    expect(env.guest.readChannel('error_count')).toBe(0);
    const answered = port.request(NOTIFY, new Uint8Array([99]));
    const [sent] = env.guest.receiveAll();
    expect(sent!.payload).toEqual(new Uint8Array([99]));
    env.guest.send({ type: sent!.type | MSG_RESPONSE_BIT, requestId: sent!.requestId, status: 7, payload: new Uint8Array() });
    env.core.process();
    expect((await answered).status).toBe(7);
    env.guest.send(ping(50));
    env.core.process();
    expect(env.guest.receiveAll().map((m) => [m.requestId, m.status])).toEqual([[50, 0]]);
  });

  it('a request aborted before the ring had room is never sent', async () => {
    const svc = service(() => { throw new Error('unused'); });
    const env = setup([svc]);
    inMode(env);
    const port = svc.host!.port(0)!;
    const sent = Array.from({ length: 8 }, (_, i) => port.request(NOTIFY, new Uint8Array([i])));
    const controller = new AbortController();
    const late = port.request(NOTIFY, new Uint8Array([8]), { signal: controller.signal });
    controller.abort();
    await expect(late).rejects.toBeInstanceOf(CoreRequestError);
    const got = env.guest.receiveAll();
    expect(got.map((m) => m.payload[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    env.core.process();
    expect(env.guest.receiveAll()).toEqual([]);
    void sent;
  });

  it('a channel reset and the device closing reject what waits, with the reason', async () => {
    const svc = service(() => { throw new Error('unused'); });
    const env = setup([svc]);
    inMode(env);
    const onReset = svc.host!.port(0)!.request(NOTIFY, new Uint8Array());
    env.guest.claim(100);
    env.core.process();
    env.guest.afterReset();
    await expect(onReset).rejects.toMatchObject({ code: 'CHANNEL_RESET' });
    const onClose = svc.host!.port(1)!.request(NOTIFY, new Uint8Array());
    env.core.close('VM web stopped');
    await expect(onClose).rejects.toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/VM web stopped/) });
    await expect(svc.host!.port(1)!.request(NOTIFY, new Uint8Array())).rejects.toMatchObject({ code: 'NOT_READY' });
  });

  it('refuses more outstanding requests than the limit with BUSY', async () => {
    const svc = service(() => { throw new Error('unused'); });
    const env = setup([svc]);
    inMode(env);
    const port = svc.host!.port(0)!;
    const waiting = Array.from({ length: LIMITS.MAX_IN_FLIGHT_PER_CHANNEL }, () => port.request(NOTIFY, new Uint8Array()));
    await expect(port.request(NOTIFY, new Uint8Array())).rejects.toMatchObject({ code: 'BUSY' });
    env.core.close();
    await Promise.allSettled(waiting);
  });
});

describe('service contract: pushes', () => {
  it('queues pushes until the guest makes room, bounded per service, and never takes the slots answers need', async () => {
    const answers: (() => void)[] = [];
    const svc = service((r) => new Promise<Message>((resolve) => answers.push(() => resolve(responseTo(r, 0)))));
    const env = setup([svc], { pushQueueLimit: 10 });
    inMode(env);
    // Two requests in flight: two of the 8 c2g slots are the answers'.
    env.guest.send(req(2));
    env.guest.send(req(3));
    env.core.process();
    const port: ChannelPort = svc.host!.port(0)!;
    const results = Array.from({ length: 18 }, (_, i) => port.push(NOTIFY, new Uint8Array([i])));
    // 6 go out at once (8 slots less the 2 owed answers), 10 wait, the rest are refused.
    expect(results.slice(0, 16).every((r) => r.ok)).toBe(true);
    expect(results.slice(16)).toEqual([
      { ok: false, code: 'QUEUE_FULL', reason: expect.stringMatching(/10 messages of test wait/) },
      { ok: false, code: 'QUEUE_FULL', reason: expect.any(String) },
    ]);
    const first = env.guest.receiveAll();
    expect(first.map((m) => m.payload[0])).toEqual([0, 1, 2, 3, 4, 5]);
    expect(first.every((m) => m.requestId === 0 && m.type === NOTIFY)).toBe(true);
    for (const a of answers) a();
    await ticks();
    env.core.process();
    const next = env.guest.receiveAll();
    expect(next.filter((m) => m.type !== NOTIFY).map((m) => m.requestId)).toEqual([2, 3]);
    expect(next.filter((m) => m.type === NOTIFY).map((m) => m.payload[0])).toEqual([6, 7, 8, 9, 10, 11]);
    env.core.process();
    expect(env.guest.receiveAll().map((m) => m.payload[0])).toEqual([12, 13, 14, 15]);
    expect(port.push(NOTIFY, new Uint8Array(4096))).toMatchObject({ ok: false, code: 'TOO_LARGE' });
  });
});

describe('service contract: pushes made while a request is handled', () => {
  it('leave the slot of that request\'s answer: the c2g ring is never filled past the guest\'s consumer', () => {
    // The chat mode's CHAT_RX_FREED: handling the request pushes the deliveries that waited for room.
    let port: ChannelPort | undefined;
    const svc = service((r, p) => {
      port = p;
      for (let i = 0; i < 20; i++) p.push(NOTIFY, new Uint8Array([i]));
      return responseTo(r, 0);
    });
    const env = setup([svc]);
    inMode(env);
    env.guest.send(req(2));
    env.core.process();
    const got = env.guest.receiveAll();
    // 8 slots: 7 pushes and the answer; nothing overwritten, the rest still queued.
    expect(got).toHaveLength(8);
    expect(got.filter((m) => m.type === NOTIFY).map((m) => m.payload[0])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(got.filter((m) => m.type !== NOTIFY).map((m) => m.requestId)).toEqual([2]);
    env.core.process();
    expect(env.guest.receiveAll().map((m) => m.payload[0])).toEqual([7, 8, 9, 10, 11, 12, 13, 14]);
    expect(port).toBeDefined();
  });
});

describe('service contract: a consumer index that moves under the core', () => {
  it('makes the channel need a reset (BAD_INDEX) instead of overwriting a slot or failing the core', () => {
    let env: ReturnType<typeof setup> | undefined;
    // The guest writes garbage into its c2g consumer index while the core handles its request.
    const svc = service((r) => {
      env!.guest.pokeRing('c2g', 'cons', 0x7fff0000);
      return responseTo(r, 0);
    });
    env = setup([svc]);
    inMode(env);
    env.guest.send(req(2));
    expect(() => env!.core.process()).not.toThrow();
    expect(env.guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
    expect(env.guest.readChannel('last_status')).toBe(STATUS.BAD_INDEX.code);
    expect(env.errors).toEqual([]);
  });
});

describe('service contract: push onSent', () => {
  it('tells the service when a push is in the ring, in order; never for pushes a reset dropped', () => {
    const svc = service((r) => responseTo(r, 0));
    const env = setup([svc]);
    inMode(env);
    const port: ChannelPort = svc.host!.port(0)!;
    const sent: number[] = [];
    for (let i = 0; i < 10; i++) expect(port.push(NOTIFY, new Uint8Array([i]), { onSent: () => sent.push(i) }).ok).toBe(true);
    expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6, 7]); // 8 slots
    env.guest.receiveAll();
    env.core.process();
    expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let i = 0; i < 10; i++) port.push(NOTIFY, new Uint8Array([i]), { onSent: () => sent.push(100 + i) });
    expect(sent).toHaveLength(16); // 8, 9 are still in the ring: 6 slots free
    env.guest.claim(100); // the owner resets the channel: queued pushes are dropped, never reported sent
    env.core.process();
    env.guest.afterReset();
    env.core.process();
    expect(sent).toHaveLength(16);
  });

  it('contains an onSent that throws', () => {
    const svc = service((r) => responseTo(r, 0));
    const env = setup([svc]);
    inMode(env);
    const port: ChannelPort = svc.host!.port(0)!;
    expect(port.push(NOTIFY, new Uint8Array([1]), { onSent: () => { throw new Error('boom'); } }).ok).toBe(true);
    expect(env.guest.receiveAll()).toHaveLength(1);
    expect(env.core.counters.serviceFailures).toBe(1);
  });
});

describe('service contract: hooks, identity, counters, restore', () => {
  it('tells the service who the VM is, which channels were claimed and reset, and the device reset', () => {
    const svc = service((r) => {
      svc.host!.counters.add('answered');
      svc.host!.counters.add('bytes', 10);
      return responseTo(r, 0);
    });
    const env = setup([svc]);
    expect(svc.host!.vm).toEqual({ name: 'vm-a' });
    inMode(env);
    expect(svc.claimed).toEqual([0]);
    env.guest.send(req(2));
    env.guest.send(req(3));
    env.core.process();
    expect(env.core.serviceCounters().test).toEqual({ answered: 2, bytes: 20 });
    env.guest.requestDeviceReset();
    env.core.process();
    expect(svc.deviceResets).toBe(1);
    expect(svc.resets).toEqual(expect.arrayContaining([0, 1, 2, 3]));
  });

  it('a channel whose service restored its state carries on after a core restart; without restore it must reset', () => {
    let saved: unknown;
    const restoring = service((r) => responseTo(r, 0, new Uint8Array([42])), {
      snapshot: () => ({ names: ['alpha'] }),
      restore: (state, channels) => {
        saved = { state, channels };
        return true;
      },
    });
    const env = setup([restoring]);
    inMode(env);
    const snap = env.core.snapshotServices();
    expect(snap).toEqual({ test: { names: ['alpha'] } });
    const again = DeviceCore.reattach(env.opts, JSON.parse(JSON.stringify(snap)));
    expect(saved).toEqual({ state: { names: ['alpha'] }, channels: [0] });
    expect(env.guest.readChannel('state')).toBe(CHANNEL_STATE.READY);
    env.guest.send(req(9));
    again.process();
    expect(env.guest.receiveAll().map((m) => [m.requestId, m.status, m.payload[0]])).toEqual([[9, 0, 42]]);

    // The same restart without a snapshot: the channel must be reset first.
    DeviceCore.reattach(env.opts, {});
    expect(env.guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
  });

  it('a restore that refuses or throws leaves the channel needing reset', () => {
    for (const restore of [() => false, () => { throw new Error('bad snapshot'); }]) {
      const svc = service((r) => responseTo(r, 0), { snapshot: () => 1, restore });
      const env = setup([svc]);
      inMode(env);
      DeviceCore.reattach(env.opts, env.core.snapshotServices());
      expect(env.guest.readChannel('state')).toBe(CHANNEL_STATE.NEEDS_RESET);
    }
  });
});
