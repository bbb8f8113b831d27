// `vmgmt vm console`: joins the terminal to the VM's serial console socket (QEMU serves ttyS0 on it).
// stdin goes raw when it is a TTY so keys like Ctrl-C reach the guest; Ctrl-] detaches.
// Piped stdin (`printf 'uname -a\n' | vmgmt vm console web`) is sent to its end; the connection stays open
// (QEMU drops a client that half-closes, and with it the answer) and what the guest sends is printed until
// it has answered: its shell prompt came back, or it has been quiet for lingerMs.
import { createConnection, type Socket } from 'node:net';
import { CliError } from './cli-error.js';
import { DETACH_KEY_NAME, splitAtDetach } from './console-escape.js';
import { consoleAnswered } from './console-linger.js';

export interface ConsoleStdin extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export type ConsoleEnd =
  /** The user pressed the detach key. */
  | 'detached'
  /** QEMU closed the console while the VM is still up (another client? QEMU's chardev reset). */
  | 'closed'
  /** The console went away because the VM stopped. */
  | 'vm-stopped'
  /** stdin ended (not a terminal): input was sent, output read until the guest answered. */
  | 'input-ended';

export interface AttachConsoleOptions {
  socketPath: string;
  vmName: string;
  stdin: ConsoleStdin;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** After stdin ends: finish once the guest has sent nothing for this long (its prompt back: sooner). Default 3000. */
  lingerMs?: number;
  /** After stdin ends: finish at the latest after this long, however chatty the guest. Default 30000. */
  maxLingerMs?: number;
  /** The VM's state now, asked when the console closes to tell a stopped VM from a dropped console. */
  vmState?: () => Promise<string>;
}

/** A prompt that came back: finish this soon after it, unless more output follows. */
const PROMPT_SETTLE_MS = 150;
const LIVE_STATES = new Set(['starting', 'running', 'paused', 'stopping']);
const CLOSE_STATE_TRIES = 10;
const CLOSE_STATE_INTERVAL_MS = 300;

export async function attachConsole(opts: AttachConsoleOptions): Promise<ConsoleEnd> {
  const { stdin, stdout, stderr, vmName } = opts;
  const socket = await connectConsole(opts.socketPath, vmName);
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  stderr.write(`vmgmt: attached to the serial console of vm ${vmName}; detach with ${DETACH_KEY_NAME}\n`);
  if (raw) stdin.setRawMode?.(true);
  const lingerMs = opts.lingerMs ?? 3000;

  return new Promise<ConsoleEnd>((resolve) => {
    let quiet: NodeJS.Timeout | undefined;
    let cap: NodeJS.Timeout | undefined;
    let ended = false;
    let inputEnded = false;
    /** What the guest sent since the input ended, kept short: enough to see a prompt at its end. */
    let sinceEnd = '';
    const finish = (end: ConsoleEnd, note = ''): void => {
      if (ended) return;
      ended = true;
      clearTimeout(quiet);
      clearTimeout(cap);
      stdin.off('data', onInput);
      stdin.off('end', onInputEnd);
      stdin.pause();
      if (raw) stdin.setRawMode?.(false);
      socket.destroy();
      const nl = raw ? '\r\n' : '\n';
      if (end === 'detached') stderr.write(`${nl}vmgmt: detached from vm ${vmName}\n`);
      if (end === 'closed') {
        stderr.write(
          note === 'unknown'
            ? `${nl}vmgmt: the console of vm ${vmName} was closed (the VM's state could not be asked)\n`
            : `${nl}vmgmt: QEMU closed the console of vm ${vmName}, which is still ${note}: attach again with \`vmgmt vm console ${vmName}\`\n`,
        );
      }
      if (end === 'vm-stopped') stderr.write(`${nl}vmgmt: vm ${vmName} ${note === 'stopping' ? 'is stopping' : `stopped (${note})`}; its console is gone\n`);
      resolve(end);
    };
    const armQuiet = (ms: number): void => {
      clearTimeout(quiet);
      quiet = setTimeout(() => finish('input-ended'), ms);
    };
    const onInput = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const { forward, detach } = splitAtDetach(bytes);
      if (forward.length > 0) socket.write(forward);
      if (detach) finish('detached');
    };
    const onInputEnd = (): void => {
      inputEnded = true;
      armQuiet(lingerMs);
      cap = setTimeout(() => finish('input-ended'), opts.maxLingerMs ?? 30_000);
    };
    socket.on('data', (chunk: Buffer) => {
      stdout.write(chunk);
      if (!inputEnded) return;
      sinceEnd = (sinceEnd + chunk.toString('latin1')).slice(-256);
      armQuiet(consoleAnswered(sinceEnd) ? PROMPT_SETTLE_MS : lingerMs);
    });
    const onClosed = (): void => {
      if (ended) return;
      // Input sent and the guest quiet: a close now is the end we were waiting for anyway.
      // The console closes as QEMU exits, a moment before the daemon records the exit: ask a few times.
      const ask = opts.vmState ?? (async () => 'unknown');
      void (async () => {
        let state = 'unknown';
        for (let i = 0; i < CLOSE_STATE_TRIES; i++) {
          state = await ask().catch(() => 'unknown');
          if (!LIVE_STATES.has(state)) break;
          await new Promise((r) => setTimeout(r, CLOSE_STATE_INTERVAL_MS));
        }
        if (state === 'stopping' || (!LIVE_STATES.has(state) && state !== 'unknown')) finish('vm-stopped', state);
        else finish('closed', state);
      })();
    };
    socket.on('close', onClosed);
    socket.on('error', onClosed);
    stdin.on('data', onInput);
    stdin.on('end', onInputEnd);
    stdin.resume();
  });
}

function connectConsole(socketPath: string, vmName: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (err: NodeJS.ErrnoException): void => {
      const notServed = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      reject(
        new CliError(
          'CONSOLE_UNAVAILABLE',
          notServed
            ? `vm ${vmName} has no console to attach to (nothing at ${socketPath}): start it with \`vmgmt vm start ${vmName}\``
            : `cannot attach to the console of vm ${vmName} at ${socketPath}: ${err.message}`,
          { name: vmName, socketPath, errno: err.code },
          { cause: err },
        ),
      );
    };
    socket.once('error', onError);
  });
}
