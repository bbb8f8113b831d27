// The host side of the driver update against a scripted agent port (the real guest side is covered by
// test/integration/agent-update.test.ts): hellos, the outcome from the new agent's hello or the old one's
// rollback report, refusals in words.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import type { ChannelPort, ServiceHost } from '../../core/message-service.js';
import { AGENT_HELLO_REQ, AGENT_UPDATE_REQ, AGENT_UPDATE_RESULT_REQ, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { Message } from '../../protocol/message-codec.js';
import type { AgentService } from './agent-service.js';
import { AgentUpdateError, AgentUpdateService } from './agent-update.js';
import { VERSION_MARKER } from './agent-update-codec.js';

const enc = new TextEncoder();
const binary = (version: string) => enc.encode(`\x7fELF....${VERSION_MARKER}${version}\0rest`);

function hello(pid: number, version: string, takeover: boolean, gapUs = 0): Message {
  const v = enc.encode(version);
  const p = new Uint8Array(AGENT_HELLO_REQ.sizeBytes + v.byteLength);
  const dv = new DataView(p.buffer);
  dv.setUint32(AGENT_HELLO_REQ.offsets.pid, pid, true);
  dv.setUint32(AGENT_HELLO_REQ.offsets.flags, takeover ? 1 : 0, true);
  dv.setUint32(AGENT_HELLO_REQ.offsets.gap_us, gapUs, true);
  dv.setUint32(AGENT_HELLO_REQ.offsets.version_len, v.byteLength, true);
  p.set(v, AGENT_HELLO_REQ.sizeBytes);
  return { type: MSG_TYPE.AGENT_HELLO, requestId: 1, status: 0, flags: 0, payload: p } as unknown as Message;
}

function rolledBack(reason: string): Message {
  const r = enc.encode(reason);
  const p = new Uint8Array(AGENT_UPDATE_RESULT_REQ.sizeBytes + r.byteLength);
  const dv = new DataView(p.buffer);
  dv.setInt32(AGENT_UPDATE_RESULT_REQ.offsets.status, STATUS.UPDATE_ROLLED_BACK.code, true);
  dv.setUint32(AGENT_UPDATE_RESULT_REQ.offsets.reason_len, r.byteLength, true);
  p.set(r, AGENT_UPDATE_RESULT_REQ.sizeBytes);
  return { type: MSG_TYPE.AGENT_UPDATE_RESULT, requestId: 2, status: 0, flags: 0, payload: p } as unknown as Message;
}

/** Ports whose AGENT_UPDATE answers come from `onUpdate`; copies succeed without moving bytes. */
function rig(onUpdate: (payload: Uint8Array, svc: AgentUpdateService) => number) {
  const copies: string[] = [];
  const agent = { copy: async (o: { guestPath: string }) => (copies.push(o.guestPath), { bytes: 0 }) } as unknown as AgentService;
  const svc = new AgentUpdateService({ agent, log: silentLogger });
  const port = (channel: number): ChannelPort =>
    ({
      channel,
      request: async (type: number, payload: Uint8Array) => {
        expect(type).toBe(MSG_TYPE.AGENT_UPDATE);
        return { type: type | 0x8000, requestId: 9, status: onUpdate(payload, svc), flags: 0, payload: new Uint8Array(0) } as unknown as Message;
      },
    }) as unknown as ChannelPort;
  const host = { port, counters: { add: () => {} } } as unknown as ServiceHost;
  svc.attach(host);
  return { svc, port, copies };
}

/** Every temp directory a test made (some make two), removed after it. */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(path.join(tmpdir(), 'vmgmt-agent-update-test-'));
  dirs.push(d);
  return d;
};

describe('AgentUpdateService', () => {
  it('keeps the newest agent\'s hello and forgets it when its channel resets', () => {
    const { svc, port } = rig(() => 0);
    expect(svc.handle(hello(10, '1.0.0', false), port(1)).status).toBe(0);
    expect(svc.current).toMatchObject({ version: '1.0.0', pid: 10, channel: 1, takeover: false });
    svc.channelReset(1);
    expect(svc.current).toBeUndefined();
  });

  it('succeeds on the new agent\'s takeover hello with the expected version, after its probation', async () => {
    const { svc, port, copies } = rig((payload, s) => {
      const version = new TextDecoder().decode(payload.subarray(AGENT_UPDATE_REQ.sizeBytes, AGENT_UPDATE_REQ.sizeBytes + 3));
      setTimeout(() => s.handle(hello(20, version, true, 42_000), port(2)), 5);
      return 0;
    });
    svc.handle(hello(10, '1.0.0', false), port(1));
    const r = await svc.update({ binary: binary('2.0'), tempDir: tempDir(), probationMs: 0 });
    expect(r).toMatchObject({ fromVersion: '1.0.0', toVersion: '2.0', pid: 20, gapMs: 42 });
    expect(copies).toEqual(['/run/vmgmt-agent-update.bin']);
    expect(svc.last).toMatchObject({ toVersion: '2.0', outcome: 'updated', gapMs: 42 });
  });

  it('fails in words when the old agent reports a rollback', async () => {
    const { svc, port } = rig((_p, s) => {
      setTimeout(() => s.handle(rolledBack('the new agent was killed by signal 6'), port(1)), 5);
      return 0;
    });
    svc.handle(hello(10, '1.0.0', false), port(1));
    const err = await svc.update({ binary: binary('2.0'), tempDir: tempDir() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUpdateError);
    expect(err).toMatchObject({ code: 'ROLLED_BACK', message: expect.stringContaining('signal 6') });
    expect(svc.last).toMatchObject({ outcome: 'rolled-back' });
  });

  it('reports the guest\'s refusal with its status in words', async () => {
    const { svc, port } = rig(() => STATUS.UPDATE_BAD_DIGEST.code);
    svc.handle(hello(10, '1.0.0', false), port(1));
    await expect(svc.update({ binary: binary('2.0'), tempDir: tempDir() })).rejects.toMatchObject({ code: 'REFUSED', message: expect.stringMatching(/sha256.*status 80/) });
    expect(svc.last).toMatchObject({ outcome: 'refused' });
  });

  it('refuses a file that is not a vmgmt-guest, and an agent that never said hello', async () => {
    const { svc } = rig(() => 0);
    await expect(svc.update({ binary: enc.encode('#!/bin/sh'), tempDir: tempDir() })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(svc.update({ binary: binary('2.0'), tempDir: tempDir() })).rejects.toMatchObject({ code: 'AGENT_UNAVAILABLE' });
  });

  it('fails a waiting update at once when the device closes', async () => {
    const { svc, port } = rig((_p, s) => {
      setTimeout(() => s.close(), 5);
      return 0;
    });
    svc.handle(hello(10, '1.0.0', false), port(1));
    await expect(svc.update({ binary: binary('2.0'), tempDir: tempDir() })).rejects.toMatchObject({ code: 'AGENT_UNAVAILABLE', message: expect.stringContaining('closed') });
  });
});
