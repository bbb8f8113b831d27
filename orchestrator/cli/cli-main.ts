// `vmgmt` as a function: argv and streams in, exit code out, so tests run it in-process. The client commands
// know the daemon only through the API contract (orchestrator/api/api-contract.ts); `vmgmt daemon` loads the
// daemon's code when it is asked to run it.
import { writeFileSync } from 'node:fs';
import { ApiError, createApiClient, DaemonUnavailableError } from './api-client.js';
import { parseCli, type ChatCommand, type CliCommand, type ObserveCommand } from './cli-args.js';
import { runVmCommand, type CommandContext } from './cli-commands.js';
import { CliError } from './cli-error.js';
import { formatErrorLines } from './cli-format.js';
import type { ConsoleStdin } from './console-attach.js';
import { EXIT, exitCodeFor, type ExitCode } from './exit-codes.js';
import { bashCompletionScript } from './completion-bash.js';
import { helpFor } from './help-text.js';

export type RunDaemon = (opts: { configPath?: string; stateDir?: string; runtimeDir?: string; socketPath?: string; cluster?: string }) => Promise<void>;

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
      hint: `run \`vmgmt ${parsed.helpFor ? `${parsed.helpFor} ` : ''}--help\` for usage`,
    }, parsed.group === 'cp' ? 'event' : 'document');
  }
  const { command, globals } = parsed;
  try {
    if (command.kind === 'help') {
      const page = helpFor(command.words);
      if (!page.ok) throw new CliError('USAGE', page.message, { words: command.words });
      io.stdout.write(page.text);
      return EXIT.OK;
    }
    if (command.kind === 'completion') {
      io.stdout.write(bashCompletionScript());
      return EXIT.OK;
    }
    if (command.kind === 'daemon') return await runDaemonCommand(command, io);
    if (command.kind === 'cluster-keygen') return await clusterKeygen(command.file, io, json);
    const ctx: CommandContext = {
      client: createApiClient({ socketPath: globals.socketPath }),
      json,
      stdin: io.stdin,
      stdout: io.stdout,
      stderr: io.stderr,
      nowMs: io.nowMs ?? Date.now,
      env: io.env,
    };
    // Loaded when used: a CLI call that does little (vm ls) does not pay for the copy, chat, exec and observe code.
    if (command.kind === 'cp') return await (await import('./cp-command.js')).runCpCommand(command, ctx);
    if (command.kind === 'vm-exec') return await (await import('./exec-command.js')).runExecCommand(command, { ...ctx, socketPath: globals.socketPath });
    if (command.kind.startsWith('chat-')) return await (await import('./chat-command.js')).runChatCommand(command as ChatCommand, ctx);
    if (command.kind === 'events' || command.kind === 'dashboard' || command.kind === 'top') return await (await import('./observe-command.js')).runObserveCommand(command, ctx);
    return await runVmCommand(command as Exclude<CliCommand, ChatCommand | ObserveCommand | { kind: 'help' | 'daemon' | 'cp' | 'completion' | 'vm-exec' | 'cluster-keygen' }>, ctx);
  } catch (err) {
    // `vmgmt cp --json` prints NDJSON events, so its error is one more event line.
    return report(io, json, describeError(err), command.kind === 'cp' ? 'event' : 'document');
  }
}

/** `vmgmt cluster keygen FILE`: a new NATS user nkey; the seed to FILE (0600, never overwritten), the public key printed for the broker's users. */
async function clusterKeygen(file: string, io: CliIo, json: boolean): Promise<ExitCode> {
  // Loaded here: every other command starts without the NATS client.
  const { nkeys } = await import('nats');
  const user = nkeys.createUser();
  try {
    writeFileSync(file, `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new CliError('FILE_UNWRITABLE', `cannot write ${file}: ${(err as Error).message} (an existing file is never overwritten)`, { file }, { cause: err });
  }
  const publicKey = user.getPublicKey();
  io.stdout.write(json ? `${JSON.stringify({ file, publicKey })}\n` : `${publicKey}\n`);
  return EXIT.OK;
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
