// Real syscalls against the built addon (node scripts/build-native.mjs); no mocks.
import { spawnSync } from 'node:child_process';
import {
  constants as fsConstants,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isNativeSyscallError,
  loadNative,
  OPEN_FLAG_NAMES,
  OPEN_FLAGS,
  RESOLVE,
  RESOLVE_FLAG_NAMES,
  type NativeWatch,
  type VmgmtNative,
} from './index.js';

let native: VmgmtNative;
let tmpDir: string;
const fdsToClose: number[] = [];

function track(fd: number): number {
  fdsToClose.push(fd);
  return fd;
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

async function waitFor<T>(poll: () => T | null, what: string, timeoutMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = poll();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs a CommonJS snippet in a fresh node with `native` bound to the addon. */
function runChild(source: string, args: { timeoutMs: number; nodeFlags?: string[] }) {
  const addonPath = path.resolve(import.meta.dirname, 'build', 'Release', 'vmgmt_native.node');
  const script = `const native = require(${JSON.stringify(addonPath)});\n${source}`;
  return spawnSync(process.execPath, [...(args.nodeFlags ?? []), '-e', script], {
    encoding: 'utf8',
    timeout: args.timeoutMs,
  });
}

beforeAll(() => {
  native = loadNative();
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'vmgmt-native-'));
});

afterAll(() => {
  for (const fd of fdsToClose) {
    try {
      native.close(fd);
    } catch {
      // already closed by the test
    }
  }
  rmSync(tmpDir, { recursive: true, force: true });
});

describe('shared memory', () => {
  it('two mappings of one memfd see each other', () => {
    const sizeBytes = 64 * 1024;
    const fd = track(native.memfdCreate('vmgmt-test-shm', sizeBytes));
    const a = native.mapShared(fd, sizeBytes);
    const b = native.mapShared(fd, sizeBytes);
    expect(a.byteLength).toBe(sizeBytes);
    const viewA = new Uint32Array(a);
    const viewB = new Uint32Array(b);
    viewA[0] = 0xdeadbeef;
    viewA[sizeBytes / 4 - 1] = 12345;
    expect(viewB[0]).toBe(0xdeadbeef);
    expect(viewB[sizeBytes / 4 - 1]).toBe(12345);
    expect(native.fdRealpath(fd)).toBe('/memfd:vmgmt-test-shm (deleted)');

    native.unmap(a);
    expect(a.byteLength).toBe(0);
    expect(viewA.length).toBe(0);
    native.unmap(a); // idempotent
    expect(viewB[0]).toBe(0xdeadbeef);
    native.unmap(b);
  });

  it('faults pages in on first touch unless asked to prefault (what the region costs the host)', () => {
    const sizeBytes = 1 << 20;
    const allocatedBytes = (fd: number): number => fstatSync(fd).blocks * 512;
    const lazyFd = track(native.memfdCreate('vmgmt-test-lazy', sizeBytes));
    const lazy = native.mapShared(lazyFd, sizeBytes);
    expect(allocatedBytes(lazyFd)).toBe(0);
    new Uint8Array(lazy)[3 * 4096] = 1;
    expect(allocatedBytes(lazyFd)).toBe(4096);
    const eagerFd = track(native.memfdCreate('vmgmt-test-eager', sizeBytes));
    const eager = native.mapShared(eagerFd, sizeBytes, true);
    expect(allocatedBytes(eagerFd)).toBe(sizeBytes);
    expect(() => native.mapShared(eagerFd, sizeBytes, 1 as unknown as boolean)).toThrow(/prefault must be a boolean/);
    native.unmap(lazy);
    native.unmap(eager);
  });

  it('refuses to map past the end of the file (would SIGBUS) and foreign buffers in unmap', () => {
    const fd = track(native.memfdCreate('vmgmt-test-small', 4096));
    const error = catchError(() => native.mapShared(fd, 8192));
    expect(isNativeSyscallError(error) && error.code).toBe('EINVAL');
    expect((error as Error).message).toContain('only 4096 bytes');
    expect(() => native.unmap(new ArrayBuffer(8))).toThrow(/returned by mapShared/);
  });

  it('a GC-finalized mapping that was unmapped first does not unmap a later mapping', () => {
    const result = runChild(
      `
      const fd = native.memfdCreate('vmgmt-gc', 1 << 20);
      let a = native.mapShared(fd, 1 << 20);
      native.unmap(a);
      const b = native.mapShared(fd, 1 << 20);
      new Uint8Array(b)[0] = 7;
      a = null;
      for (let i = 0; i < 5; i++) globalThis.gc();
      let dropped = native.mapShared(fd, 4096);
      dropped = null;
      const countMaps = () => require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('memfd:vmgmt-gc')).length;
      const before = countMaps();
      setImmediate(() => {
        for (let i = 0; i < 5; i++) globalThis.gc();
        setImmediate(() => {
          console.log(JSON.stringify({ first: new Uint8Array(b)[0], before, after: countMaps() }));
        });
      });
      `,
      { timeoutMs: 10_000, nodeFlags: ['--expose-gc'] },
    );
    expect(result.stderr).toBe('');
    const out = JSON.parse(result.stdout) as { first: number; before: number; after: number };
    expect(out.first).toBe(7);
    expect(out.before).toBe(2); // b and the dropped 4 KiB mapping
    expect(out.after).toBe(1); // the dropped one was munmapped by its finalizer, b survived
  });
});

describe('file I/O on the thread pool', () => {
  const mapsOf = (name: string): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`memfd:${name}`)).length;

  it('preadFull and pwriteFull move whole buffers between a file and a mapping', async () => {
    const sizeBytes = 3 * 1024 * 1024 + 5;
    const file = path.join(tmpDir, 'pool-io.bin');
    const data = new Uint8Array(sizeBytes).map((_, i) => (i * 11) & 0xff);
    writeFileSync(file, data);
    const fd = track(openSync(file, 'r+'));
    const memFd = track(native.memfdCreate('vmgmt-test-pool', 4 << 20));
    const region = native.mapShared(memFd, 4 << 20);
    const view = new Uint8Array(region, 4096, sizeBytes + 100);
    const read = await native.preadFull(fd, view, 0);
    expect(read).toBe(sizeBytes); // the file ended before the view was full
    expect(Buffer.compare(view.subarray(0, sizeBytes), data)).toBe(0);
    view[0] = 0xab;
    expect(await native.pwriteFull(fd, view.subarray(0, 4096), sizeBytes)).toBe(4096);
    expect(await native.fsyncAsync(fd)).toBe(0);
    expect(statSync(file).size).toBe(sizeBytes + 4096);
    expect(readFileSync(file)[sizeBytes]).toBe(0xab);
    native.unmap(region);
  });

  it('rejects with the errno and the call; the bad fd is named', async () => {
    const err = await native.preadFull(999_999, new Uint8Array(16), 0).catch((e: unknown) => e);
    expect(isNativeSyscallError(err) && err.code).toBe('EBADF');
    expect((err as Error).message).toMatch(/^pread\(fd 999999, 16 bytes at 0\): Bad file descriptor/);
    await expect(native.fsyncAsync(999_999)).rejects.toThrow(/fsync/);
    expect(() => native.pwriteFull(0, 'x' as unknown as Uint8Array, 0)).toThrow(/must be a Uint8Array/);
  });

  it('an unmap while a job copies into the mapping detaches at once and munmaps when the job ends', async () => {
    const file = path.join(tmpDir, 'pool-unmap.bin');
    writeFileSync(file, new Uint8Array(8 << 20).fill(5));
    const fd = track(openSync(file, 'r'));
    const memFd = track(native.memfdCreate('vmgmt-test-unmap', 8 << 20));
    const region = native.mapShared(memFd, 8 << 20);
    const job = native.preadFull(fd, new Uint8Array(region), 0);
    // Its completion runs on this thread, so the job is still counted when unmap runs in the same turn.
    native.unmap(region);
    expect(region.byteLength).toBe(0);
    expect(mapsOf('vmgmt-test-unmap')).toBe(1);
    expect(await job).toBe(8 << 20);
    expect(mapsOf('vmgmt-test-unmap')).toBe(0);
  });
});

describe('errors', () => {
  it('carry code, errno, syscall and a message naming the call', () => {
    const socketPath = path.join(tmpDir, 'busy.sock');
    const listenFd = track(native.unixListen(socketPath, 4));
    const error = catchError(() => native.unixListen(socketPath, 4));
    expect(isNativeSyscallError(error)).toBe(true);
    if (!isNativeSyscallError(error)) return;
    expect(error.code).toBe('EADDRINUSE');
    expect(error.syscall).toBe('bind');
    expect(error.errno).toBe(-98);
    expect(error.message).toBe(`bind(${socketPath}): Address already in use`);
    expect(native.unixAccept(listenFd)).toBe(-1);

    const bad = catchError(() => native.close(1_000_000));
    expect(isNativeSyscallError(bad) && bad.code).toBe('EBADF');
    expect((bad as Error).message).toBe('close(fd 1000000): Bad file descriptor');
  });

  it('rejects socket paths longer than sun_path', () => {
    const error = catchError(() => native.unixListen(`/tmp/${'x'.repeat(120)}.sock`, 1));
    expect(isNativeSyscallError(error) && error.code).toBe('ENAMETOOLONG');
    expect((error as Error).message).toContain('1..107 bytes');
  });

  it('rejects bad arguments with TypeError/RangeError', () => {
    expect(() => native.eventfdWrite(-1)).toThrow(RangeError);
    expect(() => native.memfdCreate('x', 1.5)).toThrow(RangeError);
    expect(() => native.sendInt64WithFd(0, 1 as unknown as bigint, -1)).toThrow(TypeError);
    expect(() => native.watchReadable(0, 'nope' as unknown as () => void)).toThrow(TypeError);
  });
});

describe('eventfd watches', () => {
  it('delivers the summed count of writes made before the loop turned', async () => {
    const efd = track(native.eventfdCreate());
    const counts: number[] = [];
    let watch: NativeWatch | undefined;
    const first = new Promise<number>((resolve) => {
      watch = native.watchEventfd(efd, (count) => {
        counts.push(count);
        resolve(count);
      });
    });
    native.eventfdWrite(efd);
    native.eventfdWrite(efd);
    native.eventfdWrite(efd);
    expect(await first).toBe(3);

    watch?.stop();
    watch?.stop(); // idempotent
    native.eventfdWrite(efd);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(counts).toEqual([3]);
  });

  it('can be stopped from inside its own callback and the fd watched again', async () => {
    const efd = track(native.eventfdCreate());
    let calls = 0;
    const watch = native.watchEventfd(efd, () => {
      calls += 1;
      watch.stop();
    });
    native.eventfdWrite(efd);
    await new Promise((resolve) => setTimeout(resolve, 20));
    native.eventfdWrite(efd);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toBe(1);
    // The first watch's uv handle is closed by now, so the fd is free for a new one.
    const again = await new Promise<number>((resolve) => {
      const second = native.watchEventfd(efd, (count) => {
        second.stop();
        resolve(count);
      });
    });
    expect(again).toBe(1);
  });

  it('refuses a second concurrent watch on the same fd', () => {
    const efd = track(native.eventfdCreate());
    const watch = native.watchEventfd(efd, () => {});
    const error = catchError(() => native.watchReadable(efd, () => {}));
    watch.stop();
    expect(isNativeSyscallError(error) && error.code).toBe('EEXIST');
  });

  it('runs microtasks after each callback (napi_make_callback)', async () => {
    const efd = track(native.eventfdCreate());
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      const watch = native.watchEventfd(efd, () => {
        watch.stop();
        void Promise.resolve().then(() => order.push('microtask'));
        setImmediate(() => {
          order.push('immediate');
          resolve();
        });
      });
      native.eventfdWrite(efd);
    });
    expect(order).toEqual(['microtask', 'immediate']);
  });

  it('an exception in a callback reaches uncaughtException; a stopped watch lets the process exit', () => {
    const result = runChild(
      `
      const efd = native.eventfdCreate();
      process.on('uncaughtException', (err) => {
        console.log('caught:' + err.message);
        watch.stop();
      });
      const watch = native.watchEventfd(efd, () => { throw new Error('boom from callback'); });
      native.eventfdWrite(efd);
      `,
      { timeoutMs: 5000 },
    );
    expect(result.signal).toBeNull();
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toBe('caught:boom from callback');
  });

  it('an active watch keeps the process alive', () => {
    const result = runChild(`native.watchEventfd(native.eventfdCreate(), () => {});`, { timeoutMs: 700 });
    expect(result.signal).toBe('SIGTERM');
  });

  it('ping-pong round trip over two eventfds', async () => {
    const rounds = 10_000;
    const ping = track(native.eventfdCreate());
    const pong = track(native.eventfdCreate());
    const samplesNs = new Float64Array(rounds);
    let i = 0;
    let startNs = 0n;
    const pingWatch = native.watchEventfd(ping, () => native.eventfdWrite(pong));
    await new Promise<void>((resolve) => {
      const pongWatch = native.watchEventfd(pong, () => {
        samplesNs[i] = Number(process.hrtime.bigint() - startNs);
        i += 1;
        if (i === rounds) {
          pongWatch.stop();
          resolve();
          return;
        }
        startNs = process.hrtime.bigint();
        native.eventfdWrite(ping);
      });
      startNs = process.hrtime.bigint();
      native.eventfdWrite(ping);
    });
    pingWatch.stop();
    const sorted = Array.from(samplesNs).sort((x, y) => x - y);
    const medianUs = (sorted[Math.floor(rounds / 2)] ?? 0) / 1000;
    const p99Us = (sorted[Math.floor(rounds * 0.99)] ?? 0) / 1000;
    console.log(`eventfd ping-pong round trip: median ${medianUs.toFixed(1)} us, p99 ${p99Us.toFixed(1)} us (${rounds} rounds)`);
    expect(medianUs).toBeGreaterThan(0);
    expect(medianUs).toBeLessThan(5000);
  }, 60_000);
});

describe('UNIX sockets', () => {
  it('accepts a net.connect client, exchanges bytes and passes an eventfd with SCM_RIGHTS', async () => {
    const socketPath = path.join(tmpDir, 'server.sock');
    const listenFd = track(native.unixListen(socketPath, 8));
    expect(native.unixAccept(listenFd)).toBe(-1);

    const accepted = new Promise<number>((resolve) => {
      const watch = native.watchReadable(listenFd, () => {
        const fd = native.unixAccept(listenFd);
        if (fd >= 0) {
          watch.stop();
          resolve(track(fd));
        }
      });
    });
    const client = net.connect(socketPath);
    client.pause(); // keep libuv from reading: the test reads this socket's fd with recvmsg below
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    const serverFd = await accepted;
    const clientFd = (client as unknown as { _handle: { fd: number } })._handle.fd;
    expect(clientFd).toBeGreaterThanOrEqual(0);

    // client -> server: readiness through watchReadable, bytes through recvDiscard
    const received = new Promise<number>((resolve) => {
      const watch = native.watchReadable(serverFd, () => {
        const n = native.recvDiscard(serverFd);
        if (n > 0) {
          watch.stop();
          resolve(n);
        }
      });
    });
    client.write(Buffer.from('hello'));
    expect(await received).toBe(5);
    expect(native.recvDiscard(serverFd)).toBe(-1);

    // server -> client: an int64 with and without an fd
    const efd = track(native.eventfdCreate());
    native.sendInt64WithFd(serverFd, 42n, efd);
    const withFd = await waitFor(() => native.recvInt64WithFd(clientFd), 'the message with an fd');
    expect(withFd.value).toBe(42n);
    expect(withFd.fd).toBeGreaterThanOrEqual(0);
    expect(withFd.fd).not.toBe(efd);
    track(withFd.fd);
    expect(native.fdRealpath(withFd.fd)).toBe('anon_inode:[eventfd]');

    native.sendInt64WithFd(serverFd, -5n, -1);
    const plain = await waitFor(() => native.recvInt64WithFd(clientFd), 'the message without an fd');
    expect(plain).toEqual({ value: -5n, fd: -1 });
    expect(native.recvInt64WithFd(clientFd)).toBeNull();

    // the received fd is the same eventfd: signalling it wakes a watch on the original
    const signalled = new Promise<number>((resolve) => {
      const watch = native.watchEventfd(efd, (count) => {
        watch.stop();
        resolve(count);
      });
    });
    native.eventfdWrite(withFd.fd);
    expect(await signalled).toBe(1);

    // peer close shows as EOF on both receive paths
    client.destroy();
    const eof = await waitFor(() => (native.recvDiscard(serverFd) === 0 ? true : null), 'EOF after client close');
    expect(eof).toBe(true);
  });

  it('recvInt64WithFd reports EOF as ECONNRESET', async () => {
    const socketPath = path.join(tmpDir, 'eof.sock');
    const listenFd = track(native.unixListen(socketPath, 1));
    const client = net.connect(socketPath);
    client.pause();
    await new Promise<void>((resolve) => client.once('connect', resolve));
    const serverFd = track(await waitFor(() => { const fd = native.unixAccept(listenFd); return fd >= 0 ? fd : null; }, 'accept'));
    client.destroy();
    const error = await waitFor(() => {
      try {
        native.recvInt64WithFd(serverFd);
        return null;
      } catch (caught) {
        return caught;
      }
    }, 'EOF');
    expect(isNativeSyscallError(error) && error.code).toBe('ECONNRESET');
  });
});

describe('pidfd', () => {
  it('duplicates one of our own fds through pidfd_getfd', () => {
    const memfd = track(native.memfdCreate('vmgmt-test-pidfd', 4096));
    const pidfd = track(native.pidfdOpen(process.pid));
    const dup = track(native.pidfdGetfd(pidfd, memfd));
    expect(dup).not.toBe(memfd);
    expect(native.fdRealpath(dup)).toBe(native.fdRealpath(memfd));
    expect(native.fdRealpath(dup)).toBe('/memfd:vmgmt-test-pidfd (deleted)');

    const a = native.mapShared(memfd, 4096);
    const b = native.mapShared(dup, 4096);
    new Uint8Array(a)[100] = 99;
    expect(new Uint8Array(b)[100]).toBe(99);
    native.unmap(a);
    native.unmap(b);

    const error = catchError(() => native.pidfdGetfd(pidfd, 999_999));
    expect(isNativeSyscallError(error) && error.code).toBe('EBADF');
  });
});

describe('kcmpFile', () => {
  it('tells the same open file description from another open of the same file', () => {
    const fd = native.memfdCreate('kcmp-test', 4096);
    const pidfd = native.pidfdOpen(process.pid);
    const dup = native.pidfdGetfd(pidfd, fd);
    const other = native.memfdCreate('kcmp-test', 4096);
    try {
      expect(native.kcmpFile(process.pid, fd, process.pid, dup)).toBe(true);
      expect(native.kcmpFile(process.pid, fd, process.pid, other)).toBe(false);
    } finally {
      for (const f of [fd, pidfd, dup, other]) native.close(f);
    }
  });
});

// ---------------------------------------------------------------- confined file system

/** A fresh directory under tmpDir opened as a root dir fd, as the daemon holds one per VM. */
function makeRoot(name: string): { dir: string; rootFd: number } {
  const dir = path.join(tmpDir, name);
  mkdirSync(dir);
  return { dir, rootFd: track(openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY)) };
}

function errorCode(fn: () => unknown): string | undefined {
  const error = catchError(fn);
  return (error as { code?: string }).code;
}

function currentUmask(): number {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('Umask:'));
  if (line === undefined) throw new Error('no Umask line in /proc/self/status');
  return parseInt(line.slice('Umask:'.length).trim(), 8);
}

describe('file system constants', () => {
  it('OPEN_FLAGS and RESOLVE come from the addon and match the kernel values', () => {
    expect(Object.keys(native.OPEN_FLAGS).sort()).toEqual([...OPEN_FLAG_NAMES].sort());
    expect(Object.keys(native.RESOLVE).sort()).toEqual([...RESOLVE_FLAG_NAMES].sort());
    expect({ ...OPEN_FLAGS }).toEqual({ ...native.OPEN_FLAGS });
    expect({ ...RESOLVE }).toEqual({ ...native.RESOLVE });
    expect(Object.isFrozen(native.OPEN_FLAGS)).toBe(true);
    // Node's own fs.constants are the same <fcntl.h> values.
    expect(OPEN_FLAGS.RDONLY).toBe(fsConstants.O_RDONLY);
    expect(OPEN_FLAGS.CREAT).toBe(fsConstants.O_CREAT);
    expect(OPEN_FLAGS.NOFOLLOW).toBe(fsConstants.O_NOFOLLOW);
    expect(OPEN_FLAGS.DIRECTORY).toBe(fsConstants.O_DIRECTORY);
    expect(OPEN_FLAGS.APPEND).toBe(fsConstants.O_APPEND);
    expect(OPEN_FLAGS.PATH).toBe(0o10000000);
    expect(RESOLVE).toEqual({ NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08, IN_ROOT: 0x10 });
  });
});

describe('openat2 confinement', () => {
  const CONFINED = RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS | RESOLVE.NO_XDEV;

  it('refuses .., absolute paths and symlinks leading out; follows symlinks that stay inside', () => {
    const { dir, rootFd } = makeRoot('confine');
    writeFileSync(path.join(dir, 'a.txt'), 'inside');
    writeFileSync(path.join(tmpDir, 'outside.txt'), 'outside');
    mkdirSync(path.join(dir, 'sub'));
    symlinkSync('../a.txt', path.join(dir, 'sub', 'up'));
    symlinkSync('/etc/passwd', path.join(dir, 'abs-out'));
    symlinkSync('../outside.txt', path.join(dir, 'rel-out'));

    expect(errorCode(() => native.openat2(rootFd, '../x', OPEN_FLAGS.RDONLY, 0, CONFINED))).toBe('EXDEV');
    expect(errorCode(() => native.openat2(rootFd, '/etc/passwd', OPEN_FLAGS.RDONLY, 0, CONFINED))).toBe('EXDEV');
    expect(errorCode(() => native.openat2(rootFd, 'abs-out', OPEN_FLAGS.RDONLY, 0, CONFINED))).toBe('EXDEV');
    expect(errorCode(() => native.openat2(rootFd, 'rel-out', OPEN_FLAGS.RDONLY, 0, CONFINED))).toBe('EXDEV');
    expect(errorCode(() => native.openat2(rootFd, 'sub/../../outside.txt', OPEN_FLAGS.RDONLY, 0, CONFINED))).toBe('EXDEV');
    // The same open without RESOLVE_BENEATH escapes: the refusal above is the resolve flag's doing.
    const escaped = track(native.openat2(rootFd, 'rel-out', OPEN_FLAGS.RDONLY, 0, 0));
    expect(native.fdRealpath(escaped)).toBe(path.join(tmpDir, 'outside.txt'));

    const fd = track(native.openat2(rootFd, 'sub/up', OPEN_FLAGS.RDONLY, 0, CONFINED));
    expect(native.fdRealpath(fd)).toBe(path.join(dir, 'a.txt'));
    const bytes = new Uint8Array(16);
    expect(Buffer.from(bytes.subarray(0, native.pread(fd, bytes, 0))).toString()).toBe('inside');
    // RESOLVE_IN_ROOT treats the root fd as "/".
    const inRoot = track(native.openat2(rootFd, '/a.txt', OPEN_FLAGS.RDONLY, 0, RESOLVE.IN_ROOT));
    expect(native.fdRealpath(inRoot)).toBe(path.join(dir, 'a.txt'));
  });

  it('errors name the call and arguments; the fd is close-on-exec', () => {
    const { rootFd } = makeRoot('confine-errors');
    const error = catchError(() => native.openat2(rootFd, 'missing', OPEN_FLAGS.RDONLY, 0, RESOLVE.BENEATH));
    expect(isNativeSyscallError(error)).toBe(true);
    if (!isNativeSyscallError(error)) return;
    expect(error.code).toBe('ENOENT');
    expect(error.errno).toBe(-2);
    expect(error.syscall).toBe('openat2');
    expect(error.message).toBe(
      `openat2(dirfd ${rootFd}, missing, flags 0x${OPEN_FLAGS.CLOEXEC.toString(16)}, mode 00, resolve 0x8): No such file or directory`,
    );
    const fd = track(native.openat2(rootFd, 'created', OPEN_FLAGS.CREAT | OPEN_FLAGS.WRONLY, 0o600, RESOLVE.BENEATH));
    const fdFlags = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+(\d+)/m)?.[1];
    expect(parseInt(fdFlags ?? '0', 8) & OPEN_FLAGS.CLOEXEC).toBe(OPEN_FLAGS.CLOEXEC);
  });

  it('O_NOFOLLOW on a final symlink gives ELOOP', () => {
    const { dir, rootFd } = makeRoot('nofollow');
    writeFileSync(path.join(dir, 'target'), 'x');
    symlinkSync('target', path.join(dir, 'link'));
    const flags = OPEN_FLAGS.RDONLY | OPEN_FLAGS.NOFOLLOW;
    expect(errorCode(() => native.openat2(rootFd, 'link', flags, 0, CONFINED))).toBe('ELOOP');
    expect(errorCode(() => native.openat2(rootFd, 'link', OPEN_FLAGS.RDONLY, 0, CONFINED | RESOLVE.NO_SYMLINKS))).toBe('ELOOP');
    // O_PATH|O_NOFOLLOW opens the link itself.
    const linkFd = track(native.openat2(rootFd, 'link', OPEN_FLAGS.PATH | OPEN_FLAGS.NOFOLLOW, 0, CONFINED));
    expect(native.fstat(linkFd).type).toBe('symlink');
  });

  it('refuses magic links', () => {
    const { dir, rootFd } = makeRoot('magic');
    symlinkSync('/proc/self/root', path.join(dir, 'link'));
    const code = errorCode(() => native.openat2(rootFd, 'link', OPEN_FLAGS.PATH, 0, RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS));
    expect(['EXDEV', 'ELOOP']).toContain(code);
    // A real magic link, resolved from a /proc/self dir fd: NO_MAGICLINKS alone refuses it.
    const procSelf = track(openSync('/proc/self', fsConstants.O_RDONLY | fsConstants.O_DIRECTORY));
    expect(errorCode(() => native.openat2(procSelf, 'root', OPEN_FLAGS.PATH, 0, RESOLVE.NO_MAGICLINKS))).toBe('ELOOP');
    expect(errorCode(() => native.openat2(procSelf, 'cwd', OPEN_FLAGS.PATH, 0, CONFINED))).toBe('ELOOP');
    const followed = track(native.openat2(procSelf, 'root', OPEN_FLAGS.PATH, 0, 0));
    expect(native.fdRealpath(followed)).toBe('/');
  });

  it('a FIFO opened with O_PATH|O_NOFOLLOW does not block', () => {
    const { dir, rootFd } = makeRoot('fifo');
    const made = spawnSync('mkfifo', [path.join(dir, 'pipe')], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const startedMs = performance.now();
    const fd = track(native.openat2(rootFd, 'pipe', OPEN_FLAGS.PATH | OPEN_FLAGS.NOFOLLOW, 0, CONFINED));
    expect(performance.now() - startedMs).toBeLessThan(1000);
    expect(native.fstat(fd).type).toBe('fifo');
    expect(native.fstatat(rootFd, 'pipe').type).toBe('fifo');
    // An O_PATH fd cannot be read or chmod'ed: operations need a real open.
    expect(errorCode(() => native.pread(fd, new Uint8Array(1), 0))).toBe('EBADF');
    expect(errorCode(() => native.fchmod(fd, 0o600))).toBe('EBADF');
  });
});

describe('reopenFd', () => {
  const CONFINED = RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS | RESOLVE.NO_XDEV;

  it('reopens the inode of an O_PATH fd for reading, even after the name was swapped for a symlink', () => {
    const { dir, rootFd } = makeRoot('reopen');
    writeFileSync(path.join(dir, 'f'), 'original');
    writeFileSync(path.join(dir, 'other'), 'other');
    const pathFd = track(native.openat2(rootFd, 'f', OPEN_FLAGS.PATH | OPEN_FLAGS.NOFOLLOW, 0, CONFINED));
    expect(errorCode(() => native.pread(pathFd, new Uint8Array(1), 0))).toBe('EBADF');
    rmSync(path.join(dir, 'f'));
    symlinkSync('other', path.join(dir, 'f'));
    const fd = track(native.reopenFd(pathFd, OPEN_FLAGS.RDONLY));
    const buf = new Uint8Array(32);
    expect(new TextDecoder().decode(buf.subarray(0, native.pread(fd, buf, 0)))).toBe('original');
    expect(native.fstat(fd).ino).toBe(native.fstat(pathFd).ino);
    const fdFlags = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+(\d+)/m)?.[1];
    expect(parseInt(fdFlags ?? '0', 8) & OPEN_FLAGS.CLOEXEC).toBe(OPEN_FLAGS.CLOEXEC);
    expect(parseInt(fdFlags ?? '0', 8) & OPEN_FLAGS.PATH).toBe(0);
  });

  it('reopens a FIFO only when asked (non-blocking here); the O_PATH fd alone reads nothing', () => {
    const { dir, rootFd } = makeRoot('reopen-fifo');
    expect(spawnSync('mkfifo', [path.join(dir, 'pipe')]).status).toBe(0);
    const pathFd = track(native.openat2(rootFd, 'pipe', OPEN_FLAGS.PATH | OPEN_FLAGS.NOFOLLOW, 0, CONFINED));
    expect(native.fstat(pathFd).type).toBe('fifo');
    expect(errorCode(() => native.pread(pathFd, new Uint8Array(1), 0))).toBe('EBADF');
    const fd = track(native.reopenFd(pathFd, OPEN_FLAGS.RDONLY | OPEN_FLAGS.NONBLOCK));
    expect(native.fstat(fd).type).toBe('fifo');
  });

  it('refuses flags that make no sense on a reopen, and bad fds', () => {
    const { dir, rootFd } = makeRoot('reopen-args');
    writeFileSync(path.join(dir, 'f'), 'x');
    const pathFd = track(native.openat2(rootFd, 'f', OPEN_FLAGS.PATH | OPEN_FLAGS.NOFOLLOW, 0, CONFINED));
    for (const bad of [OPEN_FLAGS.CREAT, OPEN_FLAGS.TRUNC, OPEN_FLAGS.PATH, OPEN_FLAGS.NOFOLLOW, OPEN_FLAGS.DIRECTORY]) {
      const error = catchError(() => native.reopenFd(pathFd, OPEN_FLAGS.RDONLY | bad));
      expect(error).toBeInstanceOf(RangeError);
      expect((error as { code?: string }).code).toBe('ERR_OUT_OF_RANGE');
    }
    expect(() => native.reopenFd(-1, OPEN_FLAGS.RDONLY)).toThrow(RangeError);
    const error = catchError(() => native.reopenFd(999_999, OPEN_FLAGS.RDONLY));
    expect(isNativeSyscallError(error) && error.code).toBe('ENOENT');
    expect((error as Error).message).toContain('/proc/self/fd/999999');
  });
});

describe('file metadata', () => {
  it('fstat of a regular file gives type, size, mode and identity', () => {
    const { dir, rootFd } = makeRoot('stat');
    writeFileSync(path.join(dir, 'f'), 'x'.repeat(1234));
    const fd = track(native.openat2(rootFd, 'f', OPEN_FLAGS.RDWR, 0, RESOLVE.BENEATH));
    native.fchmod(fd, 0o4750);
    const st = native.fstat(fd);
    const nodeSt = statSync(path.join(dir, 'f'));
    expect(st).toEqual({
      type: 'file',
      mode: 0o4750,
      sizeBytes: 1234,
      mtimeMs: nodeSt.mtimeMs,
      ino: nodeSt.ino,
      dev: nodeSt.dev,
      nlink: 1,
      uid: process.getuid?.(),
      gid: process.getgid?.(),
    });
    expect(native.fstatat(rootFd, 'f')).toEqual(st);

    native.fchmod(fd, 0o640);
    expect(native.fstat(fd).mode).toBe(0o640);
    native.fchown(fd, -1, nodeSt.gid);
    native.fsync(fd);
    expect(native.fstat(fd).uid).toBe(nodeSt.uid);

    symlinkSync('f', path.join(dir, 'l'));
    expect(native.fstatat(rootFd, 'l').type).toBe('symlink'); // not followed
    expect(native.fstat(rootFd).type).toBe('dir');
  });

  it('ftruncate shrinks and grows', () => {
    const { dir, rootFd } = makeRoot('truncate');
    writeFileSync(path.join(dir, 'f'), 'hello world');
    const fd = track(native.openat2(rootFd, 'f', OPEN_FLAGS.RDWR, 0, RESOLVE.BENEATH));
    native.ftruncate(fd, 5);
    expect(native.fstat(fd).sizeBytes).toBe(5);
    expect(readFileSync(path.join(dir, 'f'), 'utf8')).toBe('hello');
    native.ftruncate(fd, 1 << 20);
    expect(native.fstat(fd).sizeBytes).toBe(1 << 20);
    expect(() => native.ftruncate(fd, -1)).toThrow(RangeError);
  });
});

describe('directory operations', () => {
  it('readdirFd lists names and types and leaves the fd usable', () => {
    const { dir, rootFd } = makeRoot('list');
    writeFileSync(path.join(dir, 'file'), '');
    mkdirSync(path.join(dir, 'dir'));
    symlinkSync('nowhere', path.join(dir, 'link'));
    expect(spawnSync('mkfifo', [path.join(dir, 'pipe')]).status).toBe(0);
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    const expected = [
      { name: 'dir', type: 'dir' },
      { name: 'file', type: 'file' },
      { name: 'link', type: 'symlink' },
      { name: 'pipe', type: 'fifo' },
    ];
    expect(native.readdirFd(rootFd).sort(byName)).toEqual(expected);
    expect(native.readdirFd(rootFd).sort(byName)).toEqual(expected);
    // Works from an O_PATH directory fd too, and the fd still serves openat2.
    const pathFd = track(native.openat2(rootFd, 'dir', OPEN_FLAGS.PATH | OPEN_FLAGS.DIRECTORY, 0, RESOLVE.BENEATH));
    expect(native.readdirFd(pathFd)).toEqual([]);
    const fileFd = track(native.openat2(rootFd, 'file', OPEN_FLAGS.RDONLY, 0, RESOLVE.BENEATH));
    expect(errorCode(() => native.readdirFd(fileFd))).toBe('ENOTDIR');
  });

  it('readdirFd refuses directories with more than 100000 entries', () => {
    const { dir, rootFd } = makeRoot('huge');
    for (let i = 0; i < 100_001; i++) symlinkSync('t', path.join(dir, `l${i}`));
    const error = catchError(() => native.readdirFd(rootFd));
    expect(isNativeSyscallError(error) && error.code).toBe('E2BIG');
    expect((error as Error).message).toContain('more than 100000 entries');
    native.unlinkat(rootFd, 'l0', false);
    expect(native.readdirFd(rootFd)).toHaveLength(100_000);
  }, 60_000);

  it('renameat with noReplace refuses an existing target and moves otherwise', () => {
    const { dir, rootFd } = makeRoot('rename');
    writeFileSync(path.join(dir, 'a'), 'A');
    writeFileSync(path.join(dir, 'b'), 'B');
    mkdirSync(path.join(dir, 'sub'));
    const subFd = track(native.openat2(rootFd, 'sub', OPEN_FLAGS.PATH | OPEN_FLAGS.DIRECTORY, 0, RESOLVE.BENEATH));

    const error = catchError(() => native.renameat(rootFd, 'a', rootFd, 'b', true));
    expect(isNativeSyscallError(error) && error.code).toBe('EEXIST');
    expect((error as Error).message).toBe(`renameat2(dirfd ${rootFd}, a -> dirfd ${rootFd}, b, RENAME_NOREPLACE): File exists`);
    expect(readFileSync(path.join(dir, 'b'), 'utf8')).toBe('B');

    native.renameat(rootFd, 'a', subFd, 'moved', true);
    expect(readFileSync(path.join(dir, 'sub', 'moved'), 'utf8')).toBe('A');
    expect(errorCode(() => native.fstatat(rootFd, 'a'))).toBe('ENOENT');
    native.renameat(subFd, 'moved', rootFd, 'b', false); // replaces
    expect(readFileSync(path.join(dir, 'b'), 'utf8')).toBe('A');
  });

  it('unlinkat removes files and (with removeDir) empty directories', () => {
    const { dir, rootFd } = makeRoot('unlink');
    writeFileSync(path.join(dir, 'f'), '');
    mkdirSync(path.join(dir, 'd'));
    expect(errorCode(() => native.unlinkat(rootFd, 'd', false))).toBe('EISDIR');
    expect(errorCode(() => native.unlinkat(rootFd, 'f', true))).toBe('ENOTDIR');
    native.unlinkat(rootFd, 'f', false);
    native.unlinkat(rootFd, 'd', true);
    expect(native.readdirFd(rootFd)).toEqual([]);
    expect(errorCode(() => native.unlinkat(rootFd, 'f', false))).toBe('ENOENT');
  });

  it('mkdirat honours mode (less the umask) and fchmod sets it exactly', () => {
    const { rootFd } = makeRoot('mkdir');
    const umask = currentUmask();
    native.mkdirat(rootFd, 'm', 0o751);
    const st = native.fstatat(rootFd, 'm');
    expect(st.type).toBe('dir');
    expect(st.mode).toBe(0o751 & ~umask);
    const dirFd = track(native.openat2(rootFd, 'm', OPEN_FLAGS.RDONLY | OPEN_FLAGS.DIRECTORY, 0, RESOLVE.BENEATH));
    native.fchmod(dirFd, 0o1777);
    expect(native.fstatat(rootFd, 'm').mode).toBe(0o1777);
    expect(errorCode(() => native.mkdirat(rootFd, 'm', 0o700))).toBe('EEXIST');
  });

  it('the *at calls take one path component only', () => {
    const { rootFd } = makeRoot('names');
    for (const bad of ['a/b', '..', '.', '', '/etc', 'x/']) {
      const error = catchError(() => native.mkdirat(rootFd, bad, 0o700));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as { code?: string }).code).toBe('ERR_INVALID_ARG_VALUE');
    }
    expect(errorCode(() => native.fstatat(rootFd, '../etc'))).toBe('ERR_INVALID_ARG_VALUE');
    expect(errorCode(() => native.unlinkat(rootFd, 'sub/x', false))).toBe('ERR_INVALID_ARG_VALUE');
    expect(errorCode(() => native.renameat(rootFd, 'a', rootFd, '../b', true))).toBe('ERR_INVALID_ARG_VALUE');
    expect(native.readdirFd(rootFd)).toEqual([]);
  });
});

describe('pread/pwrite', () => {
  it('round-trips through views of a mapShared memfd buffer at nonzero byte offsets', () => {
    const { dir, rootFd } = makeRoot('rw');
    const shmFd = track(native.memfdCreate('vmgmt-test-rw', 64 * 1024));
    const shm = native.mapShared(shmFd, 64 * 1024);
    const source = new Uint8Array(shm, 4096 + 123, 3000);
    for (let i = 0; i < source.length; i++) source[i] = (i * 7 + 3) & 0xff;

    const fd = track(native.openat2(rootFd, 'data', OPEN_FLAGS.CREAT | OPEN_FLAGS.EXCL | OPEN_FLAGS.RDWR, 0o600, RESOLVE.BENEATH));
    expect(native.pwrite(fd, source, 10)).toBe(3000);
    expect(native.fstat(fd).sizeBytes).toBe(3010);
    const onDisk = readFileSync(path.join(dir, 'data'));
    expect(onDisk.subarray(0, 10)).toEqual(Buffer.alloc(10)); // the hole before position
    expect(Buffer.compare(onDisk.subarray(10), Buffer.from(source))).toBe(0);

    const whole = new Uint8Array(shm);
    whole.fill(0xee, 20_000, 24_000);
    const target = new Uint8Array(shm, 20_000 + 7, 3000);
    expect(native.pread(fd, target, 10)).toBe(3000);
    expect(Buffer.compare(Buffer.from(target), Buffer.from(source))).toBe(0);
    expect(whole[20_000 + 6]).toBe(0xee); // nothing written before the view
    expect(whole[20_000 + 7 + 3000]).toBe(0xee); // nor after it

    // A short read near the end, then 0 at end of file.
    expect(native.pread(fd, target, 3000)).toBe(10);
    expect(Array.from(target.subarray(0, 10))).toEqual(Array.from(source.subarray(2990, 3000)));
    expect(native.pread(fd, target, 3010)).toBe(0);
    expect(native.pread(fd, target, 1e12)).toBe(0);

    // A Buffer is a Uint8Array; an empty write writes nothing.
    expect(native.pwrite(fd, Buffer.from('xyz'), 0)).toBe(3);
    expect(native.pwrite(fd, new Uint8Array(0), 0)).toBe(0);
    expect(readFileSync(path.join(dir, 'data')).subarray(0, 3).toString()).toBe('xyz');
    native.unmap(shm);
  });

  it('validates arguments before any syscall', () => {
    const { rootFd } = makeRoot('args');
    const fd = track(native.openat2(rootFd, 'f', OPEN_FLAGS.CREAT | OPEN_FLAGS.RDWR, 0o600, RESOLVE.BENEATH));
    expect(() => native.pread(fd, new Uint8Array(4), -1)).toThrow(RangeError);
    expect(() => native.pwrite(fd, new Uint8Array(4), 2 ** 53)).toThrow(RangeError);
    expect(() => native.pread(fd, new Uint8Array(4), 0.5)).toThrow(RangeError);
    expect(() => native.pread(fd, new Uint16Array(4) as unknown as Uint8Array, 0)).toThrow(TypeError);
    expect(() => native.pwrite(fd, new ArrayBuffer(4) as unknown as Uint8Array, 0)).toThrow(TypeError);
    const nul = catchError(() => native.openat2(rootFd, 'a\0b', OPEN_FLAGS.RDONLY, 0, RESOLVE.BENEATH));
    expect(nul).toBeInstanceOf(TypeError);
    expect((nul as { code?: string }).code).toBe('ERR_INVALID_ARG_VALUE');
    expect(errorCode(() => native.fstatat(rootFd, 'f\0'))).toBe('ERR_INVALID_ARG_VALUE');
    expect(() => native.openat2(rootFd, 'f', OPEN_FLAGS.RDONLY, 0o10000, 0)).toThrow(RangeError);
    expect(() => native.renameat(rootFd, 'f', rootFd, 'g', 1 as unknown as boolean)).toThrow(TypeError);
    expect(native.readdirFd(rootFd).map((e) => e.name)).toEqual(['f']);
  });
});
