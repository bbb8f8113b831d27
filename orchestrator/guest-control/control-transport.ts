// The byte pipe under GuestControlClient, and its UNIX-socket implementation (QEMU's
// `-chardev socket,server=on,wait=off`, which QEMU creates some time after it starts).
import { connectUnixOnce } from '../net/connect-unix.js';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { GuestControlError } from './guest-control-error.js';

export interface ControlTransportHandlers {
  data(bytes: Uint8Array): void;
  /** Called once when the pipe is gone; `cause` is set when it broke rather than being closed. */
  closed(cause: Error | undefined): void;
}

export interface ControlTransport {
  /** Where the pipe leads, for error messages (a socket path). */
  readonly label: string;
  /** Starts delivering data to `handlers`; called once. Data arriving before is kept. */
  start(handlers: ControlTransportHandlers): void;
  write(bytes: Uint8Array): void;
  close(): void;
}

const CONNECT_RETRY_INTERVAL_MS = 25;
const RETRYABLE_CONNECT_ERRNOS = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

/** Connects to a UNIX socket, retrying while it does not exist yet or refuses, until `timeoutMs`. */
export async function connectUnixControlSocket(
  socketPath: string,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<ControlTransport> {
  const deadline = performance.now() + opts.timeoutMs;
  let lastError: NodeJS.ErrnoException | undefined;
  for (;;) {
    if (opts.signal?.aborted) {
      throw new GuestControlError(
        'CONNECT_TIMEOUT',
        `connecting to the guest control socket ${socketPath} was aborted (did QEMU exit?)`,
        { socketPath, timeoutMs: opts.timeoutMs },
        { cause: opts.signal.reason },
      );
    }
    try {
      return new UnixSocketTransport(socketPath, await connectUnixOnce(socketPath, { paused: true }));
    } catch (err) {
      lastError = err as NodeJS.ErrnoException;
      if (!RETRYABLE_CONNECT_ERRNOS.has(lastError.code ?? '')) {
        throw new GuestControlError(
          'CONNECT_TIMEOUT',
          `cannot connect to the guest control socket ${socketPath}: ${lastError.message}; check the path and that ` +
            'QEMU was started with -chardev socket,path=...,server=on,wait=off',
          { socketPath, timeoutMs: opts.timeoutMs },
          { cause: err },
        );
      }
    }
    if (performance.now() >= deadline) break;
    await sleep(CONNECT_RETRY_INTERVAL_MS);
  }
  throw new GuestControlError(
    'CONNECT_TIMEOUT',
    `guest control socket ${socketPath} did not accept a connection within ${opts.timeoutMs} ms ` +
      `(last error: ${lastError?.code ?? 'none'}); is QEMU running with that -chardev socket?`,
    { socketPath, timeoutMs: opts.timeoutMs },
    { cause: lastError },
  );
}


class UnixSocketTransport implements ControlTransport {
  readonly label: string;
  readonly #socket: Socket;
  #lastError: Error | undefined;

  constructor(socketPath: string, socket: Socket) {
    this.label = socketPath;
    this.#socket = socket;
    // Kept from the start so an error before start() is not an unhandled 'error' event.
    socket.on('error', (err) => {
      this.#lastError = err;
    });
  }

  start(handlers: ControlTransportHandlers): void {
    this.#socket.on('data', (data: Buffer) => handlers.data(data));
    if (this.#socket.closed) {
      queueMicrotask(() => handlers.closed(this.#lastError));
      return;
    }
    this.#socket.once('close', () => handlers.closed(this.#lastError));
    this.#socket.resume();
  }

  write(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  close(): void {
    this.#socket.destroy();
  }
}
