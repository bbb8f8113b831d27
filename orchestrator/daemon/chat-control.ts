// The host side of the daemon's chat hub as the control API serves it (ChatApi): peers, sends and calls
// as `host` or as a name an event stream holds, replies to calls those names were given, policy checks
// that name the deciding rule, and presence and messages to `host` published on the event stream.
// Refusals become VmgmtErrors with the chat code in details.refusal.
import { CHAT_HOST_NAME, CHAT_LIMITS, CHAT_PRESENCE_EVENT, CHAT_PRESENCE_REASON } from '../../device-backend/layout/wire-layout.js';
import { ChatError, type ChatRefusal } from '../../device-backend/services/chat/chat-error.js';
import type { ChatEndpoint, ChatHub, ChatMessage, HostChatPeer, HostReply, PresenceEvent } from '../../device-backend/services/chat/chat-hub.js';
import { displayVm, HOST_VM_SELECTOR, type ChatParty } from '../../device-backend/services/chat/chat-policy.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { chatData, type ChatMessageEventData, type ChatPolicyCheck, type ChatPresenceEventData } from '../api/api-contract.js';
import type { ApiEventHub } from '../api/event-hub.js';
import type { ChatApi } from './vm-manager-api.js';
import { VmgmtError } from './vmgmt-error.js';

export interface ChatControlOptions {
  hub: ChatHub;
  events: ApiEventHub;
  log: CoreLogger;
  /** A VM's chatGroup; `exists: false` for no such VM. */
  vmGroup(vm: string): { exists: boolean; group?: string | undefined };
  /** A VM's lifecycle state (undefined: no such VM): a send or call to a paused VM is refused at once. */
  vmState?(vm: string): string | undefined;
}

const PRESENCE_REASON_WORDS: Record<number, ChatPresenceEventData['reason']> = {
  [CHAT_PRESENCE_REASON.REGISTERED]: 'registered',
  [CHAT_PRESENCE_REASON.UNREGISTERED]: 'unregistered',
  [CHAT_PRESENCE_REASON.PROCESS_GONE]: 'process-gone',
  [CHAT_PRESENCE_REASON.VM_STOPPED]: 'vm-stopped',
  [CHAT_PRESENCE_REASON.HOST_LEFT]: 'host-left',
  [CHAT_PRESENCE_REASON.HOST_UNREACHABLE]: 'host-unreachable',
};

export function presenceEventData(e: PresenceEvent): ChatPresenceEventData {
  return { event: e.event === CHAT_PRESENCE_EVENT.JOIN ? 'join' : 'leave', reason: PRESENCE_REASON_WORDS[e.reason] ?? 'unregistered', peer: { vm: displayVm(e.peer), name: e.peer.name } };
}

export function messageEventData(m: ChatMessage): ChatMessageEventData {
  return { from: { vm: displayVm(m.from), name: m.from.name }, to: m.to, broadcast: m.broadcast, callId: m.callId || null, ...chatData(m.data) };
}

/** A refusal of the hub as the API reports it. */
export function refusalError(r: ChatRefusal, details: Record<string, unknown>): VmgmtError {
  const d = { ...details, refusal: r.code };
  switch (r.code) {
    case 'NO_PEER':
    case 'NO_CALL':
      return new VmgmtError('NOT_FOUND', r.reason, d);
    case 'TIMED_OUT':
      return new VmgmtError('TIMEOUT', r.reason, d);
    case 'NAME_TAKEN':
      return new VmgmtError('ALREADY_EXISTS', r.reason, d);
    case 'BAD_NAME':
      return new VmgmtError('INVALID_REQUEST', r.reason, d);
    default:
      return new VmgmtError('CHAT_REFUSED', r.reason, d);
  }
}

interface Listener {
  peer: HostChatPeer;
  /** Calls delivered to it and not answered yet: callId → how to answer. */
  calls: Map<number, { answer(r: HostReply | undefined): void }>;
}

export class ChatControl implements ChatApi {
  readonly #listeners = new Map<string, Listener>();
  readonly #watcher: ChatEndpoint;
  readonly #host: ChatParty = { vm: null, name: CHAT_HOST_NAME, group: undefined };

  constructor(private readonly opts: ChatControlOptions) {
    // The host watches presence for the event stream; it sees the peers the host may talk to.
    this.#watcher = {
      party: () => this.#host,
      deliver: () => Promise.resolve({ ok: false, code: 'NO_PEER', reason: 'the presence watcher takes no messages' }),
      presence: (e) => opts.events.publish('chat.presence', presenceEventData(e)),
    };
    opts.hub.watch(this.#watcher, true);
  }

  /** The hub's handler for messages to `host`: published to every stream that holds no name of its own. */
  static hostMessageHandler(events: ApiEventHub): (m: ChatMessage) => void {
    return (m) => events.publish('chat.message', messageEventData(m), (s) => s.as === undefined);
  }

  close(): void {
    this.opts.hub.watch(this.#watcher, false);
    for (const l of [...this.#listeners.values()]) l.peer.close();
  }

  peers() {
    return this.opts.hub.peers(this.#host).map((p) => ({ vm: displayVm(p), name: p.name }));
  }

  #sender(as: string | undefined): { party: ChatParty; peer: HostChatPeer | undefined } {
    if (as === undefined || as === CHAT_HOST_NAME) return { party: this.#host, peer: undefined };
    const l = this.#listeners.get(as);
    if (!l) throw new VmgmtError('NOT_FOUND', `no event stream holds the host-side name ${as}: open one with GET /v1/events?as=${as} (vmgmt chat listen --as ${as})`, { as });
    return { party: { vm: null, name: as, group: undefined }, peer: l.peer };
  }

  /** `vm NAME is paused` for a target name held in a paused VM: its guest cannot take a message now. */
  #refusePaused(to: string): void {
    const vm = this.peers().find((p) => p.name === to)?.vm;
    if (vm && this.opts.vmState?.(vm) === 'paused') throw new VmgmtError('INVALID_STATE', `vm ${vm} is paused: resume it first (vmgmt vm resume ${vm})`, { name: vm, state: 'paused', to });
  }

  async send(o: { to: string; data: Uint8Array; as?: string }) {
    this.#refusePaused(o.to);
    const { party, peer } = this.#sender(o.as);
    const r = peer ? await peer.send(o.to, o.data) : await this.opts.hub.send(party, o.to, o.data);
    if (!r.ok) throw refusalError(r, { to: o.to, as: party.name });
    return { to: o.to, delivered: r.delivered, refused: r.refused };
  }

  async call(o: { to: string; data: Uint8Array; timeoutMs: number; as?: string }) {
    if (o.timeoutMs < 1 || o.timeoutMs > CHAT_LIMITS.MAX_CALL_TIMEOUT_MS) throw new VmgmtError('INVALID_REQUEST', `timeoutMs must be 1..${CHAT_LIMITS.MAX_CALL_TIMEOUT_MS}`, { timeoutMs: o.timeoutMs });
    this.#refusePaused(o.to);
    const { party, peer } = this.#sender(o.as);
    const r = peer ? await peer.call(o.to, o.data, o.timeoutMs) : await this.opts.hub.call(party, o.to, o.data, o.timeoutMs);
    if (!r.ok) throw refusalError(r, { to: o.to, as: party.name });
    return { to: o.to, status: r.status, data: r.data };
  }

  reply(o: { as: string; callId: number; status: number; data: Uint8Array }): void {
    const l = this.#listeners.get(o.as);
    const pending = l?.calls.get(o.callId);
    if (!l || !pending) throw new VmgmtError('NOT_FOUND', `call ${o.callId} is not waiting for a reply from ${o.as}`, { as: o.as, callId: o.callId, refusal: 'NO_CALL' });
    if (o.data.byteLength > CHAT_LIMITS.MAX_MESSAGE_BYTES) throw new VmgmtError('CHAT_REFUSED', `a reply of ${o.data.byteLength} bytes, at most ${CHAT_LIMITS.MAX_MESSAGE_BYTES}`, { refusal: 'TOO_LARGE' });
    pending.answer({ status: o.status, data: o.data });
  }

  listen(name: string, onMessage: (message: ChatMessageEventData) => boolean): { close(): void } {
    if (name === CHAT_HOST_NAME) throw new VmgmtError('ALREADY_EXISTS', `${CHAT_HOST_NAME} is the daemon's own name: listen without --as to see what is sent to it`, { name });
    const calls: Listener['calls'] = new Map();
    let peer: HostChatPeer;
    try {
      peer = this.opts.hub.registerHost(name, (m) => {
        if (!onMessage(messageEventData(m))) throw new ChatError('QUEUE_FULL', `the host-side listener ${name} fell behind and was dropped`);
        if (!m.callId) return undefined;
        // The reply comes with POST /v1/chat/reply; the hub's own timer refuses the caller if it never does.
        return new Promise<HostReply | undefined>((resolve) => {
          const timer = setTimeout(() => answer(undefined), CHAT_LIMITS.MAX_CALL_TIMEOUT_MS + 1000);
          const answer = (r: HostReply | undefined): void => {
            clearTimeout(timer);
            calls.delete(m.callId);
            resolve(r);
          };
          calls.set(m.callId, { answer });
        });
      });
    } catch (err) {
      if (err instanceof ChatError) throw refusalError({ ok: false, code: err.code, reason: err.message }, { name });
      throw err;
    }
    const listener: Listener = { peer, calls };
    this.#listeners.set(name, listener);
    this.opts.log.info('host-side chat name registered for an event stream', { name });
    return {
      close: () => {
        if (this.#listeners.get(name) !== listener) return;
        this.#listeners.delete(name);
        peer.close(); // calls waiting on the name fail PEER_GONE for their callers
        for (const c of [...calls.values()]) c.answer(undefined);
        this.opts.log.info('host-side chat name released: its event stream closed', { name });
      },
    };
  }

  policyCheck(from: string, to: string): ChatPolicyCheck {
    const f = this.#party(from, 'from');
    const t = this.#party(to, 'to');
    const d = this.opts.hub.explain(f, t);
    const party = (p: ChatParty) => ({ vm: p.vm, name: p.name, group: p.group ?? null });
    return {
      from: party(f),
      to: party(t),
      allowed: d.allowed,
      decidedBy: d.decidedBy.kind === 'rule' ? { kind: 'rule', index: d.decidedBy.index, rule: d.decidedBy.rule } : { kind: 'default', name: d.decidedBy.name },
      reason: d.reason,
    };
  }

  /** `VM/NAME`, `@host/NAME`, `VM`, or a registered chat name (when no VM has that name). */
  #party(spec: string, side: 'from' | 'to'): ChatParty {
    const slash = spec.indexOf('/');
    const vmPart = slash === -1 ? spec : spec.slice(0, slash);
    const name = slash === -1 ? '' : spec.slice(slash + 1);
    if (vmPart === HOST_VM_SELECTOR) return { vm: null, name, group: undefined };
    const vm = this.opts.vmGroup(vmPart);
    if (vm.exists) return { vm: vmPart, name, group: vm.group };
    if (slash === -1) {
      const holder = this.opts.hub.holder(spec);
      if (holder) return holder;
    }
    throw new VmgmtError('NOT_FOUND', `${side} ${JSON.stringify(spec)}: no VM named ${vmPart}${slash === -1 ? ' and no registered chat name' : ''}; give VM/NAME, @host/NAME, VM or a registered chat name`, { [side]: spec });
  }
}
