import { CodedError } from '../../device-backend/errors/coded-error.js';

export type QemuErrorCode =
  /** The VM spec cannot be turned into a QEMU command line. */
  | 'INVALID_SPEC'
  /** The QEMU binary could not be spawned at all (missing binary, run dir not writable). */
  | 'SPAWN_FAILED'
  /** QEMU exited before its QMP monitor answered; `logTail` holds QEMU's own explanation. */
  | 'EXITED_DURING_START'
  /** QEMU kept running but its QMP monitor did not answer in time. */
  | 'START_TIMEOUT'
  /** The KVM self-probe could not be carried out (not: KVM does not work, which yields 'tcg'). */
  | 'PROBE_FAILED';

export interface QemuErrorDetails {
  field?: string;
  value?: unknown;
  binary?: string;
  logPath?: string;
  /** Last lines of qemu.log. */
  logTail?: string;
  exitCode?: number | null;
  signal?: string | null;
  timeoutMs?: number;
}

export class QemuError extends CodedError<QemuErrorCode, QemuErrorDetails> {
  override readonly name = 'QemuError';
}
