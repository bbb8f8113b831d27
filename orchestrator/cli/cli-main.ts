// `vmgmt` as a function: argv and streams in, exit code out, so tests run it in-process. The client commands
// know the daemon only through the API contract (orchestrator/api/api-contract.ts); `vmgmt daemon` loads the
// daemon's code when it is asked to run it.
import { ApiError, createApiClient, DaemonUnavailableError } from './api-client.js';
import { parseCli, type ChatCommand, type CliCommand } from './cli-args.js';
import { runVmCommand, type CommandContext } from './cli-commands.js';
import { CliError } from './cli-error.js';
import { formatErrorLines } from './cli-format.js';
import type { ConsoleStdin } from './console-attach.js';
import { EXIT, exitCodeFor, type ExitCode } from './exit-codes.js';
import { HELP_TEXT } from './help-text.js';

export type RunDaemon = (opts: { configPath?: string; stateDir?: string; runtimeDir?: string; socketPath?: string }) => Promise<void>;

export interface CliIo {
  stdin: ConsoleStdin;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
  nowMs?: () => number;
  /** Where `vmgmt daemon` gets runDaemon; default: ../daemon/run-daemon.js. */
  loadRunDaemon?: () => Promise<RunDaemon>;
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const parsed = parseCli(argv, io.env);
  const json = parsed.globals.json;
  if (!parsed.ok) {
    return report(io, json, {
      code: 'USAGE',
      message: parsed.message,
      details: {},
      exitCode: EXIT.USAGE,
      hint: 'run `vmgmt --help` for usage',
    }, parsed.group === 'cp' ? 'event' : 'document');
  }
  const { command, globals } = parsed;
  try {
    if (command.kind === 'help') {
      io.stdout.write(HELP_TEXT);
      return EXIT.OK;
    }
    if (command.kind === 'daemon') return await runDaemonCommand(command, io);
    const ctx: CommandContext = {
      client: createApiClient({ socketPath: globals.socketPath }),
      json,
      stdin: io.stdin,
      stdout: io.stdout,
      stderr: io.stderr,
      nowMs: io.nowMs ?? Date.now,
    };
    // Loaded when used: a CLI call that does little (vm ls) does not pay for the copy and chat code.
    if (command.kind === 'cp') return await (await import('./cp-command.js')).runCpCommand(command, ctx);
    if (command.kind.startsWith('chat-')) return await (await import('./chat-command.js')).runChatCommand(command as ChatCommand, ctx);
    return await runVmCommand(command as Exclude<CliCommand, ChatCommand | { kind: 'help' | 'daemon' | 'cp' }>, ctx);
  } catch (err) {
    // `vmgmt cp --json` prints NDJSON events, so its error is one more event line.
    return report(io, json, describeError(err), command.kind === 'cp' ? 'event' : 'document');
  }
}

async function runDaemonCommand(command: CliCommand & { kind: 'daemon' }, io: CliIo): Promise<ExitCode> {
  const runDaemon = await (io.loadRunDaemon ?? importRunDaemon)();
  const { kind: _kind, ...opts } = command;
  await runDaemon(opts);
  return EXIT.OK;
}

async function importRunDaemon(): Promise<RunDaemon> {
  try {
    return (await import('../daemon/run-daemon.js')).runDaemon;
  } catch (err) {
    throw new CliError('DAEMON_NOT_BUILT', `cannot load the daemon: ${(err as Error).message}: run \`make build\``, {}, { cause: err });
  }
}

/**
 * An error the daemon threw while starting (VmgmtError: bad config file, socket in use), known by its
 * shape so the CLI needs none of the daemon's modules to report it.
 */
function isDaemonError(err: unknown): err is Error & { code: string; details: Record<string, unknown> } {
  if (!(err instanceof Error) || err.name !== 'VmgmtError') return false;
  const { code, details } = err as Error & { code?: unknown; details?: unknown };
  return typeof code === 'string' && typeof details === 'object' && details !== null;
}

interface Failure {
  code: string;
  message: string;
  details: Record<string, unknown>;
  exitCode: ExitCode;
  hint?: string;
}

export function describeError(err: unknown): Failure {
  if (err instanceof DaemonUnavailableError) {
    if (err.notRunning) {
      const where = err.reason === 'no-socket' ? `no socket at ${err.socketPath}` : `nothing is listening on ${err.socketPath}`;
      return {
        code: 'DAEMON_NOT_RUNNING',
        message: `the daemon is not running (${where}): start it with \`vmgmt daemon\` or \`systemctl start vmgmt\``,
        details: { socketPath: err.socketPath, reason: err.reason },
        exitCode: EXIT.DAEMON_NOT_RUNNING,
      };
    }
    return { code: 'DAEMON_UNREACHABLE', message: err.message, details: { socketPath: err.socketPath, reason: err.reason }, exitCode: EXIT.ERROR };
  }
  if (err instanceof ApiError) return { code: err.code, message: err.message, details: err.details, exitCode: exitCodeFor(err.code) };
  if (err instanceof CliError) return { code: err.code, message: err.message, details: err.details, exitCode: err.exitCode };
  if (isDaemonError(err)) return { code: err.code, message: err.message, details: err.details, exitCode: exitCodeFor(err.code) };
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'INTERNAL', message: `unexpected failure: ${message}`, details: {}, exitCode: EXIT.ERROR };
}

function report(io: CliIo, json: boolean, failure: Failure, jsonStyle: 'document' | 'event' = 'document'): ExitCode {
  if (json && jsonStyle === 'event') {
    io.stdout.write(JSON.stringify({ event: 'error', code: failure.code, message: failure.message, details: failure.details }) + '\n');
  } else if (json) {
    io.stdout.write(JSON.stringify({ code: failure.code, message: failure.message, details: failure.details }, null, 2) + '\n');
  } else {
    io.stderr.write(formatErrorLines(failure.message, failure.details));
    if (failure.hint) io.stderr.write(`${failure.hint}\n`);
  }
  return failure.exitCode;
}
