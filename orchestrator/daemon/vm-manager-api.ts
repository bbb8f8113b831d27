// What the control API needs from the daemon's VM manager. The API layer parses and validates, then
// calls these; they throw VmgmtError.
import type { VmDefinition } from './vm-definition.js';

export const VM_STATES = ['defined', 'starting', 'running', 'paused', 'stopping', 'stopped', 'crashed'] as const;
export type VmStateName = (typeof VM_STATES)[number];

export interface VmExitInfo {
  /** Null when the daemon was not running when QEMU ended: "exit status unknown". */
  exitCode: number | null;
  signal: string | null;
  at: string;
  reason: string;
}

export interface VmSummary {
  name: string;
  uuid: string;
  state: VmStateName;
  pid: number | null;
  accel: 'tcg' | 'kvm' | null;
  startedAt: string | null;
  restarts: number;
  lastExit: VmExitInfo | null;
}

export interface VmPaths {
  runDir: string;
  qmpSocket: string;
  consoleSocket: string;
  consoleLog: string;
  qemuLog: string;
  controlSocket: string;
  ivshmemSocket: string;
}

export interface VmDeviceInfo {
  attached: boolean;
  /** 'fresh' when the region was created by this daemon process, 'reattached' after a daemon restart. */
  origin: 'fresh' | 'reattached';
  regionSizeBytes: number;
  messages: number;
  protocolErrors: number;
  doorbells: number;
}

export interface VmDetails extends VmSummary {
  definition: VmDefinition;
  paths: VmPaths;
  device: VmDeviceInfo | null;
  stateReason: string;
}

export type LogSource = 'console' | 'qemu' | 'daemon';

export interface VmManagerApi {
  create(definition: VmDefinition): Promise<VmDetails>;
  list(): VmSummary[];
  inspect(name: string): VmDetails;
  start(name: string): Promise<VmDetails>;
  /** ACPI power button, then `quit` after the definition's deadline (or timeoutMs), then SIGKILL. */
  stop(name: string, opts?: { timeoutMs?: number }): Promise<VmDetails>;
  kill(name: string): Promise<VmDetails>;
  /** Refuses a VM that is not stopped, crashed or defined unless force (which kills it first). */
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  logs(name: string, opts: { source: LogSource; tailBytes?: number }): Promise<string>;
  /** Copies a host file (an fd the caller opened) to an absolute guest path through the guest agent. */
  copyToGuest(name: string, opts: HostCopyOptions & { sizeBytes: number }): Promise<{ bytes: number }>;
  /**
   * Copies an absolute guest path into a host file (an fd the caller opened for writing) through the agent;
   * a guest file larger than maxBytes is refused before any byte moves.
   */
  copyFromGuest(name: string, opts: HostCopyOptions & { maxBytes: number }): Promise<{ bytes: number }>;
}

export interface HostCopyOptions {
  guestPath: string;
  hostFd: number;
  timeoutMs?: number;
  onProgress?: (movedBytes: number, totalBytes: number) => void;
}
