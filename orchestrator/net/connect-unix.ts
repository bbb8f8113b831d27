import { createConnection, type Socket } from 'node:net';

/** One connection attempt to a UNIX socket; resolves once connected (optionally paused), rejects with the errno. */
export function connectUnixOnce(socketPath: string, opts: { paused?: boolean } = {}): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = createConnection(socketPath);
    const onError = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      if (opts.paused) socket.pause();
      resolve(socket);
    });
  });
}
