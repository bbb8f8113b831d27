// Real syscalls against the built addon (node scripts/build-native.mjs); no mocks.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNativeSyscallError, loadNative, type NativeWatch, type VmgmtNative } from './index.js';

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
