// The agent mode: the resident guest agent holds a channel in MODE.AGENT; the host asks it to copy files
// in and out (`vmgmt cp`) with AGENT_COPY requests on that channel's port, and the agent moves the bytes
// with file-mode requests on the copy's one-off transfer path (transfer-files.ts). The orchestrator asks
// this service for copies; it never touches the core's rings.
import { AGENT_MKDIR_REQ, MODE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { ChannelPort, MessageService, ServiceHost } from '../../core/message-service.js';
import type { CoreLogger } from '../../core/core-logger.js';
import { CoreRequestError } from '../../core/device-core.js';
import type { VmgmtNative } from '../../native/index.js';
import type { Message } from '../../protocol/message-codec.js';
import { encodeAgentCopy } from './agent-codec.js';
import { AgentError } from './agent-error.js';
import { HostTransfers, type TransferDirection } from './host-transfers.js';
import { TRANSFER_FILE_TYPES, TransferFiles } from './transfer-files.js';

export interface AgentCopyOptions {
  direction: TransferDirection;
  /** to-guest: the host file to send (read from); from-guest: the host file to fill. The caller owns it. */
  hostFd: number;
  /** to-guest: its size. */
  sizeBytes: number;
  /** from-guest: the most the guest agent may declare (a hostile agent cannot fill the host's disk). */
  maxBytes?: number;
  /** Absolute path in the guest. */
  guestPath: string;
  timeoutMs: number;
  /** How long to wait for the guest agent to come up (a VM that is still booting). Default 20 s. */
  agentWaitMs?: number;
  /** Cancels the copy (the client went away). */
  signal?: AbortSignal;
  onProgress?: (movedBytes: number, totalBytes: number) => void;
}

const statusText = (code: number): string => Object.values(STATUS).find((s) => s.code === code)?.text ?? `status ${code}`;

export interface AgentServiceOptions {
  native: VmgmtNative;
  log: CoreLogger;
  /** Default: the service's own. (The fuzz harness keeps one across a re-attached device's services.) */
  transfers?: HostTransfers;
}

export class AgentService implements MessageService {
  readonly name = 'agent';
  readonly modes = [MODE.AGENT];
  readonly types = TRANSFER_FILE_TYPES;
  readonly transfers: HostTransfers;
  private readonly files: TransferFiles;
  private host: ServiceHost | undefined;
  /** Channels the agent claimed, most recent last. */
  private readonly agentChannels: number[] = [];
  private readonly waiters = new Set<() => void>();
  private closed = false;

  constructor(opts: AgentServiceOptions) {
    this.transfers = opts.transfers ?? new HostTransfers();
    this.files = new TransferFiles({
      native: opts.native,
      transfers: this.transfers,
      onRefused: (type, status, reason) => {
        this.host?.counters.add('transfer_refusals');
        opts.log.info('agent file request refused', { type, status, reason });
      },
    });
  }

  attach(host: ServiceHost): void {
    this.host = host;
  }

  handle(request: Message, port: ChannelPort): Message | Promise<Message> {
    return this.files.handle(request, port);
  }

  channelClaimed(port: ChannelPort): void {
    this.forget(port.channel);
    this.agentChannels.push(port.channel);
    this.host?.counters.add('agent_claims');
    for (const wake of this.waiters) wake();
  }

  channelReset(channel: number): void {
    this.forget(channel);
    this.files.channelReset(channel);
  }

  private forget(channel: number): void {
    const at = this.agentChannels.indexOf(channel);
    if (at >= 0) this.agentChannels.splice(at, 1);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.files.close();
    for (const wake of this.waiters) wake();
  }

  get openFiles(): number {
    return this.files.openFiles;
  }

  /** Whether a guest agent holds a channel now, or comes up within waitMs; false when the device closes first. */
  async waitUntilUp(waitMs: number): Promise<boolean> {
    try {
      await this.agentPort(waitMs);
      return true;
    } catch (err) {
      if (err instanceof AgentError) return false;
      throw err;
    }
  }

  /** The port of the agent's channel, waiting up to waitMs for an agent that is still coming up. */
  private async agentPort(waitMs: number, signal?: AbortSignal): Promise<ChannelPort> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (this.closed) throw new AgentError('AGENT_UNAVAILABLE', 'the VM\'s device closed (the VM stopped)');
      const channel = this.agentChannels.at(-1);
      const port = channel === undefined ? undefined : this.host?.port(channel);
      if (port) return port;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new AgentError('AGENT_UNAVAILABLE', `no guest agent came up in this VM within ${waitMs} ms: start \`vmgmt-guest agent\` in the guest (the test image starts it at boot)`, { waitMs });
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
      if (signal?.aborted) throw new AgentError('CANCELLED', 'the copy was cancelled before the guest agent came up', {}, { cause: signal.reason });
    }
  }

  /**
   * A host request of another mode's on the agent's channel (EXEC_START: the agent forks an exec process),
   * waiting up to waitMs for an agent that is still coming up. Rejects with AgentError.
   */
  async hostRequest(type: number, payload: Uint8Array, opts: { waitMs: number; timeoutMs: number; signal?: AbortSignal }): Promise<Message> {
    const port = await this.agentPort(opts.waitMs, opts.signal);
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    try {
      return await port.request(type, payload, { signal: opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout });
    } catch (err) {
      if (timeout.aborted) throw new AgentError('TIMEOUT', `the guest agent did not answer within ${opts.timeoutMs} ms`, { timeoutMs: opts.timeoutMs }, { cause: err });
      if (opts.signal?.aborted) throw new AgentError('CANCELLED', 'the request was cancelled', {}, { cause: err });
      throw new AgentError('AGENT_UNAVAILABLE', `the guest agent went away: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  /** `vmgmt cp` in either direction. The transfer ends however the copy ends, before the caller closes its fd. */
  copy(opts: AgentCopyOptions): Promise<{ bytes: number }> {
    return this.transfer(MSG_TYPE.AGENT_COPY, opts);
  }

  /**
   * `vmgmt cp -r` from the guest: the agent writes the listing of the guest directory opts.guestPath
   * (vmgmt_dirent records, decoded and checked by agent-listing.ts) into hostFd, at most maxBytes of it.
   */
  list(opts: Omit<AgentCopyOptions, 'direction' | 'sizeBytes'> & { maxBytes: number }): Promise<{ bytes: number }> {
    return this.transfer(MSG_TYPE.AGENT_LIST, { ...opts, direction: 'from-guest', sizeBytes: 0 });
  }

  /** `vmgmt cp -r` to the guest: creates the guest directory (an existing one is fine). Rejects with AgentError. */
  async mkdir(guestPath: string, mode: number, opts: { waitMs: number; timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (!guestPath.startsWith('/')) throw new AgentError('INVALID_REQUEST', `guest path ${guestPath} must be absolute`, { guestPath });
    const path = new TextEncoder().encode(guestPath);
    const payload = new Uint8Array(AGENT_MKDIR_REQ.sizeBytes + path.byteLength);
    const dv = new DataView(payload.buffer);
    dv.setUint32(AGENT_MKDIR_REQ.offsets.mode, mode & 0o7777, true);
    dv.setUint32(AGENT_MKDIR_REQ.offsets.path_len, path.byteLength, true);
    payload.set(path, AGENT_MKDIR_REQ.sizeBytes);
    const answer = await this.hostRequest(MSG_TYPE.AGENT_MKDIR, payload, opts);
    if (answer.status === STATUS.EXISTS.code) {
      throw new AgentError('GUEST_REFUSED', `cannot make the guest directory ${guestPath}: something that is not a directory is there (status ${answer.status})`, { status: answer.status, guestPath });
    }
    if (answer.status !== 0) {
      throw new AgentError('GUEST_REFUSED', `the guest agent could not make the directory ${guestPath}: ${statusText(answer.status)} (status ${answer.status})`, { status: answer.status, guestPath });
    }
  }

  private async transfer(type: number, opts: AgentCopyOptions): Promise<{ bytes: number }> {
    if (!opts.guestPath.startsWith('/')) throw new AgentError('INVALID_REQUEST', `guest path ${opts.guestPath} must be absolute`, { guestPath: opts.guestPath });
    const port = await this.agentPort(opts.agentWaitMs ?? 20_000, opts.signal);
    const t = this.transfers.create({
      direction: opts.direction,
      fd: opts.hostFd,
      totalBytes: opts.sizeBytes,
      ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    let outcome = 'failed';
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    try {
      const encoded = encodeAgentCopy({ direction: opts.direction, hostPath: t.hostPath, guestPath: opts.guestPath }, port.slotSizeBytes);
      if (!encoded.ok) throw new AgentError('INVALID_REQUEST', encoded.reason, { guestPath: opts.guestPath });
      this.host?.counters.add(`copies_${opts.direction.replace('-', '_')}`);
      let answer: Message;
      try {
        answer = await port.request(type, encoded.payload, { signal: opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout });
      } catch (err) {
        if (timeout.aborted) {
          outcome = 'timed out';
          throw new AgentError('TIMEOUT', `the guest agent did not finish copying ${opts.guestPath} within ${opts.timeoutMs} ms`, { timeoutMs: opts.timeoutMs }, { cause: err });
        }
        if (opts.signal?.aborted) {
          outcome = 'cancelled';
          throw new AgentError('CANCELLED', `the copy of ${opts.guestPath} was cancelled`, {}, { cause: err });
        }
        if (err instanceof CoreRequestError && err.code === 'CLOSED') {
          throw new AgentError('AGENT_UNAVAILABLE', `${err.message} during the copy of ${opts.guestPath}`, {}, { cause: err });
        }
        throw new AgentError('AGENT_UNAVAILABLE', `the guest agent went away during the copy: ${(err as Error).message}`, {}, { cause: err });
      }
      if (opts.direction === 'from-guest' && answer.status === STATUS.FILE_TOO_LARGE.code) {
        throw new AgentError(
          'GUEST_REFUSED',
          `${opts.guestPath} is larger than the host takes: at most ${t.maxBytes} bytes (the daemon's largest pull, or what its transfer directory has free)`,
          { status: answer.status, maxBytes: t.maxBytes },
        );
      }
      if (answer.status === STATUS.GUEST_NO_SPACE.code) {
        throw new AgentError('GUEST_REFUSED', `the guest is out of space at ${opts.guestPath} (status ${answer.status}): free space in the guest, or copy somewhere else`, { status: answer.status });
      }
      if (answer.status === STATUS.HOST_NO_SPACE.code) {
        throw new AgentError('GUEST_REFUSED', `the host file system under the daemon's transfer directory is full while copying ${opts.guestPath} (status ${answer.status})`, { status: answer.status });
      }
      if (answer.status !== 0) {
        throw new AgentError('GUEST_REFUSED', `the guest agent could not copy ${opts.guestPath}: ${statusText(answer.status)} (status ${answer.status})`, { status: answer.status });
      }
      if (opts.direction === 'from-guest' && !t.committed) {
        throw new AgentError('GUEST_REFUSED', `the guest agent reported success but never committed ${opts.guestPath}`);
      }
      outcome = 'done';
      this.host?.counters.add('copy_bytes', t.movedBytes);
      return { bytes: t.movedBytes };
    } finally {
      if (outcome !== 'done') this.host?.counters.add('copies_failed');
      // Before the caller closes hostFd: from here no guest handle reaches it.
      this.transfers.end(t, `copy ${outcome}`);
    }
  }
}
