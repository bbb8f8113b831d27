// The ivshmem server for one VM: a UNIX socket QEMU's ivshmem-doorbell connects to. It hands QEMU the
// region fd and the doorbell eventfds, then turns the core's eventfds into onDoorbell calls and
// notifyGuest() into writes to the guest's eventfds. One socket and one region per VM, never shared.
import { renameSync, rmSync } from 'node:fs';
import type { NativeWatch, VmgmtNative } from '../native/index.js';
import type { CoreLogger } from '../core/core-logger.js';
import { CodedError } from '../errors/coded-error.js';
import { CORE_PEER_ID, setupMessages } from './setup-messages.js';

export interface IvshmemServerOptions {
  native: VmgmtNative;
  socketPath: string;
  shmFd: number;
  vectors: number;
  onDoorbell: (vector: number, count: number) => void;
  log: CoreLogger;
  /** Peer id given to QEMU; the guest reads it from IVPosition. */
  clientId?: number;
  /** Eventfds recovered from a running QEMU after a daemon restart (core's, then the client's). */
  adopt?: { coreEventFds: number[]; clientEventFds: number[] };
}

export class IvshmemServerError extends CodedError<'LISTEN_FAILED' | 'SETUP_FAILED'> {
  override readonly name = 'IvshmemServerError';
}

interface Client {
  fd: number;
  watch: NativeWatch;
}

export class IvshmemServer {
  readonly coreEventFds: number[];
  clientEventFds: number[];
  private listenFd = -1;
  private listenWatch: NativeWatch | undefined;
  private readonly doorbellWatches: NativeWatch[];
  private client: Client | undefined;
  private closed = false;

  constructor(private readonly opts: IvshmemServerOptions) {
    const n = opts.native;
    this.coreEventFds = opts.adopt?.coreEventFds ?? Array.from({ length: opts.vectors }, () => n.eventfdCreate());
    this.clientEventFds = opts.adopt?.clientEventFds ?? [];
    this.doorbellWatches = this.coreEventFds.map((fd, vector) => n.watchEventfd(fd, (count) => opts.onDoorbell(vector, count)));
  }

  get clientId(): number {
    return this.opts.clientId ?? 1;
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Binds under a temporary name and renames into place, so QEMU never finds an unbound socket. */
  listen(): void {
    const { native, socketPath } = this.opts;
    const tmp = `${socketPath}.${process.pid}.tmp`;
    rmSync(tmp, { force: true });
    try {
      this.listenFd = native.unixListen(tmp, 4);
      renameSync(tmp, socketPath);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new IvshmemServerError('LISTEN_FAILED', `cannot listen on ${socketPath}: ${(err as Error).message}; check that its directory exists and is writable`, { socketPath }, { cause: err });
    }
    this.listenWatch = native.watchReadable(this.listenFd, () => this.acceptPending());
  }

  /** Rings the guest: QEMU raises the MSI-X vector in the guest. */
  notifyGuest(vector: number): void {
    const fd = this.clientEventFds[vector];
    if (fd !== undefined) this.opts.native.eventfdWrite(fd);
  }

  private acceptPending(): void {
    try {
      this.acceptAll();
    } catch (err) {
      // Out of fds or similar: this connection attempt fails, the server stays up.
      this.opts.log.error('accepting an ivshmem connection failed', { socket: this.opts.socketPath, error: (err as Error).message });
    }
  }

  private acceptAll(): void {
    const { native, log } = this.opts;
    for (;;) {
      const fd = native.unixAccept(this.listenFd);
      if (fd < 0) return;
      if (this.client) {
        log.warn('refusing a second ivshmem client: this socket serves one VM', { socket: this.opts.socketPath });
        native.close(fd);
        continue;
      }
      try {
        this.setUpClient(fd);
      } catch (err) {
        log.error('ivshmem client set-up failed', { error: (err as Error).message });
        native.close(fd);
      }
    }
  }

  private setUpClient(fd: number): void {
    const { native, vectors, shmFd, log } = this.opts;
    this.closeClientEventFds();
    this.clientEventFds = Array.from({ length: vectors }, () => native.eventfdCreate());
    const messages = setupMessages({
      clientId: this.clientId,
      shmFd,
      peers: [{ id: CORE_PEER_ID, eventFds: this.coreEventFds }],
      clientEventFds: this.clientEventFds,
    });
    for (const m of messages) native.sendInt64WithFd(fd, m.value, m.fd);
    const watch = native.watchReadable(fd, () => {
      // QEMU sends nothing after set-up: readable means it went away (EOF, or a reset when it was killed).
      try {
        if (native.recvDiscard(fd) === 0) this.dropClient('QEMU closed the ivshmem socket');
      } catch (err) {
        this.dropClient(`the ivshmem socket failed: ${(err as Error).message}`);
      }
    });
    this.client = { fd, watch };
    log.info('ivshmem client connected', { clientId: this.clientId, vectors });
  }

  private dropClient(reason: string): void {
    if (!this.client) return;
    this.client.watch.stop();
    this.opts.native.close(this.client.fd);
    this.client = undefined;
    this.opts.log.info('ivshmem client disconnected', { reason });
  }

  private closeClientEventFds(): void {
    for (const fd of this.clientEventFds) this.opts.native.close(fd);
    this.clientEventFds = [];
  }

  /** Stops serving and removes the socket. The region belongs to the caller. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropClient('server closed');
    this.listenWatch?.stop();
    if (this.listenFd >= 0) this.opts.native.close(this.listenFd);
    rmSync(this.opts.socketPath, { force: true });
    for (const w of this.doorbellWatches) w.stop();
    for (const fd of this.coreEventFds) this.opts.native.close(fd);
    this.closeClientEventFds();
  }
}
