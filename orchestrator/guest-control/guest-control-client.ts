// Host side of the guest control channel: runs shell commands in the test guest over its second
// serial port and returns their output. Protocol: images/README.md; wire format: control-protocol.ts.
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { encodeCommandLine, OUTPUT_ENCODING } from './control-protocol.js';
import { connectUnixControlSocket, type ControlTransport } from './control-transport.js';
import { GuestControlError } from './guest-control-error.js';
import { GuestFrameParser, type GuestFrameEvent } from './frame-parser.js';

export { GuestControlError, type GuestControlErrorCode, type GuestControlErrorDetails } from './guest-control-error.js';
export type { ControlTransport, ControlTransportHandlers } from './control-transport.js';

export interface GuestCommandResult {
  /** stdout and stderr of `sh <command>`, interleaved as written, decoded as UTF-8. */
  stdout: string;
  exitCode: number;
  /** From sending the command to receiving the END frame. */
  durationMs: number;
}

export interface GuestControlConnectOptions {
  /** How long to keep retrying while QEMU has not created the socket yet. Default 10 s. */
  timeoutMs?: number;
  /** Aborting stops the retries at once (e.g. when the QEMU process has exited). */
  signal?: AbortSignal;
}

export interface GuestWaitReadyOptions {
  timeoutMs: number;
  /** How often to ask again while the guest is silent. Default 250 ms. */
  probeIntervalMs?: number;
}

export interface GuestRunOptions {
  /** Counted from when the command is sent, i.e. after the commands queued before it. Default 60 s. */
  timeoutMs?: number;
}

export const GUEST_CONTROL_DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const GUEST_CONTROL_DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
export const GUEST_CONTROL_DEFAULT_PROBE_INTERVAL_MS = 250;
/** A REJECT means the line was garbled in transit and the command did not run, so resending is safe. */
const MAX_RESENDS_AFTER_REJECT = 2;
const COMMAND_TEXT_IN_ERRORS_MAX = 200;

type ClientState = { kind: 'open' } | { kind: 'closed'; error: GuestControlError };

export class GuestControlClient {
  readonly #transport: ControlTransport;
  readonly #parser = new GuestFrameParser();
  /** Frame handlers by command id; frames with other ids are stale answers and are dropped. */
  readonly #waiters = new Map<string, (event: GuestFrameEvent) => void>();
  readonly #disconnectListeners = new Set<(error: GuestControlError) => void>();
  /** Distinguishes this client's ids from those of an earlier session on the same guest. */
  readonly #sessionToken = randomBytes(4).toString('hex');
  #nextSequence = 1;
  #queueTail: Promise<unknown> = Promise.resolve();
  #state: ClientState = { kind: 'open' };

  /** Connects to QEMU's control chardev socket, retrying until it exists or `timeoutMs` passes. */
  static async connect(socketPath: string, opts: GuestControlConnectOptions = {}): Promise<GuestControlClient> {
    const transport = await connectUnixControlSocket(socketPath, {
      timeoutMs: opts.timeoutMs ?? GUEST_CONTROL_DEFAULT_CONNECT_TIMEOUT_MS,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
    return new GuestControlClient(transport);
  }

  /** Runs the client over any byte pipe (tests use an in-memory fake guest). */
  constructor(transport: ControlTransport) {
    this.#transport = transport;
    transport.start({
      data: (bytes) => this.#onData(bytes),
      closed: (cause) => this.#onClosed(cause),
    });
  }

  get isOpen(): boolean {
    return this.#state.kind === 'open';
  }

  /**
   * Sends a trivial command again and again until the guest answers one, and resolves with the time
   * waited. Needed because QEMU drops serial output while no client is connected and the guest only
   * listens once /init has started its control service.
   */
  waitReady(opts: GuestWaitReadyOptions): Promise<number> {
    return this.#enqueue(() => this.#probeUntilAnswered(opts.timeoutMs, opts.probeIntervalMs ?? GUEST_CONTROL_DEFAULT_PROBE_INTERVAL_MS));
  }

  /** Runs `command` with `sh` in the guest (stdin /dev/null). Commands run one at a time, in call order. */
  run(command: string, opts: GuestRunOptions = {}): Promise<GuestCommandResult> {
    const timeoutMs = opts.timeoutMs ?? GUEST_CONTROL_DEFAULT_COMMAND_TIMEOUT_MS;
    return this.#enqueue(() => this.#runNow(command, timeoutMs));
  }

  /** Closes the socket; pending and queued calls reject with DISCONNECTED. */
  close(): void {
    if (this.#state.kind === 'closed') return;
    this.#markClosed(
      new GuestControlError('DISCONNECTED', `guest control connection ${this.#transport.label} was closed by this client`, {
        socketPath: this.#transport.label,
      }),
    );
    this.#transport.close();
  }

  #enqueue<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#queueTail.then(operation);
    this.#queueTail = result.catch(() => undefined);
    return result;
  }

  #probeUntilAnswered(timeoutMs: number, probeIntervalMs: number): Promise<number> {
    const startedMs = performance.now();
    return new Promise<number>((resolve, reject) => {
      if (this.#state.kind === 'closed') {
        reject(this.#state.error);
        return;
      }
      const probeIds: string[] = [];
      const cleanup = (): void => {
        clearInterval(probeTimer);
        clearTimeout(deadlineTimer);
        for (const id of probeIds) this.#waiters.delete(id);
        this.#disconnectListeners.delete(onDisconnect);
      };
      const onDisconnect = (error: GuestControlError): void => {
        cleanup();
        reject(error);
      };
      const sendProbe = (): void => {
        const id = this.#newCommandId();
        probeIds.push(id);
        // Any answer proves the service is up; rejects and broken frames are noise from the boot.
        this.#waiters.set(id, (event) => {
          if (event.type !== 'result') return;
          cleanup();
          resolve(performance.now() - startedMs);
        });
        this.#transport.write(encodeCommandLine(id, 'true'));
      };
      const probeTimer = setInterval(sendProbe, probeIntervalMs);
      const deadlineTimer = setTimeout(() => {
        cleanup();
        reject(
          new GuestControlError(
            'CONNECT_TIMEOUT',
            `the guest did not answer on control channel ${this.#transport.label} within ${timeoutMs} ms ` +
              `(${probeIds.length} probes sent); check the console log: did /init start vmgmt-control on ttyS1?`,
            { socketPath: this.#transport.label, timeoutMs },
          ),
        );
      }, timeoutMs);
      this.#disconnectListeners.add(onDisconnect);
      sendProbe();
    });
  }

  #runNow(command: string, timeoutMs: number): Promise<GuestCommandResult> {
    const startedMs = performance.now();
    const commandText = command.length > COMMAND_TEXT_IN_ERRORS_MAX ? `${command.slice(0, COMMAND_TEXT_IN_ERRORS_MAX)}...` : command;
    return new Promise<GuestCommandResult>((resolve, reject) => {
      if (this.#state.kind === 'closed') {
        reject(this.#state.error);
        return;
      }
      let currentId = '';
      let resendsLeft = MAX_RESENDS_AFTER_REJECT;
      const cleanup = (): void => {
        clearTimeout(deadlineTimer);
        this.#waiters.delete(currentId);
        this.#disconnectListeners.delete(onDisconnect);
      };
      const fail = (error: GuestControlError): void => {
        cleanup();
        reject(error);
      };
      const onDisconnect = (error: GuestControlError): void =>
        fail(
          new GuestControlError(
            'DISCONNECTED',
            `${error.message}; command ${currentId} (${commandText}) got no answer`,
            { ...error.details, commandId: currentId, command: commandText },
            { cause: error },
          ),
        );
      const onFrame = (event: GuestFrameEvent): void => {
        const details = { socketPath: this.#transport.label, commandId: event.id, command: commandText };
        switch (event.type) {
          case 'reject':
            if (resendsLeft > 0) {
              resendsLeft--;
              send();
              return;
            }
            fail(
              new GuestControlError(
                'PROTOCOL',
                `the guest rejected command ${event.id} (${event.reason}) ${MAX_RESENDS_AFTER_REJECT + 1} times; ` +
                  'the control line is garbling data (check the -serial/-chardev wiring)',
                { ...details, reason: event.reason },
              ),
            );
            return;
          case 'broken':
            fail(
              new GuestControlError(
                'PROTOCOL',
                `the output of command ${event.id} was damaged in transit (${event.reason}); the command did run, ` +
                  'so check its effects before running it again',
                { ...details, reason: event.reason },
              ),
            );
            return;
          case 'result': {
            const decoded = decodeOutput(event);
            if (!decoded.ok) {
              fail(
                new GuestControlError(
                  'PROTOCOL',
                  `the output of command ${event.id} could not be decoded (${decoded.reason})`,
                  { ...details, reason: decoded.reason },
                  { cause: decoded.cause },
                ),
              );
              return;
            }
            cleanup();
            resolve({
              stdout: new TextDecoder().decode(decoded.bytes),
              exitCode: event.exitCode,
              durationMs: performance.now() - startedMs,
            });
            return;
          }
        }
      };
      const send = (): void => {
        this.#waiters.delete(currentId);
        currentId = this.#newCommandId();
        this.#waiters.set(currentId, onFrame);
        this.#transport.write(encodeCommandLine(currentId, command));
      };
      const deadlineTimer = setTimeout(
        () =>
          fail(
            new GuestControlError(
              'COMMAND_TIMEOUT',
              `command ${currentId} (${commandText}) did not finish within ${timeoutMs} ms; the guest may still be ` +
                'running it and will run later commands after it',
              { socketPath: this.#transport.label, commandId: currentId, command: commandText, timeoutMs },
            ),
          ),
        timeoutMs,
      );
      this.#disconnectListeners.add(onDisconnect);
      send();
    });
  }

  #newCommandId(): string {
    return `${this.#sessionToken}-${this.#nextSequence++}`;
  }

  #onData(bytes: Uint8Array): void {
    for (const event of this.#parser.push(bytes)) {
      this.#waiters.get(event.id)?.(event);
    }
  }

  #onClosed(cause: Error | undefined): void {
    if (this.#state.kind === 'closed') return;
    this.#markClosed(
      new GuestControlError(
        'DISCONNECTED',
        `guest control connection ${this.#transport.label} closed${cause === undefined ? '' : ` (${cause.message})`}; ` +
          'did QEMU exit? Connect a new client after restarting it',
        { socketPath: this.#transport.label },
        { cause },
      ),
    );
  }

  #markClosed(error: GuestControlError): void {
    this.#state = { kind: 'closed', error };
    for (const listener of [...this.#disconnectListeners]) listener(error);
    this.#disconnectListeners.clear();
    this.#waiters.clear();
  }
}

type DecodedOutput = { ok: true; bytes: Uint8Array } | { ok: false; reason: string; cause?: unknown };

function decodeOutput(event: Extract<GuestFrameEvent, { type: 'result' }>): DecodedOutput {
  let bytes = event.payload;
  if (event.encoding === OUTPUT_ENCODING.GZIP_BASE64) {
    try {
      bytes = gunzipSync(event.payload);
    } catch (err) {
      return { ok: false, reason: `gzip body does not decompress: ${(err as Error).message}`, cause: err };
    }
  }
  if (bytes.length !== event.outputSizeBytes) {
    return { ok: false, reason: `${bytes.length} output bytes but BEGIN announced ${event.outputSizeBytes}` };
  }
  return { ok: true, bytes };
}
