// The chat mode's one error type: a closed set of codes (each the refusal a guest sees as a STATUS), the
// offending values, and the cause. Host-side API calls throw it; routing returns ChatRefusal results.
import { STATUS } from '../../layout/wire-layout.js';

/** Every way a chat operation is refused; each maps to one CHAT_* status the guest driver prints in words. */
export type ChatRefusalCode =
  | 'BAD_NAME'
  | 'NAME_TAKEN'
  | 'TOO_MANY_NAMES'
  | 'NO_PEER'
  | 'NOT_ALLOWED'
  | 'QUEUE_FULL'
  | 'TOO_LARGE'
  | 'TIMED_OUT'
  | 'NO_CALL'
  | 'PEER_GONE'
  /** Cluster mode: the peer's host cannot be reached (cut off, or the broker is down). */
  | 'UNREACHABLE';

export interface ChatRefusal {
  ok: false;
  code: ChatRefusalCode;
  reason: string;
}

export const refuse = (code: ChatRefusalCode, reason: string): ChatRefusal => ({ ok: false, code, reason });

/** The wire status of a refusal. */
export function refusalStatus(code: ChatRefusalCode): number {
  return STATUS[`CHAT_${code}`].code;
}

export class ChatError extends Error {
  override readonly name = 'ChatError';
  constructor(
    readonly code: ChatRefusalCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static from(r: ChatRefusal, details: Record<string, unknown> = {}): ChatError {
    return new ChatError(r.code, r.reason, details);
  }
}
