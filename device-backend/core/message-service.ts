// What a service registered with the core looks like. Services see decoded, validated copies of guest
// messages and return the response; they never touch guest memory or rings.
import type { Message } from '../protocol/message-codec.js';

export interface ServiceContext {
  readonly channel: number;
}

export interface MessageService {
  readonly name: string;
  /** Request types (without the response bit) this service answers. */
  readonly types: readonly number[];
  handle(request: Message, ctx: ServiceContext): Message;
}
