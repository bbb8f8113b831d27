// The driver update, host side (docs/decisions/driver-update.md). Every agent says AGENT_HELLO with its
// version after it claims its channel; this service keeps what the newest one said (shown by vm inspect).
// update() stages a new vmgmt-guest in the guest with an ordinary to-guest AGENT_COPY, asks the agent to
// check and start it (AGENT_UPDATE), and learns the outcome from the NEW agent's hello (TAKEOVER, the
// expected version) on its own channel, or from the old agent's AGENT_UPDATE_RESULT: it does not depend on
// the old channel staying up.
import { createHash, randomBytes } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MODE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { ChannelPort, MessageService, ServiceHost } from '../../core/message-service.js';
import type { CoreLogger } from '../../core/core-logger.js';
import { CodedError } from '../../errors/coded-error.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import type { AgentService } from './agent-service.js';
import { type AgentHello, type AgentUpdateResult, binaryVersion, decodeAgentHello, decodeAgentUpdateResult, encodeAgentUpdate } from './agent-update-codec.js';

export type AgentUpdateErrorCode = 'INVALID_REQUEST' | 'AGENT_UNAVAILABLE' | 'REFUSED' | 'ROLLED_BACK' | 'TIMEOUT' | 'BUSY';

export class AgentUpdateError extends CodedError<AgentUpdateErrorCode> {
  override readonly name = 'AgentUpdateError';
}

/** Where the host stages the new binary in the guest (tmpfs in the test image). */
export const GUEST_STAGE_PATH = '/run/vmgmt-agent-update.bin';
export const DEFAULT_REPORT_IN_MS = 15_000;
export const DEFAULT_PROBATION_MS = 3_000;
/** The agent hashes the binary and runs its --version before it answers AGENT_UPDATE: slow under TCG. */
const CHECK_TIMEOUT_MS = 60_000;

export interface AgentInfo {
  version: string;
  pid: number;
  channel: number;
  /** When this agent said hello. */
  since: string;
  /** It took over from an older agent in an update. */
  takeover: boolean;
}

export interface LastUpdate {
  at: string;
  toVersion: string;
  outcome: 'updated' | 'refused' | 'rolled-back' | 'failed';
  reason?: string;
  /** Updated: ms from the old agent pausing its interrupt relay to the new agent's hello (measured in the guest). */
  gapMs?: number;
}

export interface AgentUpdateOptions {
  binary: Uint8Array;
  /** The digest the guest must find; default: the binary's. Not compared here: the guest checks what it got. */
  sha256?: Uint8Array;
  /** A host directory for the staging file (the daemon's runtime directory). */
  tempDir: string;
  reportInMs?: number;
  probationMs?: number;
  /** How long to wait for an agent to come up first. Default 20 s. */
  agentWaitMs?: number;
}

export interface AgentUpdateOutcome {
  fromVersion: string | null;
  toVersion: string;
  pid: number;
  sha256: string;
  bytes: number;
  /** See LastUpdate.gapMs. */
  gapMs: number;
  /** Staging copy into the guest. */
  stageMs: number;
  /** From AGENT_UPDATE to the new agent's hello. */
  switchMs: number;
  totalMs: number;
}

export type AgentEvent = { kind: 'hello'; channel: number; atMs: number; version: string } | { kind: 'gone'; channel: number; atMs: number };

interface Pending {
  version: string;
  onHello(h: AgentHello): void;
  onResult(r: AgentUpdateResult): void;
  onClose(reason: string): void;
}

const statusText = (code: number): string => Object.values(STATUS).find((s) => s.code === code)?.text ?? `status ${code}`;

export class AgentUpdateService implements MessageService {
  readonly name = 'agent-update';
  readonly modes = [MODE.AGENT];
  readonly types = [MSG_TYPE.AGENT_HELLO, MSG_TYPE.AGENT_UPDATE_RESULT];
  private host: ServiceHost | undefined;
  private readonly agents = new Map<number, AgentInfo>();
  private pending: Pending | undefined;
  private closed = false;
  private readonly watchers = new Set<(e: AgentEvent) => void>();
  last: LastUpdate | undefined;

  constructor(private readonly opts: { agent: AgentService; log: CoreLogger }) {}

  attach(host: ServiceHost): void {
    this.host = host;
  }

  /** The agent that said hello last and still holds its channel. */
  get current(): AgentInfo | undefined {
    let best: AgentInfo | undefined;
    for (const a of this.agents.values()) if (!best || a.since >= best.since) best = a;
    return best;
  }

  handle(request: Message, port: ChannelPort): Message {
    if (request.type === MSG_TYPE.AGENT_HELLO) {
      const d = decodeAgentHello(request.payload);
      if (!d.ok) {
        this.opts.log.info('AGENT_HELLO refused', { channel: port.channel, reason: d.reason });
        return responseTo(request, d.status);
      }
      const info: AgentInfo = { version: d.value.version, pid: d.value.pid, channel: port.channel, since: new Date().toISOString(), takeover: d.value.takeover };
      this.agents.set(port.channel, info);
      for (const w of this.watchers) w({ kind: 'hello', channel: port.channel, atMs: performance.now(), version: info.version });
      this.host?.counters.add('agent_hellos');
      this.opts.log.info('guest agent reported in', { ...info, ...(d.value.takeover ? { prevPid: d.value.prevPid, gapUs: d.value.gapUs } : {}) });
      this.pending?.onHello(d.value);
      return responseTo(request, STATUS.OK.code);
    }
    const d = decodeAgentUpdateResult(request.payload);
    if (!d.ok) return responseTo(request, d.status);
    this.opts.log.warn('guest agent reports an update rolled back', { channel: port.channel, ...d.value });
    this.pending?.onResult(d.value);
    return responseTo(request, STATUS.OK.code);
  }

  channelReset(channel: number): void {
    if (this.agents.delete(channel)) for (const w of this.watchers) w({ kind: 'gone', channel, atMs: performance.now() });
  }

  /** Agents reporting in and going away, as they happen (the benchmark measures its windows with it). */
  watch(listener: (e: AgentEvent) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.pending?.onClose('the VM\'s device closed (the VM stopped)');
  }

  /** Stages `binary` in the guest and replaces the running agent with it; throws AgentUpdateError. */
  async update(o: AgentUpdateOptions): Promise<AgentUpdateOutcome> {
    if (this.pending) throw new AgentUpdateError('BUSY', 'an update of this VM\'s agent is in progress already: wait for its outcome');
    const v = binaryVersion(o.binary);
    if (!v.ok) throw new AgentUpdateError('INVALID_REQUEST', `the binary cannot be sent as the guest driver: ${v.reason}`);
    const reportInMs = o.reportInMs ?? DEFAULT_REPORT_IN_MS;
    const probationMs = o.probationMs ?? DEFAULT_PROBATION_MS;
    const digest = o.sha256 ? Buffer.from(o.sha256) : createHash('sha256').update(o.binary).digest();
    if (digest.byteLength !== 32) throw new AgentUpdateError('INVALID_REQUEST', 'sha256 must be 32 bytes');
    const sha256 = digest.toString('hex');
    const started = performance.now();
    let outcome: LastUpdate = { at: new Date().toISOString(), toVersion: v.version, outcome: 'failed' };
    let cancel = (): void => {};
    this.pending = { version: v.version, onHello: () => {}, onResult: () => {}, onClose: () => {} };
    try {
      await this.stage(o);
      const stageMs = performance.now() - started;
      const before = this.current;
      const port = before && this.host?.port(before.channel);
      if (!before || !port) throw new AgentUpdateError('AGENT_UNAVAILABLE', 'the guest agent has not reported its version (AGENT_HELLO): it is too old to be updated in place, or it went away; restart it in the guest');
      const waiting = this.awaitOutcome(v.version, reportInMs, probationMs);
      cancel = waiting.cancel;
      waiting.outcome.catch(() => {});
      const switchStarted = performance.now();
      let answer: Message;
      try {
        answer = await port.request(MSG_TYPE.AGENT_UPDATE, encodeAgentUpdate({ sha256: digest, reportInMs, probationMs, version: v.version, guestPath: GUEST_STAGE_PATH }), { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
      } catch (err) {
        throw new AgentUpdateError('AGENT_UNAVAILABLE', `the guest agent did not answer AGENT_UPDATE: ${(err as Error).message}`, {}, { cause: err });
      }
      if (answer.status !== STATUS.OK.code) {
        outcome = { ...outcome, outcome: 'refused', reason: statusText(answer.status) };
        throw new AgentUpdateError('REFUSED', `the guest agent refused the update to ${v.version}: ${statusText(answer.status)} (status ${answer.status})`, { status: answer.status });
      }
      let hello: AgentHello;
      try {
        hello = await waiting.outcome;
      } catch (err) {
        if (err instanceof AgentUpdateError && err.code === 'ROLLED_BACK') outcome = { ...outcome, outcome: 'rolled-back', reason: err.message };
        throw err;
      }
      const gapMs = hello.gapUs / 1000;
      outcome = { ...outcome, outcome: 'updated', gapMs };
      const totalMs = performance.now() - started;
      return { fromVersion: before.version, toVersion: hello.version, pid: hello.pid, sha256, bytes: o.binary.byteLength, gapMs, stageMs, switchMs: totalMs - (switchStarted - started), totalMs };
    } catch (err) {
      if (outcome.outcome === 'failed') outcome = { ...outcome, reason: (err as Error).message };
      throw err;
    } finally {
      cancel();
      this.pending = undefined;
      this.last = outcome;
    }
  }

  /** The to-guest copy of the binary, through a host file the copy borrows (AgentService's transfer path). */
  private async stage(o: AgentUpdateOptions): Promise<void> {
    const file = path.join(o.tempDir, `agent-update-${randomBytes(8).toString('hex')}.bin`);
    await writeFile(file, o.binary, { mode: 0o600 });
    const fh = await open(file, 'r');
    try {
      await this.opts.agent.copy({ direction: 'to-guest', hostFd: fh.fd, sizeBytes: o.binary.byteLength, guestPath: GUEST_STAGE_PATH, timeoutMs: 300_000, agentWaitMs: o.agentWaitMs ?? 20_000 });
    } catch (err) {
      throw new AgentUpdateError('AGENT_UNAVAILABLE', `staging the new driver in the guest at ${GUEST_STAGE_PATH} failed: ${(err as Error).message}`, {}, { cause: err });
    } finally {
      await fh.close();
      await rm(file, { force: true });
    }
  }

  /**
   * The outcome: the new agent's hello once it survived its probation; a rollback or the deadline rejects.
   * cancel() ends the wait (its timer and its hooks) when the update fails before the outcome matters.
   */
  private awaitOutcome(version: string, reportInMs: number, probationMs: number): { outcome: Promise<AgentHello>; cancel: () => void } {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    let mine: Pending | undefined;
    const stop = (): void => {
      settled = true;
      clearTimeout(timer);
      if (mine && this.pending === mine) this.pending = { version, onHello: () => {}, onResult: () => {}, onClose: () => {} };
    };
    const outcome = new Promise<AgentHello>((resolve, reject) => {
      let hello: AgentHello | undefined;
      const finish = (fn: () => void): void => {
        if (settled) return;
        stop();
        fn();
      };
      const deadline = (ms: number, what: string): void => {
        clearTimeout(timer);
        timer = setTimeout(() => (hello && what === 'probation' ? finish(() => resolve(hello!)) : finish(() => reject(new AgentUpdateError('TIMEOUT', what, { reportInMs })))), ms);
      };
      if (this.closed) return reject(new AgentUpdateError('AGENT_UNAVAILABLE', 'the VM\'s device closed'));
      // The agent checks the binary before the trial starts; its answer comes first, the deadline covers both.
      deadline(CHECK_TIMEOUT_MS + reportInMs + 5_000, `no new agent ${version} reported in and the old one reported no rollback within ${reportInMs} ms of the check: look at the VM's console log`);
      mine = {
        version,
        onHello: (h) => {
          if (!h.takeover || h.version !== version || hello) return;
          hello = h;
          // A crash within the probation still rolls back: the old agent reports it on a channel it claims again.
          deadline(probationMs + 2_000, 'probation');
        },
        onResult: (r) => finish(() => reject(new AgentUpdateError('ROLLED_BACK', `the update to ${version} was rolled back, the old agent keeps serving: ${r.reason}`, { status: r.status }))),
        onClose: (reason) => finish(() => reject(new AgentUpdateError('AGENT_UNAVAILABLE', `${reason} during the update to ${version}`))),
      };
      this.pending = mine;
    });
    return { outcome, cancel: stop };
  }
}
