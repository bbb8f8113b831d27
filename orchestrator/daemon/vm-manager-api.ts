// What the control API needs from the daemon's VM manager. The API layer parses and validates, then
// calls these; they throw VmgmtError.
import type { GuestTree } from './guest-tree.js';
import type { AgentUpdateResult, ChatMessageEventData, ChatPeer, ChatPolicyCheck, ChatSendResult, HostInfo, LogSource, StatsList, VmDetails, VmStateName, VmStats, VmSummary } from '../api/api-contract.js';
import type { VmDefinition } from './vm-definition.js';
import type { ExecOptions, ExecResult } from '../../device-backend/services/exec/exec-service.js';

// The answers are the API contract's shapes (orchestrator/api/api-contract.ts), named here for the daemon.
export { VM_STATES } from '../api/api-contract.js';
export type { HostInfo, LogSource, StatsList, VmStats, VmDetails, VmDeviceInfo, VmExitInfo, VmPaths, VmStateName, VmSummary } from '../api/api-contract.js';

export interface VmManagerApi {
  create(definition: VmDefinition): Promise<VmDetails>;
  list(): VmSummary[];
  inspect(name: string): VmDetails;
  start(name: string): Promise<VmDetails>;
  /** ACPI power button, then `quit` after the definition's deadline (or timeoutMs), then SIGKILL; `quit` at once when the guest has not enabled the button yet (still booting). */
  stop(name: string, opts?: { timeoutMs?: number }): Promise<VmDetails>;
  kill(name: string): Promise<VmDetails>;
  /**
   * Runs a command in the guest through its agent (`vmgmt vm exec`): output goes to opts.io as it comes,
   * each chunk taken only once the consumer has it. Refused at once ("vm NAME is paused") unless running.
   */
  exec(name: string, opts: ExecOptions): Promise<ExecResult>;
  /** QMP stop / cont; refused unless running / paused. */
  pause(name: string): Promise<VmDetails>;
  resume(name: string): Promise<VmDetails>;
  /** Refuses a VM that is not stopped, crashed or defined unless force (which kills it first). */
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  /** The log's last tailBytes (default 64 KiB), or what it holds from fromByte on; endByte: where the text ends. */
  logs(name: string, opts: { source: LogSource; tailBytes?: number; fromByte?: number }): Promise<LogChunk>;
  /** Replaces the definition of a VM that is not active (defined, stopped, crashed), checked as at create. */
  update(name: string, definition: VmDefinition): Promise<VmDetails>;
  /** What the daemon decided about this host: the KVM self-probe's cache. */
  host(): Promise<HostInfo>;
  /** Copies a host file (an fd the caller opened) to an absolute guest path through the guest agent. */
  copyToGuest(name: string, opts: HostCopyOptions & { sizeBytes: number }): Promise<{ bytes: number }>;
  /**
   * Copies an absolute guest path into a host file (an fd the caller opened for writing) through the agent;
   * a guest file larger than maxBytes is refused before any byte moves.
   */
  copyFromGuest(name: string, opts: HostCopyOptions & { maxBytes: number }): Promise<{ bytes: number }>;
  /** `vmgmt cp -r` from a VM: the guest tree under guestPath, every name checked, within transfers.maxTree*. */
  listGuestTree(name: string, guestPath: string): Promise<GuestTree>;
  /** `vmgmt cp -r` to a VM: makes a guest directory (an existing one is fine). */
  makeGuestDir(name: string, guestPath: string, mode: number): Promise<void>;
  /** The VM's stats series (newest `limit` samples, default 60), host figures and CPU share. */
  stats(name: string, opts?: { limit?: number }): VmStats;
  /** Every VM with its newest sample. */
  statsAll(): StatsList;
  /**
   * Replaces the running guest agent with a new vmgmt-guest in place (docs/decisions/driver-update.md):
   * binary is a host path (default: the daemon's own build of guest-driver/). Throws VmgmtError:
   * INVALID_REQUEST (not a vmgmt-guest), GUEST_REFUSED (details.outcome refused or rolled-back), TIMEOUT,
   * AGENT_UNAVAILABLE, INVALID_STATE (not running, or an update in progress).
   */
  agentUpdate(name: string, opts: { binary?: string; sha256?: string; reportInMs?: number; probationMs?: number }): Promise<AgentUpdateResult>;
}

export interface LogChunk {
  text: string;
  /** The byte offset in the log just past `text`. */
  endByte: number;
  /** The VM's state when the log was read (read before it: a VM stopped then has its whole log in it). */
  vmState: VmStateName;
  /** When the on-failure policy restarts the crashed VM (ISO time), or null: `vm logs -f` follows on. */
  restartAt: string | null;
}

export interface HostCopyOptions {
  guestPath: string;
  hostFd: number;
  timeoutMs?: number;
  onProgress?: (movedBytes: number, totalBytes: number) => void;
}

/**
 * What the control API needs from the daemon's chat hub: the host side of chat (docs/protocol.md §2.5.5).
 * Sends and calls go as `host` unless `as` names a host-side name an event stream holds. Throws VmgmtError:
 * NOT_FOUND (no such peer, call or VM), CHAT_REFUSED (details.refusal: the chat code), TIMEOUT (a call),
 * ALREADY_EXISTS (a name held), INVALID_REQUEST (a bad name).
 */
export interface ChatApi {
  /** Every name the host may talk to. */
  peers(): ChatPeer[];
  send(o: { to: string; data: Uint8Array; as?: string }): Promise<ChatSendResult>;
  call(o: { to: string; data: Uint8Array; timeoutMs: number; as?: string }): Promise<{ to: string; status: number; data: Uint8Array }>;
  /** Answers call callId delivered to the host-side name `as`. */
  reply(o: { as: string; callId: number; status: number; data: Uint8Array }): void;
  /** Which rule decides whether FROM may reach TO, and why (see chatPolicyQuerySchema for the forms). */
  policyCheck(from: string, to: string): ChatPolicyCheck;
  /**
   * Registers a host-side name while an event stream holds it; what is sent to it goes to onMessage, which
   * returns false when the stream cannot take it (the sender is refused QUEUE_FULL).
   */
  listen(name: string, onMessage: (message: ChatMessageEventData) => boolean): { close(): void };
}
