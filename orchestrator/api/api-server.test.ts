import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vmDefinitionSchema } from '../daemon/vm-definition.js';
import { FakeVmManager } from './fake-vm-manager.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { startApiServer, type ApiServer } from './api-server.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => any;
}

function call(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

class RecordingLog implements CoreLogger {
  readonly entries: { level: string; msg: string; fields?: object }[] = [];
  info(msg: string, fields?: object): void {
    this.entries.push({ level: 'info', msg, fields });
  }
  warn(msg: string, fields?: object): void {
    this.entries.push({ level: 'warn', msg, fields });
  }
  error(msg: string, fields?: object): void {
    this.entries.push({ level: 'error', msg, fields });
  }
}

let dir: string;
let sock: string;
let manager: FakeVmManager;
let log: RecordingLog;
let server: ApiServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-api-'));
  sock = join(dir, 'run', 'vmgmt.sock');
  manager = new FakeVmManager();
  log = new RecordingLog();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

const start = async (extra: { socketMode?: number; socketGroup?: number } = {}): Promise<ApiServer> =>
  (server = await startApiServer({ socketPath: sock, manager, log, version: '9.9.9', ...extra }));

describe('startApiServer', () => {
  it('serves the VM lifecycle over real HTTP on the UNIX socket', async () => {
    await start();
    expect(await call(sock, 'GET', '/v1/health').then((r) => r.json())).toEqual({ ok: true, version: '9.9.9' });

    const created = await call(sock, 'POST', '/v1/vms', JSON.stringify({ name: 'a', memoryMiB: 128 }), { 'Content-Type': 'application/json' });
    expect(created.status).toBe(201);
    expect(created.headers['content-type']).toBe('application/json');
    expect(created.json()).toMatchObject({ name: 'a', state: 'defined', definition: { memoryMiB: 128, cpus: 1 } });

    const list = await call(sock, 'GET', '/v1/vms');
    expect(list.json()).toMatchObject({ vms: [{ name: 'a', state: 'defined' }] });

    const started = await call(sock, 'POST', '/v1/vms/a/start');
    expect(started.status).toBe(200);
    expect(started.json()).toMatchObject({ state: 'running', pid: 4242 });

    const stopped = await call(sock, 'POST', '/v1/vms/a/stop', '{"timeoutMs":1500}');
    expect(stopped.json()).toMatchObject({ state: 'stopped', lastExit: { exitCode: 0 } });
    expect(manager.calls.find((c) => c.method === 'stop')?.args).toEqual(['a', { timeoutMs: 1500 }]);

    const logs = await call(sock, 'GET', '/v1/vms/a/logs?source=qemu&tailBytes=7');
    expect(logs.status).toBe(200);
    expect(logs.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(logs.text).toBe('line 2\n');
    // `vm logs -f` learns from each answer whether the VM is still up (it ends once it is not).
    expect(logs.headers['x-vmgmt-vm-state']).toBe('stopped');
    expect(logs.headers['x-vmgmt-vm-restart-at']).toBeUndefined();

    const removed = await call(sock, 'DELETE', '/v1/vms/a?force=false');
    expect(removed.status).toBe(204);
    expect(removed.text).toBe('');
    expect((await call(sock, 'GET', '/v1/vms')).json()).toEqual({ vms: [] });
  });

  it('answers every error as { code, message, details } with the right status', async () => {
    await start();
    const notFound = await call(sock, 'GET', '/v1/vms/ghost');
    expect(notFound.status).toBe(404);
    expect(notFound.json()).toEqual({ code: 'NOT_FOUND', message: expect.stringContaining('ghost'), details: { name: 'ghost' } });

    await call(sock, 'POST', '/v1/vms', '{"name":"a"}');
    const dup = await call(sock, 'POST', '/v1/vms', '{"name":"a"}');
    expect(dup.status).toBe(409);
    expect(dup.json().code).toBe('ALREADY_EXISTS');

    const invalid = await call(sock, 'POST', '/v1/vms', '{"name":"a","cpus":0,"extra":1}');
    expect(invalid.status).toBe(400);
    expect(invalid.json()).toMatchObject({ code: 'INVALID_DEFINITION', details: { problems: [{ path: 'cpus' }, { path: '(top level)' }] } });

    expect((await call(sock, 'POST', '/v1/vms', '{nope')).json()).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/not valid JSON/) });
    expect((await call(sock, 'GET', '/v2/anything')).status).toBe(404);
    const wrongMethod = await call(sock, 'PATCH', '/v1/vms/a');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('GET, DELETE, PUT');
    expect(wrongMethod.json().code).toBe('INVALID_REQUEST');
  });

  it('turns an unexpected exception into 500 INTERNAL and logs it', async () => {
    await start();
    manager.failNext = new TypeError('cannot read properties of undefined');
    const res = await call(sock, 'GET', '/v1/vms');
    expect(res.status).toBe(500);
    expect(res.json()).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('cannot read properties of undefined') });
    const logged = log.entries.find((e) => e.level === 'error');
    expect(logged?.fields).toMatchObject({ method: 'GET', url: '/v1/vms', error: expect.stringContaining('TypeError') });
  });

  it('refuses bodies over 1 MiB with 413, declared or streamed', async () => {
    await start();
    const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
    const declared = await call(sock, 'POST', '/v1/vms', big, { 'Content-Length': String(big.length) });
    expect(declared.status).toBe(413);
    expect(declared.json()).toMatchObject({ code: 'INVALID_REQUEST', details: { limitBytes: 1048576 } });
    const chunked = await call(sock, 'POST', '/v1/vms', big, { 'Transfer-Encoding': 'chunked' });
    expect(chunked.status).toBe(413);
    // Exactly at the limit is read and parsed (and is not JSON).
    const atLimit = await call(sock, 'POST', '/v1/vms', Buffer.alloc(1024 * 1024, 0x61));
    expect(atLimit.status).toBe(400);
    expect((await call(sock, 'GET', '/v1/health')).status).toBe(200);
  });

  it('binds with mode 0660 (or the given mode and group) and leaves no temporary file', async () => {
    await start({ socketGroup: 100 });
    const st = await stat(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(100);
    expect(await readdir(join(dir, 'run'))).toEqual(['vmgmt.sock']);
    await server?.close();
    server = undefined;
    expect(existsSync(sock)).toBe(false);

    await start({ socketMode: 0o600 });
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
  });

  it('replaces a stale socket but refuses to start when a daemon answers', async () => {
    // A stale socket: bound, renamed into place, then its server closed (libuv only unlinks the bound name).
    const stale = createServer();
    const tmp = join(dir, 'stale.sock');
    await new Promise<void>((resolve) => stale.listen(tmp, resolve));
    await mkdir(join(dir, 'run'));
    await rename(tmp, sock);
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    expect((await stat(sock)).isSocket()).toBe(true);

    await start();
    expect((await call(sock, 'GET', '/v1/health')).status).toBe(200);

    await expect(startApiServer({ socketPath: sock, manager, log })).rejects.toThrow(
      `another vmgmt daemon is running on ${sock}`,
    );
    // The refused second start did not disturb the first.
    expect((await call(sock, 'GET', '/v1/health')).status).toBe(200);
  });

  it('refuses to replace a file that is not a socket', async () => {
    await mkdir(join(dir, 'run'));
    await writeFile(sock, 'not a socket');
    await expect(start()).rejects.toThrow(/exists and is not a socket/);
  });

  it('close() does not remove a socket another server has put at the path since', async () => {
    await start();
    const first = server!;
    server = undefined;
    await rm(sock);
    server = await startApiServer({ socketPath: sock, manager, log });
    await first.close();
    expect((await call(sock, 'GET', '/v1/health')).status).toBe(200);
  });

  it('answers curl --unix-socket', async (ctx) => {
    const curl = await promisify(execFile)('curl', ['--version']).then(
      () => true,
      () => false,
    );
    if (!curl) ctx.skip();
    await start();
    await manager.create(vmDefinitionSchema.parse({ name: 'c' }));
    const { stdout } = await promisify(execFile)('curl', ['-sS', '--fail-with-body', '--unix-socket', sock, 'http://x/v1/vms']);
    expect(JSON.parse(stdout)).toMatchObject({ vms: [{ name: 'c', state: 'defined' }] });
  });
});
