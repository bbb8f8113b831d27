// Files the host hands to one AGENT_COPY: the guest agent reaches them with ordinary file-mode requests
// under HOST_TRANSFER_PREFIX + token, and nothing else in the host file system. Tokens are random and
// die with the copy.
import { randomBytes } from 'node:crypto';
import { HOST_TRANSFER_PREFIX } from '../../layout/wire-layout.js';

export type TransferDirection = 'to-guest' | 'from-guest';

export interface HostTransfer {
  readonly token: string;
  readonly hostPath: string;
  readonly direction: TransferDirection;
  /** to-guest: the file the guest reads; from-guest: the file the guest writes (the host owns both fds). */
  readonly fd: number;
  /** to-guest: known up front; from-guest: what the guest declares when it opens the file. */
  totalBytes: number;
  movedBytes: number;
  committed: boolean;
  onProgress?: (movedBytes: number, totalBytes: number) => void;
}

export class HostTransfers {
  private readonly byToken = new Map<string, HostTransfer>();

  create(direction: TransferDirection, fd: number, totalBytes: number, onProgress?: HostTransfer['onProgress']): HostTransfer {
    const token = randomBytes(16).toString('hex');
    const t: HostTransfer = { token, hostPath: `${HOST_TRANSFER_PREFIX}${token}`, direction, fd, totalBytes, movedBytes: 0, committed: false, ...(onProgress ? { onProgress } : {}) };
    this.byToken.set(token, t);
    return t;
  }

  /** The transfer a guest path names, if it names one. */
  lookup(path: string): HostTransfer | undefined {
    return path.startsWith(HOST_TRANSFER_PREFIX) ? this.byToken.get(path.slice(HOST_TRANSFER_PREFIX.length)) : undefined;
  }

  isTransferPath(path: string): boolean {
    return path.startsWith(HOST_TRANSFER_PREFIX);
  }

  delete(t: HostTransfer): void {
    this.byToken.delete(t.token);
  }
}
