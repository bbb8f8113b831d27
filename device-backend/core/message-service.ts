// The one contract every mode's service implements (after rust-vmm's VhostUserBackend). A service is
// registered with a VM's core and gets, per channel, a port: it answers the guest's requests, starts host
// requests, and pushes messages that the core sends when the c2g ring has room (the core pulls, as
// Firecracker's vsock pulls pending rx; a service never writes rings). Services see decoded copies of guest
// messages and the channel's bounds-checked data slice, never the rings or the rest of guest memory.
//
// A service that throws, rejects or answers with a message that cannot be sent does not wedge the core:
// the request is answered INTERNAL_ERROR and the channel keeps serving.
import type { Mode } from '../layout/wire-layout.js';
import type { DataSlice } from '../memory/data-slice.js';
import type { Message } from '../protocol/message-codec.js';
import type { CoreLogger } from './core-logger.js';

/** What handle() gets: the channel the request came on and its data slice. */
export interface ServiceContext {
  readonly channel: number;
  readonly slice: DataSlice;
}

export type PushResult =
  | { ok: true }
  | { ok: false; code: 'QUEUE_FULL' | 'NOT_READY' | 'TOO_LARGE'; reason: string };

export interface PushOptions {
  /**
   * Called once the message is in the c2g ring (guest memory), synchronously from the core's send: defer
   * work that pushes again. Not called when the message is dropped (a channel reset or close drops the
   * queue; the service hears of it through channelReset/close).
   */
  onSent?: () => void;
}

export interface HostRequestOptions {
  /** Aborting (a timeout: AbortSignal.timeout(ms)) rejects the request and forgets it; a late answer is dropped. */
  signal?: AbortSignal;
}

/** One channel as one service sees it. */
export interface ChannelPort extends ServiceContext {
  /** The channel's current MODE (MODE.NONE after a reset). */
  readonly mode: number;
  /** Size of one ring slot: a message header and its payload must fit. */
  readonly slotSizeBytes: number;
  /**
   * Sends a request on the channel's c2g ring; the guest answers on g2c. Rejects with CoreRequestError:
   * NOT_READY, BUSY (too many outstanding or a full push queue), ABORTED, CHANNEL_RESET, CLOSED.
   */
  request(type: number, payload: Uint8Array, opts?: HostRequestOptions): Promise<Message>;
  /** Queues a message that needs no answer (request id 0). The queue is bounded per service and channel. */
  push(type: number, payload: Uint8Array, opts?: PushOptions): PushResult;
}

/** Named figures a service counts (messages by kind, bytes, refusals); the daemon reads them as metrics. */
export interface ServiceCounters {
  add(name: string, by?: number): void;
}

/** Who the device belongs to: bound in by the daemon, so a service shared across VMs knows which VM speaks. */
export interface VmIdentity {
  readonly name: string;
}

/** Given to a service once, when a core (fresh or re-attached) takes it on. */
export interface ServiceHost {
  readonly vm: VmIdentity;
  readonly channelCount: number;
  /** The port of a channel for this service; undefined for a channel number the device does not have. */
  port(channel: number): ChannelPort | undefined;
  readonly counters: ServiceCounters;
  readonly log: CoreLogger;
  /** The service's snapshot() changed: the device saves it soon (kept across a daemon restart). */
  stateChanged(): void;
}

export interface MessageService {
  readonly name: string;
  /** The MODEs whose requests this service answers, or 'any' for requests valid in every mode (PING). */
  readonly modes: readonly Mode[] | 'any';
  /** Request types (MSG_TYPE values, without the response bit) this service answers in its modes. */
  readonly types: readonly number[];
  handle(request: Message, port: ChannelPort): Message | Promise<Message>;
  /** The core took the service on (before any other hook). */
  attach?(host: ServiceHost): void;
  /** A guest put a channel into one of this service's modes. */
  channelClaimed?(port: ChannelPort): void;
  /** The channel was reset: drop what the service keeps for it (open files, names, ...). */
  channelReset?(channel: number): void;
  /** The guest reset the whole device (every channel was reset first). */
  deviceReset?(): void;
  /** The device is going away. */
  close?(): void;
  /** State to carry across a daemon restart (JSON-serialisable). */
  snapshot?(): unknown;
  /**
   * After a daemon restart: the saved snapshot, and the channels found in this service's modes. Returning
   * true says those channels carry on untouched; otherwise (or without restore) they must be reset.
   */
  restore?(state: unknown, channels: readonly number[]): boolean;
}
