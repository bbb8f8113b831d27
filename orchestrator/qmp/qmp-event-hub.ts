// Fans events out to any number of async-iterator subscribers. Each subscriber sees every event
// published after it subscribed; all iterators finish when the hub ends. Pure: no I/O, no timers.

export const EVENT_HUB_MAX_QUEUED = 10_000;

interface Subscriber<T> {
  queue: T[];
  wake: ((result: IteratorResult<T>) => void) | undefined;
}

export class EventHub<T> {
  readonly #subscribers = new Set<Subscriber<T>>();
  readonly #maxQueued: number;
  #ended = false;

  constructor(opts: { maxQueued?: number } = {}) {
    this.#maxQueued = opts.maxQueued ?? EVENT_HUB_MAX_QUEUED;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  publish(value: T): void {
    for (const sub of this.#subscribers) {
      if (sub.wake) {
        const wake = sub.wake;
        sub.wake = undefined;
        wake({ value, done: false });
      } else {
        // A consumer that stopped reading loses its oldest events instead of growing without bound.
        if (sub.queue.length >= this.#maxQueued) sub.queue.shift();
        sub.queue.push(value);
      }
    }
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const sub of this.#subscribers) {
      if (sub.wake) {
        const wake = sub.wake;
        sub.wake = undefined;
        this.#subscribers.delete(sub);
        wake({ value: undefined, done: true });
      }
    }
  }

  /** Subscribes now (not at first next()), so no event published after this call is missed. */
  subscribe(): AsyncIterableIterator<T> {
    const sub: Subscriber<T> = { queue: [], wake: undefined };
    if (!this.#ended) this.#subscribers.add(sub);
    const unsubscribe = (): IteratorResult<T> => {
      this.#subscribers.delete(sub);
      sub.queue.length = 0;
      if (sub.wake) {
        const wake = sub.wake;
        sub.wake = undefined;
        wake({ value: undefined, done: true });
      }
      return { value: undefined, done: true };
    };
    const iterator: AsyncIterableIterator<T> = {
      next: () => {
        if (sub.queue.length > 0) return Promise.resolve({ value: sub.queue.shift() as T, done: false });
        if (this.#ended || !this.#subscribers.has(sub)) {
          this.#subscribers.delete(sub);
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise<IteratorResult<T>>((resolve) => {
          sub.wake = resolve;
        });
      },
      return: () => Promise.resolve(unsubscribe()),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
