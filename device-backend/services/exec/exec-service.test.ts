// The exec service's session logic with a fake agent and fake channel ports over real guest memory: attach
// by token, output answered only once the consumer took it (the back-pressure), pulled stdin with end of
// input, exit, and a reset or close failing the session at once.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import type { ChannelPort } from '../../core/message-service.js';
import { EXEC_ATTACH_REQ, EXEC_EXIT_REQ, EXEC_IO_REQ, EXEC_IO_RESP, EXEC_RESIZE_MSG, EXEC_SPEC, EXEC_START_REQ, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import { DataSlice } from '../../memory/data-slice.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import type { Message } from '../../protocol/message-codec.js';
import type { AgentService } from '../agent/agent-service.js';
import { decodeExit, encodeSpecBytes } from './exec-codec.js';
import { ExecError } from './exec-error.js';
import { type ExecIo, ExecService, MAX_OUTPUTS_OUT } from './exec-service.js';

const SLICE = 1024 * 1024;
let nextId = 1;
const req = (type: number, payload: Uint8Array): Message => ({ type, requestId: nextId++, status: 0, payload });
const io = (type: number, stream: number, length: number, bufOffset: number): Message => {
  const p = new Uint8Array(EXEC_IO_REQ.sizeBytes);
  const dv = new DataView(p.buffer);
  dv.setUint32(EXEC_IO_REQ.offsets.stream, stream, true);
  dv.setUint32(EXEC_IO_REQ.offsets.length, length, true);
  dv.setUint32(EXEC_IO_REQ.offsets.buf_offset, bufOffset, true);
  return req(type, p);
};
const exit = (code: number, signal = 0): Message => {
  const p = new Uint8Array(EXEC_EXIT_REQ.sizeBytes);
  const dv = new DataView(p.buffer);
  dv.setInt32(EXEC_EXIT_REQ.offsets.exit_code, code, true);
  dv.setInt32(EXEC_EXIT_REQ.offsets.signal, signal, true);
  return req(MSG_TYPE.EXEC_EXIT, p);
};

function setup() {
  const mem = new GuestMemory(new ArrayBuffer(2 * SLICE));
  const pushes: Array<{ type: number; payload: Uint8Array }> = [];
  const port: ChannelPort = {
    channel: 3,
    slice: new DataSlice(mem, SLICE, SLICE),
    mode: 6,
    slotSizeBytes: 256,
    request: () => Promise.reject(new Error('not used')),
    push: (type, payload) => {
      pushes.push({ type, payload });
      return { ok: true };
    },
  };
  let token: Uint8Array | undefined;
  const agent = {
    hostRequest: async (type: number, payload: Uint8Array) => {
      expect(type).toBe(MSG_TYPE.EXEC_START);
      token = payload.slice(EXEC_START_REQ.offsets.token, EXEC_START_REQ.offsets.token + 16);
      return { type: type | 0x8000, requestId: 1, status: 0, payload: new Uint8Array(0) };
    },
  } as unknown as AgentService;
  const svc = new ExecService({ agent, log: silentLogger });
  const attach = async (): Promise<Message> => {
    while (!token) await new Promise((r) => setTimeout(r, 1));
    const p = new Uint8Array(EXEC_ATTACH_REQ.sizeBytes);
    p.set(token);
    return (await svc.handle(req(MSG_TYPE.EXEC_ATTACH, p), port)) as Message;
  };
  return { mem, port, pushes, svc, attach };
}

const spec = { argv: ['sh', '-c', 'echo hi'], env: ['A=1'], cwd: '/tmp', tty: false, rows: 0, cols: 0 };

describe('ExecService', () => {
  it('attaches by token and writes the command line into the slice', async () => {
    const { svc, attach, mem } = setup();
    const running = svc.run({ spec, io: { output: async () => {} } });
    const answer = await attach();
    expect(answer.status).toBe(STATUS.OK.code);
    const dv = new DataView(answer.payload.buffer, answer.payload.byteOffset);
    const bytes = encodeSpecBytes(spec);
    if (!bytes.ok) throw new Error(bytes.reason);
    expect(dv.getUint32(EXEC_SPEC.offsets.spec_bytes, true)).toBe(bytes.value.byteLength);
    expect(dv.getUint32(EXEC_SPEC.offsets.argc, true)).toBe(3);
    expect(Buffer.from(mem.copyOut(SLICE, bytes.value.byteLength)).toString()).toBe('/tmp\0sh\0-c\0echo hi\0A=1\0');
    svc.channelReset(3);
    await expect(running).rejects.toThrow(ExecError);
  });

  it('refuses an unknown token', async () => {
    const { svc, port } = setup();
    const p = new Uint8Array(EXEC_ATTACH_REQ.sizeBytes).fill(7);
    expect(((await svc.handle(req(MSG_TYPE.EXEC_ATTACH, p), port)) as Message).status).toBe(STATUS.EXEC_NO_SESSION.code);
  });

  it('answers output only once the consumer took it, and refuses more than the bound', async () => {
    const { svc, attach, port, mem } = setup();
    const taken: string[] = [];
    const gates: Array<() => void> = [];
    const sink: ExecIo = {
      output: (stream, b) =>
        new Promise<void>((resolve) => {
          taken.push(`${stream}:${Buffer.from(b).toString()}`);
          gates.push(resolve);
        }),
    };
    const running = svc.run({ spec, io: sink });
    await attach();
    mem.view(SLICE, 5).set(Buffer.from('hello'));
    mem.view(SLICE + 100, 3).set(Buffer.from('err'));
    let answered = false;
    const first = (svc.handle(io(MSG_TYPE.EXEC_OUTPUT, 1, 5, 0), port) as Promise<Message>).then((m) => {
      answered = true;
      return m;
    });
    const second = svc.handle(io(MSG_TYPE.EXEC_OUTPUT, 2, 3, 100), port) as Promise<Message>;
    await new Promise((r) => setTimeout(r, 10));
    expect(taken).toEqual(['stdout:hello']); // in order: the second waits for the first
    expect(answered).toBe(false);
    for (let i = 2; i < MAX_OUTPUTS_OUT; i++) void svc.handle(io(MSG_TYPE.EXEC_OUTPUT, 1, 1, 0), port);
    const over = (await svc.handle(io(MSG_TYPE.EXEC_OUTPUT, 1, 1, 0), port)) as Message;
    expect(over.status).toBe(STATUS.EXEC_BAD_STEP.code);
    gates.shift()!();
    expect((await first).status).toBe(0);
    await new Promise((r) => setTimeout(r, 1));
    expect(taken[1]).toBe('stderr:err');
    while (gates.length || taken.length < MAX_OUTPUTS_OUT) {
      gates.shift()?.();
      await new Promise((r) => setTimeout(r, 1));
    }
    expect((await second).status).toBe(0);
    expect(((await svc.handle(exit(0), port)) as Message).status).toBe(0);
    const result = await running;
    expect(result).toMatchObject({ exitCode: 0, signal: null, timedOut: false, stdoutBytes: 5 + MAX_OUTPUTS_OUT - 2, stderrBytes: 3 });
  });

  it('gives stdin in pieces the guest buffer holds, then end of input', async () => {
    const { svc, attach, port, mem } = setup();
    const chunks = [Buffer.from('abcdefgh'), null];
    const running = svc.run({ spec, io: { output: async () => {}, input: async () => chunks.shift() ?? null } });
    await attach();
    const read = async (): Promise<{ bytes: number; eof: boolean; text: string }> => {
      const m = (await svc.handle(io(MSG_TYPE.EXEC_INPUT, 0, 5, 4096), port)) as Message;
      const dv = new DataView(m.payload.buffer, m.payload.byteOffset);
      const bytes = dv.getUint32(EXEC_IO_RESP.offsets.bytes, true);
      return { bytes, eof: dv.getUint32(EXEC_IO_RESP.offsets.eof, true) === 1, text: Buffer.from(mem.copyOut(SLICE + 4096, bytes)).toString() };
    };
    expect(await read()).toEqual({ bytes: 5, eof: false, text: 'abcde' });
    expect(await read()).toEqual({ bytes: 3, eof: false, text: 'fgh' });
    expect(await read()).toEqual({ bytes: 0, eof: true, text: '' });
    await svc.handle(exit(-1, 9), port);
    expect(await running).toMatchObject({ exitCode: null, signal: 9 });
  });

  it('a timeout pushes SIGKILL and says timedOut', async () => {
    const { svc, attach, port, pushes } = setup();
    const running = svc.run({ spec, io: { output: async () => {} }, timeoutMs: 20 });
    await attach();
    await new Promise((r) => setTimeout(r, 60));
    expect(pushes.map((p) => p.type)).toEqual([MSG_TYPE.EXEC_SIGNAL]);
    expect(new DataView(pushes[0]!.payload.buffer).getUint32(0, true)).toBe(9);
    await svc.handle(exit(-1, 9), port);
    expect(await running).toMatchObject({ timedOut: true, signal: 9 });
  });

  it('hands a running session its resize once attached: EXEC_RESIZE pushed with rows and cols', async () => {
    const { svc, attach, port, pushes } = setup();
    let resize: ((rows: number, cols: number) => void) | undefined;
    const running = svc.run({ spec: { ...spec, tty: true, rows: 24, cols: 80 }, io: { output: async () => {} }, onAttached: (s) => (resize = s.resize) });
    await attach();
    while (!resize) await new Promise((r) => setTimeout(r, 1));
    resize(50, 132);
    expect(pushes.map((p) => p.type)).toEqual([MSG_TYPE.EXEC_RESIZE]);
    const dv = new DataView(pushes[0]!.payload.buffer, pushes[0]!.payload.byteOffset);
    expect([dv.getUint16(EXEC_RESIZE_MSG.offsets.rows, true), dv.getUint16(EXEC_RESIZE_MSG.offsets.cols, true)]).toEqual([50, 132]);
    await svc.handle(exit(0), port);
    await running;
    // After the exit the session is gone: a late resize sends nothing.
    resize(10, 10);
    expect(pushes).toHaveLength(1);
  });

  it('close fails a running session at once with the reason', async () => {
    const { svc, attach } = setup();
    const running = svc.run({ spec, io: { output: async () => {} } });
    await attach();
    svc.close();
    await expect(running).rejects.toThrow(/device closed/);
  });

  it('decodes exits strictly', () => {
    const bad = (code: number, sig: number) => decodeExit(exit(code, sig).payload).ok;
    expect(bad(0, 0)).toBe(true);
    expect(bad(-1, 15)).toBe(true);
    expect(bad(256, 0)).toBe(false);
    expect(bad(0, 9)).toBe(false);
    expect(bad(-1, 0)).toBe(false);
  });
});
