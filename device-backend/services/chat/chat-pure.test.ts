// The pure parts of the chat mode: request decoders (malformed input gets a status and a reason), policy,
// receiver queues and the receive area.
import { describe, expect, it } from 'vitest';
import { CHAT_DELIVER_MSG, CHAT_FLAG, CHAT_SEND_REQ, STATUS } from '../../layout/wire-layout.js';
import { decodeName, decodeSend, encodeDeliver, nameProblem } from './chat-codec.js';
import { explain, policyProblem, type ChatParty } from './chat-policy.js';
import { ChatQueue } from './chat-queue.js';
import { allocateRx, rxGeometry } from './rx-area.js';
import { nameReq, sendReq } from '../../testing/chat-requests.js';

const enc = new TextEncoder();

describe('chat codec', () => {
  it('accepts names of 1..64 bytes of a-z 0-9 . _ - and says why it refuses others', () => {
    expect(nameProblem('a')).toBeUndefined();
    expect(nameProblem('web-1.prod_x')).toBeUndefined();
    expect(nameProblem('x'.repeat(64))).toBeUndefined();
    for (const bad of ['', 'x'.repeat(65), 'Web', 'a b', 'a/b', 'é']) expect(nameProblem(bad)).toMatch(/is not 1\.\.64 bytes/);
    expect(decodeName(nameReq('bob'))).toEqual({ ok: true, value: 'bob' });
    expect(decodeName(nameReq('BOB'))).toMatchObject({ ok: false, status: STATUS.CHAT_BAD_NAME.code });
    expect(decodeName(nameReq('bob', 1))).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeName(new Uint8Array(3))).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
    const lying = nameReq('bob');
    new DataView(lying.buffer).setUint32(0, 200, true);
    expect(decodeName(lying)).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code, reason: expect.stringMatching(/name_len 200/) });
    expect(decodeName(nameReq(new Uint8Array([0xff, 0xfe])))).toMatchObject({ ok: false, status: STATUS.CHAT_BAD_NAME.code });
  });

  it('decodes sends and calls, and refuses malformed ones with the status that says why', () => {
    const ok = decodeSend(sendReq({ target: 'bob', data: enc.encode('hi') }), false);
    expect(ok).toMatchObject({ ok: true, value: { from: '', target: 'bob', data: { kind: 'inline', bytes: enc.encode('hi') } } });
    expect(decodeSend(sendReq({ target: '@', data: enc.encode('all') }), false)).toMatchObject({ ok: true, value: { target: '@' } });
    expect(decodeSend(sendReq({ target: 'bob', inSlice: { offset: 4096, length: 70000 } }), false)).toMatchObject({ ok: false, status: STATUS.CHAT_TOO_LARGE.code });
    expect(decodeSend(sendReq({ target: 'bob', inSlice: { offset: 4096, length: 65536 } }), false)).toMatchObject({ ok: true, value: { data: { kind: 'slice', offset: 4096, lengthBytes: 65536 } } });
    expect(decodeSend(sendReq({ target: 'Bob' }), false)).toMatchObject({ ok: false, status: STATUS.CHAT_BAD_NAME.code });
    expect(decodeSend(sendReq({ target: 'bob', flags: 0x80 }), false)).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeSend(sendReq({ target: 'bob', reserved: 1 }), false)).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeSend(sendReq({ target: 'bob', timeoutMs: 5 }), false)).toMatchObject({ ok: false, status: STATUS.RESERVED_NONZERO.code });
    expect(decodeSend(sendReq({ target: 'bob' }), true)).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code, reason: expect.stringMatching(/timeout_ms 0/) });
    expect(decodeSend(sendReq({ target: '@', timeoutMs: 5 }), true)).toMatchObject({ ok: false, status: STATUS.CHAT_BAD_NAME.code });
    expect(decodeSend(sendReq({ target: 'bob', timeoutMs: 5 }), true)).toMatchObject({ ok: true, value: { timeoutMs: 5 } });
    const short = sendReq({ target: 'bob', data: enc.encode('hello') }).slice(0, -2);
    expect(decodeSend(short, false)).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
    expect(decodeSend(new Uint8Array(10), false)).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
    const pastEnd = sendReq({ target: 'bob' });
    new DataView(pastEnd.buffer).setUint16(CHAT_SEND_REQ.offsets.target_len, 5000, true);
    expect(decodeSend(pastEnd, false)).toMatchObject({ ok: false, status: STATUS.BAD_LENGTH.code });
  });

  it('encodes a delivery with the source the core knows, inline or in the receive area', () => {
    const h = { fromVm: 'vm-a', fromName: 'alice', toName: 'bob', call: true, callId: 7, broadcast: false };
    const p = encodeDeliver(h, enc.encode('hi'));
    const dv = new DataView(p.buffer);
    expect(dv.getUint32(CHAT_DELIVER_MSG.offsets.flags, true)).toBe(CHAT_FLAG.CALL);
    expect(dv.getUint32(CHAT_DELIVER_MSG.offsets.call_id, true)).toBe(7);
    expect(new TextDecoder().decode(p.subarray(CHAT_DELIVER_MSG.sizeBytes))).toBe('vm-aalicebobhi');
    const s = encodeDeliver(h, new Uint8Array(1000), { offset: 64, rxEnd: 1000 });
    expect(s.byteLength).toBe(CHAT_DELIVER_MSG.sizeBytes + 12);
    expect(new DataView(s.buffer).getUint32(CHAT_DELIVER_MSG.offsets.flags, true)).toBe(CHAT_FLAG.CALL | CHAT_FLAG.IN_SLICE);
  });
});

describe('chat policy', () => {
  const a: ChatParty = { vm: 'a', name: 'alice', group: 'lab' };
  const b: ChatParty = { vm: 'b', name: 'bob', group: 'lab' };
  const c: ChatParty = { vm: 'c', name: 'carol', group: 'prod' };
  const host: ChatParty = { vm: null, name: 'host', group: undefined };
  const lone: ChatParty = { vm: 'd', name: 'dave', group: undefined };

  it('defaults: same group allowed, across groups and without a group denied, the host talks to all', () => {
    const p = { rules: [] };
    expect(explain(p, a, b)).toMatchObject({ allowed: true, decidedBy: { kind: 'default', name: 'same-group' } });
    expect(explain(p, a, c)).toMatchObject({ allowed: false, decidedBy: { kind: 'default', name: 'cross-group' }, reason: expect.stringMatching(/a\/alice \(group lab\) and c\/carol \(group prod\)/) });
    expect(explain(p, lone, lone)).toMatchObject({ allowed: false });
    expect(explain(p, host, c)).toMatchObject({ allowed: true, decidedBy: { kind: 'default', name: 'host' } });
    expect(explain(p, lone, host)).toMatchObject({ allowed: true });
  });

  it('ordered rules: first match wins, and the explanation names it', () => {
    const p = {
      rules: [
        { from: { vm: 'a' }, to: { name: 'bob' }, action: 'deny' as const, note: 'a never talks to bob' },
        { from: { group: 'lab' }, to: { group: 'prod' }, action: 'allow' as const },
        { from: {}, to: { vm: '@host' }, action: 'deny' as const },
      ],
    };
    expect(explain(p, a, b)).toEqual({ allowed: false, decidedBy: { kind: 'rule', index: 0, rule: p.rules[0] }, reason: 'rule 0 (a never talks to bob): deny' });
    expect(explain(p, b, a)).toMatchObject({ allowed: true, decidedBy: { kind: 'default' } });
    expect(explain(p, a, c)).toMatchObject({ allowed: true, reason: 'rule 1 (group=lab -> group=prod): allow' });
    expect(explain(p, c, a)).toMatchObject({ allowed: false });
    expect(explain(p, c, host)).toMatchObject({ allowed: false, decidedBy: { kind: 'rule', index: 2 } });
  });

  it('checks rules loaded from a file', () => {
    expect(policyProblem([{ from: {}, to: { vm: 'x' }, action: 'allow' }])).toBeUndefined();
    expect(policyProblem([{ from: {}, to: {}, action: 'maybe' }])).toMatch(/action/);
    expect(policyProblem([{ from: { host: 'x' }, to: {}, action: 'deny' }])).toBeUndefined(); // cluster mode: a party's host
    expect(policyProblem([{ from: { rack: 'x' }, to: {}, action: 'deny' }])).toMatch(/from.rack is not one of/);
    expect(policyProblem([null])).toMatch(/not an object/);
  });
});

describe('chat queue', () => {
  const limits = { maxMessages: 4, maxBytes: 100, shareMessages: 2, shareBytes: 60 };
  const item = (source: string, bytes = 1) => ({ source, bytes });

  it('bounds the queue and each source\'s share of it; released items make room', () => {
    const q = new ChatQueue(limits);
    expect(q.offer(item('a')).ok).toBe(true);
    expect(q.offer(item('a')).ok).toBe(true);
    expect(q.offer(item('a'))).toMatchObject({ ok: false, reason: expect.stringMatching(/source a holds 2 messages/) });
    expect(q.offer(item('b')).ok).toBe(true); // a flooding source fills only its own share
    expect(q.offer(item('c', 70))).toMatchObject({ ok: false, reason: expect.stringMatching(/share is 2 \(60 bytes\)/) });
    expect(q.offer(item('c', 50)).ok).toBe(true);
    expect(q.offer(item('d'))).toMatchObject({ ok: false, reason: expect.stringMatching(/queue holds 4 messages/) });
    const first = q.take()!;
    expect(q.size).toEqual({ messages: 4, bytes: 53, waiting: 3 });
    q.release(first);
    expect(q.offer(item('a')).ok).toBe(true);
  });
});

describe('receive area', () => {
  it('is a power of two in the first half of the slice', () => {
    expect(rxGeometry(8 * 1024 * 1024)).toEqual({ start: 64, size: 2 * 1024 * 1024 });
    expect(rxGeometry(64 * 1024)).toEqual({ start: 64, size: 16 * 1024 });
    expect(rxGeometry(64).size).toBe(0);
  });

  it('hands out contiguous space, skips the end instead of wrapping, and waits for the guest\'s tail', () => {
    const g = { start: 64, size: 1024 };
    expect(allocateRx(g, 0, 0, 600)).toEqual({ ok: true, offset: 64, rxEnd: 600 });
    expect(allocateRx(g, 600, 0, 600)).toMatchObject({ ok: false, kind: 'full' });
    expect(allocateRx(g, 600, 600, 600)).toEqual({ ok: true, offset: 64, rxEnd: 1624 }); // skipped 424 bytes
    expect(allocateRx(g, 600, 600, 424)).toEqual({ ok: true, offset: 664, rxEnd: 1024 });
    expect(allocateRx(g, 0xffffff00, 0xffffff00, 512)).toEqual({ ok: true, offset: 64, rxEnd: 0x200 }); // skip 256 across the u32 wrap
    expect(allocateRx(g, 0xfffffe00, 0xfffffe00, 512)).toEqual({ ok: true, offset: 64 + 512, rxEnd: 0 });
    expect(allocateRx(g, 0, 0, 2000)).toMatchObject({ ok: false, kind: 'too-large' });
    expect(allocateRx(g, 100, 5000, 10)).toMatchObject({ ok: false, kind: 'corrupt' });
  });
});
