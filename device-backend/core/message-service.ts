// What a service registered with the core looks like. Services see decoded copies of guest messages
// and this channel's data slice (bounds-checked); they never touch rings or the rest of guest memory.
// A service answers every request, synchronously or later (file I/O); the core routes by mode.
import type { DataSlice } from '../memory/data-slice.js';
import type { Message } from '../protocol/message-codec.js';

export interface ServiceContext {
  readonly channel: number;
  readonly slice: DataSlice;
}

export interface MessageService {
  readonly name: string;
  /** The MODEs whose requests this service answers, or 'any' for requests valid in every mode (PING). */
  readonly modes: readonly number[] | 'any';
  /** Request types (without the response bit) this service answers. */
  readonly types: readonly number[];
  handle(request: Message, ctx: ServiceContext): Message | Promise<Message>;
  /** The channel was reset: drop what the service keeps for it (open files, ...). */
  channelReset?(channel: number): void;
  /** The device is going away. */
  close?(): void;
}
