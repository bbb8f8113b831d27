// Failures the CLI finds on its own side (bad arguments, unreadable files, no console): a closed code set,
// each with the exit code it ends the command with.
import { CodedError } from '../../device-backend/errors/coded-error.js';
import { EXIT, type ExitCode } from './exit-codes.js';

export type CliErrorCode =
  | 'USAGE'
  | 'FILE_UNREADABLE'
  | 'FILE_UNWRITABLE'
  | 'INVALID_DEFINITION'
  | 'CONSOLE_UNAVAILABLE'
  | 'DAEMON_NOT_BUILT'
  /** The daemon's streamed answer (vm exec) broke its framing or ended without the command's exit. */
  | 'BAD_RESPONSE';

const EXIT_FOR: Readonly<Record<CliErrorCode, ExitCode>> = {
  USAGE: EXIT.USAGE,
  FILE_UNREADABLE: EXIT.ERROR,
  FILE_UNWRITABLE: EXIT.ERROR,
  INVALID_DEFINITION: EXIT.INVALID_DEFINITION,
  CONSOLE_UNAVAILABLE: EXIT.CONFLICT,
  DAEMON_NOT_BUILT: EXIT.ERROR,
  BAD_RESPONSE: EXIT.ERROR,
};

export class CliError extends CodedError<CliErrorCode> {
  override readonly name = 'CliError';
  get exitCode(): ExitCode {
    return EXIT_FOR[this.code];
  }
}
