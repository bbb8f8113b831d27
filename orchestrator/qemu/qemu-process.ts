// Launches one QEMU in its own session (it survives a daemon restart), with stdout/stderr appended to
// <runDir>/qemu.log, and hands back its QMP connection.
import { closeSync, openSync, writeSync } from 'node:fs';
import { lstat, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { QmpClient } from '../qmp/qmp-client.js';
import { buildQemuArgs, type QemuVmSpec } from './qemu-args.js';
import { QemuError } from './qemu-error.js';
import { readLogTail } from './qemu-log.js';

export const QEMU_DEFAULT_BINARY = 'qemu-system-x86_64';
export const QEMU_DEFAULT_START_TIMEOUT_MS = 15_000;
export const QEMU_DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;
/** After the QMP handshake fails, how long to wait for QEMU's exit to tell "QEMU died" from "QEMU hangs". */
const EXIT_GRACE_MS = 2_000;

export interface QemuExit {
  exitCode: number | null;
  signal: string | null;
}

export interface QemuProcess {
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly logPath: string;
  readonly exited: Promise<QemuExit>;
  /** `quit` over QMP; SIGKILL if not exited by the timeout (default 5 s); then removes the VM's sockets. */
  shutdown(opts?: { timeoutMs?: number }): Promise<void>;
  /** SIGKILL, wait for the exit, remove the VM's sockets. */
  kill(): Promise<void>;
  /** Lets go of QEMU without stopping it (daemon shutdown): closes QMP, stops watching the process. */
  release(): void;
}

export interface QemuStartOptions {
  runDir: string;
  /** Where QEMU's own stdout/stderr go; default <runDir>/qemu.log. */
  logPath?: string;
  binary?: string;
  /** Time for QEMU to create its QMP socket and answer the handshake. Default 15 s. */
  startTimeoutMs?: number;
}

export async function startQemu(spec: QemuVmSpec, opts: QemuStartOptions): Promise<QemuProcess> {
  const args = buildQemuArgs(spec);
  const binary = opts.binary ?? QEMU_DEFAULT_BINARY;
  const startTimeoutMs = opts.startTimeoutMs ?? QEMU_DEFAULT_START_TIMEOUT_MS;
  const logPath = opts.logPath ?? join(opts.runDir, 'qemu.log');
  const sockets = [spec.qmpSocketPath, spec.controlSocketPath, spec.consoleSocketPath].filter((p): p is string => p !== undefined);

  await mkdir(opts.runDir, { recursive: true });
  for (const path of sockets) await removeStaleSocket(path);

  const logFd = openSync(logPath, 'a');
  let subprocess;
  let logOffset: number;
  try {
    writeSync(logFd, `=== vmgmt: ${new Date().toISOString()} starting ${binary} ${args.map(quoteArg).join(' ')}\n`);
    logOffset = (await stat(logPath)).size;
    // An fd (not execa's {file}) so QEMU writes the log itself, with no pipe through this process.
    // execa's types only list the literals 3..9 for fd numbers; any open fd works at run time.
    const logStdio = logFd as 3;
    subprocess = execa(binary, args, {
      detached: true,
      cleanup: false,
      stdin: 'ignore',
      stdout: logStdio,
      stderr: logStdio,
      reject: false,
    });
  } finally {
    closeSync(logFd);
  }

  const exited: Promise<QemuExit> = subprocess.then((result) => ({
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
  }));
  const pid = subprocess.pid;
  if (pid === undefined) {
    const result = await subprocess;
    throw new QemuError(
      'SPAWN_FAILED',
      `cannot spawn ${binary}: ${result.shortMessage}; is qemu-system-x86 installed (apt-get install qemu-system-x86)?`,
      { binary, logPath },
      { cause: result.cause },
    );
  }

  let hasExited = false;
  const abort = new AbortController();
  void exited.then(() => {
    hasExited = true;
    abort.abort(new Error(`QEMU (pid ${pid}) exited during start`));
  });

  const killGroup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };

  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(spec.qmpSocketPath, {
      connectRetryUntilMs: startTimeoutMs,
      timeoutMs: startTimeoutMs,
      signal: abort.signal,
    });
  } catch (err) {
    const exit = await Promise.race([exited, sleep(EXIT_GRACE_MS).then(() => undefined)]);
    if (exit === undefined) {
      killGroup();
      await exited;
    }
    for (const path of sockets) await rm(path, { force: true });
    const logTail = await readLogTail(logPath, logOffset);
    if (exit !== undefined) {
      throw new QemuError(
        'EXITED_DURING_START',
        `QEMU for VM ${spec.name} exited during start (${describeExit(exit)}); its output:\n${logTail || '(nothing)'}\n(full log: ${logPath})`,
        { binary, logPath, logTail, exitCode: exit.exitCode, signal: exit.signal },
        { cause: err },
      );
    }
    throw new QemuError(
      'START_TIMEOUT',
      `QEMU for VM ${spec.name} did not answer on QMP socket ${spec.qmpSocketPath} within ${startTimeoutMs} ms ` +
        `(${err instanceof Error ? err.message : String(err)}); it was killed. Last output:\n${logTail || '(nothing)'}`,
      { binary, logPath, logTail, timeoutMs: startTimeoutMs },
      { cause: err },
    );
  }

  return qemuHandle({ pid, qmp, logPath, exited, sockets, hasExited: () => hasExited, unwatch: () => subprocess.unref() });
}

export interface QemuHandleParts {
  pid: number;
  qmp: QmpClient;
  logPath: string;
  exited: Promise<QemuExit>;
  /** Sockets QEMU serves, removed once it is gone. */
  sockets: readonly string[];
  hasExited: () => boolean;
  /** Stops keeping the event loop alive for this process. */
  unwatch: () => void;
}

/** shutdown and kill for a QEMU we started or re-attached to; QEMU leads its own process group. */
export function qemuHandle(parts: QemuHandleParts): QemuProcess {
  const { pid, qmp, exited, sockets, hasExited } = parts;
  const killGroup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const removeSockets = async (): Promise<void> => {
    for (const path of sockets) await rm(path, { force: true });
  };
  const kill = async (): Promise<void> => {
    if (!hasExited()) killGroup();
    await exited;
    qmp.close();
    await removeSockets();
  };
  const shutdown = async (shutdownOpts: { timeoutMs?: number } = {}): Promise<void> => {
    const timeoutMs = shutdownOpts.timeoutMs ?? QEMU_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    if (!hasExited()) {
      // The exit is what counts: QEMU may close the socket before its reply to quit is read.
      qmp.execute('quit', undefined, { timeoutMs }).catch(() => {});
      const giveUp = new AbortController();
      const exit = await Promise.race([exited, sleep(timeoutMs, undefined, { signal: giveUp.signal }).catch(() => undefined)]);
      giveUp.abort(); // the timer must not keep a stopping daemon alive
      if (exit === undefined) killGroup();
    }
    await kill();
  };
  const release = (): void => {
    qmp.close();
    parts.unwatch();
  };
  return { pid, qmp, logPath: parts.logPath, exited, shutdown, kill, release };
}

async function removeStaleSocket(path: string): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch {
    return;
  }
  if (!info.isSocket()) {
    throw new QemuError('INVALID_SPEC', `socket path ${path} exists and is not a socket; remove it or choose another run dir`, {
      field: 'socketPath',
      value: path,
    });
  }
  await rm(path, { force: true });
}

function describeExit(exit: QemuExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.exitCode}`;
}

function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
