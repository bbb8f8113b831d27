// Typed loader for the vmgmt_native N-API addon (vmgmt_native.c): mmap, memfd, eventfd, UNIX sockets with
// SCM_RIGHTS, pidfd, and fd watches on the Node event loop.
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

/**
 * Failing syscalls throw an Error with `code` (errno name, e.g. 'ENOENT'), `errno` (negative, as in Node's
 * own system errors), `syscall`, and a message naming the call and its arguments.
 */
export interface VmgmtNative {
  /** memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING) + ftruncate; returns the fd. */
  memfdCreate(name: string, sizeBytes: number): number;
  /** mmap(PROT_READ|PROT_WRITE, MAP_SHARED|MAP_POPULATE). Refuses to map past the end of a regular file. */
  mapShared(fd: number, sizeBytes: number): ArrayBuffer;
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
}

/** Shape of the errors thrown by failing syscalls in the addon. */
export interface NativeSyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

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
