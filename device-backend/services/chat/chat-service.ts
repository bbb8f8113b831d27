// The chat mode of one VM's device: guests register names on a channel, send, call and reply, list and
// watch peers. Routing is the hub's (shared by every VM of the daemon); this service knows the VM's
// identity (ServiceHost.vm) and chat group, and turns the wire into hub calls and back. Names and watch
// flags are carried across a daemon restart (snapshot/restore); see docs/decisions/chat-mode.md.
import { CHAT_CALL_RESULT, CHAT_LIMITS, CHAT_PEER_FLAG, CHAT_PRESENCE_REASON, MODE, MSG_HEADER, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { ChannelPort, MessageService, ServiceHost } from '../../core/message-service.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import { type DataRef, decodeList, decodeName, decodeReply, decodeSend, decodeWatch, encodeCallResult, encodeListResult, encodePeer, encodeSendResult } from './chat-codec.js';
import { type ChatRefusal, refusalStatus } from './chat-error.js';
import { ChatChannel, DEFAULT_DELIVERY_TIMEOUT_MS } from './chat-channel.js';
import type { ChatHub, ChatOutcome, Timers } from './chat-hub.js';
import { displayVm } from './chat-policy.js';
import { type ChatQueueLimits, DEFAULT_QUEUE_LIMITS } from './chat-queue.js';
import { rxGeometry } from './rx-area.js';

export const CHAT_TYPES = [
  MSG_TYPE.CHAT_REGISTER, MSG_TYPE.CHAT_UNREGISTER, MSG_TYPE.CHAT_SEND, MSG_TYPE.CHAT_CALL, MSG_TYPE.CHAT_REPLY,
  MSG_TYPE.CHAT_PEERS, MSG_TYPE.CHAT_WATCH, MSG_TYPE.CHAT_RX_FREED,
] as const;

export interface ChatServiceOptions {
  hub: ChatHub;
  /** The VM's chatGroup (VM definition); without one it reaches only the host, unless policy says more. */
  group?: string;
  maxNamesPerVm?: number;
  queueLimits?: ChatQueueLimits;
  /** Runs fn once the snapshot asked for by stateChanged() is saved (the shell saves on setImmediate). */
  afterStateSaved?: (fn: () => void) => void;
  /** A message not in its receiver's ring after this long is refused QUEUE_FULL (default 10 s). */
  deliveryTimeoutMs?: number;
  timers?: Timers;
  now?: () => number;
}

interface ChannelSnapshot {
  channel: number;
  names: string[];
  watching: boolean;
}

export interface ChatSnapshot {
  version: 1;
  channels: ChannelSnapshot[];
}

export class ChatService implements MessageService {
  readonly name = 'chat';
  readonly modes = [MODE.CHAT];
  readonly types = CHAT_TYPES;
  private host: ServiceHost | undefined;
  private readonly channels = new Map<number, ChatChannel>();
  private readonly maxNames: number;
  private readonly afterSaved: (fn: () => void) => void;

  constructor(private readonly opts: ChatServiceOptions) {
    this.maxNames = opts.maxNamesPerVm ?? CHAT_LIMITS.MAX_NAMES_PER_VM;
    this.afterSaved = opts.afterStateSaved ?? ((fn) => setImmediate(fn));
  }

  attach(host: ServiceHost): void {
    this.host = host;
  }

  private get vmName(): string {
    return this.host?.vm.name ?? 'unnamed';
  }

  private open(port: ChannelPort, fresh: boolean): ChatChannel {
    const host = this.host!;
    const ch = new ChatChannel(
      {
      port,
      hub: this.opts.hub,
      vm: this.vmName,
      group: this.opts.group,
      limits: this.opts.queueLimits ?? DEFAULT_QUEUE_LIMITS,
      rx: rxGeometry(port.slice.sizeBytes),
      counters: host.counters,
      log: host.log,
      timers: this.opts.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) },
      now: this.opts.now ?? (() => performance.now()),
      deliveryTimeoutMs: this.opts.deliveryTimeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS,
      },
      fresh,
    );
    this.channels.set(port.channel, ch);
    return ch;
  }

  channelClaimed(port: ChannelPort): void {
    this.channels.get(port.channel)?.drop();
    this.open(port, true);
  }

  channelReset(channel: number): void {
    const ch = this.channels.get(channel);
    if (!ch) return;
    this.channels.delete(channel);
    const hadState = ch.names.length > 0 || ch.watching;
    ch.drop(CHAT_PRESENCE_REASON.PROCESS_GONE);
    if (hadState) this.host?.stateChanged();
  }

  close(): void {
    for (const ch of this.channels.values()) ch.drop(CHAT_PRESENCE_REASON.VM_STOPPED);
    this.channels.clear();
  }

  snapshot(): ChatSnapshot {
    return { version: 1, channels: [...this.channels.values()].map((c) => ({ channel: c.channel, names: [...c.names], watching: c.watching })) };
  }

  restore(state: unknown, channels: readonly number[]): boolean {
    const s = state as Partial<ChatSnapshot> | null;
    if (!s || s.version !== 1 || !Array.isArray(s.channels) || !this.host) return false;
    const saved = new Map(s.channels.map((c) => [c.channel, c]));
    const opened: ChatChannel[] = [];
    for (const index of channels) {
      const port = this.host.port(index);
      if (!port) continue;
      const ch = this.open(port, false);
      opened.push(ch);
      const snap = saved.get(index);
      for (const name of snap?.names ?? []) {
        const r = this.opts.hub.register(ch, name);
        if (!r.ok) {
          this.host.log.warn('chat name could not be restored; the VM\'s chat channels will be reset', { channel: index, name, reason: r.reason });
          for (const c of opened) c.drop(CHAT_PRESENCE_REASON.PROCESS_GONE);
          for (const c of opened) this.channels.delete(c.channel);
          return false;
        }
        ch.names.push(name);
      }
      if (snap?.watching) {
        ch.watching = true;
        this.opts.hub.watch(ch, true);
      }
      ch.pump();
    }
    return true;
  }

  private namesHeld(): number {
    let n = 0;
    for (const c of this.channels.values()) n += c.names.length;
    return n;
  }

  handle(request: Message, port: ChannelPort): Message | Promise<Message> {
    const ch = this.channels.get(port.channel) ?? this.open(port, false);
    switch (request.type) {
      case MSG_TYPE.CHAT_REGISTER:
        return this.register(request, ch);
      case MSG_TYPE.CHAT_UNREGISTER:
        return this.unregister(request, ch);
      case MSG_TYPE.CHAT_SEND:
      case MSG_TYPE.CHAT_CALL:
        return this.send(request, ch, port);
      case MSG_TYPE.CHAT_REPLY:
        return this.reply(request, ch, port);
      case MSG_TYPE.CHAT_PEERS:
        return this.peers(request, ch, port);
      case MSG_TYPE.CHAT_WATCH:
        return this.watch(request, ch);
      case MSG_TYPE.CHAT_RX_FREED:
        if (request.payload.byteLength !== 0) return this.bad(request, STATUS.BAD_LENGTH.code, 'CHAT_RX_FREED has no payload');
        ch.rxFreed();
        return responseTo(request, STATUS.OK.code);
      default:
        return responseTo(request, STATUS.UNKNOWN_TYPE.code);
    }
  }

  private bad(request: Message, status: number, reason: string): Message {
    this.host?.counters.add('malformed');
    this.host?.log.warn('chat request refused', { type: request.type, status, reason });
    return responseTo(request, status);
  }

  private refusal(request: Message, r: ChatRefusal): Message {
    this.host?.counters.add(`refused_${r.code.toLowerCase()}`);
    return responseTo(request, refusalStatus(r.code));
  }

  /** Answers once the snapshot with the change is saved: a guest told "registered" keeps it across a restart. */
  private afterSave(answer: Message): Promise<Message> {
    this.host?.stateChanged();
    return new Promise((resolve) => this.afterSaved(() => resolve(answer)));
  }

  private register(request: Message, ch: ChatChannel): Message | Promise<Message> {
    const name = decodeName(request.payload);
    if (!name.ok) return this.bad(request, name.status, name.reason);
    if (this.namesHeld() >= this.maxNames) {
      return this.refusal(request, { ok: false, code: 'TOO_MANY_NAMES', reason: `${this.vmName} holds ${this.maxNames} names` });
    }
    const r = this.opts.hub.register(ch, name.value);
    if (!r.ok) return this.refusal(request, r);
    ch.names.push(name.value);
    if (this.opts.hub.claim) return this.claimed(request, ch, name.value, this.opts.hub.claim(name.value));
    this.host?.counters.add('registered');
    return this.afterSave(responseTo(request, STATUS.OK.code));
  }

  /** Cluster mode: the answer waits for the name's claim in the cluster; a refused claim undoes the register. */
  private async claimed(request: Message, ch: ChatChannel, name: string, claim: Promise<ChatOutcome>): Promise<Message> {
    const c = await claim;
    if (!c.ok) {
      const at = ch.names.indexOf(name);
      if (at >= 0) {
        ch.names.splice(at, 1);
        this.opts.hub.unregister(ch, name, CHAT_PRESENCE_REASON.UNREGISTERED);
      }
      this.host?.log.info('chat name refused by the cluster', { name, code: c.code, reason: c.reason });
      return this.refusal(request, c);
    }
    this.host?.counters.add('registered');
    return this.afterSave(responseTo(request, STATUS.OK.code));
  }

  private unregister(request: Message, ch: ChatChannel): Message | Promise<Message> {
    const name = decodeName(request.payload);
    if (!name.ok) return this.bad(request, name.status, name.reason);
    const at = ch.names.indexOf(name.value);
    if (at < 0) return this.refusal(request, { ok: false, code: 'NO_PEER', reason: `${name.value} is not a name of channel ${ch.channel}` });
    ch.names.splice(at, 1);
    this.opts.hub.unregister(ch, name.value, CHAT_PRESENCE_REASON.UNREGISTERED);
    return this.afterSave(responseTo(request, STATUS.OK.code));
  }

  private data(ref: DataRef, port: ChannelPort): { ok: true; bytes: Uint8Array } | { ok: false; status: number; reason: string } {
    if (ref.kind === 'inline') return { ok: true, bytes: ref.bytes };
    const r = port.slice.copyOut(ref.offset, ref.lengthBytes);
    return r.ok ? { ok: true, bytes: r.bytes } : r;
  }

  private async send(request: Message, ch: ChatChannel, port: ChannelPort): Promise<Message> {
    const call = request.type === MSG_TYPE.CHAT_CALL;
    const req = decodeSend(request.payload, call);
    if (!req.ok) return this.bad(request, req.status, req.reason);
    const data = this.data(req.value.data, port);
    if (!data.ok) return this.bad(request, data.status, data.reason);
    const from = req.value.from;
    if (from !== '' && !ch.names.includes(from)) {
      return this.refusal(request, { ok: false, code: 'NO_PEER', reason: `${from} is not a name of channel ${ch.channel}` });
    }
    const party = { ...ch.party(), name: from || (ch.names[0] ?? '') };
    this.host?.counters.add(call ? 'calls' : 'sends');
    if (!call) {
      const r = await this.opts.hub.send(party, req.value.target, data.bytes, ch);
      if (!r.ok) return this.refusal(request, r);
      return responseTo(request, STATUS.OK.code, encodeSendResult(r.delivered, r.refused));
    }
    const r = await this.opts.hub.call(party, req.value.target, data.bytes, req.value.timeoutMs);
    if (!r.ok) return this.refusal(request, r);
    const inline = MSG_HEADER.sizeBytes + CHAT_CALL_RESULT.sizeBytes + r.data.byteLength <= port.slotSizeBytes;
    if (inline) return responseTo(request, STATUS.OK.code, encodeCallResult(r.status, r.data, false));
    if (r.data.byteLength > req.value.replyCap) {
      return this.refusal(request, { ok: false, code: 'TOO_LARGE', reason: `a reply of ${r.data.byteLength} bytes, the caller has room for ${req.value.replyCap}` });
    }
    const view = port.slice.view(req.value.replyOffset, r.data.byteLength);
    if (!view.ok) return this.bad(request, view.status, view.reason);
    view.bytes.set(r.data);
    return responseTo(request, STATUS.OK.code, encodeCallResult(r.status, r.data, true));
  }

  private reply(request: Message, ch: ChatChannel, port: ChannelPort): Message {
    const req = decodeReply(request.payload);
    if (!req.ok) return this.bad(request, req.status, req.reason);
    const data = this.data(req.value.data, port);
    if (!data.ok) return this.bad(request, data.status, data.reason);
    const r = this.opts.hub.reply(ch, req.value.callId, req.value.status, data.bytes);
    if (!r.ok) return this.refusal(request, r);
    return responseTo(request, STATUS.OK.code);
  }

  private peers(request: Message, ch: ChatChannel, port: ChannelPort): Message {
    const req = decodeList(request.payload);
    if (!req.ok) return this.bad(request, req.status, req.reason);
    const all = this.opts.hub.peers(ch.party());
    let used = 0;
    let count = 0;
    let i = req.value.cookie;
    const entries: Uint8Array[] = [];
    for (; i < all.length; i++) {
      const p = all[i]!;
      const flags = (p.vm === null ? CHAT_PEER_FLAG.HOST : 0) | (p.vm === this.vmName && p.host === undefined ? CHAT_PEER_FLAG.SAME_VM : 0);
      const e = encodePeer(displayVm(p) ?? '', p.name, flags);
      if (used + e.byteLength > req.value.bufLen) break;
      entries.push(e);
      used += e.byteLength;
      count++;
    }
    if (count === 0 && i < all.length) return this.bad(request, STATUS.BAD_BUFFER.code, `buffer of ${req.value.bufLen} bytes holds no entry`);
    const view = port.slice.view(req.value.bufOffset, used);
    if (!view.ok) return this.bad(request, view.status, view.reason);
    let at = 0;
    for (const e of entries) {
      view.bytes.set(e, at);
      at += e.byteLength;
    }
    return responseTo(request, STATUS.OK.code, encodeListResult(count, used, i < all.length ? i : 0));
  }

  private watch(request: Message, ch: ChatChannel): Message | Promise<Message> {
    const on = decodeWatch(request.payload);
    if (!on.ok) return this.bad(request, on.status, on.reason);
    ch.watching = on.value;
    this.opts.hub.watch(ch, on.value);
    return this.afterSave(responseTo(request, STATUS.OK.code));
  }
}
