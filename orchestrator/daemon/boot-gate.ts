// How many VMs boot at once. A TCG guest booting takes a core; sixteen of them on two cores starve each
// other (timer checks fail, agents come up minutes late). Starts past the limit wait their turn, in order;
// a turn ends when the guest's agent is up, when the boot's deadline passes, or when the VM goes away.
// Pure: the limit is asked at each turn (a config reload may change it).
export type ReleaseTurn = () => void;

export class BootGate {
  #booting = 0;
  readonly #queue: (() => void)[] = [];

  constructor(private readonly limit: () => number) {}

  get booting(): number {
    return this.#booting;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves when this boot may go; call the release (idempotent) when its turn ends. */
  turn(): Promise<ReleaseTurn> {
    return new Promise((resolve) => {
      const go = (): void => {
        this.#booting++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.#booting--;
          this.#next();
        });
      };
      if (this.#booting < this.limit() && this.#queue.length === 0) go();
      else this.#queue.push(go);
    });
  }

  #next(): void {
    while (this.#queue.length > 0 && this.#booting < this.limit()) this.#queue.shift()!();
  }
}
