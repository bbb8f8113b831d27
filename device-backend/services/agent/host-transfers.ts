// Files the host hands to one AGENT_COPY: the guest agent reaches them with ordinary file-mode requests
// under HOST_TRANSFER_PREFIX + token, and nothing else in the host file system. Tokens are random and
// die with the copy.
//
// A transfer borrows its fd from the caller for exactly the life of the copy. The guest never holds the
// fd number: its handles refer to the transfer, and end() revokes the borrow, so every handle opened on
// the transfer answers BAD_HANDLE from then on, whatever the daemon opens under that number next.
import { randomBytes } from 'node:crypto';
import { HOST_TRANSFER_PREFIX } from '../../layout/wire-layout.js';

export type TransferDirection = 'to-guest' | 'from-guest';

export interface HostTransfer {
  readonly token: string;
  readonly hostPath: string;
  readonly direction: TransferDirection;
  /** to-guest: known up front; from-guest: what the guest declares when it opens the file. */
  totalBytes: number;
  /** from-guest: the most the guest may declare (what the host expects, its configured cap, free space). */
  readonly maxBytes: number;
  movedBytes: number;
  committed: boolean;
  /** Set by end(): why the transfer is over. Handles on an ended transfer are dead. */
  endedReason: string | undefined;
  onProgress?: (movedBytes: number, totalBytes: number) => void;
}

export interface CreateTransferOptions {
  direction: TransferDirection;
  /** to-guest: the file the guest reads; from-guest: the file the guest writes. The caller keeps owning it. */
  fd: number;
  totalBytes: number;
  /** from-guest only; default: no cap beyond what the file mode itself enforces. */
  maxBytes?: number;
  onProgress?: HostTransfer['onProgress'];
}

type EndListener = (t: HostTransfer) => void;

export class HostTransfers {
  private readonly byToken = new Map<string, HostTransfer>();
  /** The borrowed fds, kept out of the transfer objects so that nothing can hold on to a number. */
  private readonly fds = new WeakMap<HostTransfer, number>();
  private readonly endListeners = new Set<EndListener>();

  create(opts: CreateTransferOptions): HostTransfer {
    const token = randomBytes(16).toString('hex');
    const t: HostTransfer = {
      token,
      hostPath: `${HOST_TRANSFER_PREFIX}${token}`,
      direction: opts.direction,
      totalBytes: opts.totalBytes,
      maxBytes: opts.maxBytes ?? Number.MAX_SAFE_INTEGER,
      movedBytes: 0,
      committed: false,
      endedReason: undefined,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    };
    this.byToken.set(token, t);
    this.fds.set(t, opts.fd);
    return t;
  }

  /** The transfer a guest path names, if it names a live one. */
  lookup(path: string): HostTransfer | undefined {
    return path.startsWith(HOST_TRANSFER_PREFIX) ? this.byToken.get(path.slice(HOST_TRANSFER_PREFIX.length)) : undefined;
  }

  isTransferPath(path: string): boolean {
    return path.startsWith(HOST_TRANSFER_PREFIX);
  }

  /** The fd to use right now (in the same synchronous step as the I/O), or undefined once the transfer ended. */
  fdOf(t: HostTransfer): number | undefined {
    return t.endedReason === undefined ? this.fds.get(t) : undefined;
  }

  /** Called once for each transfer that ends, before end() returns (the file mode drops its handles). */
  onEnd(listener: EndListener): () => void {
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  /** Ends the transfer (done, failed, timed out): its fd is no longer reachable through any handle. Idempotent. */
  end(t: HostTransfer, reason: string): void {
    if (t.endedReason !== undefined) return;
    t.endedReason = reason;
    this.byToken.delete(t.token);
    this.fds.delete(t);
    for (const listener of this.endListeners) listener(t);
  }

  get liveCount(): number {
    return this.byToken.size;
  }
}
