// agentCopy ends its host transfer however the copy ends, before its caller closes the file: a timed-out
// copy leaves no live transfer and no guest handle that still reaches the host file.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import { AGENT_COPY_REQ, FILE_INFO, FILE_OPEN_FLAG, MODE, STATUS } from '../../device-backend/layout/wire-layout.js';
import type { ManagementDevice } from '../../device-backend/management-device.js';
import { DataSlice } from '../../device-backend/memory/data-slice.js';
import { GuestMemory } from '../../device-backend/memory/guest-memory.js';
import { loadNative } from '../../device-backend/native/index.js';
import type { Message } from '../../device-backend/protocol/message-codec.js';
import { FileService } from '../../device-backend/services/file/file-service.js';
import { HostTransfers } from '../../device-backend/services/file/host-transfers.js';
import { fileReq } from '../../device-backend/testing/file-requests.js';
import { agentCopy } from './agent-copy.js';

const PATH_AT = 0;
const BUF_AT = 4096;

describe('agentCopy', () => {
  let dir: string;
  let fd: number;
  const mem = new GuestMemory(new ArrayBuffer(64 * 1024));
  const ctx = { channel: 2, slice: new DataSlice(mem, 0, 64 * 1024) };
  let transfers: HostTransfers;
  let svc: FileService;
  const call = async (m: Message): Promise<Message> => svc.handle(m, ctx);
  const handleOf = (m: Message): number => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(FILE_INFO.offsets.handle, true);

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-agent-copy-'));
    writeFileSync(path.join(dir, 'pushed'), 'slow copy');
    fd = openSync(path.join(dir, 'pushed'), 'r');
    transfers = new HostTransfers();
    svc = new FileService({ native: loadNative(), transfers, log: silentLogger });
  });

  afterEach(() => {
    try {
      svc.close();
      closeSync(fd);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a copy that times out ends its transfer: the agent handle opened during it is dead', async () => {
    let agentHandle = 0;
    // The guest agent opens the host file, then never answers the AGENT_COPY.
    const device = {
      geometry: { slotSizeBytes: 256 },
      core: {
        channelsInMode: (mode: number) => (mode === MODE.AGENT ? [ctx.channel] : []),
        request: async (_channel: number, _type: number, payload: Uint8Array): Promise<Message> => {
          const dv = new DataView(payload.buffer, payload.byteOffset);
          const hostPathLen = dv.getUint32(AGENT_COPY_REQ.offsets.host_path_len, true);
          mem.write(PATH_AT, payload.subarray(AGENT_COPY_REQ.sizeBytes, AGENT_COPY_REQ.sizeBytes + hostPathLen));
          agentHandle = handleOf(await call(fileReq.open(PATH_AT, hostPathLen, FILE_OPEN_FLAG.READ)));
          return new Promise<Message>(() => {});
        },
      },
    } as unknown as ManagementDevice;
    await expect(agentCopy({ device, transfers, direction: 'to-guest', hostFd: fd, sizeBytes: 9, guestPath: '/tmp/x', timeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(agentHandle).toBeGreaterThan(0);
    expect(transfers.liveCount).toBe(0);
    expect((await call(fileReq.read(agentHandle, 9, 0, BUF_AT))).status).toBe(STATUS.BAD_HANDLE.code);
    expect(svc.usage.openFiles).toBe(0);
  });
});
