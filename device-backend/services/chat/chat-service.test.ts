// The chat service over real cores with fake guests on the rings: two VMs share one hub as in the daemon.
// Registration, identity, delivery semantics (answered only once in the receiver's ring), FIFO, large
// messages through the receive area, queues, policy, calls, presence, the host API, malformed requests,
// and carrying on across a core restart (snapshot/restore).
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import { DeviceCore } from '../../core/device-core.js';
import { pingService } from '../../core/ping-service.js';
import { computeGeometry, dataSliceOffset, DEFAULT_GEOMETRY, type Geometry } from '../../layout/geometry.js';
import {
  CHAT_CALL_RESULT, CHAT_DELIVER_MSG, CHAT_FLAG, CHAT_LIST_REQ, CHAT_LIST_RESULT, CHAT_PRESENCE_EVENT, CHAT_PRESENCE_MSG, CHAT_PRESENCE_REASON,
  CHAT_REPLY_REQ, CHAT_RX, CHAT_SEND_RESULT, CHAT_WATCH_REQ, MODE, MSG_RESPONSE_BIT, MSG_TYPE, STATUS,
} from '../../layout/wire-layout.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import type { Message } from '../../protocol/message-codec.js';
import { FakeGuest } from '../../testing/fake-guest.js';
import { nameReq, type SendFields, sendReq } from '../../testing/chat-requests.js';
import type { Timers } from './chat-hub.js';
import { LocalChatHub } from './local-chat-hub.js';
import type { ChatPolicy } from './chat-policy.js';
import { ChatService } from './chat-service.js';
import { guestAreaOffset } from './rx-area.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const u32 = (p: Uint8Array, off: number): number => new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(off, true);

interface Delivery {
  fromVm: string;
  fromName: string;
  to: string;
  flags: number;
  callId: number;
  data: Uint8Array;
}

/** A guest process holding one chat channel: requests with ids, pushes decoded. */
class ChatGuest {
  private nextId = 1;
  readonly answers = new Map<number, Message>();
  readonly deliveries: Delivery[] = [];
  readonly presence: { event: number; reason: number; vm: string; name: string }[] = [];
  readonly fake: FakeGuest;

  constructor(
    public vm: Vm,
    channel: number,
  ) {
    this.fake = new FakeGuest(vm.mem, vm.geometry, channel);
  }

  get slice(): number {
    return dataSliceOffset(this.vm.geometry, this.fake.channel);
  }

  async claim(): Promise<void> {
    this.fake.claim(1000 + this.fake.channel);
    this.vm.core.process();
    this.fake.afterReset();
    const p = new Uint8Array(8);
    new DataView(p.buffer).setUint32(0, MODE.CHAT, true);
    expect((await this.request(MSG_TYPE.SET_MODE, p)).status).toBe(0);
  }

  send(type: number, payload: Uint8Array): number {
    const id = this.nextId++;
    this.fake.send({ type, requestId: id, status: 0, payload });
    this.vm.core.process();
    return id;
  }

  /** Takes everything the core put on c2g: answers by id, deliveries (freeing receive-area space), presence. */
  poll(): void {
    this.vm.core.process();
    for (const m of this.fake.receiveAll()) {
      if (m.type & MSG_RESPONSE_BIT) {
        this.answers.set(m.requestId, m);
      } else if (m.type === MSG_TYPE.CHAT_DELIVER) {
        const D = CHAT_DELIVER_MSG;
        const p = m.payload;
        const vmLen = p[D.offsets.from_vm_len]!, fromLen = p[D.offsets.from_name_len]!, toLen = p[D.offsets.to_name_len]!;
        let at = D.sizeBytes;
        const str = (n: number): string => dec.decode(p.subarray(at, (at += n)));
        const fromVm = str(vmLen), fromName = str(fromLen), to = str(toLen);
        const flags = u32(p, D.offsets.flags);
        const len = u32(p, D.offsets.data_len);
        let data: Uint8Array;
        if (flags & CHAT_FLAG.IN_SLICE) {
          data = this.vm.mem.copyOut(this.slice + u32(p, D.offsets.data_offset), len);
          this.vm.mem.storeU32(this.slice + CHAT_RX.offsets.guest_tail, u32(p, D.offsets.rx_end));
        } else data = p.slice(at, at + len);
        this.deliveries.push({ fromVm, fromName, to, flags, callId: u32(p, D.offsets.call_id), data });
      } else if (m.type === MSG_TYPE.CHAT_PRESENCE) {
        const P = CHAT_PRESENCE_MSG;
        const p = m.payload;
        const vmLen = p[P.offsets.vm_len]!;
        this.presence.push({ event: p[P.offsets.event]!, reason: p[P.offsets.reason]!, vm: dec.decode(p.subarray(P.sizeBytes, P.sizeBytes + vmLen)), name: dec.decode(p.subarray(P.sizeBytes + vmLen)) });
      }
    }
    this.vm.core.process();
  }

  async answer(id: number): Promise<Message> {
    for (let i = 0; i < 200; i++) {
      this.poll();
      const a = this.answers.get(id);
      if (a) return a;
      await tick();
      this.vm.core.process();
    }
    throw new Error(`no answer to request ${id}`);
  }

  request(type: number, payload: Uint8Array): Promise<Message> {
    return this.answer(this.send(type, payload));
  }

  register(name: string): Promise<Message> {
    return this.request(MSG_TYPE.CHAT_REGISTER, nameReq(name));
  }

  chat(f: SendFields, call = false): Promise<Message> {
    return this.request(call ? MSG_TYPE.CHAT_CALL : MSG_TYPE.CHAT_SEND, sendReq(f));
  }

  watch(on: boolean): Promise<Message> {
    const p = new Uint8Array(CHAT_WATCH_REQ.sizeBytes);
    new DataView(p.buffer).setUint32(0, on ? 1 : 0, true);
    return this.request(MSG_TYPE.CHAT_WATCH, p);
  }

  /** Replies inline, or from the guest's half of its slice when the reply does not fit a slot. */
  reply(callId: number, data: Uint8Array, status = 0): Promise<Message> {
    const inSlice = data.byteLength > 200;
    const p = new Uint8Array(CHAT_REPLY_REQ.sizeBytes + (inSlice ? 0 : data.byteLength));
    const dv = new DataView(p.buffer);
    dv.setUint32(CHAT_REPLY_REQ.offsets.call_id, callId, true);
    dv.setInt32(CHAT_REPLY_REQ.offsets.status, status, true);
    dv.setUint32(CHAT_REPLY_REQ.offsets.data_len, data.byteLength, true);
    if (inSlice) {
      const at = guestAreaOffset(this.vm.geometry.dataSliceBytes);
      this.vm.mem.view(this.slice + at, data.byteLength).set(data);
      dv.setUint32(CHAT_REPLY_REQ.offsets.flags, CHAT_FLAG.IN_SLICE, true);
      dv.setUint32(CHAT_REPLY_REQ.offsets.data_offset, at, true);
    } else p.set(data, CHAT_REPLY_REQ.sizeBytes);
    return this.request(MSG_TYPE.CHAT_REPLY, p);
  }

  async peers(): Promise<string[]> {
    const buf = guestAreaOffset(this.vm.geometry.dataSliceBytes);
    const p = new Uint8Array(CHAT_LIST_REQ.sizeBytes);
    const dv = new DataView(p.buffer);
    dv.setUint32(CHAT_LIST_REQ.offsets.buf_offset, buf, true);
    dv.setUint32(CHAT_LIST_REQ.offsets.buf_len, 4096, true);
    const a = await this.request(MSG_TYPE.CHAT_PEERS, p);
    expect(a.status).toBe(0);
    const bytes = u32(a.payload, CHAT_LIST_RESULT.offsets.bytes);
    const list = this.vm.mem.copyOut(this.slice + buf, bytes);
    const out: string[] = [];
    for (let at = 0; at < bytes; ) {
      const vmLen = list[at]!, nameLen = list[at + 1]!;
      out.push(`${dec.decode(list.subarray(at + 4, at + 4 + vmLen)) || '@host'}/${dec.decode(list.subarray(at + 4 + vmLen, at + 4 + vmLen + nameLen))}`);
      at += Math.ceil((4 + vmLen + nameLen) / 4) * 4;
    }
    return out;
  }
}

interface Vm {
  name: string;
  mem: GuestMemory;
  geometry: Geometry;
  core: DeviceCore;
  chat: ChatService;
  saved: Record<string, unknown>;
}

const cores: DeviceCore[] = [];
afterEach(() => {
  for (const c of cores.splice(0)) c.close();
});

function geometry(): Geometry {
  const r = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: 1024 * 1024, ringSlots: 16, channelCount: 4 });
  if (!r.ok) throw new Error(r.reason);
  return r.geometry;
}

interface Clock {
  nowMs: number;
  timers: { fn: () => void; ms: number }[];
}

function vm(hub: LocalChatHub, name: string, group: string | undefined, from?: Vm, clock?: Clock): Vm {
  const g = from?.geometry ?? geometry();
  const mem = from?.mem ?? new GuestMemory(new ArrayBuffer(g.regionSizeBytes));
  const time = clock ? { now: () => clock.nowMs, timers: { setTimeout: (fn: () => void, ms: number) => clock.timers.push({ fn, ms }), clearTimeout: () => {} } } : {};
  const chat = new ChatService({ hub, ...(group ? { group } : {}), ...time, afterStateSaved: (fn) => fn(), maxNamesPerVm: 4, queueLimits: { maxMessages: 16, maxBytes: 1 << 20, shareMessages: 12, shareBytes: 1 << 20 } });
  const v: Vm = { name, mem, geometry: g, chat, saved: {}, core: undefined as unknown as DeviceCore };
  const opts = { mem, geometry: g, services: [pingService, chat], notifyGuest: () => {}, log: silentLogger, vm: { name }, onServiceStateChanged: () => (v.saved = v.core.snapshotServices()) };
  v.core = from ? DeviceCore.reattach(opts, from.saved) : DeviceCore.initialize(opts);
  cores.push(v.core);
  return v;
}

function setup(policy?: ChatPolicy, timers?: Timers) {
  const hub = new LocalChatHub({ log: silentLogger, ...(policy ? { policy } : {}), ...(timers ? { timers } : {}) });
  const a = vm(hub, 'vm-a', 'lab');
  const b = vm(hub, 'vm-b', 'lab');
  return { hub, a, b };
}

async function pair(policy?: ChatPolicy) {
  const env = setup(policy);
  const alice = new ChatGuest(env.a, 0);
  const bob = new ChatGuest(env.b, 1);
  await alice.claim();
  await bob.claim();
  expect((await alice.register('alice')).status).toBe(0);
  expect((await bob.register('bob')).status).toBe(0);
  return { ...env, alice, bob };
}

describe('chat service: names', () => {
  it('registers names unique on the host, with their own refusals', async () => {
    const { a, alice, bob } = await pair();
    expect((await bob.register('alice')).status).toBe(STATUS.CHAT_NAME_TAKEN.code);
    expect((await alice.register('alice')).status).toBe(STATUS.CHAT_NAME_TAKEN.code);
    expect((await alice.register('host')).status).toBe(STATUS.CHAT_NAME_TAKEN.code);
    expect((await alice.register('Not-OK')).status).toBe(STATUS.CHAT_BAD_NAME.code);
    for (const n of ['a2', 'a3', 'a4']) expect((await alice.register(n)).status).toBe(0);
    expect((await alice.register('a5')).status).toBe(STATUS.CHAT_TOO_MANY_NAMES.code); // cap 4 per VM
    expect(await bob.peers()).toEqual(['vm-a/a2', 'vm-a/a3', 'vm-a/a4', 'vm-a/alice', 'vm-b/bob', '@host/host']);
    expect((await alice.request(MSG_TYPE.CHAT_UNREGISTER, nameReq('a2'))).status).toBe(0);
    expect((await alice.request(MSG_TYPE.CHAT_UNREGISTER, nameReq('bob'))).status).toBe(STATUS.CHAT_NO_PEER.code);
    expect(a.core.serviceCounters().chat).toMatchObject({ registered: 4 });
  });
});

describe('chat service: messages', () => {
  it('delivers with the source the core knows, and answers the sender once the message is in the receiver\'s ring', async () => {
    const { alice, bob } = await pair();
    const r = await alice.chat({ from: 'alice', target: 'bob', data: enc.encode('hello') });
    expect(r.status).toBe(0);
    expect(u32(r.payload, CHAT_SEND_RESULT.offsets.delivered)).toBe(1);
    bob.poll();
    expect(bob.deliveries).toEqual([{ fromVm: 'vm-a', fromName: 'alice', to: 'bob', flags: 0, callId: 0, data: enc.encode('hello') }]);
    // A sender without a name of its own is still known by its VM.
    const anon = new ChatGuest(alice.vm, 2);
    await anon.claim();
    expect((await anon.chat({ target: 'bob', data: enc.encode('x') })).status).toBe(0);
    expect((await anon.chat({ from: 'bob', target: 'bob', data: enc.encode('x') })).status).toBe(STATUS.CHAT_NO_PEER.code); // not its name
    bob.poll();
    expect(bob.deliveries[1]).toMatchObject({ fromVm: 'vm-a', fromName: '' });
  });

  it('keeps FIFO order per sender and receiver, several messages per pass, and holds answers until delivered', async () => {
    const { alice, bob } = await pair();
    const ids = Array.from({ length: 20 }, (_, i) => alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', data: enc.encode(`m${i}`) })));
    await tick();
    alice.poll();
    // 16 c2g slots at bob: 16 delivered and answered, the rest wait (unanswered) in bob's queue.
    expect(ids.filter((id) => alice.answers.has(id))).toHaveLength(16);
    for (let i = 0; i < 10 && bob.deliveries.length < 20; i++) {
      bob.poll();
      await tick();
      alice.poll();
    }
    expect(bob.deliveries.map((d) => dec.decode(d.data))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    for (const id of ids) expect((await alice.answer(id)).status).toBe(0);
  });

  it('raises host_waiting while deliveries wait for ring slots; CHAT_RX_FREED lets them go', async () => {
    const { alice, bob } = await pair();
    const ids = Array.from({ length: 20 }, (_, i) => alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', data: enc.encode(`m${i}`) })));
    await tick();
    const flag = (): number => bob.vm.mem.loadU32(bob.slice + CHAT_RX.offsets.host_waiting);
    expect(flag()).toBe(1); // 16 in the ring, 4 in the core's push queue
    expect(bob.fake.receiveAll()).toHaveLength(16); // the guest consumes; the core hears nothing of it
    expect(bob.fake.receiveAll()).toHaveLength(0);
    expect((await bob.request(MSG_TYPE.CHAT_RX_FREED, new Uint8Array())).status).toBe(0);
    await tick();
    expect(flag()).toBe(0);
    bob.poll();
    expect(bob.deliveries).toHaveLength(4);
    for (const id of ids) expect((await alice.answer(id)).status).toBe(0);
  });

  it('withdraws messages the receiver does not take in time and refuses them QUEUE_FULL', async () => {
    const clock: Clock = { nowMs: 0, timers: [] };
    const hub = new LocalChatHub({ log: silentLogger });
    const alice = new ChatGuest(vm(hub, 'vm-a', 'lab'), 0);
    const bob = new ChatGuest(vm(hub, 'vm-b', 'lab', undefined, clock), 1);
    await alice.claim();
    await bob.claim();
    await bob.register('bob');
    const ids = Array.from({ length: 20 }, (_, i) => alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', data: enc.encode(`m${i}`) })));
    await tick();
    alice.poll();
    expect(ids.filter((id) => alice.answers.get(id)?.status === 0)).toHaveLength(16); // in bob's ring
    clock.nowMs = 10_001;
    for (const t of clock.timers.splice(0)) t.fn();
    await tick();
    alice.poll();
    // One was in the core's push queue already (it goes when bob makes room); the 3 behind it are refused.
    expect(ids.map((id) => alice.answers.get(id)?.status).filter((s) => s === STATUS.CHAT_QUEUE_FULL.code)).toHaveLength(3);
    expect(bob.vm.core.serviceCounters().chat).toMatchObject({ delivery_timeouts: 3 });
    bob.fake.receiveAll();
    await bob.request(MSG_TYPE.CHAT_RX_FREED, new Uint8Array());
    await tick();
    alice.poll();
    expect(ids.filter((id) => alice.answers.get(id)?.status === 0)).toHaveLength(17);
  });

  it('carries large messages through the receive area and the sender\'s slice, up to 64 KiB', async () => {
    const { alice, bob } = await pair();
    const big = new Uint8Array(40_000).map((_, i) => (i * 7) & 0xff);
    const at = guestAreaOffset(alice.vm.geometry.dataSliceBytes);
    alice.vm.mem.view(alice.slice + at, big.byteLength).set(big);
    expect((await alice.chat({ target: 'bob', inSlice: { offset: at, length: big.byteLength } })).status).toBe(0);
    bob.poll();
    expect(bob.deliveries[0]!.flags & CHAT_FLAG.IN_SLICE).toBeTruthy();
    expect(bob.deliveries[0]!.data).toEqual(big);
    expect((await alice.chat({ target: 'bob', inSlice: { offset: at, length: 65537 } })).status).toBe(STATUS.CHAT_TOO_LARGE.code);
    // Larger than the sender's slice: refused before anything is read.
    expect((await alice.chat({ target: 'bob', inSlice: { offset: 0, length: 10 ** 8 } })).status).toBe(STATUS.CHAT_TOO_LARGE.code);
  });

  it('a new owner of the channel gets a fresh receive area (what a dead process left unread is forgotten)', async () => {
    const { alice, bob } = await pair();
    const at = guestAreaOffset(alice.vm.geometry.dataSliceBytes);
    alice.vm.mem.view(alice.slice + at, 10_000).fill(3);
    expect((await alice.chat({ target: 'bob', inSlice: { offset: at, length: 10_000 } })).status).toBe(0);
    expect(bob.vm.mem.loadU32(bob.slice + CHAT_RX.offsets.host_head)).toBe(10_000); // never read: bob died
    await bob.claim();
    expect(bob.vm.mem.loadU32(bob.slice + CHAT_RX.offsets.host_head)).toBe(0);
    await bob.register('bob');
    expect((await alice.chat({ target: 'bob', inSlice: { offset: at, length: 10_000 } })).status).toBe(0);
    bob.poll();
    expect(bob.deliveries.map((d) => d.data.byteLength)).toEqual([10_000]);
  });

  it('waits for receive-area space the guest frees (CHAT_RX_FREED), in order with small messages', async () => {
    const { alice, bob } = await pair();
    const size = 12_000;
    const at = guestAreaOffset(alice.vm.geometry.dataSliceBytes);
    alice.vm.mem.view(alice.slice + at, size).fill(9);
    const ids = [0, 1, 2].map(() => alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', inSlice: { offset: at, length: size } })));
    ids.push(alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', data: enc.encode('small') })));
    await tick();
    // Bob has not freed anything: the receive area holds only some of them; the core asks for CHAT_RX_FREED.
    const waiting = (): number => bob.vm.mem.loadU32(bob.slice + CHAT_RX.offsets.host_waiting);
    for (let i = 0; i < 10 && bob.deliveries.length < 4; i++) {
      bob.poll();
      if (waiting()) expect((await bob.request(MSG_TYPE.CHAT_RX_FREED, new Uint8Array())).status).toBe(0);
      await tick();
    }
    expect(bob.deliveries.map((d) => d.data.byteLength)).toEqual([size, size, size, 5]);
    for (const id of ids) expect((await alice.answer(id)).status).toBe(0);
  });

  it('answers QUEUE_FULL at once when the receiver\'s queue (or the sender\'s share) is full', async () => {
    const { alice } = await pair();
    // 16 in bob's ring + 12 queued (alice's VM's share): the next ones are refused at once.
    const ids = Array.from({ length: 32 }, (_, i) => alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', data: enc.encode(`m${i}`) })));
    await tick();
    alice.poll();
    alice.poll();
    const statuses = ids.map((id) => alice.answers.get(id)?.status);
    expect(statuses.filter((s) => s === 0)).toHaveLength(16);
    expect(statuses.filter((s) => s === STATUS.CHAT_QUEUE_FULL.code)).toHaveLength(4);
    expect(statuses.filter((s) => s === undefined)).toHaveLength(12); // waiting: answered once delivered
  });

  it('refuses by policy, across groups by default, and logs nothing it should not deliver', async () => {
    const { hub, alice, bob } = await pair({ rules: [{ from: { vm: 'vm-b' }, to: { name: 'alice' }, action: 'deny' }] });
    expect((await bob.chat({ target: 'alice', data: enc.encode('x') })).status).toBe(STATUS.CHAT_NOT_ALLOWED.code);
    expect((await alice.chat({ target: 'bob', data: enc.encode('x') })).status).toBe(0);
    const other = vm(hub, 'vm-c', 'prod');
    const carol = new ChatGuest(other, 0);
    await carol.claim();
    expect((await carol.register('carol')).status).toBe(0);
    expect((await carol.chat({ target: 'bob', data: enc.encode('x') })).status).toBe(STATUS.CHAT_NOT_ALLOWED.code);
    expect((await carol.chat({ target: 'nobody', data: enc.encode('x') })).status).toBe(STATUS.CHAT_NO_PEER.code);
    expect(await carol.peers()).toEqual(['vm-c/carol', '@host/host']);
    expect(hub.explain({ vm: 'vm-c', name: 'carol', group: 'prod' }, { vm: 'vm-b', name: 'bob', group: 'lab' }).reason).toMatch(/not in one chat group/);
    expect(hub.counters.get('refused_not_allowed')).toBe(2);
  });

  it('broadcasts to the sender\'s chat group', async () => {
    const { hub, alice, bob } = await pair();
    const other = vm(hub, 'vm-c', 'prod');
    const carol = new ChatGuest(other, 0);
    await carol.claim();
    await carol.register('carol');
    const r = await alice.chat({ target: '@', data: enc.encode('all') });
    expect(r.status).toBe(0);
    expect(u32(r.payload, CHAT_SEND_RESULT.offsets.delivered)).toBe(1);
    bob.poll();
    carol.poll();
    expect(bob.deliveries.map((d) => [d.flags, dec.decode(d.data)])).toEqual([[CHAT_FLAG.BROADCAST, 'all']]);
    expect(carol.deliveries).toEqual([]);
  });
});

describe('chat service: calls', () => {
  it('a call is answered by the callee\'s reply, matched by id; only the callee may reply', async () => {
    const { alice, bob } = await pair();
    const id = alice.send(MSG_TYPE.CHAT_CALL, sendReq({ target: 'bob', data: enc.encode('2+2'), timeoutMs: 5000 }));
    await tick();
    bob.poll();
    const call = bob.deliveries[0]!;
    expect(call.flags & CHAT_FLAG.CALL).toBeTruthy();
    expect((await alice.reply(call.callId, enc.encode('5'))).status).toBe(STATUS.CHAT_NO_CALL.code); // not alice's to answer
    expect((await bob.reply(call.callId, enc.encode('4'), 3)).status).toBe(0);
    const a = await alice.answer(id);
    expect(a.status).toBe(0);
    expect(new DataView(a.payload.buffer, a.payload.byteOffset).getInt32(CHAT_CALL_RESULT.offsets.reply_status, true)).toBe(3);
    expect(dec.decode(a.payload.subarray(CHAT_CALL_RESULT.sizeBytes))).toBe('4');
    expect((await bob.reply(call.callId, enc.encode('4'))).status).toBe(STATUS.CHAT_NO_CALL.code); // answered already
  });

  it('a large reply goes to the caller\'s buffer; a call nobody answers times out', async () => {
    const timers: { fn: () => void; ms: number }[] = [];
    const env = setup(undefined, { setTimeout: (fn, ms) => timers.push({ fn, ms }), clearTimeout: () => {} });
    const alice = new ChatGuest(env.a, 0);
    const bob = new ChatGuest(env.b, 0);
    await alice.claim();
    await bob.claim();
    await bob.register('bob');
    const replyAt = guestAreaOffset(env.a.geometry.dataSliceBytes);
    const id = alice.send(MSG_TYPE.CHAT_CALL, sendReq({ target: 'bob', data: enc.encode('big?'), timeoutMs: 100, replyOffset: replyAt, replyCap: 4096 }));
    await tick();
    bob.poll();
    const reply = new Uint8Array(3000).fill(7);
    expect((await bob.reply(bob.deliveries[0]!.callId, reply)).status).toBe(0);
    const a = await alice.answer(id);
    expect(u32(a.payload, CHAT_CALL_RESULT.offsets.flags)).toBe(CHAT_FLAG.IN_SLICE);
    expect(env.a.mem.copyOut(alice.slice + replyAt, 3000)).toEqual(reply);
    const late = alice.send(MSG_TYPE.CHAT_CALL, sendReq({ target: 'bob', data: enc.encode('?'), timeoutMs: 100 }));
    await tick();
    timers.at(-1)!.fn();
    expect((await alice.answer(late)).status).toBe(STATUS.CHAT_TIMED_OUT.code);
  });
});

describe('chat service: presence and the host', () => {
  it('watchers see joins and leaves with the reason: unregistered, process gone, VM stopped', async () => {
    const { a, b, alice } = await pair();
    expect((await alice.watch(true)).status).toBe(0);
    const bob2 = new ChatGuest(b, 2);
    await bob2.claim();
    await bob2.register('bob2');
    await bob2.request(MSG_TYPE.CHAT_UNREGISTER, nameReq('bob2'));
    await bob2.register('bob3');
    bob2.fake.claim(4242); // the process died; another took the channel: reset
    b.core.process();
    b.core.close();
    alice.poll();
    const R = CHAT_PRESENCE_REASON, E = CHAT_PRESENCE_EVENT;
    expect(alice.presence).toEqual([
      { event: E.JOIN, reason: R.REGISTERED, vm: 'vm-b', name: 'bob2' },
      { event: E.LEAVE, reason: R.UNREGISTERED, vm: 'vm-b', name: 'bob2' },
      { event: E.JOIN, reason: R.REGISTERED, vm: 'vm-b', name: 'bob3' },
      { event: E.LEAVE, reason: R.PROCESS_GONE, vm: 'vm-b', name: 'bob3' },
      { event: E.LEAVE, reason: R.VM_STOPPED, vm: 'vm-b', name: 'bob' },
    ]);
    void a;
    expect((await alice.chat({ target: 'bob', data: enc.encode('x') })).status).toBe(STATUS.CHAT_NO_PEER.code);
  });

  it('the host is a peer: host-side names send to and receive from guests through the hub\'s API', async () => {
    const got: string[] = [];
    const { hub, alice, bob } = await pair();
    const ops = hub.registerHost('ops', (m) => {
      got.push(`${m.from.vm}/${m.from.name}: ${dec.decode(m.data)}`);
      return m.callId ? enc.encode('pong') : undefined;
    });
    expect(await ops.send('bob', enc.encode('from the host'))).toEqual({ ok: true, delivered: 1, refused: 0 });
    bob.poll();
    expect(bob.deliveries[0]).toMatchObject({ fromVm: '', fromName: 'ops', data: enc.encode('from the host') });
    expect((await alice.chat({ target: 'ops', data: enc.encode('hi ops') })).status).toBe(0);
    const call = await alice.chat({ target: 'ops', data: enc.encode('ping'), timeoutMs: 1000 }, true);
    expect(dec.decode(call.payload.subarray(CHAT_CALL_RESULT.sizeBytes))).toBe('pong');
    expect(got).toEqual(['vm-a/alice: hi ops', 'vm-a/alice: ping']);
    // A host call to a guest is answered by its reply.
    const pending = ops.call('bob', enc.encode('q'), 1000);
    await tick();
    bob.poll();
    await bob.reply(bob.deliveries.at(-1)!.callId, enc.encode('a'));
    expect(await pending).toMatchObject({ ok: true, data: enc.encode('a') });
    expect(() => hub.registerHost('bob', () => {})).toThrow(/bob is held by vm-b\/bob/);
  });
});

describe('chat service: malformed requests', () => {
  it('answers each with an error status and keeps serving', async () => {
    const { alice, bob } = await pair();
    expect((await alice.request(MSG_TYPE.CHAT_REGISTER, new Uint8Array(2))).status).toBe(STATUS.BAD_LENGTH.code);
    expect((await alice.request(MSG_TYPE.CHAT_SEND, new Uint8Array(40).fill(0xff))).status).toBe(STATUS.RESERVED_NONZERO.code);
    expect((await alice.chat({ target: 'bob', inSlice: { offset: 1 << 30, length: 10 } })).status).toBe(STATUS.BAD_BUFFER.code);
    expect((await alice.request(MSG_TYPE.CHAT_WATCH, new Uint8Array(8).fill(1))).status).toBe(STATUS.RESERVED_NONZERO.code);
    expect((await alice.request(MSG_TYPE.CHAT_RX_FREED, new Uint8Array(1))).status).toBe(STATUS.BAD_LENGTH.code);
    expect((await alice.request(MSG_TYPE.CHAT_REPLY, new Uint8Array(24))).status).toBe(STATUS.CHAT_NO_CALL.code);
    expect((await alice.request(MSG_TYPE.CHAT_DELIVER, new Uint8Array(24))).status).toBe(STATUS.UNKNOWN_TYPE.code); // a push type, not a request
    expect((await alice.chat({ target: 'bob', data: enc.encode('still here') })).status).toBe(0);
    bob.poll();
    expect(dec.decode(bob.deliveries[0]!.data)).toBe('still here');
    expect(alice.vm.core.serviceCounters().chat).toMatchObject({ malformed: 5 });
  });
});

describe('chat service: daemon restart', () => {
  it('names, watches and delivered messages carry on; the channel is not reset', async () => {
    const { hub, a, b, alice, bob } = await pair();
    await bob.watch(true);
    const id = alice.send(MSG_TYPE.CHAT_SEND, sendReq({ target: 'bob', data: enc.encode('before') }));
    await tick();
    expect((await alice.answer(id)).status).toBe(0); // delivered: in bob's ring
    // kill -9: the cores and the hub go away without closing; a new daemon re-attaches with the saved snapshots.
    const hub2 = new LocalChatHub({ log: silentLogger });
    void hub;
    const a2 = vm(hub2, 'vm-a', 'lab', a);
    const b2 = vm(hub2, 'vm-b', 'lab', b);
    // The guest processes live on: same rings, same request ids, the new daemon's cores.
    const alice2 = Object.assign(alice, { vm: a2 });
    const bob2 = Object.assign(bob, { vm: b2 });
    bob2.deliveries.length = 0;
    expect(alice2.fake.readChannel('state')).toBe(1); // READY: not reset
    bob2.poll();
    expect(bob2.deliveries.map((d) => dec.decode(d.data))).toEqual(['before']);
    expect(await bob2.peers()).toEqual(['vm-a/alice', 'vm-b/bob', '@host/host']);
    expect((await alice2.chat({ target: 'bob', data: enc.encode('after') })).status).toBe(0);
    bob2.poll();
    expect(bob2.deliveries.map((d) => dec.decode(d.data))).toEqual(['before', 'after']);
    const carol = new ChatGuest(a2, 3);
    await carol.claim();
    await carol.register('carol');
    bob2.poll();
    expect(bob2.presence.at(-1)).toMatchObject({ name: 'carol', event: CHAT_PRESENCE_EVENT.JOIN });
  });

  it('a name another VM took meanwhile makes the restore fail, and the channels need a reset', async () => {
    const { a, alice } = await pair();
    void alice;
    const hub2 = new LocalChatHub({ log: silentLogger });
    hub2.registerHost('alice', () => {});
    const a2 = vm(hub2, 'vm-a', 'lab', a);
    expect(new ChatGuest(a2, 0).fake.readChannel('state')).toBe(2); // NEEDS_RESET
  });
});
