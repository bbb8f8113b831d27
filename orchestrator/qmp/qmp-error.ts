import { CodedError } from '../../device-backend/errors/coded-error.js';

export type QmpErrorCode =
  | 'CONNECT_TIMEOUT'
  | 'CONNECT_FAILED'
  | 'GREETING'
  | 'COMMAND_TIMEOUT'
  | 'COMMAND_FAILED'
  | 'EVENT_TIMEOUT'
  | 'DISCONNECTED'
  | 'PROTOCOL';

/** The offending values behind a QmpError; which fields are set depends on the code. */
export interface QmpErrorDetails {
  socketPath?: string;
  command?: string;
  /** QMP error class from QEMU's reply, e.g. "GenericError", "CommandNotFound". */
  qmpClass?: string;
  /** QEMU's own description of why the command failed. */
  qmpDesc?: string;
  timeoutMs?: number;
  event?: string;
  /** Offending text received from the server (truncated). */
  received?: string;
}

export class QmpError extends CodedError<QmpErrorCode, QmpErrorDetails> {
  override readonly name = 'QmpError';
}
