// What the control API answers, and the mapping from a thrown error to an answer. No I/O. The shapes of
// the bodies are the contract's (api-contract.ts).
import { VmgmtError } from '../daemon/vmgmt-error.js';
import { HTTP_STATUS, isErrorCode, type ErrorCode } from './api-contract.js';

/** The body of every error answer (errorBodySchema in the contract). */
export interface ApiErrorBody {
  code: ErrorCode;
  message: string;
  details: Record<string, unknown>;
}

export type ApiResponse =
  | { status: number; kind: 'json'; body: unknown; headers?: Record<string, string> }
  | { status: number; kind: 'text'; body: string; headers?: Record<string, string> }
  | { status: 204; kind: 'empty' };

export function jsonResponse(status: number, body: unknown, headers?: Record<string, string>): ApiResponse {
  return headers ? { status, kind: 'json', body, headers } : { status, kind: 'json', body };
}

/** An error answer whose status is not the code's default (404 route, 405, 413). */
export function errorResponse(
  status: number,
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  headers?: Record<string, string>,
): ApiResponse {
  const body: ApiErrorBody = { code, message, details };
  return jsonResponse(status, body, headers);
}

export interface MappedError {
  response: ApiResponse;
  /** True for anything but a VmgmtError the manager meant to throw: the server logs these with the stack. */
  unexpected: boolean;
}

/** VmgmtError → its HTTP_STATUS and body; anything else → 500 INTERNAL with the message. */
export function errorToResponse(err: unknown): MappedError {
  if (err instanceof VmgmtError && isErrorCode(err.code)) {
    return {
      response: errorResponse(HTTP_STATUS[err.code], err.code, err.message, err.details),
      unexpected: err.code === 'INTERNAL',
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : typeof err;
  return {
    response: errorResponse(500, 'INTERNAL', `internal error in the daemon: ${message}`, { error: name }),
    unexpected: true,
  };
}

/**
 * JSON text for a body; details that cannot be serialised (bigint, cycles) are replaced by a note rather
 * than turning an error answer into a second failure.
 */
export function serializeJson(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    if (isErrorBody(body)) {
      return JSON.stringify({
        code: body.code,
        message: body.message,
        details: { unserializable: `details could not be serialised: ${(err as Error).message}` },
      });
    }
    throw err;
  }
}

function isErrorBody(body: unknown): body is ApiErrorBody {
  return typeof body === 'object' && body !== null && 'code' in body && 'message' in body;
}
