// Re-attaching to a QEMU this daemon did not start (it was started by a daemon that has since exited):
// exit is seen through a pidfd, since the process is not our child and its exit status is not ours.
import type { VmgmtNative } from '../../device-backend/native/index.js';
import { QmpClient } from '../qmp/qmp-client.js';
import { type QemuExit, type QemuProcess, qemuHandle } from './qemu-process.js';

export interface AttachQemuOptions {
  pid: number;
  qmpSocketPath: string;
  sockets: readonly string[];
  logPath: string;
  native: Pick<VmgmtNative, 'pidfdOpen' | 'watchReadable' | 'close'>;
  timeoutMs?: number;
}

export async function attachQemu(opts: AttachQemuOptions): Promise<QemuProcess> {
  const { native, pid } = opts;
  const pidfd = native.pidfdOpen(pid);
  let hasExited = false;
  let onExit: (exit: QemuExit) => void = () => {};
  const exited = new Promise<QemuExit>((resolve) => (onExit = resolve));
  const watch = native.watchReadable(pidfd, () => {
    watch.stop();
    native.close(pidfd);
    hasExited = true;
    onExit({ exitCode: null, signal: null });
  });
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(opts.qmpSocketPath, { timeoutMs: opts.timeoutMs ?? 5_000, connectRetryUntilMs: opts.timeoutMs ?? 5_000 });
  } catch (err) {
    if (!hasExited) {
      watch.stop();
      native.close(pidfd);
    }
    throw new Error(`cannot re-attach to QEMU pid ${pid}: its QMP socket ${opts.qmpSocketPath} does not answer (${(err as Error).message})`, { cause: err });
  }
  let released = false;
  const unwatch = (): void => {
    if (hasExited || released) return;
    released = true;
    watch.stop();
    native.close(pidfd);
  };
  return qemuHandle({ pid, qmp, logPath: opts.logPath, exited, sockets: opts.sockets, hasExited: () => hasExited, unwatch });
}
