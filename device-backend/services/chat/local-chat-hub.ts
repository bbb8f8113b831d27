// The hub of one daemon: the names registered on this host, policy, delivery to local endpoints, calls
// matched to their replies by id, presence for watchers, and host-side names (the host API).
import { CHAT_HOST_NAME, CHAT_LIMITS, CHAT_PRESENCE_EVENT, CHAT_PRESENCE_REASON } from '../../layout/wire-layout.js';
import type { CoreLogger } from '../../core/core-logger.js';
import { nameProblem } from './chat-codec.js';
import { ChatError, type ChatRefusal, refuse } from './chat-error.js';
import type { CallResult, ChatEndpoint, ChatHub, ChatOutcome, ChatPeerInfo, HostChatPeer, HostMessageHandler, HostReply, PresenceEvent, SendResult, Timers } from './chat-hub.js';
import { type ChatParty, type ChatPolicy, DEFAULT_CHAT_POLICY, explain, type PolicyDecision } from './chat-policy.js';

export interface LocalChatHubOptions {
  log: CoreLogger;
  /**
   * The rules, or where to read them at each send: the daemon passes its config's chat.rules (a SIGHUP
   * reload replaces them; the next send, call, peer list or presence event uses the new ones).
   */
  policy?: ChatPolicy | (() => ChatPolicy);
  timers?: Timers;
  /** Handles what guests send to `host` (and calls: its result is the reply). Default: logged and dropped. */
  onHostMessage?: HostMessageHandler;
  /**
   * Cluster mode: this daemon's cluster.host. Parties without a host are this host's when the policy is
   * evaluated, so `host` selectors match local parties too.
   */
  hostId?: string;
}

interface Holder {
  readonly endpoint: ChatEndpoint;
  readonly party: ChatParty;
}

interface PendingCall {
  readonly callee: ChatEndpoint;
  readonly calleeName: string;
  readonly caller: ChatParty;
  readonly timer: unknown;
  finish(r: CallResult): void;
}

const describe = (p: { vm: string | null; name: string; host?: string | undefined }): string => `${p.vm ?? '@host'}${p.host ? `@${p.host}` : ''}/${p.name || '-'}`;

export class LocalChatHub implements ChatHub {
  private readonly names = new Map<string, Holder>();
  private readonly watchers = new Set<ChatEndpoint>();
  private readonly calls = new Map<number, PendingCall>();
  private nextCallId: number;
  private readonly timers: Timers;
  private readonly policy: () => ChatPolicy;
  /** Named figures: sends, deliveries, refusals by code, calls. */
  readonly counters = new Map<string, number>();
  /** The host itself as a peer (`host`). */
  readonly host: HostChatPeer;

  constructor(private readonly opts: LocalChatHubOptions) {
    const policy = opts.policy ?? DEFAULT_CHAT_POLICY;
    this.policy = typeof policy === 'function' ? policy : () => policy;
    this.timers = opts.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    // Call ids start at a random place: a reply a guest sends after a daemon restart to a call of the old
    // daemon must not match a new call.
    this.nextCallId = (Math.floor(Math.random() * 0x7fffffff) + 1) >>> 0;
    this.host = this.registerHost(CHAT_HOST_NAME, opts.onHostMessage ?? ((m) => void opts.log.info('chat message to the host, no handler', { from: describe(m.from), bytes: m.data.byteLength })));
  }

  private count(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by);
  }

  holder(name: string): ChatParty | undefined {
    return this.names.get(name)?.party;
  }

  explain(from: ChatParty, to: ChatParty): PolicyDecision {
    const id = this.opts.hostId;
    if (id === undefined) return explain(this.policy(), from, to);
    return explain(this.policy(), from.host === undefined ? { ...from, host: id } : from, to.host === undefined ? { ...to, host: id } : to);
  }

  /** Every name held on this daemon, with its holder (cluster mode re-claims them after a reconnect). */
  heldNames(): { name: string; party: ChatParty }[] {
    return [...this.names.entries()].map(([name, h]) => ({ name, party: h.party }));
  }

  /** Every refusal is counted and logged with both ends: the sender, and the receiver (VM/name) or the target as sent. */
  private refused(code: ChatRefusal['code'], reason: string, from: ChatParty, to: string | ChatParty): ChatRefusal {
    this.count(`refused_${code.toLowerCase()}`);
    this.opts.log.info('chat refused', { from: describe(from), to: typeof to === 'string' ? to : describe(to), code, reason });
    return refuse(code, reason);
  }

  register(endpoint: ChatEndpoint, name: string): ChatOutcome {
    const bad = nameProblem(name);
    if (bad) return refuse('BAD_NAME', bad);
    const held = this.names.get(name);
    if (held) return refuse('NAME_TAKEN', `${name} is held by ${describe(held.party)}`);
    const party = { ...endpoint.party(), name };
    this.names.set(name, { endpoint, party });
    this.count('registered');
    this.announce({ event: CHAT_PRESENCE_EVENT.JOIN, reason: CHAT_PRESENCE_REASON.REGISTERED, peer: { vm: party.vm, name } }, party, endpoint);
    return { ok: true };
  }

  unregister(endpoint: ChatEndpoint, name: string, reason: PresenceEvent['reason']): void {
    const held = this.names.get(name);
    if (!held || held.endpoint !== endpoint) return;
    this.names.delete(name);
    for (const c of [...this.calls.values()]) {
      if (c.callee === endpoint && c.calleeName === name) c.finish(refuse('PEER_GONE', `${name} went away before it replied`));
    }
    this.announce({ event: CHAT_PRESENCE_EVENT.LEAVE, reason, peer: { vm: held.party.vm, name } }, held.party, endpoint);
  }

  private announce(event: PresenceEvent, subject: ChatParty, source: ChatEndpoint): void {
    for (const w of this.watchers) {
      if (w === source) continue;
      if (!this.explain(w.party(), subject).allowed) continue;
      w.presence(event);
    }
  }

  watch(endpoint: ChatEndpoint, on: boolean): void {
    if (on) this.watchers.add(endpoint);
    else this.watchers.delete(endpoint);
  }

  peers(viewer: ChatParty): ChatPeerInfo[] {
    return [...this.names.values()]
      .filter((h) => this.explain(viewer, h.party).allowed)
      .map((h) => ({ vm: h.party.vm, name: h.party.name }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The holder of target, if the sender may reach it. */
  private resolve(from: ChatParty, target: string): Holder | ChatRefusal {
    const held = this.names.get(target);
    if (!held) return this.refused('NO_PEER', `no one holds the name ${target}`, from, target);
    const decision = this.explain(from, held.party);
    if (!decision.allowed) return this.refused('NOT_ALLOWED', `${describe(from)} may not reach ${describe(held.party)}: ${decision.reason}`, from, held.party);
    return held;
  }

  private tooLarge(from: ChatParty, target: string, data: Uint8Array): ChatRefusal | undefined {
    if (data.byteLength <= CHAT_LIMITS.MAX_MESSAGE_BYTES) return undefined;
    return this.refused('TOO_LARGE', `${data.byteLength} bytes, at most ${CHAT_LIMITS.MAX_MESSAGE_BYTES}`, from, target);
  }

  async send(from: ChatParty, target: string, data: Uint8Array, fromEndpoint?: ChatEndpoint): Promise<SendResult> {
    this.count('sends');
    const big = this.tooLarge(from, target, data);
    if (big) return big;
    if (target === '@') return this.broadcast(from, data, fromEndpoint);
    const held = this.resolve(from, target);
    if ('ok' in held) return held;
    const outcome = await held.endpoint.deliver({ from, to: target, data, broadcast: false, callId: 0 });
    if (!outcome.ok) return this.refused(outcome.code, outcome.reason, from, held.party);
    this.count('delivered');
    return { ok: true, delivered: 1, refused: 0 };
  }

  private async broadcast(from: ChatParty, data: Uint8Array, fromEndpoint?: ChatEndpoint): Promise<SendResult> {
    if (from.group === undefined) return this.refused('NOT_ALLOWED', `${describe(from)} is in no chat group: "@" has no members`, from, '@');
    const members = [...this.names.values()].filter((h) => h.party.vm !== null && h.party.group === from.group && h.endpoint !== fromEndpoint);
    let refused = 0;
    const outcomes = await Promise.all(
      members.map((h) => {
        const decision = this.explain(from, h.party);
        if (!decision.allowed) return Promise.resolve<ChatOutcome>(this.refused('NOT_ALLOWED', `broadcast to ${describe(h.party)}: ${decision.reason}`, from, h.party));
        return h.endpoint.deliver({ from, to: h.party.name, data, broadcast: true, callId: 0 }).then((o) => (o.ok ? o : this.refused(o.code, `broadcast: ${o.reason}`, from, h.party)));
      }),
    );
    for (const o of outcomes) if (!o.ok) refused++;
    this.count('delivered', outcomes.length - refused);
    return { ok: true, delivered: outcomes.length - refused, refused };
  }

  /** Cluster mode: one member's copy of a broadcast from another host (`@` of the sender's group, to `name`). */
  async deliverBroadcast(from: ChatParty, name: string, data: Uint8Array): Promise<ChatOutcome> {
    const held = this.names.get(name);
    if (!held || held.party.vm === null || from.group === undefined || held.party.group !== from.group) return this.refused('NO_PEER', `${name} is not a member of group ${from.group ?? '(none)'} here`, from, name);
    const decision = this.explain(from, held.party);
    if (!decision.allowed) return this.refused('NOT_ALLOWED', `broadcast to ${describe(held.party)}: ${decision.reason}`, from, held.party);
    const o = await held.endpoint.deliver({ from, to: name, data, broadcast: true, callId: 0 });
    if (!o.ok) return this.refused(o.code, `broadcast: ${o.reason}`, from, held.party);
    this.count('delivered');
    return o;
  }

  call(from: ChatParty, target: string, data: Uint8Array, timeoutMs: number): Promise<CallResult> {
    this.count('calls');
    const big = this.tooLarge(from, target, data);
    if (big) return Promise.resolve(big);
    const held = this.resolve(from, target);
    if ('ok' in held) return Promise.resolve(held);
    const callId = this.nextCallId;
    this.nextCallId = (this.nextCallId + 1) >>> 0 || 1;
    return new Promise<CallResult>((resolvePromise) => {
      const finish = (r: CallResult): void => {
        if (this.calls.get(callId) !== pending) return;
        this.calls.delete(callId);
        this.timers.clearTimeout(pending.timer);
        if (!r.ok) this.refused(r.code, r.reason, from, held.party);
        resolvePromise(r);
      };
      const pending: PendingCall = {
        callee: held.endpoint,
        calleeName: target,
        caller: from,
        timer: this.timers.setTimeout(() => finish(refuse('TIMED_OUT', `${target} did not reply within ${timeoutMs} ms`)), timeoutMs),
        finish,
      };
      this.calls.set(callId, pending);
      held.endpoint.deliver({ from, to: target, data, broadcast: false, callId }).then(
        (o) => {
          if (!o.ok) finish(o);
        },
        (err: unknown) => finish(refuse('PEER_GONE', `delivery failed: ${(err as Error).message}`)),
      );
    });
  }

  reply(endpoint: ChatEndpoint, callId: number, status: number, data: Uint8Array): ChatOutcome {
    const pending = this.calls.get(callId);
    if (!pending || pending.callee !== endpoint) return refuse('NO_CALL', `call ${callId} is not waiting for a reply from this channel`);
    if (data.byteLength > CHAT_LIMITS.MAX_MESSAGE_BYTES) return refuse('TOO_LARGE', `a reply of ${data.byteLength} bytes, at most ${CHAT_LIMITS.MAX_MESSAGE_BYTES}`);
    this.count('replies');
    pending.finish({ ok: true, status, data });
    return { ok: true };
  }

  /** A host-side name (the host API): its handler receives what guests send to it. */
  registerHost(name: string, onMessage: HostMessageHandler): HostChatPeer {
    const hub = this;
    const party: ChatParty = { vm: null, name, group: undefined };
    const endpoint: ChatEndpoint = {
      party: () => party,
      deliver: async (m) => {
        let result: Uint8Array | HostReply | void;
        try {
          result = await onMessage(m);
        } catch (err) {
          if (err instanceof ChatError) return refuse(err.code, err.message);
          hub.opts.log.error('host chat handler failed', { name, error: (err as Error).stack });
          if (m.callId) hub.reply(endpoint, m.callId, -1, new Uint8Array());
          return { ok: true };
        }
        if (m.callId) {
          if (result instanceof Uint8Array || result === undefined) hub.reply(endpoint, m.callId, 0, result ?? new Uint8Array());
          else hub.reply(endpoint, m.callId, result.status, result.data);
        }
        return { ok: true };
      },
      presence: () => {},
    };
    const r = this.register(endpoint, name);
    if (!r.ok) throw ChatError.from(r, { name });
    return {
      name,
      send: (target, data) => hub.send(party, target, data, endpoint),
      call: (target, data, timeoutMs) => hub.call(party, target, data, timeoutMs),
      peers: () => hub.peers(party),
      close: () => hub.unregister(endpoint, name, CHAT_PRESENCE_REASON.HOST_LEFT),
    };
  }
}
