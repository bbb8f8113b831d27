// Typed loader for the vmgmt_native N-API addon (vmgmt_native.c): mmap, memfd, eventfd, UNIX sockets with
// SCM_RIGHTS, pidfd, fd watches on the Node event loop, and file calls confined to a directory fd (openat2).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Idempotent; after stop() returns no more callbacks run and the watch no longer keeps the process alive. */
export interface NativeWatch {
  stop(): void;
}

export interface ReceivedInt64 {
  value: bigint;
  /** The fd attached with SCM_RIGHTS (close-on-exec), or -1 when the message carried none. */
  fd: number;
}

export const OPEN_FLAG_NAMES = [
  'RDONLY', 'WRONLY', 'RDWR', 'CREAT', 'EXCL', 'TRUNC', 'DIRECTORY', 'NOFOLLOW', 'NONBLOCK', 'PATH', 'CLOEXEC', 'APPEND',
] as const;
export type OpenFlagName = (typeof OPEN_FLAG_NAMES)[number];
/** O_* values from <fcntl.h>, as compiled into the addon. */
export type NativeOpenFlags = Readonly<Record<OpenFlagName, number>>;

export const RESOLVE_FLAG_NAMES = ['BENEATH', 'NO_MAGICLINKS', 'NO_XDEV', 'NO_SYMLINKS', 'IN_ROOT'] as const;
export type ResolveFlagName = (typeof RESOLVE_FLAG_NAMES)[number];
/** RESOLVE_* values from <linux/openat2.h>. */
export type NativeResolveFlags = Readonly<Record<ResolveFlagName, number>>;

export type NativeFileType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block' | 'unknown';

export interface NativeStat {
  type: NativeFileType;
  /** Permission bits including setuid, setgid and sticky: st_mode & 0o7777. */
  mode: number;
  sizeBytes: number;
  mtimeMs: number;
  /** Exact below 2^53; larger inode numbers (rare, e.g. overlayfs xino) lose their low bits. */
  ino: number;
  dev: number;
  nlink: number;
  uid: number;
  gid: number;
}

export interface NativeDirEntry {
  /** Decoded as UTF-8; bytes that are not valid UTF-8 become U+FFFD. */
  name: string;
  /** From d_type; 'unknown' when the file system reports DT_UNKNOWN (fstatat it to find out). */
  type: NativeFileType;
}

/**
 * Failing syscalls throw an Error with `code` (errno name, e.g. 'ENOENT'), `errno` (negative, as in Node's
 * own system errors), `syscall`, and a message naming the call and its arguments.
 */
export interface VmgmtNative {
  /** memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING) + ftruncate; returns the fd. */
  memfdCreate(name: string, sizeBytes: number): number;
  /**
   * mmap(PROT_READ|PROT_WRITE, MAP_SHARED), pages faulted in on first touch; `prefault` adds MAP_POPULATE
   * (every page resident at once, best effort). Refuses to map past the end of a regular file.
   */
  mapShared(fd: number, sizeBytes: number, prefault?: boolean): ArrayBuffer;
  /** munmap now and detach the buffer (views become length 0). Idempotent. */
  unmap(buf: ArrayBuffer): void;
  /** eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC). */
  eventfdCreate(): number;
  /** Adds 1 to the eventfd counter. */
  eventfdWrite(fd: number): void;
  /** Non-blocking, close-on-exec listening AF_UNIX stream socket; path must be at most 107 bytes. */
  unixListen(path: string, backlog: number): number;
  /** accept4(NONBLOCK|CLOEXEC); -1 when no connection is pending. */
  unixAccept(listenFd: number): number;
  /** Sends 8 bytes (little-endian int64) and, if fd >= 0, that fd via SCM_RIGHTS. Waits up to 1000 ms if full. */
  sendInt64WithFd(sockFd: number, value: bigint, fd: number): void;
  /** Receives one 8-byte message and its fd; null when nothing is pending. Throws code 'ECONNRESET' on EOF. */
  recvInt64WithFd(sockFd: number): ReceivedInt64 | null;
  /** Reads and discards up to 4096 bytes; returns the count, 0 on EOF, -1 when nothing is pending. */
  recvDiscard(fd: number): number;
  close(fd: number): void;
  /** pipe2(O_CLOEXEC): [readFd, writeFd]; the named end (default the read end) non-blocking, the other blocking; 1 MiB of room asked for. */
  pipe(nonBlockingEnd?: 'read' | 'write'): [number, number];
  /** One write() of source: the byte count, or -1 when a non-blocking fd has no room. */
  writeSome(fd: number, source: Uint8Array): number;
  /** One read() into target: the byte count, 0 at end of file, -1 when nothing is pending (a non-blocking fd). */
  readSome(fd: number, target: Uint8Array): number;
  /** flock(LOCK_EX|LOCK_NB): true when this open file now holds the lock, false when another one holds it. */
  flockExclusive(fd: number): boolean;
  /** Calls onReadable on the event loop while fd is readable (level-triggered: the callback must drain it). */
  watchReadable(fd: number, onReadable: () => void): NativeWatch;
  /** Drains the eventfd itself and calls onSignal with the summed counter, only when it is > 0. */
  watchEventfd(fd: number, onSignal: (count: number) => void): NativeWatch;
  /** pidfd_open(pid, 0); the fd is close-on-exec. */
  pidfdOpen(pid: number): number;
  /** pidfd_getfd(pidfd, targetFd, 0): a close-on-exec duplicate of another process's fd. */
  pidfdGetfd(pidfd: number, targetFd: number): number;
  /** kcmp(KCMP_FILE): whether fd1 of pid1 and fd2 of pid2 are the same open file description. */
  kcmpFile(pid1: number, fd1: number, pid2: number, fd2: number): boolean;
  /** readlink(/proc/self/fd/N), for tests and diagnostics. */
  fdRealpath(fd: number): string;

  // Confined file system. Paths with NUL bytes throw TypeError ERR_INVALID_ARG_VALUE before any syscall.
  // Only openat2 walks a path; every `name` below must be one component (no '/', not '', '.' or '..'), or
  // the call throws TypeError ERR_INVALID_ARG_VALUE, so no other call can step outside its directory fd.

  readonly OPEN_FLAGS: NativeOpenFlags;
  readonly RESOLVE: NativeResolveFlags;
  /**
   * SYS_openat2(dirFd, path, { flags: flags | O_CLOEXEC, mode, resolve }); returns the fd. mode must be 0
   * unless flags include CREAT (the kernel says EINVAL). Retries EAGAIN from BENEATH/IN_ROOT a few times.
   */
  openat2(dirFd: number, path: string, flags: number, mode: number, resolve: number): number;
  /**
   * open("/proc/self/fd/N", flags | O_CLOEXEC): a new open file description of the inode fd refers to
   * (typically an O_PATH fd from openat2, checked with fstat first), never a path walked again. flags: the
   * access mode plus NONBLOCK, APPEND, CLOEXEC; anything else throws RangeError ERR_OUT_OF_RANGE.
   * Needs /proc mounted (ENOENT otherwise).
   */
  reopenFd(fd: number, flags: number): number;
  fstat(fd: number): NativeStat;
  /** fstatat(AT_SYMLINK_NOFOLLOW): a symlink is reported as itself. */
  fstatat(dirFd: number, name: string): NativeStat;
  /**
   * Lists the directory from its start without touching dirFd's offset (reads a fresh open of "."), without
   * "." and "..". More than 100000 entries throws code 'E2BIG'.
   */
  readdirFd(dirFd: number): NativeDirEntry[];
  /** renameat2, with RENAME_NOREPLACE (EEXIST when newName exists) if noReplace. */
  renameat(oldDirFd: number, oldName: string, newDirFd: number, newName: string, noReplace: boolean): void;
  /** unlinkat, with AT_REMOVEDIR (empty directories only) if removeDir. */
  unlinkat(dirFd: number, name: string, removeDir: boolean): void;
  /** mode (0..0o7777) is reduced by the process umask, as in mkdir(2). */
  mkdirat(dirFd: number, name: string, mode: number): void;
  /** mode 0..0o7777; fd must not be an O_PATH fd (EBADF). */
  fchmod(fd: number, mode: number): void;
  /** -1 leaves that id unchanged. */
  fchown(fd: number, uid: number, gid: number): void;
  fsync(fd: number): void;
  /**
   * One pread of up to target.byteLength bytes at position into target (any Uint8Array view, including
   * one of a mapShared buffer); retries EINTR. Returns the byte count, 0 at end of file. Synchronous.
   */
  pread(fd: number, target: Uint8Array, position: number): number;
  /**
   * Writes all of source at position, looping over short writes; returns source.byteLength. A failure after
   * a partial write throws and says how many bytes were written. On an O_APPEND fd Linux ignores position.
   */
  pwrite(fd: number, source: Uint8Array, position: number): number;
  ftruncate(fd: number, sizeBytes: number): void;
  /**
   * On libuv's thread pool (off the event loop): preads until target is full or the file ends and resolves
   * with the bytes read. target may be a view of a mapShared buffer: unmap() during the job detaches it at
   * once and the munmap waits for the job. fd must stay open until the promise settles.
   */
  preadFull(fd: number, target: Uint8Array, position: number): Promise<number>;
  /** On the thread pool: writes all of source at position; resolves with source.byteLength. As preadFull for views and fds. */
  pwriteFull(fd: number, source: Uint8Array, position: number): Promise<number>;
  /** fsync on the thread pool. */
  fsyncAsync(fd: number): Promise<number>;
}

/** Shape of the errors thrown by failing syscalls in the addon. */
export interface NativeSyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/**
 * A constant table whose values are read from the addon on first use, so importing this module never loads
 * the addon (loadNative throws with build instructions when it is missing).
 */
function addonConstants<K extends string>(
  names: readonly K[],
  pick: (native: VmgmtNative) => Readonly<Record<K, number>>,
): Readonly<Record<K, number>> {
  const table = {} as Record<K, number>;
  for (const name of names) {
    Object.defineProperty(table, name, { enumerable: true, get: () => pick(loadNative())[name] });
  }
  return Object.freeze(table);
}

/** O_* flags for openat2, read from the addon (see NativeOpenFlags). */
export const OPEN_FLAGS: NativeOpenFlags = addonConstants(OPEN_FLAG_NAMES, (native) => native.OPEN_FLAGS);
/** RESOLVE_* flags for openat2, read from the addon (see NativeResolveFlags). */
export const RESOLVE: NativeResolveFlags = addonConstants(RESOLVE_FLAG_NAMES, (native) => native.RESOLVE);

export function isNativeSyscallError(error: unknown): error is NativeSyscallError {
  return (
    error instanceof Error &&
    typeof (error as Partial<NativeSyscallError>).code === 'string' &&
    typeof (error as Partial<NativeSyscallError>).syscall === 'string'
  );
}

const ADDON_RELATIVE_PATH = path.join('device-backend', 'native', 'build', 'Release', 'vmgmt_native.node');

/**
 * This file runs from device-backend/native/ (vitest) or dist/device-backend/native/ (compiled), so the
 * repo root is found by walking up rather than by a fixed number of '..'.
 */
function findRepoRoot(startDir: string): string {
  for (let dir = startDir; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'device-backend', 'native', 'binding.gyp'))) {
      return dir;
    }
    if (path.dirname(dir) === dir) {
      throw new Error(
        `vmgmt native addon: no repo root (a directory with package.json and device-backend/native/binding.gyp) above ${startDir}`,
      );
    }
  }
}

// The addon is process-global by nature (dlopen happens once), so caching the loaded module is harmless.
let loaded: VmgmtNative | undefined;

export function loadNative(): VmgmtNative {
  if (loaded !== undefined) return loaded;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const addonPath = path.join(findRepoRoot(here), ADDON_RELATIVE_PATH);
  if (!existsSync(addonPath)) {
    throw new Error(`vmgmt native addon not built: ${addonPath} is missing. Run \`make build\` or \`node scripts/build-native.mjs\`.`);
  }
  const require = createRequire(import.meta.url);
  try {
    loaded = require(addonPath) as VmgmtNative;
  } catch (cause) {
    throw new Error(
      `vmgmt native addon at ${addonPath} failed to load; rebuild it with \`node scripts/build-native.mjs --force\``,
      { cause },
    );
  }
  return loaded;
}
