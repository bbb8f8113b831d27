// A receiver's bounded queue of messages not yet in its ring: limits in messages and bytes for the whole
// queue and, smaller, for each source (a VM, or the host), so a flooding VM fills only its own share and
// the others still get through. Items stay counted from offer() until release() (sent or dropped). Pure.

export interface ChatQueueLimits {
  maxMessages: number;
  maxBytes: number;
  /** What one source may hold of the queue. */
  shareMessages: number;
  shareBytes: number;
}

export const DEFAULT_QUEUE_LIMITS: ChatQueueLimits = { maxMessages: 256, maxBytes: 4 * 1024 * 1024, shareMessages: 64, shareBytes: 1024 * 1024 };

export interface Queued {
  readonly source: string;
  readonly bytes: number;
}

export type OfferResult = { ok: true } | { ok: false; reason: string };

export class ChatQueue<T extends Queued> {
  private readonly waiting: T[] = [];
  private messages = 0;
  private bytes = 0;
  private readonly bySource = new Map<string, { messages: number; bytes: number }>();

  constructor(private readonly limits: ChatQueueLimits) {}

  offer(item: T): OfferResult {
    const src = this.bySource.get(item.source) ?? { messages: 0, bytes: 0 };
    if (src.messages + 1 > this.limits.shareMessages || src.bytes + item.bytes > this.limits.shareBytes) {
      return { ok: false, reason: `source ${item.source} holds ${src.messages} messages (${src.bytes} bytes) of this receiver's queue, its share is ${this.limits.shareMessages} (${this.limits.shareBytes} bytes)` };
    }
    if (this.messages + 1 > this.limits.maxMessages || this.bytes + item.bytes > this.limits.maxBytes) {
      return { ok: false, reason: `the receiver's queue holds ${this.messages} messages (${this.bytes} bytes), at most ${this.limits.maxMessages} (${this.limits.maxBytes} bytes)` };
    }
    this.waiting.push(item);
    this.messages++;
    this.bytes += item.bytes;
    src.messages++;
    src.bytes += item.bytes;
    this.bySource.set(item.source, src);
    return { ok: true };
  }

  /** The oldest waiting item (FIFO), still counted. */
  peek(): T | undefined {
    return this.waiting[0];
  }

  /** Takes the oldest waiting item out of the waiting line; it stays counted until release(). */
  take(): T | undefined {
    return this.waiting.shift();
  }

  /** An item taken but not sent goes back to the front of the line. */
  putBack(item: T): void {
    this.waiting.unshift(item);
  }

  /** An item taken earlier is gone (in the ring, or dropped). */
  release(item: T): void {
    this.messages--;
    this.bytes -= item.bytes;
    const src = this.bySource.get(item.source);
    if (!src) return;
    src.messages--;
    src.bytes -= item.bytes;
    if (src.messages === 0) this.bySource.delete(item.source);
  }

  /** Empties the waiting line (for a receiver that went away); the caller releases or forgets them. */
  takeAll(): T[] {
    return this.waiting.splice(0);
  }

  get size(): { messages: number; bytes: number; waiting: number } {
    return { messages: this.messages, bytes: this.bytes, waiting: this.waiting.length };
  }
}
