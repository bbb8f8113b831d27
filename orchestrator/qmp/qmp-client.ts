// QMP client over a UNIX socket: connect (waiting for QEMU to create the socket), greeting,
// capabilities negotiation, id-matched commands with timeouts, and an event stream.
import { connectUnixOnce } from '../net/connect-unix.js';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import { QmpError } from './qmp-error.js';
import { EventHub } from './qmp-event-hub.js';
import { encodeQmpCommand, QmpFramer } from './qmp-framing.js';
import { parseQmpMessage, type QmpErrorReply, type QmpEvent, type QmpGreeting, type QmpMessage, type QmpReturn } from './qmp-messages.js';

export { QmpError, type QmpErrorCode, type QmpErrorDetails } from './qmp-error.js';
export type { QmpEvent, QmpGreeting } from './qmp-messages.js';

export const QMP_DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
export const QMP_DEFAULT_GREETING_TIMEOUT_MS = 10_000;
export const QMP_DEFAULT_CONNECT_RETRY_UNTIL_MS = 5_000;
const CONNECT_RETRY_INTERVAL_MS = 25;
const RETRYABLE_CONNECT_ERRNOS = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

export interface QmpConnectOptions {
  /** Time allowed for the greeting and the qmp_capabilities reply once connected. Default 10 s. */
  timeoutMs?: number;
  /** How long to keep retrying while the socket does not exist yet or refuses. Default 5 s. */
  connectRetryUntilMs?: number;
  /** Aborting stops the connect retries at once (e.g. when the QEMU process has exited). */
  signal?: AbortSignal;
  /** Called for messages that cannot be matched or decoded after the handshake. Default: ignored. */
  onProtocolError?: (error: QmpError) => void;
}

export interface QmpExecuteOptions<T> {
  /** Default 10 s. */
  timeoutMs?: number;
  /** Validates the `return` value; a mismatch rejects with PROTOCOL. */
  schema?: z.ZodType<T>;
}

type ClientState = 'awaiting-greeting' | 'ready' | 'closed';

interface PendingCommand {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: QmpError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class QmpClient {
  readonly socketPath: string;
  readonly closed: Promise<void>;
  #greeting: QmpGreeting | undefined;
  #state: ClientState = 'awaiting-greeting';
  #closedByUs = false;
  #socketError: Error | undefined;
  #nextId = 1;
  readonly #socket: Socket;
  readonly #framer = new QmpFramer();
  readonly #pending = new Map<number, PendingCommand>();
  readonly #events = new EventHub<QmpEvent>();
  readonly #onProtocolError: (error: QmpError) => void;
  #greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: QmpError) => void } | undefined;

  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? QMP_DEFAULT_GREETING_TIMEOUT_MS;
    const socket = await connectWithRetry(socketPath, opts.connectRetryUntilMs ?? QMP_DEFAULT_CONNECT_RETRY_UNTIL_MS, opts.signal);
    const client = new QmpClient(socket, socketPath, opts.onProtocolError ?? (() => {}));
    try {
      await client.#awaitGreeting(timeoutMs);
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
    } catch (err) {
      client.close();
      if (err instanceof QmpError && err.code === 'GREETING') throw err;
      throw new QmpError(
        'GREETING',
        `QMP handshake on ${socketPath} failed: qmp_capabilities was not accepted (${errorText(err)}); ` +
          'is another client already attached to this monitor?',
        { socketPath, command: 'qmp_capabilities' },
        { cause: err },
      );
    }
    return client;
  }

  private constructor(socket: Socket, socketPath: string, onProtocolError: (error: QmpError) => void) {
    this.#socket = socket;
    this.socketPath = socketPath;
    this.#onProtocolError = onProtocolError;
    this.closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.#onClose();
        resolve();
      });
    });
    socket.on('error', (err) => {
      this.#socketError = err;
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** QEMU's greeting, including its version. */
  get greeting(): QmpGreeting {
    if (!this.#greeting) throw new Error('QmpClient.greeting read before the handshake finished');
    return this.#greeting;
  }

  get isClosed(): boolean {
    return this.#state === 'closed';
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions<T> = {}): Promise<T> {
    if (this.#state === 'closed' || this.#closedByUs) return Promise.reject(this.#disconnectedError(command));
    const timeoutMs = opts.timeoutMs ?? QMP_DEFAULT_COMMAND_TIMEOUT_MS;
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new QmpError(
            'COMMAND_TIMEOUT',
            `QMP command "${command}" got no reply within ${timeoutMs} ms on ${this.socketPath}; ` +
              'QEMU may be hung or busy: check its log, retry with a longer timeout, or kill the VM',
            { socketPath: this.socketPath, command, timeoutMs },
          ),
        );
      }, timeoutMs);
      this.#pending.set(id, { command, resolve, reject, timer });
    });
    this.#socket.write(encodeQmpCommand(command, args, id));
    const schema = opts.schema;
    if (!schema) return reply as Promise<T>;
    return reply.then((value) => {
      const parsed = schema.safeParse(value);
      if (parsed.success) return parsed.data;
      throw new QmpError(
        'PROTOCOL',
        `QMP command "${command}" returned a value of unexpected shape: ${parsed.error.message}`,
        { socketPath: this.socketPath, command, received: truncate(JSON.stringify(value) ?? String(value)) },
        { cause: parsed.error },
      );
    });
  }

  /** Every event received from now on, until the connection closes. */
  events(): AsyncIterable<QmpEvent> {
    return this.#events.subscribe();
  }

  async waitForEvent(name: string, opts: { timeoutMs: number }): Promise<QmpEvent> {
    const iterator = this.#events.subscribe();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new QmpError('EVENT_TIMEOUT', `QMP event ${name} did not arrive within ${opts.timeoutMs} ms on ${this.socketPath}`, {
            socketPath: this.socketPath,
            event: name,
            timeoutMs: opts.timeoutMs,
          }),
        );
      }, opts.timeoutMs);
    });
    const match = (async () => {
      for (;;) {
        const next = await iterator.next();
        if (next.done) {
          throw new QmpError(
            'DISCONNECTED',
            `waiting for QMP event ${name} failed: ${this.#closeReason()}`,
            { socketPath: this.socketPath, event: name },
            { cause: this.#socketError },
          );
        }
        if (next.value.event === name) return next.value;
      }
    })();
    try {
      return await Promise.race([match, timeout]);
    } finally {
      clearTimeout(timer);
      void iterator.return?.();
      match.catch(() => {});
    }
  }

  close(): void {
    if (this.#state === 'closed' || this.#closedByUs) return;
    this.#closedByUs = true;
    this.#socket.destroy();
  }

  #awaitGreeting(timeoutMs: number): Promise<QmpGreeting> {
    return new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#greetingWaiter = undefined;
        reject(
          new QmpError(
            'GREETING',
            `no QMP greeting on ${this.socketPath} within ${timeoutMs} ms; is this a QMP socket (-qmp, not -monitor) and is QEMU responsive?`,
            { socketPath: this.socketPath, timeoutMs },
          ),
        );
      }, timeoutMs);
      this.#greetingWaiter = {
        resolve: (g) => {
          clearTimeout(timer);
          resolve(g);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  #failGreeting(message: string, received?: string): void {
    const waiter = this.#greetingWaiter;
    this.#greetingWaiter = undefined;
    waiter?.reject(
      new QmpError('GREETING', `QMP greeting on ${this.socketPath} failed: ${message}`, {
        socketPath: this.socketPath,
        ...(received === undefined ? {} : { received }),
      }),
    );
  }

  #onData(chunk: Buffer): void {
    for (const frame of this.#framer.push(chunk)) {
      if (!frame.ok) {
        const text =
          frame.code === 'INVALID_JSON'
            ? `invalid JSON from QEMU (${frame.reason})`
            : `line of ${frame.lengthChars} chars exceeds the ${frame.maxLineChars} limit`;
        const received = frame.code === 'INVALID_JSON' ? truncate(frame.line) : undefined;
        if (this.#state === 'awaiting-greeting') this.#failGreeting(text, received);
        else this.#protocolError(text, received);
        continue;
      }
      const parsed = parseQmpMessage(frame.value);
      if (!parsed.ok) {
        const received = truncate(JSON.stringify(frame.value));
        if (this.#state === 'awaiting-greeting') this.#failGreeting(parsed.reason, received);
        else this.#protocolError(parsed.reason, received, idOf(frame.value));
        continue;
      }
      this.#dispatch(parsed.message);
    }
  }

  #dispatch(message: QmpMessage): void {
    if (this.#state === 'awaiting-greeting') {
      if (message.kind !== 'greeting') {
        this.#failGreeting(`expected the greeting first, got a ${message.kind} message`);
        return;
      }
      this.#greeting = message.greeting;
      this.#state = 'ready';
      const waiter = this.#greetingWaiter;
      this.#greetingWaiter = undefined;
      waiter?.resolve(message.greeting);
      return;
    }
    switch (message.kind) {
      case 'greeting':
        this.#protocolError('second greeting on an established connection');
        return;
      case 'event':
        this.#events.publish(message.event);
        return;
      case 'return':
      case 'error':
        this.#settle(message.reply);
        return;
    }
  }

  #settle(reply: QmpReturn | QmpErrorReply): void {
    const id = reply.id;
    const pending = typeof id === 'number' ? this.#pending.get(id) : undefined;
    if (!pending || typeof id !== 'number') {
      // Replies to commands that already timed out land here too.
      this.#protocolError(`reply with unknown id ${JSON.stringify(id)}`, truncate(JSON.stringify(reply)));
      return;
    }
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if ('error' in reply) {
      const { class: qmpClass, desc } = reply.error;
      pending.reject(
        new QmpError('COMMAND_FAILED', `QMP command "${pending.command}" failed: ${qmpClass}: ${desc}`, {
          socketPath: this.socketPath,
          command: pending.command,
          qmpClass,
          qmpDesc: desc,
        }),
      );
    } else {
      pending.resolve(reply.return);
    }
  }

  #protocolError(message: string, received?: string, id?: unknown): void {
    const pending = typeof id === 'number' ? this.#pending.get(id) : undefined;
    const error = new QmpError('PROTOCOL', `QMP protocol error on ${this.socketPath}: ${message}`, {
      socketPath: this.socketPath,
      ...(pending ? { command: pending.command } : {}),
      ...(received === undefined ? {} : { received }),
    });
    if (pending && typeof id === 'number') {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(error);
      return;
    }
    this.#onProtocolError(error);
  }

  #onClose(): void {
    this.#state = 'closed';
    this.#failGreeting(`${this.#closeReason()} before sending the greeting`);
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(this.#disconnectedError(pending.command));
    }
    this.#pending.clear();
    this.#events.end();
  }

  #closeReason(): string {
    if (this.#closedByUs) return `the QMP client was closed (close() was called) on ${this.socketPath}`;
    const why = this.#socketError ? ` (${this.#socketError.message})` : '';
    return `QEMU exited or closed the QMP socket ${this.socketPath}${why}`;
  }

  #disconnectedError(command: string): QmpError {
    return new QmpError(
      'DISCONNECTED',
      `QMP command "${command}" failed: ${this.#closeReason()} before replying; check the VM's qemu.log for why it stopped`,
      { socketPath: this.socketPath, command },
      { cause: this.#socketError },
    );
  }
}

async function connectWithRetry(socketPath: string, retryUntilMs: number, signal: AbortSignal | undefined): Promise<Socket> {
  const deadline = Date.now() + retryUntilMs;
  let lastError: NodeJS.ErrnoException | undefined;
  for (;;) {
    if (signal?.aborted) {
      throw new QmpError(
        'CONNECT_FAILED',
        `connecting to QMP socket ${socketPath} was aborted: ${errorText(signal.reason)}`,
        { socketPath },
        { cause: signal.reason },
      );
    }
    try {
      return await connectUnixOnce(socketPath);
    } catch (err) {
      lastError = err as NodeJS.ErrnoException;
      if (!RETRYABLE_CONNECT_ERRNOS.has(lastError.code ?? '')) {
        throw new QmpError(
          'CONNECT_FAILED',
          `cannot connect to QMP socket ${socketPath}: ${lastError.message}; check the path and its permissions`,
          { socketPath },
          { cause: err },
        );
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(CONNECT_RETRY_INTERVAL_MS, undefined, signal ? { signal } : {}).catch(() => {});
  }
  throw new QmpError(
    'CONNECT_TIMEOUT',
    `QMP socket ${socketPath} did not accept a connection within ${retryUntilMs} ms (last error: ${lastError?.code ?? 'none'}); ` +
      'did QEMU start with -qmp unix:<path>,server=on,wait=off?',
    { socketPath, timeoutMs: retryUntilMs },
    { cause: lastError },
  );
}


function idOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null && 'id' in value ? (value as { id: unknown }).id : undefined;
}

function truncate(text: string): string {
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
