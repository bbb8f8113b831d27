// The exec service's one error type: a closed set of codes, the offending values, and the cause.
import { CodedError } from '../../errors/coded-error.js';

export type ExecErrorCode =
  /** No guest agent, or it went away before the exec process attached. */
  | 'AGENT_UNAVAILABLE'
  /** The agent could not start an exec process, or the guest broke the exec protocol. */
  | 'GUEST_REFUSED'
  /** The exec process in the guest went away (its channel was reset) before the command's exit came. */
  | 'GUEST_GONE'
  /** The command line does not fit (argv, env, cwd). */
  | 'INVALID_REQUEST'
  /** The VM's device closed (the VM stopped). */
  | 'CLOSED';

export class ExecError extends CodedError<ExecErrorCode> {
  override readonly name = 'ExecError';
}
