// `vmgmt vm console`: joins the terminal to the VM's serial console socket (QEMU serves ttyS0 on it).
// stdin goes raw when it is a TTY so keys like Ctrl-C reach the guest; Ctrl-] detaches.
import { createConnection, type Socket } from 'node:net';
import { CliError } from './cli-error.js';
import { DETACH_KEY_NAME, splitAtDetach } from './console-escape.js';

export interface ConsoleStdin extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export type ConsoleEnd =
  /** The user pressed the detach key. */
  | 'detached'
  /** QEMU closed the console (the VM stopped). */
  | 'closed'
  /** stdin ended (not a terminal): input was sent, output read until the linger time ran out. */
  | 'input-ended';

export interface AttachConsoleOptions {
  socketPath: string;
  vmName: string;
  stdin: ConsoleStdin;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** After stdin ends, how long to keep printing what the VM sends; default 500. */
  lingerMs?: number;
}

export async function attachConsole(opts: AttachConsoleOptions): Promise<ConsoleEnd> {
  const { stdin, stdout, stderr, vmName } = opts;
  const socket = await connectConsole(opts.socketPath, vmName);
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  stderr.write(`vmgmt: attached to the serial console of vm ${vmName}; detach with ${DETACH_KEY_NAME}\n`);
  if (raw) stdin.setRawMode?.(true);

  return new Promise<ConsoleEnd>((resolve) => {
    let linger: NodeJS.Timeout | undefined;
    let ended = false;
    const finish = (end: ConsoleEnd): void => {
      if (ended) return;
      ended = true;
      clearTimeout(linger);
      stdin.off('data', onInput);
      stdin.off('end', onInputEnd);
      stdin.pause();
      if (raw) stdin.setRawMode?.(false);
      socket.destroy();
      const nl = raw ? '\r\n' : '\n';
      if (end === 'detached') stderr.write(`${nl}vmgmt: detached from vm ${vmName}\n`);
      if (end === 'closed') stderr.write(`${nl}vmgmt: the console of vm ${vmName} was closed (the VM stopped?)\n`);
      resolve(end);
    };
    const onInput = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const { forward, detach } = splitAtDetach(bytes);
      if (forward.length > 0) socket.write(forward);
      if (detach) finish('detached');
    };
    const onInputEnd = (): void => {
      socket.end();
      linger = setTimeout(() => finish('input-ended'), opts.lingerMs ?? 500);
    };
    socket.on('data', (chunk: Buffer) => stdout.write(chunk));
    socket.on('close', () => finish('closed'));
    socket.on('error', () => finish('closed'));
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
