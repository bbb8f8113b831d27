// `vmgmt vm exec --tty`: the local terminal's size changes (SIGWINCH) passed on to the session in the guest
// (POST /v1/vms/:name/exec/:id/resize). One request at a time: changes that come while one is on its way
// are folded into one more request with the size as it is then, so a window dragged by the mouse costs a
// few requests, not one per signal, and the last size sent is the last size the terminal had.

export interface TerminalSize {
  rows: number;
  cols: number;
}

export interface ResizeForwarder {
  /** The terminal may have changed size: send its size now (or after the request on its way). */
  changed(): void;
  /** Sends nothing more. */
  stop(): void;
  /** Resolves when no request is on its way (tests). */
  idle(): Promise<void>;
}

export function resizeForwarder(opts: {
  /** The terminal's size now; undefined when it cannot be told. */
  read: () => TerminalSize | undefined;
  send: (size: TerminalSize) => Promise<void>;
  /** The size the session started with (its request's rows and cols): not sent again. */
  initial?: TerminalSize;
  onError: (err: unknown) => void;
}): ResizeForwarder {
  let last = opts.initial;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const run = async (): Promise<void> => {
    do {
      again = false;
      const size = opts.read();
      if (!size || size.rows < 1 || size.cols < 1 || (last && last.rows === size.rows && last.cols === size.cols)) continue;
      try {
        await opts.send(size);
        last = size;
      } catch (err) {
        if (!stopped) opts.onError(err);
        return;
      }
    } while (again && !stopped);
  };
  return {
    changed() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = run().finally(() => (running = undefined));
    },
    stop() {
      stopped = true;
    },
    idle: () => running ?? Promise.resolve(),
  };
}
