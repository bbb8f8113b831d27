// Putting the API server on its UNIX socket path: refuse when a live daemon answers there, remove a stale
// socket, bind under a temporary name, set mode and group, then rename into place so the socket never
// appears at its public path with the wrong permissions.
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import path from 'node:path';
import { VmgmtError } from '../daemon/vmgmt-error.js';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

export interface BoundSocket {
  socketPath: string;
  /** Identity of the socket file we created, so close() never removes a successor's socket. */
  dev: number;
  ino: number;
}

export async function bindUnixSocket(
  server: Server,
  opts: { socketPath: string; socketMode: number; socketGroup?: number; probeTimeoutMs?: number },
): Promise<BoundSocket> {
  const { socketPath } = opts;
  const dir = path.dirname(socketPath);
  const tmpPath = path.join(dir, `.vmgmt-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
  for (const p of [socketPath, tmpPath]) {
    const bytes = Buffer.byteLength(p);
    if (bytes > MAX_UNIX_SOCKET_PATH_BYTES) {
      throw new VmgmtError(
        'INVALID_REQUEST',
        `socket path ${p} is ${bytes} bytes; UNIX socket paths must be at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes: choose a shorter --socket`,
        { socketPath: p, bytes, maxBytes: MAX_UNIX_SOCKET_PATH_BYTES },
      );
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await removeStaleSocket(socketPath, opts.probeTimeoutMs ?? 1000);

  try {
    await listen(server, tmpPath);
  } catch (err) {
    throw new VmgmtError('INTERNAL', `cannot listen on ${tmpPath}: ${(err as Error).message}`, { socketPath, tmpPath }, { cause: err });
  }
  try {
    await chmod(tmpPath, opts.socketMode);
    if (opts.socketGroup !== undefined) await chown(tmpPath, -1, opts.socketGroup);
    await rename(tmpPath, socketPath);
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(tmpPath).catch(() => {});
    throw new VmgmtError(
      'INTERNAL',
      `cannot put the API socket in place at ${socketPath}: ${(err as Error).message}`,
      { socketPath, tmpPath, socketMode: opts.socketMode.toString(8), socketGroup: opts.socketGroup },
      { cause: err },
    );
  }
  const st = await stat(socketPath);
  return { socketPath, dev: st.dev, ino: st.ino };
}

/** Removes the socket file if it is still the one bind created. */
export async function unlinkBoundSocket(bound: BoundSocket): Promise<void> {
  try {
    const st = await lstat(bound.socketPath);
    if (st.dev === bound.dev && st.ino === bound.ino) await unlink(bound.socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

async function removeStaleSocket(socketPath: string, probeTimeoutMs: number): Promise<void> {
  let st;
  try {
    st = await lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new VmgmtError(
      'INVALID_STATE',
      `${socketPath} exists and is not a socket: remove it or choose another --socket`,
      { socketPath },
    );
  }
  const probe = await probeSocket(socketPath, probeTimeoutMs);
  if (probe === 'answers' || probe === 'timeout') {
    throw new VmgmtError(
      'INVALID_STATE',
      `another vmgmt daemon is running on ${socketPath}${probe === 'timeout' ? ' (it accepts no connection but the socket is bound)' : ''}: stop it first (systemctl stop vmgmt) or choose another --socket`,
      { socketPath, probe },
    );
  }
  if (probe !== 'stale') {
    throw new VmgmtError('INTERNAL', `cannot tell whether a daemon is running on ${socketPath} (${probe}): check the socket's owner and mode`, {
      socketPath,
      probe,
    });
  }
  await unlink(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

type ProbeResult = 'answers' | 'stale' | 'timeout' | `error ${string}`;

function probeSocket(socketPath: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.once('connect', () => done('answers'));
    // ECONNREFUSED: a socket file nobody listens on; ENOENT: it vanished meanwhile.
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'stale' : `error ${err.code ?? err.message}`),
    );
  });
}

function listen(server: Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(socketPath, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
