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

export class GuestControlError extends Error {
  override readonly name = 'GuestControlError';
  readonly code: GuestControlErrorCode;
  readonly details: GuestControlErrorDetails;

  constructor(
    code: GuestControlErrorCode,
    message: string,
    details: GuestControlErrorDetails = {},
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = details;
  }
}
