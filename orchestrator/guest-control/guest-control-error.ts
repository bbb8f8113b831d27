import { CodedError } from '../../device-backend/errors/coded-error.js';

export type GuestControlErrorCode =
  /** The control socket never accepted a connection, or the guest never answered waitReady. */
  | 'CONNECT_TIMEOUT'
  /** No answer to a command in time. The guest may still be running it; later commands queue behind it. */
  | 'COMMAND_TIMEOUT'
  /** The socket closed (QEMU exited or close() was called). Reconnecting needs a new client. */
  | 'DISCONNECTED'
  /** The guest answered with a damaged or rejected frame. */
  | 'PROTOCOL';

/** The offending values behind a GuestControlError; which fields are set depends on the code. */
export interface GuestControlErrorDetails {
  socketPath?: string;
  commandId?: string;
  /** The command text, truncated to 200 characters. */
  command?: string;
  timeoutMs?: number;
  /** What the guest or the parser said about a damaged frame. */
  reason?: string;
}

export class GuestControlError extends CodedError<GuestControlErrorCode, GuestControlErrorDetails> {
  override readonly name = 'GuestControlError';
}
