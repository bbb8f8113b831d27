// The pure parts of cluster mode: the envelope between daemons (every field checked, sizes bounded) and
// the name table (claims, tombstones, leases, presence changes, the compare-and-set step).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHAT_LIMITS, CHAT_PRESENCE_REASON } from '../../../layout/wire-layout.js';
import { explain } from '../chat-policy.js';
import { decodeAnswer, decodeRequest, encodeAnswer, encodeRequest, senderOf, SUBJECTS } from './cluster-envelope.js';
import { claimStep, ClusterNames, encodeClaim, KEYS, parseKey } from './cluster-names.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('cluster envelope', () => {
  it('carries a send and a call with their data, and answers both ways', () => {
    const data = new Uint8Array([0, 1, 2, 255]);
    const req = decodeRequest(encodeRequest({ kind: 'call', from: { vm: 'vm1', name: 'alice', group: 'lab' }, to: 'bob', timeoutMs: 500 }, data));
    expect(req).toEqual({ ok: true, meta: { v: 1, kind: 'call', from: { vm: 'vm1', name: 'alice', group: 'lab' }, to: 'bob', timeoutMs: 500 }, data });
    expect(decodeAnswer(encodeAnswer({ ok: true, status: 3 }, data))).toEqual({ ok: true, meta: { v: 1, ok: true, status: 3 }, data });
    const no = decodeAnswer(encodeAnswer({ ok: false, code: 'QUEUE_FULL', reason: 'x'.repeat(1000) }));
    expect(no.ok && !no.meta.ok && no.meta.code === 'QUEUE_FULL' && no.meta.reason.length).toBe(256);
  });

  it('refuses what a peer daemon must not send: bad names, unknown fields, oversized data, short or lying lengths', () => {
    expect(decodeRequest(encodeRequest({ kind: 'send', from: { vm: 'v', name: 'Bad Name' }, to: 'bob' }, new Uint8Array())).ok).toBe(false);
    expect(decodeRequest(encodeRequest({ kind: 'send', from: { vm: 'v', name: '' }, to: 'bob', host: 'forged' } as never, new Uint8Array())).ok).toBe(false);
    expect(decodeRequest(encodeRequest({ kind: 'send', from: { vm: 'v', name: '' }, to: 'bob' }, new Uint8Array(CHAT_LIMITS.MAX_MESSAGE_BYTES + 1))).ok).toBe(false);
    expect(decodeRequest(new Uint8Array([1, 0])).ok).toBe(false);
    expect(decodeRequest(new Uint8Array([0xff, 0xff, 0, 0, 1, 2])).ok).toBe(false);
    expect(decodeAnswer(encodeAnswer({ ok: false, code: 'NO_PEER', reason: 'r' }).map((b, i) => (i === 4 ? 0xff : b))).ok).toBe(false);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(typeof decodeRequest(b).ok).toBe('boolean');
        expect(typeof decodeAnswer(b).ok).toBe('boolean');
      }),
    );
  });

  it('takes the sender host from the subject only', () => {
    expect(SUBJECTS.to('ha', 'hb')).toBe('vmgmt.ha.to.hb');
    expect(SUBJECTS.requestsFor('hb')).toBe('vmgmt.*.to.hb');
    expect(senderOf('vmgmt.ha.to.hb', 'hb')).toBe('ha');
    expect(senderOf('vmgmt.ha.to.hc', 'hb')).toBeUndefined();
    expect(senderOf('vmgmt.ha.x.to.hb', 'hb')).toBeUndefined();
  });
});

describe('cluster names', () => {
  const claim = (host: string, vm: string | null = 'vm', gone?: number) => encodeClaim({ host, vm, ...(gone === undefined ? {} : { gone }) });

  it('parses its keys', () => {
    expect(parseKey(KEYS.name('a.b-c'))).toEqual({ kind: 'name', name: 'a.b-c' });
    expect(parseKey(KEYS.host('ha'))).toEqual({ kind: 'host', host: 'ha' });
    expect(parseKey('x.y')).toBeUndefined();
    expect(parseKey('n.UPPER')).toBeUndefined();
  });

  it('reports joins and leaves of other hosts\' names, with the tombstone\'s reason, and ignores its own and stale revisions', () => {
    const n = new ClusterNames('me', 1000);
    expect(n.apply('n.bob', claim('hb'), 1, 0)).toEqual([{ kind: 'join', name: 'bob', claim: { host: 'hb', vm: 'vm' } }]);
    expect(n.apply('n.bob', claim('hb'), 1, 0)).toEqual([]);
    expect(n.apply('n.mine', claim('me'), 2, 0)).toEqual([]);
    expect(n.apply('n.bob', claim('hb', 'vm', CHAT_PRESENCE_REASON.VM_STOPPED), 3, 0)).toEqual([{ kind: 'leave', name: 'bob', claim: { host: 'hb', vm: 'vm' }, reason: CHAT_PRESENCE_REASON.VM_STOPPED }]);
    expect(n.apply('n.mine', claim('me', 'vm', CHAT_PRESENCE_REASON.HOST_UNREACHABLE), 4, 0)).toEqual([{ kind: 'own-lost', name: 'mine', now: { host: 'me', vm: 'vm', gone: CHAT_PRESENCE_REASON.HOST_UNREACHABLE } }]);
    expect(n.apply('n.bob', bytes('not json'), 5, 0)).toEqual([]);
    expect(n.remote()).toEqual([]);
  });

  it('judges leases by when a host\'s renewal was seen, and lists the claims to expire', () => {
    const n = new ClusterNames('me', 1000);
    n.apply('h.hb', bytes('{}'), 1, 5000);
    n.apply('n.bob', claim('hb'), 2, 5000);
    expect(n.live('hb', 5900)).toBe(true);
    expect(n.live('me', 1e12)).toBe(true);
    expect(n.live('hc', 5000)).toBe(false);
    expect(n.expired(5900)).toEqual([]);
    expect(n.expired(6100)).toEqual([{ name: 'bob', held: { claim: { host: 'hb', vm: 'vm' }, revision: 2 } }]);
  });

  it('claims a free, released, own or expired name with a compare-and-set, and refuses a live one', () => {
    const live = (h: string) => h === 'hb';
    expect(claimStep(undefined, 'me', live)).toEqual({ kind: 'create' });
    expect(claimStep({ claim: { host: 'hb', vm: 'v', gone: 2 }, revision: 7 }, 'me', live)).toEqual({ kind: 'update', revision: 7 });
    expect(claimStep({ claim: { host: 'me', vm: 'v' }, revision: 8 }, 'me', live)).toEqual({ kind: 'update', revision: 8 });
    expect(claimStep({ claim: { host: 'hc', vm: 'v' }, revision: 9 }, 'me', live)).toEqual({ kind: 'update', revision: 9 });
    expect(claimStep({ claim: { host: 'hb', vm: 'v' }, revision: 10 }, 'me', live)).toEqual({ kind: 'taken', holder: { host: 'hb', vm: 'v' } });
  });

  it('lets policy rules select by host', () => {
    const rules = { rules: [{ from: { host: 'ha' }, to: { host: 'hb' }, action: 'deny' as const }] };
    expect(explain(rules, { vm: 'a', name: '', group: 'lab', host: 'ha' }, { vm: 'b', name: 'bob', group: 'lab', host: 'hb' }).allowed).toBe(false);
    expect(explain(rules, { vm: 'a', name: '', group: 'lab', host: 'hc' }, { vm: 'b', name: 'bob', group: 'lab', host: 'hb' }).allowed).toBe(true);
  });
});
