// The file service against a real directory: every refusal the issue lists, atomic puts, quotas.
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CoreLogger, type LogFields, silentLogger } from '../../core/core-logger.js';
import { FILE_CLOSE_FLAG, FILE_INFO, FILE_IO_RESP, FILE_LIST_RESP, FILE_OPEN_FLAG, FILE_REMOVE_FLAG, STATUS } from '../../layout/wire-layout.js';
import { DataSlice } from '../../memory/data-slice.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { loadNative, type VmgmtNative } from '../../native/index.js';
import type { Message } from '../../protocol/message-codec.js';
import { fileReq } from '../../testing/file-requests.js';
import { DEFAULT_FILE_LIMITS, type FileRootConfig } from './file-root-config.js';
import { FileService } from './file-service.js';

const SLICE_BYTES = 1024 * 1024;
const PATH_AT = 0;
const BUF_AT = 8192;

describe('FileService', () => {
  let base: string;
  let root: string;
  let outside: string;
  let mem: GuestMemory;
  let ctx: { channel: number; slice: DataSlice };
  let svc: FileService;

  const start = (config: Partial<FileRootConfig> = {}, log: CoreLogger = silentLogger): void => {
    svc?.close();
    svc = new FileService({ native: loadNative(), config: { ...DEFAULT_FILE_LIMITS, root, readOnly: false, ...config }, log });
  };
  const capture = (): { log: CoreLogger; lines: { level: string; message: string; fields?: LogFields }[] } => {
    const lines: { level: string; message: string; fields?: LogFields }[] = [];
    const at = (level: string) => (message: string, fields?: LogFields) => void lines.push({ level, message, ...(fields ? { fields } : {}) });
    return { log: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
  };

  beforeEach(() => {
    base = mkdtempSync(path.join(tmpdir(), 'vmgmt-files-'));
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret'), 'host secret');
    mem = new GuestMemory(new ArrayBuffer(SLICE_BYTES));
    ctx = { channel: 0, slice: new DataSlice(mem, 0, SLICE_BYTES) };
    start();
  });

  afterEach(() => {
    try {
      svc.close();
    } finally {
      // Never remove across a mount: a test that mounted something under base and could not unmount it fails here.
      const mounted = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(`${base}/`));
      if (mounted.length > 0) throw new Error(`still mounted under ${base}: ${mounted.join(', ')}; not removing it`);
      rmSync(base, { recursive: true, force: true });
    }
  });

  const putPath = (p: string): [number, number] => {
    const bytes = new TextEncoder().encode(p);
    mem.write(PATH_AT, bytes);
    return [PATH_AT, bytes.byteLength];
  };
  const call = async (m: Message): Promise<Message> => svc.handle(m, ctx);
  const u32 = (m: Message, off: number): number => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(off, true);

  async function put(p: string, data: Uint8Array, opts: { commit?: boolean } = {}): Promise<number[]> {
    const open = await call(fileReq.open(...putPath(p), FILE_OPEN_FLAG.WRITE, data.byteLength));
    if (open.status !== 0) return [open.status];
    const h = u32(open, FILE_INFO.offsets.handle);
    const statuses: number[] = [0];
    for (let at = 0; at < data.byteLength; at += 65536) {
      const chunk = data.subarray(at, at + 65536);
      mem.write(BUF_AT, chunk);
      statuses.push((await call(fileReq.write(h, chunk.byteLength, at, BUF_AT))).status);
    }
    statuses.push((await call(fileReq.close(h, opts.commit === false ? 0 : FILE_CLOSE_FLAG.COMMIT))).status);
    return statuses;
  }

  async function get(p: string): Promise<{ status: number; data?: Uint8Array; handle?: number }> {
    const open = await call(fileReq.open(...putPath(p), FILE_OPEN_FLAG.READ));
    if (open.status !== 0) return { status: open.status };
    const h = u32(open, FILE_INFO.offsets.handle);
    const parts: Uint8Array[] = [];
    for (let at = 0; ; ) {
      const r = await call(fileReq.read(h, 65536, at, BUF_AT));
      const n = u32(r, FILE_IO_RESP.offsets.bytes);
      if (r.status !== 0 || n === 0) break;
      parts.push(mem.copyOut(BUF_AT, n));
      at += n;
    }
    await call(fileReq.close(h, 0));
    return { status: 0, data: Buffer.concat(parts) };
  }

  const tempFiles = (dir = root): string[] => readdirSync(dir).filter((n) => n.startsWith('.vmgmt-put-'));

  it.each([0, 1, 4097, 300_000])('puts and gets %i bytes exactly', async (size) => {
    const data = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
    expect(await put('f.bin', data)).toEqual(new Array(2 + Math.ceil(size / 65536)).fill(0));
    expect(readFileSync(path.join(root, 'f.bin')).equals(Buffer.from(data))).toBe(true);
    const back = await get('f.bin');
    expect(Buffer.from(back.data!).equals(Buffer.from(data))).toBe(true);
    expect(tempFiles()).toEqual([]);
  });

  it('answers FILE_HASH with the sha256 of the host file', async () => {
    writeFileSync(path.join(root, 'h'), 'hello world');
    const open = await call(fileReq.open(...putPath('h'), FILE_OPEN_FLAG.READ));
    const hash = await call(fileReq.hash(u32(open, FILE_INFO.offsets.handle)));
    expect(Buffer.from(hash.payload).toString('hex')).toBe(createHash('sha256').update('hello world').digest('hex'));
  });

  describe('confinement', () => {
    it.each([
      ['../outside/secret', STATUS.PATH_ESCAPES.code],
      ['/etc/passwd', STATUS.PATH_ESCAPES.code],
      ['a/../../outside/secret', STATUS.PATH_ESCAPES.code],
      ['', STATUS.BAD_PATH.code],
    ])('refuses to get %j', async (p, status) => {
      mkdirSync(path.join(root, 'a'));
      expect((await get(p)).status).toBe(status);
    });

    it('refuses a symlink pointing out, as the file and as a directory on the way', async () => {
      symlinkSync(path.join(outside, 'secret'), path.join(root, 'link'));
      symlinkSync(outside, path.join(root, 'dirlink'));
      expect((await get('link')).status).toBe(STATUS.PATH_ESCAPES.code);
      expect((await get('dirlink/secret')).status).toBe(STATUS.PATH_ESCAPES.code);
      expect((await put('dirlink/new', new Uint8Array([1])))[0]).toBe(STATUS.PATH_ESCAPES.code);
      expect(existsSync(path.join(outside, 'new'))).toBe(false);
    });

    it('refuses a path with a NUL byte', async () => {
      mem.write(PATH_AT, new Uint8Array([0x61, 0, 0x62]));
      expect((await call(fileReq.open(PATH_AT, 3, FILE_OPEN_FLAG.READ))).status).toBe(STATUS.BAD_PATH.code);
    });

    it('refuses fifos, device nodes and directories as files', async () => {
      execFileSync('mkfifo', [path.join(root, 'fifo')]);
      expect((await get('fifo')).status).toBe(STATUS.NOT_REGULAR.code);
      execFileSync('mknod', [path.join(root, 'null'), 'c', '1', '3']);
      expect((await get('null')).status).toBe(STATUS.NOT_REGULAR.code);
      mkdirSync(path.join(root, 'd'));
      expect((await get('d')).status).toBe(STATUS.IS_DIRECTORY.code);
    });

    it('never opens a fifo to look at it: a writer waiting for a reader stays blocked', async () => {
      const fifo = path.join(root, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const writer = spawn('sh', ['-c', `echo x > '${fifo}'`], { stdio: 'ignore' });
      // The kernel function a fifo's open(O_WRONLY) sleeps in until a reader comes ('0' if symbols are hidden).
      const wchan = (): string => {
        try {
          return readFileSync(`/proc/${writer.pid}/wchan`, 'utf8');
        } catch {
          return '';
        }
      };
      try {
        for (const until = Date.now() + 5000; wchan() !== 'wait_for_partner' && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
        const blocked = wchan() === 'wait_for_partner';
        if (!blocked) await new Promise((r) => setTimeout(r, 200)); // no wchan: give the shell time to reach the open
        expect((await get('fifo')).status).toBe(STATUS.NOT_REGULAR.code);
        await new Promise((r) => setTimeout(r, 200)); // an open for reading would have let it write and exit
        expect(writer.exitCode).toBe(null);
        if (blocked) expect(wchan()).toBe('wait_for_partner');
      } finally {
        writer.kill('SIGKILL');
      }
    });

    it('refusals and listings leave no fd open', async () => {
      execFileSync('mkfifo', [path.join(root, 'fifo')]);
      mkdirSync(path.join(root, 'd'));
      writeFileSync(path.join(root, 'f'), 'x');
      linkSync(path.join(root, 'f'), path.join(root, 'f2'));
      symlinkSync('f', path.join(root, 'l'));
      const fds = (): number => readdirSync('/proc/self/fd').length;
      const before = fds();
      for (const p of ['fifo', 'd', 'f', 'l', 'missing', '../x']) await get(p);
      await put('-x', new Uint8Array(1));
      await call(fileReq.remove(...putPath('f2')));
      await listPage('.', 0, 4096);
      await listPage('.', 0, 24 + 8); // ends mid-listing: the snapshot holds names, not fds
      expect(fds()).toBe(before);
    });

    it('a host without /proc gets IO_ERROR for a get, not NOT_FOUND', async () => {
      writeFileSync(path.join(root, 'f'), 'x');
      const noProc = () => {
        throw Object.assign(new Error('open(/proc/self/fd/9, flags 0x0): No such file or directory'), { code: 'ENOENT' });
      };
      svc.close();
      svc = new FileService({ native: { ...loadNative(), reopenFd: noProc }, config: { ...DEFAULT_FILE_LIMITS, root, readOnly: false }, log: silentLogger });
      expect((await get('f')).status).toBe(STATUS.IO_ERROR.code);
      expect(svc.usage.openFiles).toBe(0);
    });

    it('a socket is not a regular file', async () => {
      const server = createServer();
      await new Promise<void>((r) => server.listen(path.join(root, 'sock'), r));
      try {
        expect((await get('sock')).status).toBe(STATUS.NOT_REGULAR.code);
      } finally {
        await new Promise((r) => server.close(r));
      }
    });

    it('refuses to cross a mount point inside the root (a /proc-style file system mounted there)', async (testCtx) => {
      const mnt = path.join(root, 'mnt');
      mkdirSync(mnt);
      try {
        execFileSync('mount', ['-t', 'proc', 'proc', mnt], { stdio: 'ignore' });
      } catch {
        testCtx.skip(); // needs root and a kernel that allows the mount
      }
      try {
        expect((await get('mnt/self/status')).status).toBe(STATUS.PATH_ESCAPES.code);
        expect((await get('mnt/uptime')).status).toBe(STATUS.PATH_ESCAPES.code);
      } finally {
        execFileSync('umount', [mnt]);
      }
    });

    it('a mount point inside the root is skipped when the service starts, and never crossed', async (testCtx) => {
      const mnt = path.join(root, 'mnt');
      mkdirSync(mnt);
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'vmgmt-test', mnt], { stdio: 'ignore' });
      } catch {
        testCtx.skip(); // needs root and a kernel that allows the mount
      }
      try {
        writeFileSync(path.join(mnt, 'big'), new Uint8Array(4096));
        writeFileSync(path.join(mnt, '.vmgmt-put-0123456789abcdef'), 'not ours to sweep');
        writeFileSync(path.join(root, 'small'), 'abc');
        const { log, lines } = capture();
        start({}, log); // used to throw EXDEV out of the constructor
        expect(svc.usage.usedBytes).toBe(3);
        expect(existsSync(path.join(mnt, '.vmgmt-put-0123456789abcdef'))).toBe(true);
        expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ dirs: [{ path: 'mnt', reason: expect.stringContaining('mount point') }] }) }));
        expect((await get('mnt/big')).status).toBe(STATUS.PATH_ESCAPES.code);
        expect(Buffer.from((await get('small')).data!).toString()).toBe('abc');
      } finally {
        svc.close();
        try {
          execFileSync('umount', [mnt]);
        } catch {
          execFileSync('umount', ['-l', mnt]); // detached at once, so removing the temp dirs never crosses it
        }
      }
    });

    it('a full host file system is said as such, not as the VM quota', async (testCtx) => {
      // The VM's root is a 256 KiB tmpfs of the test's own; the quota (1 GiB) does not decide.
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'vmgmt-test-full', root], { stdio: 'ignore' });
      } catch {
        testCtx.skip(); // needs root and a kernel that allows the mount
      }
      try {
        start();
        const statuses = await put('big.bin', new Uint8Array(1024 * 1024));
        expect(statuses).toContain(STATUS.HOST_NO_SPACE.code);
        expect(statuses).not.toContain(STATUS.QUOTA_EXCEEDED.code);
        expect(tempFiles()).toEqual([]);
      } finally {
        svc.close();
        try {
          execFileSync('umount', [root]);
        } catch {
          execFileSync('umount', ['-l', root]);
        }
      }
    });

    it('a symlink swapped in during a transfer does not redirect it', async () => {
      writeFileSync(path.join(root, 'doc'), 'A'.repeat(100));
      const open = await call(fileReq.open(...putPath('doc'), FILE_OPEN_FLAG.READ));
      const h = u32(open, FILE_INFO.offsets.handle);
      unlinkSync(path.join(root, 'doc'));
      symlinkSync(path.join(outside, 'secret'), path.join(root, 'doc'));
      const r = await call(fileReq.read(h, 100, 0, BUF_AT));
      expect(new TextDecoder().decode(mem.copyOut(BUF_AT, u32(r, FILE_IO_RESP.offsets.bytes)))).toBe('A'.repeat(100));
    });

    it('keeps reads and writes inside the channel data slice', async () => {
      writeFileSync(path.join(root, 'x'), 'x');
      const open = await call(fileReq.open(...putPath('x'), FILE_OPEN_FLAG.READ));
      const h = u32(open, FILE_INFO.offsets.handle);
      expect((await call(fileReq.read(h, 16, 0, SLICE_BYTES - 8))).status).toBe(STATUS.BAD_BUFFER.code);
      expect((await call(fileReq.read(h, 0xffffffff, 0, 0))).status).toBe(STATUS.BAD_BUFFER.code);
      expect((await call(fileReq.open(SLICE_BYTES, 4, FILE_OPEN_FLAG.READ))).status).toBe(STATUS.BAD_BUFFER.code);
    });

    it('handles belong to their channel', async () => {
      writeFileSync(path.join(root, 'x'), 'x');
      const open = await call(fileReq.open(...putPath('x'), FILE_OPEN_FLAG.READ));
      const other = { channel: 1, slice: ctx.slice };
      expect((await svc.handle(fileReq.read(u32(open, FILE_INFO.offsets.handle), 1, 0, BUF_AT), other)).status).toBe(STATUS.BAD_HANDLE.code);
    });
  });

  describe('writes', () => {
    it('a read-only root refuses every change and leaves nothing', async () => {
      start({ readOnly: true });
      expect((await put('new', new Uint8Array([1])))[0]).toBe(STATUS.READ_ONLY.code);
      expect((await call(fileReq.mkdir(...putPath('d')))).status).toBe(STATUS.READ_ONLY.code);
      writeFileSync(path.join(root, 'keep'), 'k');
      expect((await call(fileReq.remove(...putPath('keep')))).status).toBe(STATUS.READ_ONLY.code);
      expect(readdirSync(root)).toEqual(['keep']);
    });

    it('limits entries, not only bytes: a 0-byte quota no longer lets a guest create thousands of empty files', async () => {
      start({ quotaBytes: 0, maxEntries: 3 });
      expect(await put('a', new Uint8Array(0))).toEqual([0, 0]);
      expect((await call(fileReq.mkdir(...putPath('d')))).status).toBe(0);
      expect(await put('d/b', new Uint8Array(0))).toEqual([0, 0]);
      for (let i = 0; i < 100; i++) {
        expect((await put(`f${i}`, new Uint8Array(0)))[0]).toBe(STATUS.TOO_MANY_ENTRIES.code);
        expect((await call(fileReq.mkdir(...putPath(`d${i}`)))).status).toBe(STATUS.TOO_MANY_ENTRIES.code);
      }
      expect(await put('a', new Uint8Array(0))).toEqual([0, 0]); // replacing adds no entry
      expect(readdirSync(root).sort()).toEqual(['a', 'd']);
      expect(svc.usage).toMatchObject({ entries: 3, reservedEntries: 0 });

      // An open put of a new name holds its entry until it is closed.
      expect((await call(fileReq.remove(...putPath('a')))).status).toBe(0);
      const open = await call(fileReq.open(...putPath('x'), FILE_OPEN_FLAG.WRITE, 0));
      expect(open.status).toBe(0);
      expect((await call(fileReq.open(...putPath('y'), FILE_OPEN_FLAG.WRITE, 0))).status).toBe(STATUS.TOO_MANY_ENTRIES.code);
      expect((await call(fileReq.close(u32(open, FILE_INFO.offsets.handle), FILE_CLOSE_FLAG.COMMIT))).status).toBe(0);
      expect(svc.usage).toMatchObject({ entries: 3, reservedEntries: 0 });

      // What is in the root counts when the service starts (the host may have added more).
      writeFileSync(path.join(root, 'host-added'), '');
      start({ quotaBytes: 0, maxEntries: 3 });
      expect(svc.usage.entries).toBe(4);
      expect((await call(fileReq.mkdir(...putPath('z')))).status).toBe(STATUS.TOO_MANY_ENTRIES.code);
    });

    it('refuses a put over quota up front, and an over-sized file, leaving nothing', async () => {
      start({ quotaBytes: 1000, maxFileBytes: 800 });
      writeFileSync(path.join(root, 'old'), new Uint8Array(500));
      start({ quotaBytes: 1000, maxFileBytes: 800 });
      expect((await put('big', new Uint8Array(600)))[0]).toBe(STATUS.QUOTA_EXCEEDED.code);
      expect((await put('huge', new Uint8Array(900)))[0]).toBe(STATUS.FILE_TOO_LARGE.code);
      expect(await put('old', new Uint8Array(700))).toEqual([0, 0, 0]); // replacing counts the old size out
      expect(readdirSync(root).sort()).toEqual(['old']);
      expect(svc.usage).toMatchObject({ usedBytes: 700, reservedBytes: 0, openFiles: 0 });
    });

    it('a put lands whole on commit, or leaves nothing without it', async () => {
      writeFileSync(path.join(root, 'f'), 'original');
      expect(await put('f', new TextEncoder().encode('replacement'), { commit: false })).toEqual([0, 0, 0]);
      expect(readFileSync(path.join(root, 'f'), 'utf8')).toBe('original');
      expect(tempFiles()).toEqual([]);
    });

    it('refuses a write past the declared size', async () => {
      const open = await call(fileReq.open(...putPath('w'), FILE_OPEN_FLAG.WRITE, 10));
      const h = u32(open, FILE_INFO.offsets.handle);
      expect((await call(fileReq.write(h, 11, 0, BUF_AT))).status).toBe(STATUS.WRITE_PAST_SIZE.code);
      expect((await call(fileReq.write(h, 1, 10, BUF_AT))).status).toBe(STATUS.WRITE_PAST_SIZE.code);
    });

    it('created files get the configured mode: never setuid, executable only when allowed', async () => {
      const open = await call(fileReq.open(...putPath('m'), FILE_OPEN_FLAG.WRITE, 0, 0o4777));
      await call(fileReq.close(u32(open, FILE_INFO.offsets.handle), FILE_CLOSE_FLAG.COMMIT));
      expect(statSync(path.join(root, 'm')).mode & 0o7777).toBe(0o644);
      start({ allowExecutable: true });
      const open2 = await call(fileReq.open(...putPath('x'), FILE_OPEN_FLAG.WRITE, 0, 0o4755));
      await call(fileReq.close(u32(open2, FILE_INFO.offsets.handle), FILE_CLOSE_FLAG.COMMIT));
      expect(statSync(path.join(root, 'x')).mode & 0o7777).toBe(0o755);
    });

    it('a channel reset discards an unfinished put', async () => {
      const open = await call(fileReq.open(...putPath('p'), FILE_OPEN_FLAG.WRITE, 5));
      expect(open.status).toBe(0);
      expect(tempFiles()).toHaveLength(1);
      svc.channelReset(0);
      expect(tempFiles()).toEqual([]);
      expect(svc.usage).toMatchObject({ reservedBytes: 0, openFiles: 0 });
    });

    it('limits open files per VM', async () => {
      start({ maxOpenFiles: 2 });
      writeFileSync(path.join(root, 'x'), 'x');
      for (let i = 0; i < 2; i++) expect((await call(fileReq.open(...putPath('x'), FILE_OPEN_FLAG.READ))).status).toBe(0);
      expect((await call(fileReq.open(...putPath('x'), FILE_OPEN_FLAG.READ))).status).toBe(STATUS.TOO_MANY_OPEN.code);
    });

    it('refuses a file with more than one hard link (get, put over, remove) unless the VM allows it', async () => {
      writeFileSync(path.join(root, 'linked'), 'inside');
      linkSync(path.join(outside, 'secret'), path.join(root, 'outlink')); // placed on the host
      linkSync(path.join(root, 'linked'), path.join(root, 'linked2'));
      start({ quotaBytes: 100 });
      const before = svc.usage.usedBytes;
      expect((await get('outlink')).status).toBe(STATUS.HARD_LINKED.code);
      expect((await put('outlink', new Uint8Array([1])))[0]).toBe(STATUS.HARD_LINKED.code);
      expect((await call(fileReq.remove(...putPath('linked')))).status).toBe(STATUS.HARD_LINKED.code);
      expect(readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('host secret');
      expect(readdirSync(root).sort()).toEqual(['linked', 'linked2', 'outlink']);
      expect(svc.usage.usedBytes).toBe(before);
      start({ allowHardLinks: true });
      expect(Buffer.from((await get('outlink')).data!).toString()).toBe('host secret');
      expect((await call(fileReq.remove(...putPath('linked2')))).status).toBe(0);
      expect((await get('linked')).status).toBe(0); // one link left
    });

    it('refuses to create names with control characters, newlines or a leading - unless the VM allows them', async () => {
      for (const bad of ['-rf', 'a\nb', 'esc\u001b[0m', 'd/-x']) {
        if (bad.startsWith('d/')) mkdirSync(path.join(root, 'd'), { recursive: true });
        expect((await put(bad, new Uint8Array([1])))[0]).toBe(STATUS.UNSAFE_NAME.code);
        expect((await call(fileReq.mkdir(...putPath(bad)))).status).toBe(STATUS.UNSAFE_NAME.code);
      }
      expect(readdirSync(root)).toEqual(['d']);
      expect(readdirSync(path.join(root, 'd'))).toEqual([]);
      // One the host made can still be read and removed.
      writeFileSync(path.join(root, '-host'), 'h');
      expect((await get('-host')).status).toBe(0);
      expect((await call(fileReq.remove(...putPath('-host')))).status).toBe(0);
      start({ allowUnsafeNames: true });
      expect(await put('-ok', new Uint8Array([1]))).toEqual([0, 0, 0]);
      expect((await call(fileReq.mkdir(...putPath('a\nb')))).status).toBe(0);
      expect(readdirSync(root).sort()).toEqual(['-ok', 'a\nb', 'd']);
    });

    it('mkdir, stat, remove, and a non-empty directory is refused', async () => {
      expect((await call(fileReq.mkdir(...putPath('d')))).status).toBe(0);
      expect((await call(fileReq.mkdir(...putPath('d')))).status).toBe(STATUS.EXISTS.code);
      writeFileSync(path.join(root, 'd', 'f'), 'abc');
      const st = await call(fileReq.stat(...putPath('d/f')));
      expect(st.status).toBe(0);
      expect(Number(new DataView(st.payload.buffer, st.payload.byteOffset).getBigUint64(FILE_INFO.offsets.size, true))).toBe(3);
      expect((await call(fileReq.remove(...putPath('d'), FILE_REMOVE_FLAG.DIR))).status).toBe(STATUS.NOT_EMPTY.code);
      expect((await call(fileReq.remove(...putPath('d')))).status).toBe(STATUS.IS_DIRECTORY.code);
      expect((await call(fileReq.remove(...putPath('d/f')))).status).toBe(0);
      expect((await call(fileReq.remove(...putPath('d'), FILE_REMOVE_FLAG.DIR))).status).toBe(0);
      expect(readdirSync(root)).toEqual([]);
    });
  });

  it('sweeps the temp files a killed daemon left, in the whole tree, before measuring usage, and logs them', () => {
    mkdirSync(path.join(root, 'd', 'e'), { recursive: true });
    writeFileSync(path.join(root, '.vmgmt-put-00000000000000aa'), new Uint8Array(500));
    writeFileSync(path.join(root, 'd', 'e', '.vmgmt-put-00000000000000bb'), new Uint8Array(500));
    writeFileSync(path.join(root, 'd', 'kept'), 'kept');
    mkdirSync(path.join(root, '.vmgmt-put-dir')); // not a file: left alone
    writeFileSync(path.join(outside, '.vmgmt-put-00000000000000cc'), 'outside');
    symlinkSync(outside, path.join(root, 'out')); // never followed
    symlinkSync(path.join(outside, '.vmgmt-put-00000000000000cc'), path.join(root, '.vmgmt-put-link')); // a link, not a file
    const { log, lines } = capture();
    start({}, log);
    expect(tempFiles().sort()).toEqual(['.vmgmt-put-dir', '.vmgmt-put-link']);
    expect(readdirSync(path.join(root, 'd', 'e'))).toEqual([]);
    expect(readFileSync(path.join(outside, '.vmgmt-put-00000000000000cc'), 'utf8')).toBe('outside');
    expect(svc.usage.usedBytes).toBe(4);
    expect(lines).toContainEqual({
      level: 'info',
      message: expect.stringContaining('removed temporary files'),
      fields: { count: 2, paths: expect.arrayContaining(['.vmgmt-put-00000000000000aa', 'd/e/.vmgmt-put-00000000000000bb']) },
    });
  });

  async function listPage(dir: string, cookie: number, bufLength = 40, on = ctx): Promise<{ status: number; names: string[]; next: number }> {
    const r = await svc.handle(fileReq.list(...putPath(dir), BUF_AT, bufLength, cookie), on);
    if (r.status !== 0) return { status: r.status, names: [], next: 0 };
    const names: string[] = [];
    let at = BUF_AT;
    for (let i = 0; i < u32(r, FILE_LIST_RESP.offsets.count); i++) {
      const len = mem.copyOut(at + 22, 2);
      const nameLen = len[0]! | (len[1]! << 8);
      names.push(new TextDecoder().decode(mem.copyOut(at + 24, nameLen)));
      at += Math.ceil((24 + nameLen) / 8) * 8;
    }
    return { status: 0, names, next: u32(r, FILE_LIST_RESP.offsets.next_cookie) };
  }

  it('lists a directory in pages with a cookie, hiding temp files', async () => {
    for (const n of ['b', 'a', 'c']) writeFileSync(path.join(root, n), n);
    writeFileSync(path.join(root, '.vmgmt-put-0123'), 'tmp');
    const names: string[] = [];
    let cookie = 0;
    do {
      const page = await listPage('.', cookie);
      expect(page.status).toBe(0);
      names.push(...page.names);
      if (page.next !== 0) expect(page.next).toBeGreaterThan(cookie); // the driver insists
      cookie = page.next;
    } while (cookie !== 0);
    expect(names).toEqual(['a', 'b', 'c']);
  });

  describe('LIST of a large directory', () => {
    const ENTRIES = 10_000;
    const name = (i: number): string => `n${String(i).padStart(5, '0')}`;

    /** The real addon with its directory calls counted. */
    function countingNative(): { native: VmgmtNative; counts: Record<'fstatat' | 'readdirFd', number> } {
      const real = loadNative();
      const counts = { fstatat: 0, readdirFd: 0 };
      const native: VmgmtNative = {
        ...real,
        fstatat: (dirFd, n) => (counts.fstatat++, real.fstatat(dirFd, n)),
        readdirFd: (dirFd) => (counts.readdirFd++, real.readdirFd(dirFd)),
      };
      return { native, counts };
    }

    // One root with the large directory for these tests (creating 10,000 files takes seconds on a busy disk).
    let bigRoot: string;
    let clockMs = 0;
    const startCounting = (): Record<'fstatat' | 'readdirFd', number> => {
      const { native, counts } = countingNative();
      svc.close();
      svc = new FileService({ native, config: { ...DEFAULT_FILE_LIMITS, root: bigRoot, readOnly: false }, log: silentLogger, nowMs: () => clockMs });
      counts.fstatat = 0;
      counts.readdirFd = 0;
      return counts;
    };

    beforeAll(() => {
      bigRoot = mkdtempSync(path.join(tmpdir(), 'vmgmt-files-big-'));
      mkdirSync(path.join(bigRoot, 'big'));
      for (let i = 0; i < ENTRIES; i++) writeFileSync(path.join(bigRoot, 'big', name(i)), '');
    }, 120_000);

    afterAll(() => rmSync(bigRoot, { recursive: true, force: true }));

    beforeEach(() => {
      clockMs = 0;
    });

    it('a page stats only its own entries, and the directory is read once per listing', async () => {
      const counts = startCounting();
      const all: string[] = [];
      let cookie = 0;
      let pages = 0;
      do {
        const before = counts.fstatat;
        const page = await listPage('big', cookie, 4096);
        expect(page.status).toBe(0);
        expect(page.names.length).toBe(page.next === 0 ? ENTRIES % 128 || 128 : 128); // 32 bytes each
        expect(counts.fstatat - before).toBe(page.names.length);
        all.push(...page.names);
        if (page.next !== 0) expect(page.next).toBeGreaterThan(cookie);
        cookie = page.next;
        pages++;
      } while (cookie !== 0);
      expect(pages).toBe(Math.ceil(ENTRIES / 128));
      expect(all).toEqual(Array.from({ length: ENTRIES }, (_, i) => name(i)));
      expect(counts.readdirFd).toBe(1);
      expect(counts.fstatat).toBe(ENTRIES);
    });

    it('the cookie names a snapshot: entries removed meanwhile are skipped, new ones not listed, none twice', async () => {
      startCounting();
      const big = path.join(bigRoot, 'big');
      const first = await listPage('big', 0, 4096);
      try {
        rmSync(path.join(big, name(0))); // already listed: an index into a fresh read would skip one
        rmSync(path.join(big, name(200))); // on a later page
        writeFileSync(path.join(big, 'z-new'), ''); // created after the listing started: not in it
        const rest: string[] = [];
        for (let cookie = first.next; cookie !== 0; ) {
          const page = await listPage('big', cookie, 4096);
          rest.push(...page.names);
          cookie = page.next;
        }
        const expected = Array.from({ length: ENTRIES }, (_, i) => name(i)).filter((n) => n !== name(200));
        expect([...first.names, ...rest]).toEqual(expected);
      } finally {
        rmSync(path.join(big, 'z-new'), { force: true });
        for (const i of [0, 200]) writeFileSync(path.join(big, name(i)), '');
      }
    });

    it('a cookie whose snapshot expired re-reads the directory and carries on at its index', async () => {
      const counts = startCounting();
      const first = await listPage('big', 0, 4096);
      clockMs += 60_000; // idle past the snapshot's lifetime
      const second = await listPage('big', first.next, 4096);
      expect(counts.readdirFd).toBe(2);
      expect(second.names[0]).toBe(name(128));
      expect(second.next).toBeGreaterThan(first.next);
      // Another channel cannot use this channel's snapshot; a reset drops them.
      const third = await listPage('big', second.next, 4096, { channel: 1, slice: ctx.slice });
      expect(third.names[0]).toBe(name(256));
      expect(counts.readdirFd).toBe(3);
      svc.channelReset(0);
      await listPage('big', second.next, 4096);
      expect(counts.readdirFd).toBe(4);
    });

    it('a buffer too small for one entry is BAD_BUFFER, a cookie past the end ends the listing', async () => {
      startCounting();
      expect((await listPage('big', 0, 16)).status).toBe(STATUS.BAD_BUFFER.code);
      const page = await listPage('big', 0, 4096);
      expect(await listPage('big', (page.next & ~0xffffff) | 0xfffff, 4096)).toEqual({ status: 0, names: [], next: 0 });
    });
  });
});
