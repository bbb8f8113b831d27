// The streaming routes over real HTTP on the UNIX socket, backed by FakeVmManager's in-memory guest files.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, fstatSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vmDefinitionSchema } from '../daemon/vm-definition.js';
import type { HostCopyOptions } from '../daemon/vm-manager-api.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import { startApiServer, type ApiServer } from './api-server.js';
import { FakeVmManager } from './fake-vm-manager.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  continued: boolean;
}

function call(
  method: string,
  path: string,
  opts: { body?: Buffer; headers?: Record<string, string>; waitForContinue?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = request({ socketPath: sock, method, path, headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), continued });
        req.destroy();
      });
    });
    req.on('error', reject);
    if (opts.waitForContinue) {
      req.on('continue', () => {
        continued = true;
        req.end(opts.body);
      });
    } else {
      req.end(opts.body);
    }
  });
}

const push = (guestPath: string, body: Buffer, headers: Record<string, string> = {}): Promise<Reply> =>
  call('POST', `/v1/vms/vm1/files/push?guestPath=${encodeURIComponent(guestPath)}`, {
    body,
    headers: { 'Content-Length': String(body.length), ...headers },
  });
const pull = (guestPath: string): Promise<Reply> => call('POST', `/v1/vms/vm1/files/pull?guestPath=${encodeURIComponent(guestPath)}`);

/**
 * A pull read up to its ready (or error) event: a streamed pull's event stream ends with the copy, which
 * waits for the download. `rest` gives the events after it once the stream ends.
 */
function pullReady(guestPath: string): Promise<{ status: number; events: any[]; rest: Promise<any[]> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method: 'POST', path: `/v1/vms/vm1/files/pull?guestPath=${encodeURIComponent(guestPath)}` }, (res) => {
      let text = '';
      let settled = false;
      let endRest: (evs: any[]) => void = () => {};
      const rest = new Promise<any[]>((r) => (endRest = r));
      const lines = (): any[] => text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        if (settled || res.statusCode !== 200) return;
        const evs = text.endsWith('\n') ? lines() : lines().slice(0, -1);
        const at = evs.findIndex((e) => e.event === 'ready' || e.event === 'error');
        if (at >= 0) {
          settled = true;
          resolve({ status: 200, events: evs.slice(0, at + 1), rest: rest.then((all) => all.slice(at + 1)) });
        }
      });
      const finish = (): void => {
        const all = res.statusCode === 200 && text ? text.split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
        endRest(all);
        if (!settled) resolve({ status: res.statusCode ?? 0, events: all, rest });
      };
      res.on('end', finish);
      res.on('close', finish);
    });
    req.on('error', reject);
    req.end();
  });
}
const events = (reply: Reply): any[] => reply.text.trimEnd().split('\n').map((l) => JSON.parse(l));
const digest = (b: Uint8Array | undefined): string => (b === undefined ? 'missing' : `${b.byteLength}:${createHash('sha256').update(b).digest('hex')}`);

let dir: string;
let sock: string;
let transferDir: string;
let manager: FakeVmManager;
let server: ApiServer | undefined;
const quiet = { info() {}, warn() {}, error() {} };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-xfer-'));
  sock = join(dir, 'vmgmt.sock');
  transferDir = join(dir, 'transfers');
  manager = new FakeVmManager();
  await manager.create(vmDefinitionSchema.parse({ name: 'vm1' }));
  await manager.start('vm1');
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

const start = async (extra: { downloadTtlMs?: number; maxPullBytes?: number | (() => number) } = {}): Promise<ApiServer> =>
  (server = await startApiServer({ socketPath: sock, manager, log: quiet, transferDir, ...extra }));

describe('POST /v1/vms/:name/files/push', () => {
  it('streams the body through a pipe into the copy (no transfer file), answers NDJSON', async () => {
    await start();
    const modes: boolean[] = [];
    const copy = manager.copyToGuest.bind(manager);
    manager.copyToGuest = (name: string, opts: HostCopyOptions & { sizeBytes: number }) => {
      modes.push(fstatSync(opts.hostFd).isFIFO());
      return copy(name, opts);
    };
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const reply = await push('/tmp/a b+c', data);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/x-ndjson');
    const evs = events(reply);
    expect(evs[0]).toEqual({ event: 'progress', stage: 'upload', bytes: 0, totalBytes: data.length });
    expect(evs).toContainEqual({ event: 'progress', stage: 'upload', bytes: data.length, totalBytes: data.length });
    expect(evs.at(-2)).toEqual({ event: 'progress', stage: 'guest', bytes: data.length, totalBytes: data.length });
    expect(evs.at(-1)).toEqual({ event: 'done', bytes: data.length });
    expect(digest(manager.guestFiles.get('/tmp/a b+c'))).toBe(digest(data));
    expect(modes).toEqual([true]);
    expect(existsSync(transferDir)).toBe(false);
  });

  it('throttles progress events to one per 100 ms per stage, plus the final one', async () => {
    await start();
    manager.copyChunkBytes = 4096;
    const startedMs = performance.now();
    const reply = await push('/t', randomBytes(1024 * 1024));
    const durationMs = performance.now() - startedMs;
    const guest = events(reply).filter((e) => e.stage === 'guest');
    expect(guest.length).toBeLessThanOrEqual(Math.ceil(durationMs / 100) + 2);
    expect(guest.at(-1)).toMatchObject({ bytes: 1024 * 1024 });
  });

  it('sends an error event when the copy fails after streaming began', async () => {
    await start();
    manager.failCopy = new VmgmtError('GUEST_REFUSED', 'the guest agent could not copy /ro/x: read-only file system (status 30)', { status: 30 });
    const reply = await push('/ro/x', randomBytes(64 * 1024));
    expect(reply.status).toBe(200);
    expect(events(reply).at(-1)).toEqual({
      event: 'error',
      code: 'GUEST_REFUSED',
      message: 'the guest agent could not copy /ro/x: read-only file system (status 30)',
      details: { status: 30 },
    });
    expect(existsSync(transferDir)).toBe(false);
  });

  it('answers plain JSON errors before streaming: unknown VM, stopped VM, bad guestPath, chunked body', async () => {
    await start();
    const body = randomBytes(2 * 1024 * 1024);
    const ghost = await call('POST', '/v1/vms/ghost/files/push?guestPath=/x', { body, headers: { 'Content-Length': String(body.length) } });
    expect(ghost.status).toBe(404);
    expect(JSON.parse(ghost.text)).toMatchObject({ code: 'NOT_FOUND', details: { name: 'ghost' } });

    // With Expect: 100-continue the body is never asked for.
    const told = await call('POST', '/v1/vms/ghost/files/push?guestPath=/x', {
      body,
      headers: { 'Content-Length': String(body.length), Expect: '100-continue' },
      waitForContinue: true,
    });
    expect(told).toMatchObject({ status: 404, continued: false });

    const relative = await push('tmp/x', Buffer.from('x'));
    expect(relative.status).toBe(400);
    expect(JSON.parse(relative.text)).toMatchObject({
      code: 'INVALID_REQUEST',
      details: { problems: [{ path: 'query.guestPath', message: 'must be an absolute path (start with /)' }] },
    });

    const chunked = await call('POST', '/v1/vms/vm1/files/push?guestPath=/x', { body: Buffer.from('abc'), headers: { 'Transfer-Encoding': 'chunked' } });
    expect(chunked.status).toBe(411);
    expect(JSON.parse(chunked.text)).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/Content-Length, not chunked/) });

    await manager.stop('vm1');
    const stopped = await push('/x', Buffer.from('x'));
    expect(stopped.status).toBe(409);
    expect(JSON.parse(stopped.text)).toMatchObject({ code: 'INVALID_STATE', details: { state: 'stopped' } });
    expect(manager.calls.some((c) => c.method === 'copyToGuest')).toBe(false);
    // Nothing was stored: the transfer directory was never needed.
    expect(existsSync(transferDir)).toBe(false);
    expect((await call('GET', '/v1/health')).status).toBe(200);
  });

  it('takes a push from curl (which sends Expect: 100-continue for large bodies)', async (ctx) => {
    const run = promisify(execFile);
    if (!(await run('curl', ['--version']).then(() => true, () => false))) ctx.skip();
    await start();
    const data = randomBytes(2 * 1024 * 1024);
    await writeFile(join(dir, 'c.bin'), data);
    const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--unix-socket', sock, '--data-binary', `@${join(dir, 'c.bin')}`, 'http://x/v1/vms/vm1/files/push?guestPath=/c.bin']);
    expect(JSON.parse(stdout.trimEnd().split('\n').at(-1) ?? '')).toEqual({ event: 'done', bytes: data.length });
    expect(digest(manager.guestFiles.get('/c.bin'))).toBe(digest(data));

    // The pull and download of the README, with curl: the download starts at the ready event.
    const pulled = spawn('curl', ['-sSN', '--fail-with-body', '--unix-socket', sock, '-X', 'POST', 'http://x/v1/vms/vm1/files/pull?guestPath=/c.bin']);
    let out = '';
    const ended = new Promise((r) => pulled.on('close', r));
    const ready = await new Promise<any>((resolve) => {
      pulled.stdout.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        const line = out.split('\n').find((l) => l.includes('"ready"'));
        if (line) resolve(JSON.parse(line));
      });
    });
    expect(ready).toMatchObject({ event: 'ready', bytes: data.length });
    await run('curl', ['-sS', '--fail-with-body', '--unix-socket', sock, '-o', join(dir, 'back.bin'), `http://x${ready.download}`]);
    await ended;
    expect(digest(await readFile(join(dir, 'back.bin')))).toBe(digest(data));
    expect(out).not.toContain('"error"');
  });
});

describe('POST /v1/vms/:name/files/pull and GET /v1/transfers/:id', () => {
  it('announces the download once the guest opened the file, streams it while the copy runs, serves it once', async () => {
    await start();
    const data = randomBytes(5 * 1024 * 1024);
    manager.guestFiles.set('/var/log/big', data);
    // 5 MiB is more than the pipe holds: the copy can only finish while the download reads.
    const reply = await pullReady('/var/log/big');
    expect(reply.status).toBe(200);
    const ready = reply.events.at(-1);
    expect(ready).toEqual({ event: 'ready', bytes: data.length, download: expect.stringMatching(/^\/v1\/transfers\/[0-9a-f]{32}$/) });

    const got = await call('GET', ready.download);
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(got.headers['content-length']).toBe(String(data.length));
    expect(digest(got.body)).toBe(digest(data));
    const rest = await reply.rest;
    expect(rest.every((e) => e.event === 'progress' && e.stage === 'guest')).toBe(true);
    expect(rest.at(-1)).toEqual({ event: 'progress', stage: 'guest', bytes: data.length, totalBytes: data.length });
    expect(existsSync(transferDir)).toBe(false); // streamed: nothing stored

    const again = await call('GET', ready.download);
    expect(again.status).toBe(404);
    expect(JSON.parse(again.text)).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/fetched already, or expired/) });
  });

  it('serves an empty file', async () => {
    await start();
    manager.guestFiles.set('/empty', new Uint8Array());
    const ready = events(await pull('/empty')).at(-1);
    expect(ready).toMatchObject({ event: 'ready', bytes: 0 });
    const got = await call('GET', ready.download);
    expect(got).toMatchObject({ status: 200, text: '' });
    expect(got.headers['content-length']).toBe('0');
  });

  it('expires unclaimed downloads (the guest copy is stopped) and drops held ones on close', async () => {
    await start({ downloadTtlMs: 50 });
    manager.guestFiles.set('/f', randomBytes(3 * 1024 * 1024));
    const reply = await pullReady('/f');
    const ready = reply.events.at(-1);
    // Nobody downloads: the pipe fills, the TTL drops the download, and the copy fails instead of waiting.
    expect((await reply.rest).at(-1)).toMatchObject({ event: 'error', code: 'INVALID_STATE', message: expect.stringMatching(/nobody fetched \/v1\/transfers\/[0-9a-f]{32} within 0 s/) });
    expect((await call('GET', ready.download)).status).toBe(404);

    await server?.close();
    await start();
    const held = await pullReady('/f');
    expect(held.events.at(-1)).toMatchObject({ event: 'ready' });
    const closing = server?.close();
    server = undefined;
    expect((await held.rest).at(-1)).toMatchObject({ event: 'error' });
    await closing;
    expect(existsSync(transferDir)).toBe(false);
  });

  it('sends an error event when the guest refuses, leaving nothing behind', async () => {
    await start();
    const reply = await pull('/missing');
    expect(reply.status).toBe(200);
    expect(events(reply).at(-1)).toEqual({ event: 'error', code: 'GUEST_REFUSED', message: expect.stringMatching(/no such file/), details: { status: 2 } });
    expect(existsSync(transferDir)).toBe(false);
  });

  it('hands the copy a size cap: the largest pull configured (a streamed pull stores nothing on the host)', async () => {
    manager.guestFiles.set('/big', new Uint8Array(4097));
    manager.guestFiles.set('/small', new Uint8Array(4096));
    await start({ maxPullBytes: 4096 });
    const refused = await pull('/big');
    expect(events(refused).at(-1)).toMatchObject({ event: 'error', code: 'GUEST_REFUSED', message: expect.stringMatching(/at most 4096/) });
    expect((await pullReady('/small')).events.at(-1)).toMatchObject({ event: 'ready', bytes: 4096 });
    expect(manager.pullLimits).toEqual([4096, 4096]);
  });

  it('asks a maxPullBytes function at each pull, so a reloaded config applies to the next one', async () => {
    manager.guestFiles.set('/f', new Uint8Array(4097));
    let cap = 4096;
    await start({ maxPullBytes: () => cap });
    expect(events(await pull('/f')).at(-1)).toMatchObject({ event: 'error', code: 'GUEST_REFUSED' });
    cap = 8192;
    expect((await pullReady('/f')).events.at(-1)).toMatchObject({ event: 'ready', bytes: 4097 });
    expect(manager.pullLimits).toEqual([4096, 8192]);
  });

  it('refuses a malformed download id and a pull with a body', async () => {
    await start();
    expect((await call('GET', '/v1/transfers/xyz')).status).toBe(404);
    const withBody = await call('POST', '/v1/vms/vm1/files/pull?guestPath=/f', { body: Buffer.from('x'), headers: { 'Content-Length': '1' } });
    expect(withBody.status).toBe(400);
    expect(JSON.parse(withBody.text)).toMatchObject({ details: { problems: [{ path: 'body' }] } });
  });
});

describe('the transfer directory', () => {
  it('is never needed by copies (both directions stream) and is cleared of files a previous daemon left, and only those', async () => {
    await start();
    await push('/x', Buffer.from('x'));
    const pulled = await pullReady('/x');
    expect((await call('GET', pulled.events.at(-1).download)).text).toBe('x');
    await pulled.rest;
    expect(existsSync(transferDir)).toBe(false);
    await server?.close();
    await mkdir(transferDir, { mode: 0o700 });
    const leftover = `vmgmt-pull-${'a'.repeat(32)}`;
    await writeFile(join(transferDir, leftover), 'stale');
    await writeFile(join(transferDir, 'not-ours'), 'keep');
    await start();
    expect(await readdir(transferDir)).toEqual(['not-ours']);
  });
});
