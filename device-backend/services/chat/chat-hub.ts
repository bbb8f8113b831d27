// The routing of chat as the mode sees it: ChatHub (names, messages to a name, the host or a chat group,
// calls matched to replies, peers, presence, policy) and ChatEndpoint (what holds names and takes
// deliveries). A VM's chat service talks only to these, so a hub that also carries presence and messages
// between daemons (over NATS) can replace LocalChatHub without changing the mode. One hub per daemon.
import type { CHAT_PRESENCE_EVENT, CHAT_PRESENCE_REASON } from '../../layout/wire-layout.js';
import type { ChatRefusal } from './chat-error.js';
import type { ChatParty, PolicyDecision } from './chat-policy.js';

/** A message as a receiver gets it: the source as the core knows it, never as the sender wrote it. */
export interface ChatMessage {
  readonly from: ChatParty;
  /** The receiver's name it was sent to. */
  readonly to: string;
  readonly data: Uint8Array;
  readonly broadcast: boolean;
  /** Nonzero for a call: answer with reply(callId). */
  readonly callId: number;
}

export type ChatOutcome = { ok: true } | ChatRefusal;

export interface PresenceEvent {
  readonly event: (typeof CHAT_PRESENCE_EVENT)[keyof typeof CHAT_PRESENCE_EVENT];
  readonly reason: (typeof CHAT_PRESENCE_REASON)[keyof typeof CHAT_PRESENCE_REASON];
  /** host: cluster mode, a peer on another host (shown as vm@host). */
  readonly peer: { vm: string | null; name: string; host?: string | undefined };
}

/** Whoever holds names: one chat channel of a VM, or a host-side peer. */
export interface ChatEndpoint {
  /** Who this endpoint is when it watches or lists (its VM, first name, group). */
  party(): ChatParty;
  /**
   * Takes a message for one of its names. Resolves { ok: true } once it is delivered (in the receiver's
   * ring in guest memory, or handed to the host handler); refusals (QUEUE_FULL, TOO_LARGE) come at once.
   */
  deliver(message: ChatMessage): Promise<ChatOutcome>;
  /** A peer joined or left (only while watching, and only peers this endpoint may talk to). */
  presence(event: PresenceEvent): void;
}

export interface ChatPeerInfo {
  readonly vm: string | null;
  readonly name: string;
  /** Cluster mode: a peer on another host (shown as vm@host). */
  readonly host?: string | undefined;
}

export type SendResult = { ok: true; delivered: number; refused: number } | ChatRefusal;
export type CallResult = { ok: true; status: number; data: Uint8Array } | ChatRefusal;

export interface ChatHub {
  register(endpoint: ChatEndpoint, name: string): ChatOutcome;
  /**
   * Cluster mode: makes a name just registered unique across the cluster (a compare-and-set in the
   * cluster's bucket). The service awaits it before answering the guest and unregisters the name if it is
   * refused. A hub without a cluster has none: register() alone decides.
   */
  claim?(name: string): Promise<ChatOutcome>;
  /** The name goes away (reason: CHAT_PRESENCE_REASON); calls waiting on it fail PEER_GONE. */
  unregister(endpoint: ChatEndpoint, name: string, reason: PresenceEvent['reason']): void;
  /** To a name, `host`, or '@' (the sender's chat group: every member but the sender's own endpoint). */
  send(from: ChatParty, target: string, data: Uint8Array, fromEndpoint?: ChatEndpoint): Promise<SendResult>;
  call(from: ChatParty, target: string, data: Uint8Array, timeoutMs: number): Promise<CallResult>;
  /** The callee answers call callId; only the endpoint the call was delivered to may. */
  reply(endpoint: ChatEndpoint, callId: number, status: number, data: Uint8Array): ChatOutcome;
  /** Everyone the viewer may talk to, by name. */
  peers(viewer: ChatParty): ChatPeerInfo[];
  watch(endpoint: ChatEndpoint, on: boolean): void;
  explain(from: ChatParty, to: ChatParty): PolicyDecision;
  /** Who holds a name, whatever the policy (for explaining it: `vmgmt chat policy check`). */
  holder(name: string): ChatParty | undefined;
  /** A host-side name (the host API): sends and calls as a peer; its handler gets what is sent to it. Throws ChatError. */
  registerHost(name: string, onMessage: HostMessageHandler): HostChatPeer;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** A host-side handler's answer to a call: the reply data, with a status (default 0; an --exec's exit code). */
export interface HostReply {
  readonly status: number;
  readonly data: Uint8Array;
}

/**
 * A host-side peer's handler; for a call, what it returns (or resolves to) is the reply. Throwing a
 * ChatError refuses the message with its code (QUEUE_FULL: a listener that cannot take it); anything else
 * thrown is a handler bug, logged.
 */
export type HostMessageHandler = (message: ChatMessage) => Uint8Array | HostReply | void | Promise<Uint8Array | HostReply | void>;

/** A host-side name: sends and calls as a peer, receives through its handler. */
export interface HostChatPeer {
  readonly name: string;
  send(target: string, data: Uint8Array): Promise<SendResult>;
  call(target: string, data: Uint8Array, timeoutMs: number): Promise<CallResult>;
  peers(): ChatPeerInfo[];
  close(): void;
}

