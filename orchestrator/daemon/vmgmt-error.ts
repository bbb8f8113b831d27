// The daemon's one error type: a closed set of codes, the offending values, and the cause.

export type VmgmtErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_DEFINITION'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'INVALID_STATE'
  | 'TIMEOUT'
  | 'QEMU_FAILED'
  | 'AGENT_UNAVAILABLE'
  | 'GUEST_REFUSED'
  | 'INTERNAL';

export class VmgmtError extends Error {
  override readonly name = 'VmgmtError';
  constructor(
    readonly code: VmgmtErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** HTTP status for each code, used by the control API. */
export const HTTP_STATUS: Readonly<Record<VmgmtErrorCode, number>> = {
  INVALID_REQUEST: 400,
  INVALID_DEFINITION: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  INVALID_STATE: 409,
  TIMEOUT: 504,
  QEMU_FAILED: 502,
  AGENT_UNAVAILABLE: 503,
  GUEST_REFUSED: 422,
  INTERNAL: 500,
};
