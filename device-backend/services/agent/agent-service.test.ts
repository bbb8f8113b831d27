// The agent service over a real core, with a fake guest agent on the rings: copies start with AGENT_COPY
// on the agent's port, move bytes through transfer paths, and end their transfer however they end.
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import { DeviceCore } from '../../core/device-core.js';
import { computeGeometry, dataSliceOffset, DEFAULT_GEOMETRY, type Geometry } from '../../layout/geometry.js';
import { AGENT_COPY_REQ, AGENT_MKDIR_REQ, FILE_CLOSE_FLAG, FILE_TYPE, FILE_INFO, FILE_OPEN_FLAG, MODE, MSG_RESPONSE_BIT, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import { loadNative } from '../../native/index.js';
import type { Message } from '../../protocol/message-codec.js';
import { FakeGuest } from '../../testing/fake-guest.js';
import { fileReq } from '../../testing/file-requests.js';
import { deviceServices } from '../device-services.js';
import type { AgentService } from './agent-service.js';
import { decodeListing, encodeListing } from './agent-listing.js';

const u32 = (m: Message, off: number): number => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(off, true);

describe('AgentService', () => {
  let dir: string;
  let fds: number[];
  let mem: GuestMemory;
  let geometry: Geometry;
  let core: DeviceCore;
  let agent: AgentService;
  let guest: FakeGuest;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-agent-'));
    fds = [];
    const r = computeGeometry({ ...DEFAULT_GEOMETRY, regionSizeBytes: 1024 * 1024, ringSlots: 8, channelCount: 2 });
    if (!r.ok) throw new Error(r.reason);
    geometry = r.geometry;
    mem = new GuestMemory(new ArrayBuffer(geometry.regionSizeBytes));
    const built = deviceServices({ native: loadNative(), log: silentLogger });
    agent = built.agent;
    core = DeviceCore.initialize({ mem, geometry, services: built.services, notifyGuest: () => {}, log: silentLogger, vm: { name: 't' } });
    guest = new FakeGuest(mem, geometry, 1);
  });

  afterEach(() => {
    try {
      core.close();
      for (const fd of fds) closeSync(fd);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const hostFile = (name: string, flags: string, content?: string): number => {
    if (content !== undefined) writeFileSync(path.join(dir, name), content);
    const fd = openSync(path.join(dir, name), flags);
    fds.push(fd);
    return fd;
  };

  /** The guest agent comes up: claims its channel and puts it in MODE.AGENT. */
  function agentUp(): void {
    guest.claim(4321);
    core.process();
    guest.afterReset();
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setUint32(0, MODE.AGENT, true);
    guest.send({ type: MSG_TYPE.SET_MODE, requestId: 1, status: 0, payload });
    core.process();
    expect(guest.receiveAll().map((m) => m.status)).toEqual([STATUS.OK.code]);
  }

  /** The agent's half of one request: send, serve, take the answer. */
  async function call(m: Message): Promise<Message> {
    guest.send(m);
    core.process();
    for (let i = 0; i < 50; i++) {
      const got = guest.receiveAll();
      if (got.length > 0) return got[0]!;
      await new Promise((r) => setImmediate(r));
      core.process();
    }
    throw new Error('no answer');
  }

  /** Waits for the AGENT_COPY the host sent and returns its host path, written into the data slice at 0. */
  async function takeCopy(): Promise<{ request: Message; hostPathLen: number }> {
    for (let i = 0; i < 50; i++) {
      const [request] = guest.receiveAll();
      if (request) {
        expect([MSG_TYPE.AGENT_COPY, MSG_TYPE.AGENT_LIST]).toContain(request.type);
        const hostPathLen = u32(request, AGENT_COPY_REQ.offsets.host_path_len);
        mem.write(dataSliceOffset(geometry, 1), request.payload.subarray(AGENT_COPY_REQ.sizeBytes, AGENT_COPY_REQ.sizeBytes + hostPathLen));
        return { request, hostPathLen };
      }
      await new Promise((r) => setImmediate(r));
    }
    throw new Error('no AGENT_COPY');
  }

  it('copies a guest file out: the agent writes the transfer path, commits, answers OK', async () => {
    agentUp();
    const fd = hostFile('pulled', 'w+');
    const progress: number[] = [];
    const copying = agent.copy({ direction: 'from-guest', hostFd: fd, sizeBytes: 0, maxBytes: 1000, guestPath: '/var/log/app.log', timeoutMs: 5000, onProgress: (m) => progress.push(m) });
    const { request, hostPathLen } = await takeCopy();
    const open = await call(fileReq.open(0, hostPathLen, FILE_OPEN_FLAG.WRITE, 5));
    expect(open.status).toBe(STATUS.OK.code);
    const h = u32(open, FILE_INFO.offsets.handle);
    mem.write(dataSliceOffset(geometry, 1) + 4096, new TextEncoder().encode('hello'));
    expect((await call(fileReq.write(h, 5, 0, 4096))).status).toBe(STATUS.OK.code);
    expect((await call(fileReq.close(h, FILE_CLOSE_FLAG.COMMIT))).status).toBe(STATUS.OK.code);
    guest.send({ type: MSG_TYPE.AGENT_COPY | MSG_RESPONSE_BIT, requestId: request.requestId, status: 0, payload: new Uint8Array() });
    core.process();
    expect(await copying).toEqual({ bytes: 5 });
    expect(readFileSync(path.join(dir, 'pulled'), 'utf8')).toBe('hello');
    expect(progress).toEqual([0, 5]); // 0 when the agent opens the file (its size known), then the write
    expect(agent.transfers.liveCount).toBe(0);
    expect(core.serviceCounters().agent).toMatchObject({ copies_from_guest: 1, copy_bytes: 5 });
  });

  it('a copy that times out ends its transfer: the handle the agent opened during it is dead', async () => {
    agentUp();
    const fd = hostFile('pushed', 'r', 'slow copy');
    const copying = agent.copy({ direction: 'to-guest', hostFd: fd, sizeBytes: 9, guestPath: '/tmp/x', timeoutMs: 100 });
    const { hostPathLen } = await takeCopy();
    const open = await call(fileReq.open(0, hostPathLen, FILE_OPEN_FLAG.READ));
    const h = u32(open, FILE_INFO.offsets.handle);
    await expect(copying).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/within 100 ms/) });
    expect(agent.transfers.liveCount).toBe(0);
    expect((await call(fileReq.read(h, 9, 0, 4096))).status).toBe(STATUS.BAD_HANDLE.code);
    expect(agent.openFiles).toBe(0);
    expect(guest.readChannel('error_count')).toBe(0);
  });

  it('the device closing (the VM stopped) fails a copy at once with the reason', async () => {
    agentUp();
    const fd = hostFile('pushed', 'r', 'x');
    const copying = agent.copy({ direction: 'to-guest', hostFd: fd, sizeBytes: 1, guestPath: '/tmp/x', timeoutMs: 60_000 });
    await takeCopy();
    core.close('VM t stopped');
    await expect(copying).rejects.toMatchObject({ code: 'AGENT_UNAVAILABLE', message: 'VM t stopped during the copy of /tmp/x' });
    expect(agent.transfers.liveCount).toBe(0);
  });

  it('waits for an agent that is still coming up, and says so when none does', async () => {
    const fd = hostFile('pushed', 'r', 'x');
    await expect(agent.copy({ direction: 'to-guest', hostFd: fd, sizeBytes: 1, guestPath: '/tmp/x', timeoutMs: 1000, agentWaitMs: 50 })).rejects.toMatchObject({
      code: 'AGENT_UNAVAILABLE',
      message: expect.stringMatching(/no guest agent came up in this VM within 50 ms/),
    });
    const copying = agent.copy({ direction: 'to-guest', hostFd: fd, sizeBytes: 1, guestPath: '/tmp/x', timeoutMs: 5000, agentWaitMs: 5000 });
    agentUp();
    const { request } = await takeCopy();
    guest.send({ type: MSG_TYPE.AGENT_COPY | MSG_RESPONSE_BIT, requestId: request.requestId, status: STATUS.NOT_FOUND.code, payload: new Uint8Array() });
    core.process();
    await expect(copying).rejects.toMatchObject({ code: 'GUEST_REFUSED', message: expect.stringMatching(/no such file or directory \(status 23\)/) });
  });

  it('the agent channel reaches host transfers only, never the VM root or other paths', async () => {
    agentUp();
    mem.write(dataSliceOffset(geometry, 1), new TextEncoder().encode('etc/passwd'));
    expect((await call(fileReq.open(0, 10, FILE_OPEN_FLAG.READ))).status).toBe(STATUS.PATH_ESCAPES.code);
    expect((await call(fileReq.list(0, 10, 4096, 4096))).status).toBe(STATUS.WRONG_MODE.code);
  });

  it('AGENT_LIST: a hostile agent\'s listing lands in the host fd only, and its bad names are set aside on the host', async () => {
    agentUp();
    const fd = hostFile('listing', 'w+');
    const listing = encodeListing([
      { name: '../../etc/passwd', type: FILE_TYPE.FILE, mode: 0o100644, size: 3 },
      { name: '..', type: FILE_TYPE.DIR, mode: 0o040755 },
      { name: 'ok', type: FILE_TYPE.FILE, mode: 0o100640, size: 3 },
      { name: 'pipe', type: FILE_TYPE.FILE, mode: 0o010644 },
    ]);
    const listing2 = encodeListing([{ name: 'ok', type: FILE_TYPE.FILE, mode: 0o100640, size: 3 }, { name: 'lnk', type: FILE_TYPE.SYMLINK, mode: 0o120777 }]);
    const listingFor = [listing, listing2];
    for (const [i, body] of listingFor.entries()) {
      const listed = agent.list({ hostFd: fd, maxBytes: 10_000, guestPath: '/srv', timeoutMs: 5000 });
      const { request, hostPathLen } = await takeCopy();
      expect(request.type).toBe(MSG_TYPE.AGENT_LIST);
      const open = await call(fileReq.open(0, hostPathLen, FILE_OPEN_FLAG.WRITE, body.byteLength));
      expect(open.status).toBe(STATUS.OK.code);
      const h = u32(open, FILE_INFO.offsets.handle);
      mem.write(dataSliceOffset(geometry, 1) + 4096, body);
      expect((await call(fileReq.write(h, body.byteLength, 0, 4096))).status).toBe(STATUS.OK.code);
      expect((await call(fileReq.close(h, FILE_CLOSE_FLAG.COMMIT))).status).toBe(STATUS.OK.code);
      guest.send({ type: MSG_TYPE.AGENT_LIST | MSG_RESPONSE_BIT, requestId: request.requestId, status: 0, payload: new Uint8Array(8) });
      core.process();
      expect(await listed).toEqual({ bytes: body.byteLength });
      const got = readFileSync(path.join(dir, 'listing')).subarray(0, body.byteLength);
      if (i === 0) {
        // A "file" whose mode says fifo makes the whole listing malformed.
        expect(decodeListing(got)).toMatchObject({ ok: false, reason: expect.stringMatching(/"pipe" has type 1 and mode 0o10644, which do not agree/) });
      } else {
        expect(decodeListing(got)).toEqual({ ok: true, refused: [], entries: [{ name: 'ok', kind: 'file', sizeBytes: 3, mode: 0o640 }, { name: 'lnk', kind: 'symlink', sizeBytes: 0, mode: 0o777 }] });
      }
    }
    expect(decodeListing(encodeListing([{ name: '../../etc/passwd', type: FILE_TYPE.FILE, mode: 0o100644 }]))).toMatchObject({ ok: true, entries: [], refused: [{ reason: expect.stringMatching(/contains '\/'/) }] });
    expect(readdirSync(dir)).toEqual(['listing']);
    expect(agent.transfers.liveCount).toBe(0);
  });

  it('AGENT_MKDIR: mode and path go out in vmgmt_agent_mkdir; EXISTS and other refusals are said in words', async () => {
    agentUp();
    const answers = [STATUS.OK.code, STATUS.EXISTS.code, STATUS.NOT_FOUND.code];
    for (const status of answers) {
      const making = agent.mkdir('/srv/site', 0o750, { waitMs: 1000, timeoutMs: 5000 });
      let request: Message | undefined;
      for (let i = 0; i < 50 && !request; i++) {
        [request] = guest.receiveAll();
        if (!request) await new Promise((r) => setImmediate(r));
      }
      expect(request!.type).toBe(MSG_TYPE.AGENT_MKDIR);
      expect(u32(request!, AGENT_MKDIR_REQ.offsets.mode)).toBe(0o750);
      expect(new TextDecoder().decode(request!.payload.subarray(AGENT_MKDIR_REQ.sizeBytes))).toBe('/srv/site');
      guest.send({ type: MSG_TYPE.AGENT_MKDIR | MSG_RESPONSE_BIT, requestId: request!.requestId, status, payload: new Uint8Array() });
      core.process();
      if (status === STATUS.OK.code) await expect(making).resolves.toBeUndefined();
      else if (status === STATUS.EXISTS.code) await expect(making).rejects.toMatchObject({ code: 'GUEST_REFUSED', message: expect.stringMatching(/something that is not a directory is there/) });
      else await expect(making).rejects.toMatchObject({ code: 'GUEST_REFUSED', message: expect.stringMatching(/could not make the directory \/srv\/site: no such file or directory/) });
    }
  });
});
