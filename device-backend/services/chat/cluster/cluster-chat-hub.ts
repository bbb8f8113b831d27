// Cluster mode's chat hub: this daemon's LocalChatHub for everything held here (a local message never goes
// through the broker), and NATS for names other hosts hold. Names are claimed in the cluster's key-value
// bucket with a compare-and-set before a guest is told "registered"; presence of other hosts comes from
// watching that bucket; a send or call to a remote name is one NATS request on this host's own subject
// (vmgmt.<me>.to.<host>), answered by that host's daemon after its local hub delivered it, so the outcome is
// the receiver's. The receiving daemon stamps the sender's host from the subject (the broker lets each
// host publish only under its own prefix); the sending daemon stamped the VM and name. Policy is evaluated
// on both daemons with both ends' host and VM. docs/decisions/cluster-nats.md has the why.
import type { Msg } from 'nats';
import { CHAT_HOST_NAME, CHAT_LIMITS, CHAT_PRESENCE_EVENT, CHAT_PRESENCE_REASON } from '../../../layout/wire-layout.js';
import type { CoreLogger } from '../../../core/core-logger.js';
import { ChatError, type ChatRefusal, type ChatRefusalCode, refuse } from '../chat-error.js';
import type { CallResult, ChatEndpoint, ChatHub, ChatOutcome, ChatPeerInfo, HostChatPeer, HostMessageHandler, PresenceEvent, SendResult } from '../chat-hub.js';
import type { ChatParty, PolicyDecision } from '../chat-policy.js';
import type { LocalChatHub } from '../local-chat-hub.js';
import { decodeAnswer, decodeRequest, encodeAnswer, encodeRequest, senderOf, SUBJECTS } from './cluster-envelope.js';
import { claimStep, ClusterNames, encodeClaim, KEYS, type NameChange, type NameClaim } from './cluster-names.js';
import { NatsLink, type RequestFailure } from './nats-link.js';

/** Cluster mode's settings, as the daemon's config resolves them. */
export interface ClusterSettings {
  url: string;
  host: string;
  credentialsFile: string;
  bucket: string;
  heartbeatMs: number;
  leaseMs: number;
  requestTimeoutMs: number;
  maxInFlight: number;
}

export interface ClusterChatHubOptions extends ClusterSettings {
  /** This daemon's own hub (made with hostId = host). */
  local: LocalChatHub;
  log: CoreLogger;
}

/** Requests from other hosts being handled at once; more are answered QUEUE_FULL. */
const MAX_INBOUND = 4096;

interface InFlight {
  readonly host: string;
  fail(r: ChatRefusal): void;
}

export class ClusterChatHub implements ChatHub {
  readonly #local: LocalChatHub;
  readonly #names: ClusterNames;
  readonly #link: NatsLink;
  readonly #watchers = new Set<ChatEndpoint>();
  readonly #inFlight = new Set<InFlight>();
  #inbound = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When the link last came up (the bucket watch replayed). */
  #upAt: number | undefined;
  /** Named figures of the cluster path. */
  readonly counters = new Map<string, number>();

  constructor(private readonly opts: ClusterChatHubOptions) {
    this.#local = opts.local;
    this.#names = new ClusterNames(opts.host, opts.leaseMs);
    this.#link = new NatsLink({
      url: opts.url,
      host: opts.host,
      credentialsFile: opts.credentialsFile,
      bucket: opts.bucket,
      log: opts.log,
      pingIntervalMs: Math.max(250, Math.floor(opts.leaseMs / 4)),
      onRequest: (m) => this.#onRequest(m),
      onEntry: (e, replayed) => this.#onEntry(e.key, e.operation === 'PUT' ? e.value : undefined, e.revision, replayed ? Math.min(Date.now(), e.created.getTime()) : Date.now()),
      onUp: () => {
        this.#upAt = Date.now();
        void this.#announce();
      },
      onDown: (reason) => this.#failAll(`the link to the cluster broker went down (${reason}): it is unknown whether the message arrived`),
    });
  }

  get host(): string {
    return this.opts.host;
  }

  /** Whether the link to the broker is up now. */
  get connected(): boolean {
    return this.#link.up;
  }

  start(): void {
    this.#link.start();
    this.#timer = setInterval(() => void this.#heartbeat(), this.opts.heartbeatMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#failAll('the daemon is stopping');
    await this.#link.close();
  }

  #count(name: string): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + 1);
  }

  // --- names -------------------------------------------------------------------------------------------

  #live(host: string): boolean {
    return this.#names.live(host, Date.now());
  }

  /** A live claim of another host on name. */
  #remote(name: string): NameClaim | undefined {
    const h = this.#names.get(name);
    return h && h.claim.gone === undefined && h.claim.host !== this.opts.host ? h.claim : undefined;
  }

  #remoteParty(name: string, c: NameClaim): ChatParty {
    return { vm: c.vm, name, group: c.group, host: c.host };
  }

  register(endpoint: ChatEndpoint, name: string): ChatOutcome {
    const remote = this.#remote(name);
    if (remote && this.#live(remote.host)) return refuse('NAME_TAKEN', `${name} is held by ${remote.vm ?? '@host'}@${remote.host} in the cluster`);
    return this.#local.register(endpoint, name);
  }

  /**
   * Claims a name this daemon just registered in the cluster's bucket (compare-and-set). Refused while the
   * link is down: uniqueness across the cluster cannot be known then.
   */
  async claim(name: string): Promise<ChatOutcome> {
    if (name === CHAT_HOST_NAME) return { ok: true };
    const party = this.#local.holder(name);
    if (!party) return refuse('NO_PEER', `${name} is not held on this host`);
    const kv = this.#link.kv;
    if (!kv) return refuse('UNREACHABLE', `cannot claim ${name} in the cluster: this host is not connected to the broker (${this.opts.url})`);
    const claim: NameClaim = { host: this.opts.host, vm: party.vm, ...(party.group === undefined ? {} : { group: party.group }) };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const e = await kv.get(KEYS.name(name));
        const existing = e && e.operation === 'PUT' ? this.#held(e.value, e.revision) : undefined;
        const step = claimStep(existing, this.opts.host, (h) => this.#live(h));
        if (step.kind === 'taken') return refuse('NAME_TAKEN', `${name} is held by ${step.holder.vm ?? '@host'}@${step.holder.host} in the cluster`);
        // create() succeeds only where the key is absent or deleted; update() only on the revision seen.
        if (step.kind === 'create') await kv.create(KEYS.name(name), encodeClaim(claim));
        else await kv.update(KEYS.name(name), encodeClaim(claim), step.revision);
        if (!this.#local.holder(name)) {
          void this.#release(name, CHAT_PRESENCE_REASON.UNREGISTERED); // it went while the claim was on its way
          return refuse('PEER_GONE', `${name} went away while it was being claimed`);
        }
        this.#count('claimed');
        return { ok: true };
      } catch (err) {
        const msg = (err as Error).message;
        if (/wrong last sequence|key exists/i.test(msg)) continue; // another host wrote first: look again
        return refuse('UNREACHABLE', `cannot claim ${name} in the cluster: ${msg}`);
      }
    }
    return refuse('NAME_TAKEN', `${name} was claimed by another host at the same moment`);
  }

  #held(value: Uint8Array, revision: number) {
    try {
      const claim = JSON.parse(new TextDecoder().decode(value)) as NameClaim;
      return typeof claim.host === 'string' ? { claim, revision } : undefined;
    } catch {
      return undefined;
    }
  }

  /** The name goes: locally at once, and its claim becomes a tombstone with the reason (CAS on our claim). */
  unregister(endpoint: ChatEndpoint, name: string, reason: PresenceEvent['reason']): void {
    const wasOurs = this.#local.holder(name) !== undefined;
    this.#local.unregister(endpoint, name, reason);
    if (wasOurs && this.#local.holder(name) === undefined) void this.#release(name, reason);
  }

  async #release(name: string, reason: number): Promise<void> {
    const kv = this.#link.kv;
    if (!kv) return; // down: the claim is released when this host re-announces (it no longer holds the name)
    try {
      // The bucket's revision, not the watch's: the claim may have been written a moment ago.
      const e = await kv.get(KEYS.name(name));
      const held = e && e.operation === 'PUT' ? this.#held(e.value, e.revision) : undefined;
      if (!held || held.claim.host !== this.opts.host || held.claim.gone !== undefined || this.#local.holder(name)) return;
      await kv.update(KEYS.name(name), encodeClaim({ ...held.claim, gone: reason }), held.revision);
    } catch (err) {
      this.opts.log.info('cluster: releasing a name found it changed meanwhile; left as it is', { name, error: (err as Error).message });
    }
  }

  /** Up again: the lease, then every name held here claimed again (after a reconnect or a daemon restart). */
  async #announce(): Promise<void> {
    await this.#heartbeat();
    let lost = 0;
    for (const { name } of this.#local.heldNames()) {
      if (name === CHAT_HOST_NAME) continue;
      const r = await this.claim(name);
      if (!r.ok) {
        lost++;
        this.opts.log.error('cluster: a name held on this host could not be claimed again in the cluster; it is reachable only from this host', { name, code: r.code, reason: r.reason });
      }
    }
    // Claims of this host for names it no longer holds (they went while the link was down).
    for (const r of this.#names.own()) if (!this.#local.holder(r)) void this.#release(r, CHAT_PRESENCE_REASON.UNREGISTERED);
    this.opts.log.info('cluster: announced', { host: this.opts.host, names: this.#local.heldNames().length - 1, lost });
  }

  /** Renews this host's lease and expires the names of hosts that stopped renewing theirs. */
  async #heartbeat(): Promise<void> {
    // Our own renewals come back through the watch; when they stop, the watch is stale and is started again.
    const seen = this.#names.seenAt(this.opts.host);
    const stale = this.#link.up && this.#upAt !== undefined && Date.now() - this.#upAt > this.opts.leaseMs && (seen === undefined || Date.now() - seen > this.opts.leaseMs);
    this.#link.ensure(stale);
    const kv = this.#link.kv;
    if (!kv) return;
    try {
      await kv.put(KEYS.host(this.opts.host), new TextEncoder().encode(JSON.stringify({ host: this.opts.host, at: Date.now() })));
    } catch (err) {
      this.opts.log.warn('cluster: renewing this host\'s lease failed', { error: (err as Error).message });
      return;
    }
    const now = Date.now();
    for (const f of [...this.#inFlight]) if (!this.#names.live(f.host, now)) f.fail(refuse('UNREACHABLE', `host ${f.host} stopped renewing its lease (not heard from for ${this.opts.leaseMs} ms)`));
    for (const { name, held } of this.#names.expired(now)) {
      try {
        await kv.update(KEYS.name(name), encodeClaim({ ...held.claim, gone: CHAT_PRESENCE_REASON.HOST_UNREACHABLE }), held.revision);
        this.opts.log.info('cluster: expired a name of a host that stopped renewing its lease', { name, host: held.claim.host });
      } catch {
        // Another daemon expired it first, or its host came back and renewed it.
      }
    }
  }

  #onEntry(key: string, value: Uint8Array | undefined, revision: number, seenAtMs: number): void {
    for (const c of this.#names.apply(key, value, revision, seenAtMs)) this.#presence(c);
  }

  #presence(c: NameChange): void {
    if (c.kind === 'own-lost') {
      if (this.#local.holder(c.name) === undefined) return;
      if (c.now.gone !== undefined) {
        // Expired while this host was not heard from; it is back, so the name is ours again.
        void this.claim(c.name).then((r) => {
          if (!r.ok) this.opts.log.error('cluster: a name of this host was expired and cannot be claimed again; it is reachable only from this host', { name: c.name, reason: r.reason });
        });
      } else this.opts.log.error('cluster: another host took a name this host holds (this host was cut off past its lease); it is reachable only from this host', { name: c.name, holder: `${c.now.vm ?? '@host'}@${c.now.host}` });
      return;
    }
    const peer = { vm: c.claim.vm, name: c.name, host: c.claim.host };
    const event: PresenceEvent =
      c.kind === 'join'
        ? { event: CHAT_PRESENCE_EVENT.JOIN, reason: CHAT_PRESENCE_REASON.REGISTERED, peer }
        : { event: CHAT_PRESENCE_EVENT.LEAVE, reason: c.reason as PresenceEvent['reason'], peer };
    const subject = this.#remoteParty(c.name, c.claim);
    for (const w of this.#watchers) if (this.explain(w.party(), subject).allowed) w.presence(event);
  }

  holder(name: string): ChatParty | undefined {
    const local = this.#local.holder(name);
    if (local) return local;
    const remote = this.#remote(name);
    return remote ? this.#remoteParty(name, remote) : undefined;
  }

  explain(from: ChatParty, to: ChatParty): PolicyDecision {
    return this.#local.explain(from, to);
  }

  peers(viewer: ChatParty): ChatPeerInfo[] {
    const now = Date.now();
    const remote = this.#names
      .remote()
      .filter((r) => this.#names.live(r.claim.host, now) && this.#local.holder(r.name) === undefined)
      .map((r) => this.#remoteParty(r.name, r.claim))
      .filter((p) => this.explain(viewer, p).allowed)
      .map((p) => ({ vm: p.vm, name: p.name, host: p.host }));
    return [...this.#local.peers(viewer), ...remote].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  watch(endpoint: ChatEndpoint, on: boolean): void {
    this.#local.watch(endpoint, on);
    if (on) this.#watchers.add(endpoint);
    else this.#watchers.delete(endpoint);
  }

  registerHost(name: string, onMessage: HostMessageHandler): HostChatPeer {
    const remote = this.#remote(name);
    if (remote && this.#live(remote.host)) throw new ChatError('NAME_TAKEN', `${name} is held by ${remote.vm ?? '@host'}@${remote.host} in the cluster`, { name });
    const peer = this.#local.registerHost(name, onMessage);
    void this.claim(name).then((r) => {
      if (!r.ok) this.opts.log.warn('cluster: a host-side name could not be claimed in the cluster; it is reachable only from this host', { name, code: r.code, reason: r.reason });
    });
    const party: ChatParty = { vm: null, name, group: undefined };
    return {
      name,
      send: (target, data) => this.send(party, target, data),
      call: (target, data, timeoutMs) => this.call(party, target, data, timeoutMs),
      peers: () => this.peers(party),
      close: () => {
        peer.close();
        void this.#release(name, CHAT_PRESENCE_REASON.HOST_LEFT);
      },
    };
  }

  // --- messages ----------------------------------------------------------------------------------------

  #refused(code: ChatRefusalCode, reason: string, from: ChatParty, to: string): ChatRefusal {
    this.#count(`refused_${code.toLowerCase()}`);
    this.opts.log.info('chat refused', { from: `${from.vm ?? '@host'}/${from.name || '-'}`, to, code, reason });
    return refuse(code, reason);
  }

  /** Where a target goes: here (the local hub decides), or to another host with its party. */
  #route(from: ChatParty, target: string, data: Uint8Array): { local: true } | { local: false; host: string; party: ChatParty } | ChatRefusal {
    if (target === CHAT_HOST_NAME || this.#local.holder(target)) return { local: true };
    const held = this.#names.get(target);
    if (!held || held.claim.host === this.opts.host) return { local: true }; // NO_PEER from the local hub
    const c = held.claim;
    const to = `${c.vm ?? '@host'}@${c.host}/${target}`;
    if (c.gone === CHAT_PRESENCE_REASON.HOST_UNREACHABLE) return this.#refused('UNREACHABLE', `${target} was held on host ${c.host}, which stopped renewing its lease`, from, to);
    if (c.gone !== undefined) return { local: true };
    if (data.byteLength > CHAT_LIMITS.MAX_MESSAGE_BYTES) return this.#refused('TOO_LARGE', `${data.byteLength} bytes, at most ${CHAT_LIMITS.MAX_MESSAGE_BYTES}`, from, to);
    const party = this.#remoteParty(target, c);
    const decision = this.explain(from, party);
    if (!decision.allowed) return this.#refused('NOT_ALLOWED', `${from.vm ?? '@host'}/${from.name || '-'} may not reach ${to}: ${decision.reason}`, from, to);
    if (!this.#link.up) return this.#refused('UNREACHABLE', `${target} is on host ${c.host}, and this host is not connected to the cluster broker`, from, to);
    if (!this.#live(c.host)) return this.#refused('UNREACHABLE', `${target} is on host ${c.host}, not heard from for over ${this.opts.leaseMs} ms`, from, to);
    if (this.#inFlight.size >= this.opts.maxInFlight) return this.#refused('QUEUE_FULL', `${this.#inFlight.size} sends to other hosts are waiting for their answers already`, from, to);
    return { local: false, host: c.host, party };
  }

  async send(from: ChatParty, target: string, data: Uint8Array, fromEndpoint?: ChatEndpoint): Promise<SendResult> {
    if (target === '@') return this.#broadcast(from, data, fromEndpoint);
    const r = this.#route(from, target, data);
    if ('ok' in r) return r;
    if (r.local) return this.#local.send(from, target, data, fromEndpoint);
    this.#count('remote_sends');
    const a = await this.#request(from, r.host, 'send', target, data, this.opts.requestTimeoutMs);
    if (!a.ok) return a.code === 'UNREACHABLE' ? this.#refused(a.code, a.reason, from, target) : a;
    return { ok: true, delivered: 1, refused: 0 };
  }

  /** `@`: the group's members here (the local hub), and each member on a live host, one request each. */
  async #broadcast(from: ChatParty, data: Uint8Array, fromEndpoint?: ChatEndpoint): Promise<SendResult> {
    const here = await this.#local.send(from, '@', data, fromEndpoint);
    if (!here.ok || from.group === undefined) return here;
    const members = this.#names.remote().filter((m) => m.claim.vm !== null && m.claim.group === from.group && this.#local.holder(m.name) === undefined);
    const outcomes = await Promise.all(
      members.map(async (m): Promise<boolean> => {
        const to = `${m.claim.vm}@${m.claim.host}/${m.name}`;
        const party = this.#remoteParty(m.name, m.claim);
        const decision = this.explain(from, party);
        if (!decision.allowed) return !this.#refused('NOT_ALLOWED', `broadcast to ${to}: ${decision.reason}`, from, to);
        if (!this.#link.up || !this.#live(m.claim.host)) return !this.#refused('UNREACHABLE', `broadcast to ${to}: its host cannot be reached`, from, to);
        if (this.#inFlight.size >= this.opts.maxInFlight) return !this.#refused('QUEUE_FULL', `broadcast to ${to}: too many sends to other hosts waiting`, from, to);
        const a = await this.#request(from, m.claim.host, 'broadcast', m.name, data, this.opts.requestTimeoutMs);
        if (!a.ok) this.#refused(a.code, `broadcast to ${to}: ${a.reason}`, from, to);
        return a.ok;
      }),
    );
    const ok = outcomes.filter(Boolean).length;
    return { ok: true, delivered: here.delivered + ok, refused: here.refused + outcomes.length - ok };
  }

  async call(from: ChatParty, target: string, data: Uint8Array, timeoutMs: number): Promise<CallResult> {
    const r = this.#route(from, target, data);
    if ('ok' in r) return r;
    if (r.local) return this.#local.call(from, target, data, timeoutMs);
    this.#count('remote_calls');
    const a = await this.#request(from, r.host, 'call', target, data, timeoutMs + this.opts.requestTimeoutMs, timeoutMs);
    if (!a.ok) return a.code === 'UNREACHABLE' ? this.#refused(a.code, a.reason, from, target) : a;
    return { ok: true, status: a.status ?? 0, data: a.data };
  }

  reply(endpoint: ChatEndpoint, callId: number, status: number, data: Uint8Array): ChatOutcome {
    return this.#local.reply(endpoint, callId, status, data);
  }

  /** One request to host; every way it can end is an outcome (a lost link fails it at once). */
  #request(from: ChatParty, host: string, kind: 'send' | 'call' | 'broadcast', to: string, data: Uint8Array, waitMs: number, callTimeoutMs?: number): Promise<({ ok: true; status?: number; data: Uint8Array }) | ChatRefusal> {
    const body = encodeRequest(
      { kind, from: { vm: from.vm, name: from.name, ...(from.group === undefined ? {} : { group: from.group }) }, to, ...(callTimeoutMs === undefined ? {} : { timeoutMs: callTimeoutMs }) },
      data,
    );
    return new Promise((resolve) => {
      let done = false;
      const entry: InFlight = {
        host,
        fail: (r) => finish(r),
      };
      const finish = (r: ({ ok: true; status?: number; data: Uint8Array }) | ChatRefusal): void => {
        if (done) return;
        done = true;
        this.#inFlight.delete(entry);
        resolve(r);
      };
      this.#inFlight.add(entry);
      void this.#link.request(SUBJECTS.to(this.opts.host, host), body, waitMs).then((res) => {
        if (!res.ok) return finish(refuse('UNREACHABLE', unreachableReason(host, res.failure)));
        const a = decodeAnswer(res.data);
        if (!a.ok) return finish(refuse('UNREACHABLE', `host ${host} answered with something this daemon cannot read: ${a.reason}`));
        if (!a.meta.ok) return finish(refuse(a.meta.code, a.meta.reason));
        finish({ ok: true, ...(a.meta.status === undefined ? {} : { status: a.meta.status }), data: a.data });
      });
    });
  }

  #failAll(reason: string): void {
    for (const f of [...this.#inFlight]) f.fail(refuse('UNREACHABLE', reason));
  }

  /** A request from another host: the sender's host is the subject's; its VM and name are its daemon's word. */
  #onRequest(m: Msg): void {
    const answer = (r: { ok: true; status?: number } | ChatRefusal, data?: Uint8Array): void => {
      try {
        m.respond(encodeAnswer(r.ok ? r : { ok: false, code: r.code, reason: r.reason }, data));
      } catch (err) {
        this.opts.log.warn('cluster: answering a request failed (the link went down): the sender gets UNREACHABLE', { error: (err as Error).message });
      }
    };
    const host = senderOf(m.subject, this.opts.host);
    const req = decodeRequest(m.data);
    if (!host || host === this.opts.host || !req.ok) {
      this.opts.log.warn('cluster: malformed request from another host refused', { subject: m.subject, reason: req.ok ? 'bad subject' : req.reason });
      return answer(refuse('BAD_NAME', req.ok ? `bad subject ${m.subject}` : req.reason));
    }
    const { meta, data } = req;
    if (meta.from.name !== '') {
      const owner = this.#names.get(meta.from.name)?.claim;
      if (owner && owner.gone === undefined && owner.host !== host) {
        return answer(this.#refused('NOT_ALLOWED', `host ${host} sent as ${meta.from.name}, which host ${owner.host} holds`, { vm: meta.from.vm, name: meta.from.name, group: meta.from.group, host }, meta.to));
      }
    }
    if (this.#local.holder(meta.to) === undefined) return answer(refuse('NO_PEER', `no one holds the name ${meta.to} on host ${this.opts.host}`));
    if (this.#inbound >= MAX_INBOUND) return answer(refuse('QUEUE_FULL', `host ${this.opts.host} is handling ${this.#inbound} requests from other hosts already`));
    const from: ChatParty = { vm: meta.from.vm, name: meta.from.name, group: meta.from.group, host };
    this.#inbound++;
    this.#count(meta.kind === 'call' ? 'remote_calls_in' : 'remote_sends_in');
    // Handed to the local hub in arrival order (the hub queues it at once), so FIFO per pair holds.
    const done =
      meta.kind === 'call'
        ? this.#local.call(from, meta.to, data, meta.timeoutMs ?? CHAT_LIMITS.MAX_CALL_TIMEOUT_MS)
        : meta.kind === 'broadcast'
          ? this.#local.deliverBroadcast(from, meta.to, data)
          : this.#local.send(from, meta.to, data);
    void done.then(
      (r: SendResult | CallResult | ChatOutcome) => {
        this.#inbound--;
        if (!r.ok) return answer(r);
        if ('status' in r) return answer({ ok: true, status: r.status }, r.data);
        answer({ ok: true });
      },
      (err: unknown) => {
        this.#inbound--;
        answer(refuse('PEER_GONE', `delivery failed: ${(err as Error).message}`));
      },
    );
  }
}

function unreachableReason(host: string, f: RequestFailure): string {
  switch (f.kind) {
    case 'down':
      return `host ${host}: ${f.reason}`;
    case 'no-responders':
      return `host ${host} is not connected to the cluster broker`;
    case 'timeout':
      return `host ${host} did not answer (${f.reason}): cut off, or the broker restarted; it is unknown whether the message arrived`;
    default:
      return `host ${host}: ${f.reason}`;
  }
}
