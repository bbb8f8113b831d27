// The exec mode: `vmgmt vm exec`. The host starts a session with EXEC_START on the agent's channel; the
// agent forks an exec process that claims its own channel in MODE.EXEC and attaches with the session's
// token (exec.c). From then on the session streams on that channel: EXEC_OUTPUT requests carry stdout and
// stderr and are answered only once the session's consumer took the bytes (so a guest that prints faster
// than the client reads waits, and the daemon holds at most MAX_OUTPUTS_OUT buffers per session);
// EXEC_INPUT requests ask for stdin; EXEC_EXIT ends it. Timeouts and cancels are EXEC_SIGNAL pushes.
import { randomBytes } from 'node:crypto';
import { EXEC_STREAM, MODE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { ChannelPort, MessageService, ServiceHost } from '../../core/message-service.js';
import type { CoreLogger } from '../../core/core-logger.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import { AgentError } from '../agent/agent-error.js';
import type { AgentService } from '../agent/agent-service.js';
import { need, Refusal } from '../refusal.js';
import { decodeAttach, decodeExit, decodeIo, encodeIoResult, encodeResize, encodeSignal, encodeSpecAnswer, encodeSpecBytes, encodeStart, EXEC_TOKEN_BYTES, type ExecSpec } from './exec-codec.js';
import { ExecError } from './exec-error.js';

/** Output requests a session may have unanswered (the guest sends at most 4): the daemon's memory bound. */
export const MAX_OUTPUTS_OUT = 8;
/** The largest EXEC_OUTPUT the host copies out of the slice. */
export const MAX_OUTPUT_BYTES = 1024 * 1024;
const SIGKILL = 9;

export type ExecStream = 'stdout' | 'stderr';

export interface ExecIo {
  /** Output in order; the promise resolves once the consumer took the bytes (the back-pressure). */
  output(stream: ExecStream, bytes: Uint8Array): Promise<void>;
  /** The next stdin bytes, null at end of input. Called only while the guest asks. Absent: no stdin. */
  input?(): Promise<Uint8Array | null>;
}

export interface ExecOptions {
  spec: ExecSpec;
  io: ExecIo;
  /** Kills the command (SIGKILL) after this long; the result says timedOut. */
  timeoutMs?: number;
  /** How long to wait for a guest agent that is still coming up. Default 20 s. */
  agentWaitMs?: number;
  /** How long the exec process has to attach after the agent forked it. Default 20 s. */
  attachWaitMs?: number;
  /** The client went away: the command is killed. */
  signal?: AbortSignal;
  /** Called once the command runs (its exec process attached): a --tty session's resizes go through it. */
  onAttached?: (session: { resize(rows: number, cols: number): void }) => void;
}

export interface ExecResult {
  /** 0..255, or null when a signal ended the command. */
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  durationMs: number;
}

type SessionState = 'starting' | 'attached' | 'exited' | 'failed';

interface Session {
  readonly token: string;
  readonly spec: ExecSpec;
  readonly io: ExecIo;
  state: SessionState;
  port: ChannelPort | undefined;
  outputsOut: number;
  inputOut: boolean;
  /** stdin bytes taken from the consumer that did not fit the guest's buffer yet. */
  leftover: Uint8Array | undefined;
  inputEnded: boolean;
  /** Output answers go out in the order the requests came. */
  outChain: Promise<unknown>;
  stdoutBytes: number;
  stderrBytes: number;
  timedOut: boolean;
  settle: { resolve(r: { exitCode: number; signal: number }): void; reject(err: Error): void };
  attached: () => void;
  /** Ends a pending stdin wait at once (exit or failure). */
  stopInput: () => void;
  stopped: Promise<void>;
}

export interface ExecServiceOptions {
  agent: AgentService;
  log: CoreLogger;
}

export class ExecService implements MessageService {
  readonly name = 'exec';
  readonly modes = [MODE.EXEC];
  readonly types = [MSG_TYPE.EXEC_ATTACH, MSG_TYPE.EXEC_OUTPUT, MSG_TYPE.EXEC_INPUT, MSG_TYPE.EXEC_EXIT];
  private host: ServiceHost | undefined;
  private readonly byToken = new Map<string, Session>();
  private readonly byChannel = new Map<number, Session>();
  private closed = false;

  constructor(private readonly opts: ExecServiceOptions) {}

  attach(host: ServiceHost): void {
    this.host = host;
  }

  get sessions(): number {
    return this.byToken.size;
  }

  handle(req: Message, port: ChannelPort): Message | Promise<Message> {
    try {
      const answer = this.dispatch(req, port);
      if (answer instanceof Promise) return answer.then((m) => m, (err: unknown) => this.refused(req, err));
      return answer;
    } catch (err) {
      return this.refused(req, err);
    }
  }

  private refused(req: Message, err: unknown): Message {
    if (!(err instanceof Refusal)) throw err;
    this.host?.counters.add('refusals');
    this.opts.log.info('exec request refused', { type: req.type, status: err.status, reason: err.reason });
    return responseTo(req, err.status);
  }

  private sessionOf(port: ChannelPort, what: string): Session {
    const s = this.byChannel.get(port.channel);
    if (!s || s.state !== 'attached') throw new Refusal(STATUS.EXEC_BAD_STEP.code, `${what} on channel ${port.channel}, which serves no running exec session`);
    return s;
  }

  private dispatch(req: Message, port: ChannelPort): Message | Promise<Message> {
    switch (req.type) {
      case MSG_TYPE.EXEC_ATTACH:
        return this.onAttach(req, port);
      case MSG_TYPE.EXEC_OUTPUT:
        return this.onOutput(req, port);
      case MSG_TYPE.EXEC_INPUT:
        return this.onInput(req, port);
      case MSG_TYPE.EXEC_EXIT:
        return this.onExit(req, port);
    }
    throw new Refusal(STATUS.UNKNOWN_TYPE.code, `type 0x${req.type.toString(16)} is not an exec request`);
  }

  private onAttach(req: Message, port: ChannelPort): Message {
    const token = need(decodeAttach(req.payload));
    if (this.byChannel.has(port.channel)) throw new Refusal(STATUS.EXEC_BAD_STEP.code, `channel ${port.channel} attached to an exec session already`);
    const s = this.byToken.get(token);
    if (!s || s.state !== 'starting') throw new Refusal(STATUS.EXEC_NO_SESSION.code, 'EXEC_ATTACH with a token of no waiting exec session');
    const bytes = encodeSpecBytes(s.spec);
    if (!bytes.ok) throw new Refusal(bytes.status, bytes.reason);
    const view = port.slice.view(0, bytes.value.byteLength);
    if (!view.ok) {
      this.fail(s, new ExecError('INVALID_REQUEST', `the command line of ${bytes.value.byteLength} bytes does not fit the guest channel's ${port.slice.sizeBytes}-byte data slice`));
      throw new Refusal(STATUS.EXEC_TOO_LARGE.code, view.reason);
    }
    view.bytes.set(bytes.value);
    s.state = 'attached';
    s.port = port;
    this.byChannel.set(port.channel, s);
    this.host?.counters.add('sessions_attached');
    s.attached();
    return responseTo(req, STATUS.OK.code, encodeSpecAnswer(s.spec, bytes.value.byteLength));
  }

  private onOutput(req: Message, port: ChannelPort): Promise<Message> {
    const s = this.sessionOf(port, 'EXEC_OUTPUT');
    const io = need(decodeIo(req.payload));
    if (io.stream !== EXEC_STREAM.STDOUT && io.stream !== EXEC_STREAM.STDERR) throw new Refusal(STATUS.EXEC_BAD_STEP.code, `EXEC_OUTPUT stream ${io.stream}: want 1 (stdout) or 2 (stderr)`);
    if (io.length > MAX_OUTPUT_BYTES) throw new Refusal(STATUS.BAD_LENGTH.code, `EXEC_OUTPUT of ${io.length} bytes, more than ${MAX_OUTPUT_BYTES}`);
    if (s.outputsOut >= MAX_OUTPUTS_OUT) throw new Refusal(STATUS.EXEC_BAD_STEP.code, `${s.outputsOut} EXEC_OUTPUT requests unanswered already, at most ${MAX_OUTPUTS_OUT}`);
    const copied = port.slice.copyOut(io.bufOffset, io.length);
    if (!copied.ok) throw new Refusal(copied.status, copied.reason);
    const stream: ExecStream = io.stream === EXEC_STREAM.STDOUT ? 'stdout' : 'stderr';
    if (stream === 'stdout') s.stdoutBytes += io.length;
    else s.stderrBytes += io.length;
    this.host?.counters.add(`${stream}_bytes`, io.length);
    s.outputsOut++;
    const done = s.outChain.then(() => (s.state === 'attached' ? s.io.output(stream, copied.bytes) : undefined));
    s.outChain = done.catch(() => {});
    return done.then(
      () => {
        s.outputsOut--;
        return responseTo(req, STATUS.OK.code);
      },
      (err: unknown) => {
        s.outputsOut--;
        // The consumer failed (the client went away): the command is killed; the guest gets its answer.
        this.kill(s, SIGKILL);
        this.opts.log.info('exec output consumer failed', { error: (err as Error).message });
        return responseTo(req, STATUS.OK.code);
      },
    );
  }

  private async onInput(req: Message, port: ChannelPort): Promise<Message> {
    const s = this.sessionOf(port, 'EXEC_INPUT');
    const io = need(decodeIo(req.payload));
    if (io.stream !== EXEC_STREAM.STDIN) throw new Refusal(STATUS.EXEC_BAD_STEP.code, `EXEC_INPUT stream ${io.stream}: want 0 (stdin)`);
    if (s.inputOut) throw new Refusal(STATUS.EXEC_BAD_STEP.code, 'an EXEC_INPUT is unanswered already');
    const view = port.slice.view(io.bufOffset, io.length);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    if (io.length === 0) throw new Refusal(STATUS.BAD_LENGTH.code, 'EXEC_INPUT for 0 bytes');
    s.inputOut = true;
    try {
      let chunk = s.leftover;
      s.leftover = undefined;
      if (!chunk && !s.inputEnded && s.io.input) {
        chunk = (await Promise.race([s.io.input(), s.stopped.then(() => null)])) ?? undefined;
        if (!chunk) s.inputEnded = true;
      }
      if (!s.io.input) s.inputEnded = true;
      if (!chunk || s.state !== 'attached') return responseTo(req, STATUS.OK.code, encodeIoResult(0, true));
      const n = Math.min(chunk.byteLength, io.length);
      // The slice view may be stale after a reset: the port's slice is this channel's, checked again here.
      const target = port.slice.view(io.bufOffset, n);
      if (!target.ok) throw new Refusal(target.status, target.reason);
      target.bytes.set(chunk.subarray(0, n));
      if (n < chunk.byteLength) s.leftover = chunk.subarray(n);
      this.host?.counters.add('stdin_bytes', n);
      return responseTo(req, STATUS.OK.code, encodeIoResult(n, false));
    } finally {
      s.inputOut = false;
    }
  }

  private onExit(req: Message, port: ChannelPort): Message {
    const s = this.sessionOf(port, 'EXEC_EXIT');
    const exit = need(decodeExit(req.payload));
    s.state = 'exited';
    s.stopInput();
    this.forget(s);
    s.settle.resolve(exit);
    this.host?.counters.add('sessions_exited');
    return responseTo(req, STATUS.OK.code);
  }

  channelReset(channel: number): void {
    const s = this.byChannel.get(channel);
    if (s) this.fail(s, new ExecError('GUEST_GONE', 'the exec process in the guest went away before the command\'s exit came (its channel was reset)'));
  }

  close(): void {
    this.closed = true;
    for (const s of [...this.byToken.values()]) this.fail(s, new ExecError('CLOSED', 'the VM\'s device closed (the VM stopped) while the command ran'));
  }

  private forget(s: Session): void {
    this.byToken.delete(s.token);
    if (s.port && this.byChannel.get(s.port.channel) === s) this.byChannel.delete(s.port.channel);
  }

  private fail(s: Session, err: Error): void {
    if (s.state === 'exited' || s.state === 'failed') return;
    s.state = 'failed';
    s.stopInput();
    this.forget(s);
    s.settle.reject(err);
  }

  private kill(s: Session, signal: number): void {
    if (s.state !== 'attached' || !s.port) return;
    const r = s.port.push(MSG_TYPE.EXEC_SIGNAL, encodeSignal(signal));
    if (!r.ok) this.opts.log.warn('could not send EXEC_SIGNAL', { reason: r.reason });
  }

  /** Tells a --tty session's command the client's terminal size. */
  resize(token: string, rows: number, cols: number): void {
    const s = this.byToken.get(token);
    if (s?.state !== 'attached' || !s.port) return;
    const r = s.port.push(MSG_TYPE.EXEC_RESIZE, encodeResize(rows, cols));
    if (r.ok) this.host?.counters.add('resizes');
    else this.opts.log.warn('could not send EXEC_RESIZE', { reason: r.reason, rows, cols });
  }

  /** Runs a command in the guest through its agent; rejects with ExecError or AgentError. */
  async run(opts: ExecOptions): Promise<ExecResult> {
    if (this.closed) throw new ExecError('CLOSED', 'the VM\'s device closed (the VM stopped)');
    const checked = encodeSpecBytes(opts.spec);
    if (!checked.ok) throw new ExecError('INVALID_REQUEST', checked.reason);
    const started = performance.now();
    const tokenBytes = randomBytes(EXEC_TOKEN_BYTES);
    const token = tokenBytes.toString('hex');
    let attached!: () => void;
    const attachedP = new Promise<void>((r) => (attached = r));
    let stopInput!: () => void;
    const stopped = new Promise<void>((r) => (stopInput = r));
    let settle!: Session['settle'];
    const ended = new Promise<{ exitCode: number; signal: number }>((resolve, reject) => (settle = { resolve, reject }));
    ended.catch(() => {});
    const s: Session = {
      token,
      spec: opts.spec,
      io: opts.io,
      state: 'starting',
      port: undefined,
      outputsOut: 0,
      inputOut: false,
      leftover: undefined,
      inputEnded: false,
      outChain: Promise.resolve(),
      stdoutBytes: 0,
      stderrBytes: 0,
      timedOut: false,
      settle,
      attached,
      stopInput,
      stopped,
    };
    this.byToken.set(token, s);
    this.host?.counters.add('sessions_started');
    const onAbort = (): void => this.kill(s, SIGKILL);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      let answer: Message;
      try {
        answer = await this.opts.agent.hostRequest(MSG_TYPE.EXEC_START, encodeStart(tokenBytes, opts.spec.tty), {
          waitMs: opts.agentWaitMs ?? 20_000,
          timeoutMs: 20_000,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      } catch (err) {
        if (err instanceof AgentError) throw new ExecError('AGENT_UNAVAILABLE', err.message, {}, { cause: err });
        throw err;
      }
      if (answer.status !== STATUS.OK.code) {
        const text = Object.values(STATUS).find((x) => x.code === answer.status)?.text ?? `status ${answer.status}`;
        throw new ExecError('GUEST_REFUSED', `the guest agent could not start the command: ${text} (status ${answer.status})`, { status: answer.status });
      }
      const attachWaitMs = opts.attachWaitMs ?? 20_000;
      let attachTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        attachedP,
        ended.then(() => {}),
        new Promise<void>((_, reject) => {
          attachTimer = setTimeout(() => reject(new ExecError('GUEST_REFUSED', `the guest's exec process did not attach within ${attachWaitMs} ms (no free channel?)`)), attachWaitMs);
        }),
      ]).finally(() => clearTimeout(attachTimer));
      if (s.state === 'attached') opts.onAttached?.({ resize: (rows, cols) => this.resize(token, rows, cols) });
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          s.timedOut = true;
          this.kill(s, SIGKILL);
        }, opts.timeoutMs);
      }
      const exit = await ended;
      await s.outChain;
      return {
        exitCode: exit.exitCode < 0 ? null : exit.exitCode,
        signal: exit.signal === 0 ? null : exit.signal,
        timedOut: s.timedOut,
        stdoutBytes: s.stdoutBytes,
        stderrBytes: s.stderrBytes,
        durationMs: performance.now() - started,
      };
    } catch (err) {
      this.fail(s, err as Error);
      throw err;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      this.forget(s);
    }
  }
}
