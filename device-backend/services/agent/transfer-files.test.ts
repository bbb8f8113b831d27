// The agent channel's file requests on host transfers. A hostile guest agent keeps its handles on a host
// transfer after the copy ends. Whatever the daemon opens
// next under the transfer's old fd number (another VM's file, its own state), the old handles reach nothing.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FILE_CLOSE_FLAG, FILE_INFO, FILE_IO_RESP, FILE_OPEN_FLAG, STATUS } from '../../layout/wire-layout.js';
import { DataSlice } from '../../memory/data-slice.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { loadNative } from '../../native/index.js';
import type { Message } from '../../protocol/message-codec.js';
import { fileReq } from '../../testing/file-requests.js';
import { type HostTransfer, HostTransfers } from './host-transfers.js';
import { TransferFiles } from './transfer-files.js';

const SLICE_BYTES = 256 * 1024;
const PATH_AT = 0;
const BUF_AT = 4096;
const SECRET = 'another VM file: must never reach this guest';

describe('transfer files: handles on host transfers', () => {
  let dir: string;
  let mem: GuestMemory;
  let ctx: { channel: number; slice: DataSlice };
  let transfers: HostTransfers;
  let svc: TransferFiles;
  const opened: number[] = [];

  const hostOpen = (p: string, flags: string): number => {
    const fd = openSync(p, flags);
    opened.push(fd);
    return fd;
  };
  const hostClose = (fd: number): void => {
    closeSync(fd);
    opened.splice(opened.indexOf(fd), 1);
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-transfers-'));
    mem = new GuestMemory(new ArrayBuffer(SLICE_BYTES));
    ctx = { channel: 3, slice: new DataSlice(mem, 0, SLICE_BYTES) };
    transfers = new HostTransfers();
    svc = new TransferFiles({ native: loadNative(), transfers, onRefused: () => {} });
  });

  afterEach(() => {
    try {
      svc.close();
      for (const fd of opened.splice(0)) closeSync(fd);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const u32 = (m: Message, off: number): number => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(off, true);
  const call = async (m: Message): Promise<Message> => svc.handle(m, ctx);
  const openTransfer = async (t: HostTransfer, flags: number, sizeBytes = 0): Promise<Message> => {
    const bytes = new TextEncoder().encode(t.hostPath);
    mem.write(PATH_AT, bytes);
    return call(fileReq.open(PATH_AT, bytes.byteLength, flags, sizeBytes));
  };
  const handleOf = (m: Message): number => u32(m, FILE_INFO.offsets.handle);

  it('a read handle kept past the end of a to-guest copy gets BAD_HANDLE, not the next file under its fd number', async () => {
    writeFileSync(path.join(dir, 'pushed'), 'the pushed file');
    writeFileSync(path.join(dir, 'secret'), SECRET);
    const fd = hostOpen(path.join(dir, 'pushed'), 'r');
    const t = transfers.create({ direction: 'to-guest', fd, totalBytes: 15 });
    const open = await openTransfer(t, FILE_OPEN_FLAG.READ);
    expect(open.status).toBe(STATUS.OK.code);
    const h = handleOf(open);
    const first = await call(fileReq.read(h, 64, 0, BUF_AT));
    expect(first.status).toBe(STATUS.OK.code);
    expect(new TextDecoder().decode(mem.copyOut(BUF_AT, u32(first, FILE_IO_RESP.offsets.bytes)))).toBe('the pushed file');
    expect(svc.openFiles).toBe(1);

    // The copy ends the way agentCopy ends it, then its caller closes the file, and the daemon opens another.
    transfers.end(t, 'copy done');
    hostClose(fd);
    const reused = hostOpen(path.join(dir, 'secret'), 'r');
    expect(reused).toBe(fd); // the hole needs the number reused; Linux hands out the lowest free fd

    mem.write(BUF_AT, new Uint8Array(64));
    for (const req of [fileReq.read(h, 64, 0, BUF_AT), fileReq.hash(h), fileReq.write(h, 4, 0, BUF_AT), fileReq.close(h, 0)]) {
      expect((await call(req)).status).toBe(STATUS.BAD_HANDLE.code);
    }
    expect(mem.copyOut(BUF_AT, 64).every((b) => b === 0)).toBe(true);
    expect(svc.openFiles).toBe(0);
    expect((await openTransfer(t, FILE_OPEN_FLAG.READ)).status).toBe(STATUS.NOT_FOUND.code);
  });

  it('a write handle kept past the end of a from-guest copy cannot overwrite what the daemon opens next', async () => {
    const state = path.join(dir, 'state.json');
    writeFileSync(state, '{"daemon":"state"}');
    const fd = hostOpen(path.join(dir, 'pulled'), 'w+');
    const t = transfers.create({ direction: 'from-guest', fd, totalBytes: 0 });
    const open = await openTransfer(t, FILE_OPEN_FLAG.WRITE, 1024);
    expect(open.status).toBe(STATUS.OK.code);
    const h = handleOf(open);
    mem.write(BUF_AT, new TextEncoder().encode('pulled'));
    expect((await call(fileReq.write(h, 6, 0, BUF_AT))).status).toBe(STATUS.OK.code);
    expect((await call(fileReq.close(h, FILE_CLOSE_FLAG.COMMIT))).status).toBe(STATUS.OK.code);
    expect(t.committed).toBe(true);

    // A second handle the agent opened and kept open while it reported success.
    const kept = handleOf(await openTransfer(t, FILE_OPEN_FLAG.WRITE, 1024));
    transfers.end(t, 'copy done');
    hostClose(fd);
    const reused = hostOpen(state, 'r+');
    expect(reused).toBe(fd);

    mem.write(BUF_AT, new TextEncoder().encode('OVERWRITTEN'));
    expect((await call(fileReq.write(kept, 11, 0, BUF_AT))).status).toBe(STATUS.BAD_HANDLE.code);
    expect((await call(fileReq.read(kept, 11, 0, BUF_AT))).status).toBe(STATUS.BAD_HANDLE.code);
    expect(readFileSync(state, 'utf8')).toBe('{"daemon":"state"}');
    expect(readFileSync(path.join(dir, 'pulled'), 'utf8')).toBe('pulled');
    expect(svc.openFiles).toBe(0);
  });

  it('a hash running on a transfer handle stops when the transfer ends', async () => {
    writeFileSync(path.join(dir, 'big'), Buffer.alloc(8 * 1024 * 1024, 7));
    const fd = hostOpen(path.join(dir, 'big'), 'r');
    const t = transfers.create({ direction: 'to-guest', fd, totalBytes: 8 * 1024 * 1024 });
    const h = handleOf(await openTransfer(t, FILE_OPEN_FLAG.READ));
    const hashing = call(fileReq.hash(h));
    transfers.end(t, 'copy timed out');
    expect((await hashing).status).toBe(STATUS.BAD_HANDLE.code);
    expect(svc.openFiles).toBe(0);
  });

  it('refuses a from-guest size beyond what the host takes', async () => {
    const fd = hostOpen(path.join(dir, 'pulled'), 'w+');
    const t = transfers.create({ direction: 'from-guest', fd, totalBytes: 0, maxBytes: 4096 });
    expect((await openTransfer(t, FILE_OPEN_FLAG.WRITE, 4097)).status).toBe(STATUS.FILE_TOO_LARGE.code);
    const open = await openTransfer(t, FILE_OPEN_FLAG.WRITE, 4096);
    expect(open.status).toBe(STATUS.OK.code);
    expect((await call(fileReq.write(handleOf(open), 1, 4096, BUF_AT))).status).toBe(STATUS.WRITE_PAST_SIZE.code);
  });

  it('a piped to-guest transfer is read in order as the pipe fills; a read out of order or a hash is STREAM_ORDER', async () => {
    const native = loadNative();
    const [r, w] = native.pipe();
    opened.push(r, w);
    const t = transfers.create({ direction: 'to-guest', fd: r, totalBytes: 10 });
    const h = handleOf(await openTransfer(t, FILE_OPEN_FLAG.READ));
    // Two reads in flight before any byte arrived: the first waits for the pipe, the second queues behind it.
    const first = call(fileReq.read(h, 6, 0, BUF_AT));
    const second = call(fileReq.read(h, 4, 6, BUF_AT + 64));
    writeFileSync(w, 'abc');
    await new Promise((res) => setTimeout(res, 20));
    writeFileSync(w, 'defghij');
    expect(u32(await first, FILE_IO_RESP.offsets.bytes)).toBe(6);
    expect(u32(await second, FILE_IO_RESP.offsets.bytes)).toBe(4);
    expect(new TextDecoder().decode(mem.copyOut(BUF_AT, 6)) + new TextDecoder().decode(mem.copyOut(BUF_AT + 64, 4))).toBe('abcdefghij');
    expect((await call(fileReq.read(h, 4, 0, BUF_AT))).status).toBe(STATUS.STREAM_ORDER.code);
    expect((await call(fileReq.hash(h))).status).toBe(STATUS.STREAM_ORDER.code);
    expect(t.movedBytes).toBe(10);
  });

  it('a piped read waiting for the upload ends with BAD_HANDLE when the transfer ends', async () => {
    const native = loadNative();
    const [r, w] = native.pipe();
    opened.push(r, w);
    const t = transfers.create({ direction: 'to-guest', fd: r, totalBytes: 10 });
    const h = handleOf(await openTransfer(t, FILE_OPEN_FLAG.READ));
    const waiting = call(fileReq.read(h, 10, 0, BUF_AT));
    await new Promise((res) => setTimeout(res, 10));
    transfers.end(t, 'copy failed');
    expect((await waiting).status).toBe(STATUS.BAD_HANDLE.code);
  });
});
