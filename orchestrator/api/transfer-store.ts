// The daemon's transfer directory: temporary files (mode 0600) that hold a pulled file until the client
// fetches it (pushes stream through a pipe and store nothing). A pulled file is held under a random 128-bit
// id for one download and removed when fetched, when unclaimed after the time to live, or when the store
// closes. A live download (a pull streamed as the guest sends it) is held the same way: its `drop` (close
// the pipe: the guest copy then fails) runs when it expires unclaimed or the store closes.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, statfs, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';

export const DEFAULT_DOWNLOAD_TTL_MS = 60_000;
/** The largest file `vmgmt cp VM:PATH ...` takes from a guest unless the daemon is told otherwise. */
export const DEFAULT_MAX_PULL_BYTES = 16 * 1024 ** 3;
/** Free space a pull never takes from the transfer directory's file system: at most 1 GiB, or 5% of a small one. */
const FREE_SPACE_RESERVE_BYTES = 1024 ** 3;
const FREE_SPACE_RESERVE_FRACTION = 0.05;

/** Names this store gives its files; anything else in the directory is left alone. */
const TEMP_NAME_PATTERN = /^vmgmt-(push|pull)-[0-9a-f]{32}$/;

export interface TempFile {
  path: string;
  handle: FileHandle;
}

export interface HeldDownload {
  path: string;
  bytes: number;
}

/** A pull in progress: the download reads `readFd` (a pipe the guest copy fills); `copy` settles when the guest is done. */
export interface LiveDownload {
  kind: 'live';
  readFd: number;
  bytes: number;
  copy: Promise<{ bytes: number }>;
  /** Called when nobody claims it: releases the pipe. */
  drop: () => void;
}

type Held = (HeldDownload & { kind: 'file'; timer: NodeJS.Timeout }) | (LiveDownload & { timer: NodeJS.Timeout });

export class TransferStore {
  readonly #held = new Map<string, Held>();
  readonly #maxPullBytes: () => number;
  #closed = false;

  /** maxPullBytes as a function is asked at each pull (the daemon's config may change it on SIGHUP). */
  constructor(
    readonly dir: string,
    private readonly log: CoreLogger,
    readonly downloadTtlMs: number = DEFAULT_DOWNLOAD_TTL_MS,
    maxPullBytes: number | (() => number) = DEFAULT_MAX_PULL_BYTES,
  ) {
    this.#maxPullBytes = typeof maxPullBytes === 'function' ? maxPullBytes : () => maxPullBytes;
  }

  /** The largest pull configured, as of now. */
  get maxPullBytes(): number {
    return this.#maxPullBytes();
  }

  /**
   * The most a guest agent may send for one pull: the configured maximum, and no more than the transfer
   * directory's file system can hold while keeping its reserve. Asked at the start of each pull.
   */
  async pullLimitBytes(): Promise<number> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const fs = await statfs(this.dir);
    const total = fs.blocks * fs.bsize;
    const reserve = Math.min(FREE_SPACE_RESERVE_BYTES, Math.ceil(total * FREE_SPACE_RESERVE_FRACTION));
    return Math.max(0, Math.min(this.maxPullBytes, fs.bavail * fs.bsize - reserve));
  }

  /** Removes files a previous daemon left behind. The directory itself is made (0700) on first use. */
  async open(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new VmgmtError(
        'INTERNAL',
        `cannot read the transfer directory ${this.dir}: ${(err as Error).message}: check that it is a directory the daemon may use`,
        { transferDir: this.dir },
        { cause: err },
      );
    }
    for (const name of names) {
      if (!TEMP_NAME_PATTERN.test(name)) continue;
      await this.remove(path.join(this.dir, name));
      this.log.info('removed a leftover transfer file', { path: path.join(this.dir, name) });
    }
  }

  /** A new empty file, opened for reading and writing, that only the daemon's user can read. */
  async createTemp(kind: 'push' | 'pull'): Promise<TempFile> {
    const file = path.join(this.dir, `vmgmt-${kind}-${randomBytes(16).toString('hex')}`);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      return { path: file, handle: await open(file, 'wx+', 0o600) };
    } catch (err) {
      throw new VmgmtError(
        'INTERNAL',
        `cannot create a transfer file in ${this.dir}: ${(err as Error).message}`,
        { transferDir: this.dir },
        { cause: err },
      );
    }
  }

  /** Keeps a pulled file for one download; its id, or undefined (and the file removed) after close(). */
  async hold(file: string, bytes: number): Promise<string | undefined> {
    if (this.#closed) {
      await this.remove(file);
      return undefined;
    }
    const id = randomBytes(16).toString('hex');
    const timer = setTimeout(() => {
      if (this.#held.delete(id)) {
        this.log.info('an unclaimed download expired', { id, bytes, ttlMs: this.downloadTtlMs });
        void this.remove(file);
      }
    }, this.downloadTtlMs);
    timer.unref();
    this.#held.set(id, { kind: 'file', path: file, bytes, timer });
    return id;
  }

  /** Keeps a live download for one claim; undefined (and dropped) after close(). */
  holdLive(live: Omit<LiveDownload, 'kind'>): string | undefined {
    if (this.#closed) {
      live.drop();
      return undefined;
    }
    const id = randomBytes(16).toString('hex');
    const timer = setTimeout(() => {
      if (this.#held.delete(id)) {
        this.log.info('an unclaimed live download expired: the guest copy is stopped', { id, bytes: live.bytes, ttlMs: this.downloadTtlMs });
        live.drop();
      }
    }, this.downloadTtlMs);
    timer.unref();
    this.#held.set(id, { kind: 'live', ...live, timer });
    return id;
  }

  /** The held download for id, once: the caller owns it from now on (removes the file, or reads the pipe to its end). */
  claim(id: string): (HeldDownload & { kind: 'file' }) | LiveDownload | undefined {
    const held = this.#held.get(id);
    if (!held) return undefined;
    this.#held.delete(id);
    clearTimeout(held.timer);
    if (held.kind === 'live') return { kind: 'live', readFd: held.readFd, bytes: held.bytes, copy: held.copy, drop: held.drop };
    return { kind: 'file', path: held.path, bytes: held.bytes };
  }

  /** Removes a transfer file; one that is already gone is fine. */
  async remove(file: string): Promise<void> {
    try {
      await unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn('cannot remove a transfer file', { path: file, error: (err as Error).message });
      }
    }
  }

  /** Removes every held download; later hold() calls remove their file at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const held = [...this.#held.values()];
    this.#held.clear();
    for (const h of held) {
      clearTimeout(h.timer);
      if (h.kind === 'live') h.drop();
      else await this.remove(h.path);
    }
  }
}
