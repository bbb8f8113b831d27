// What `vmgmt` exits with. Scripts may rely on these: they are documented in README.md and `vmgmt --help`.

export const EXIT = {
  OK: 0,
  /** An error from the daemon not covered below, or a local failure. */
  ERROR: 1,
  USAGE: 2,
  /** No socket at the path, or nothing listening on it. */
  DAEMON_NOT_RUNNING: 3,
  NOT_FOUND: 4,
  /** The VM already exists, or is in a state that does not allow the request. */
  CONFLICT: 5,
  INVALID_DEFINITION: 6,
  TIMEOUT: 7,
  /** The chat hub refused (policy, queue full, too large, peer gone), a callee answered non-zero, or a policy check says denied. */
  REFUSED: 8,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit code for an error code from the daemon (VmgmtErrorCode) or the CLI itself. */
export function exitCodeFor(code: string): ExitCode {
  switch (code) {
    case 'NOT_FOUND':
      return EXIT.NOT_FOUND;
    case 'ALREADY_EXISTS':
    case 'INVALID_STATE':
      return EXIT.CONFLICT;
    case 'INVALID_DEFINITION':
      return EXIT.INVALID_DEFINITION;
    case 'TIMEOUT':
      return EXIT.TIMEOUT;
    case 'CHAT_REFUSED':
      return EXIT.REFUSED;
    case 'USAGE':
      return EXIT.USAGE;
    case 'DAEMON_NOT_RUNNING':
      return EXIT.DAEMON_NOT_RUNNING;
    default:
      return EXIT.ERROR;
  }
}
