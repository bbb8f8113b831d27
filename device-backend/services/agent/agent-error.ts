// The agent service's one error type: a closed set of codes, the offending values, and the cause.
export type AgentErrorCode = 'AGENT_UNAVAILABLE' | 'TIMEOUT' | 'CANCELLED' | 'GUEST_REFUSED' | 'INVALID_REQUEST';

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
