import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { QmpClient, QmpError, type QmpEvent } from './qmp-client.js';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}\r\n';

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id: number;
}

/** A scripted QMP server on a real UNIX socket: the test reads commands and writes raw bytes. */
class FakePeer {
  readonly server: Server;
  socket: Socket | undefined;
  readonly #commands: Command[] = [];
  #waiter: (() => void) | undefined;
  #buffer = '';
  #connected: Promise<Socket>;

  constructor(readonly path: string) {
    this.server = createServer();
    this.#connected = new Promise((resolve) => {
      this.server.once('connection', (socket) => {
        this.socket = socket;
        socket.on('data', (chunk) => {
          this.#buffer += chunk.toString('utf8');
          let nl: number;
          while ((nl = this.#buffer.indexOf('\n')) !== -1) {
            this.#commands.push(JSON.parse(this.#buffer.slice(0, nl)) as Command);
            this.#buffer = this.#buffer.slice(nl + 1);
            this.#waiter?.();
          }
        });
        socket.on('error', () => {});
        resolve(socket);
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  connected(): Promise<Socket> {
    return this.#connected;
  }

  async nextCommand(): Promise<Command> {
    while (this.#commands.length === 0) await new Promise<void>((resolve) => (this.#waiter = resolve));
    return this.#commands.shift() as Command;
  }

  send(text: string): void {
    this.socket?.write(text);
  }

  reply(id: number, value: unknown = {}): void {
    this.send(`${JSON.stringify({ return: value, id })}\r\n`);
  }

  /** Greets and accepts qmp_capabilities, as QEMU does. */
  async handshake(): Promise<void> {
    await this.connected();
    this.send(GREETING);
    const caps = await this.nextCommand();
    expect(caps.execute).toBe('qmp_capabilities');
    this.reply(caps.id);
  }

  close(): Promise<void> {
    this.socket?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function event(name: string, data?: Record<string, unknown>): string {
  return `${JSON.stringify({ timestamp: { seconds: 1, microseconds: 2 }, event: name, ...(data ? { data } : {}) })}\r\n`;
}

let dir: string;
let peer: FakePeer;
const clients: QmpClient[] = [];

async function connectedPair(): Promise<QmpClient> {
  await peer.listen();
  const [client] = await Promise.all([QmpClient.connect(peer.path), peer.handshake()]);
  clients.push(client);
  return client;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-qmp-client-'));
  peer = new FakePeer(join(dir, 'qmp.sock'));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await peer.close();
  await rm(dir, { recursive: true, force: true });
});

describe('QmpClient.connect', () => {
  it('waits for the socket to appear, reads a greeting split across chunks and negotiates capabilities', async () => {
    const connecting = QmpClient.connect(peer.path, { connectRetryUntilMs: 3000 });
    await sleep(150);
    await peer.listen();
    const socket = await peer.connected();
    for (const part of [GREETING.slice(0, 5), GREETING.slice(5, 40), GREETING.slice(40, -1), GREETING.slice(-1)]) {
      socket.write(part);
      await sleep(10);
    }
    const caps = await peer.nextCommand();
    expect(caps).toEqual({ execute: 'qmp_capabilities', id: caps.id });
    peer.reply(caps.id);
    const client = await connecting;
    clients.push(client);
    expect(client.greeting.QMP.version.qemu).toEqual({ major: 7, minor: 2, micro: 22 });
    expect(client.greeting.QMP.capabilities).toEqual(['oob']);
  });

  it('fails with CONNECT_TIMEOUT when no socket appears', async () => {
    const err = await QmpClient.connect(peer.path, { connectRetryUntilMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ code: 'CONNECT_TIMEOUT', details: { socketPath: peer.path } });
    expect((err as Error).message).toContain('ENOENT');
  });

  it('stops retrying at once when aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = QmpClient.connect(peer.path, { connectRetryUntilMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('QEMU exited')), 50);
    await expect(pending).rejects.toMatchObject({ code: 'CONNECT_FAILED', message: expect.stringContaining('QEMU exited') });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('fails with GREETING when the peer sends something else first', async () => {
    await peer.listen();
    const pending = QmpClient.connect(peer.path);
    (await peer.connected()).write('{"return": {}}\r\n');
    await expect(pending).rejects.toMatchObject({ code: 'GREETING', message: expect.stringContaining('expected the greeting first') });
  });

  it('fails with GREETING when the peer stays silent', async () => {
    await peer.listen();
    await expect(QmpClient.connect(peer.path, { timeoutMs: 100 })).rejects.toMatchObject({
      code: 'GREETING',
      details: { timeoutMs: 100 },
    });
  });

  it('fails with GREETING when the peer closes before greeting', async () => {
    await peer.listen();
    const pending = QmpClient.connect(peer.path);
    (await peer.connected()).destroy();
    await expect(pending).rejects.toMatchObject({ code: 'GREETING', message: expect.stringContaining('closed the QMP socket') });
  });
});

describe('QmpClient.execute', () => {
  it('matches out-of-order replies by id and passes arguments', async () => {
    const client = await connectedPair();
    const a = client.execute('query-status');
    const b = client.execute('human-monitor-command', { 'command-line': 'info version' });
    const cmdA = await peer.nextCommand();
    const cmdB = await peer.nextCommand();
    expect(cmdB.arguments).toEqual({ 'command-line': 'info version' });
    expect(cmdA.id).not.toBe(cmdB.id);
    peer.send(`{"return": "7.2.22", "id": ${cmdB.id}}\r\n{"return": {"status": "running"}, "id": ${cmdA.id}}\r\n`);
    expect(await b).toBe('7.2.22');
    expect(await a).toEqual({ status: 'running' });
  });

  it('turns an error reply into COMMAND_FAILED with class and desc', async () => {
    const client = await connectedPair();
    const pending = client.execute('nope');
    const cmd = await peer.nextCommand();
    peer.send(`{"id": ${cmd.id}, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}\r\n`);
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({
      code: 'COMMAND_FAILED',
      details: { command: 'nope', qmpClass: 'CommandNotFound', qmpDesc: 'The command nope has not been found' },
    });
    expect((err as Error).message).toBe('QMP command "nope" failed: CommandNotFound: The command nope has not been found');
  });

  it('rejects with COMMAND_TIMEOUT and reports the late reply as a protocol error', async () => {
    const protocolErrors: QmpError[] = [];
    await peer.listen();
    const [client] = await Promise.all([
      QmpClient.connect(peer.path, { onProtocolError: (e) => protocolErrors.push(e) }),
      peer.handshake(),
    ]);
    clients.push(client);
    const started = Date.now();
    const err = await client.execute('query-status', undefined, { timeoutMs: 120 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(err).toMatchObject({ code: 'COMMAND_TIMEOUT', details: { command: 'query-status', timeoutMs: 120 } });
    const cmd = await peer.nextCommand();
    peer.reply(cmd.id);
    await sleep(50);
    expect(protocolErrors.map((e) => e.code)).toEqual(['PROTOCOL']);
    expect(client.isClosed).toBe(false);
  });

  it('rejects pending commands with DISCONNECTED naming the command when the peer closes mid-command', async () => {
    const client = await connectedPair();
    const a = client.execute('query-status');
    const b = client.execute('migrate', { uri: 'exec:cat' });
    await peer.nextCommand();
    await peer.nextCommand();
    peer.socket?.destroy();
    const [errA, errB] = await Promise.all([a.catch((e: unknown) => e), b.catch((e: unknown) => e)]);
    expect(errA).toMatchObject({ code: 'DISCONNECTED', details: { command: 'query-status' } });
    expect((errA as Error).message).toMatch(/"query-status".*QEMU exited or closed the QMP socket/);
    expect((errB as Error).message).toContain('"migrate"');
    await client.closed;
    await expect(client.execute('cont')).rejects.toMatchObject({ code: 'DISCONNECTED', details: { command: 'cont' } });
  });

  it('says close() was called when the client itself closed', async () => {
    const client = await connectedPair();
    const pending = client.execute('query-status');
    client.close();
    await expect(pending).rejects.toMatchObject({ code: 'DISCONNECTED', message: expect.stringContaining('close() was called') });
    await client.closed;
  });

  it('validates the return value against a schema', async () => {
    const client = await connectedPair();
    const schema = z.object({ status: z.string(), running: z.boolean() });
    const good = client.execute('query-status', undefined, { schema });
    peer.reply((await peer.nextCommand()).id, { status: 'paused', running: false, extra: 1 });
    expect(await good).toEqual({ status: 'paused', running: false });
    const bad = client.execute('query-status', undefined, { schema });
    peer.reply((await peer.nextCommand()).id, { status: 5 });
    await expect(bad).rejects.toMatchObject({ code: 'PROTOCOL', details: { command: 'query-status' } });
  });

  it('rejects the matching command when its reply is malformed', async () => {
    const client = await connectedPair();
    const pending = client.execute('query-status');
    const cmd = await peer.nextCommand();
    peer.send(`{"error": {"desc": "no class"}, "id": ${cmd.id}}\n`);
    await expect(pending).rejects.toMatchObject({ code: 'PROTOCOL', details: { command: 'query-status' } });
  });
});

describe('QmpClient events', () => {
  it('delivers events interleaved with replies to every consumer', async () => {
    const client = await connectedPair();
    const first = client.events()[Symbol.asyncIterator]();
    const pending = client.execute('stop');
    const cmd = await peer.nextCommand();
    const second = client.events()[Symbol.asyncIterator]();
    // One chunk: event, reply, event, with the last event split into the next chunk.
    const tail = event('RESUME');
    peer.send(event('STOP') + `{"return": {}, "id": ${cmd.id}}\r\n` + tail.slice(0, 10));
    await sleep(10);
    peer.send(tail.slice(10));
    expect(await pending).toEqual({});
    const names = async (it: AsyncIterator<QmpEvent>, n: number): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push(((await it.next()).value as QmpEvent).event);
      return out;
    };
    expect(await names(first, 2)).toEqual(['STOP', 'RESUME']);
    expect(await names(second, 2)).toEqual(['STOP', 'RESUME']);
  });

  it('ends event iteration when the connection closes', async () => {
    const client = await connectedPair();
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const e of client.events()) seen.push(e.event);
    })();
    peer.send(event('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' }));
    await sleep(20);
    peer.socket?.destroy();
    await consumer;
    expect(seen).toEqual(['SHUTDOWN']);
  });

  it('waitForEvent resolves on the named event, times out, and fails on disconnect', async () => {
    const client = await connectedPair();
    const waiting = client.waitForEvent('RESUME', { timeoutMs: 2000 });
    peer.send(event('STOP') + event('RESUME', { x: 1 }));
    expect(await waiting).toMatchObject({ event: 'RESUME', data: { x: 1 } });
    await expect(client.waitForEvent('RESUME', { timeoutMs: 50 })).rejects.toMatchObject({ code: 'EVENT_TIMEOUT' });
    const lost = client.waitForEvent('RESET', { timeoutMs: 2000 });
    peer.socket?.destroy();
    await expect(lost).rejects.toMatchObject({ code: 'DISCONNECTED', details: { event: 'RESET' } });
  });
});
