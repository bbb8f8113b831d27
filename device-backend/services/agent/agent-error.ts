// The agent service's one error type: a closed set of codes, the offending values, and the cause.
import { CodedError } from '../../errors/coded-error.js';

export type AgentErrorCode = 'AGENT_UNAVAILABLE' | 'TIMEOUT' | 'CANCELLED' | 'GUEST_REFUSED' | 'INVALID_REQUEST';

export class AgentError extends CodedError<AgentErrorCode> {
  override readonly name = 'AgentError';
}
