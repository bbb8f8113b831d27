// The API contract from both ends: the server refuses to send an answer or event that breaks it (logged,
// answered INTERNAL), the client refuses one it receives (BAD_RESPONSE naming the field), and the CLI knows
// the daemon only through the contract.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vmDefinitionSchema } from '../daemon/vm-definition.js';
import type { HostCopyOptions, VmDetails } from '../daemon/vm-manager-api.js';
import { createApiClient, type ApiError } from '../cli/api-client.js';
import { pullFile } from '../cli/transfer-client.js';
import { checkContract, vmDetailsSchema, vmListSchema } from './api-contract.js';
import { answerProblems, dispatchApiRequest } from './api-dispatch.js';
import { startApiServer, type ApiServer } from './api-server.js';
import { FakeVmManager } from './fake-vm-manager.js';

let dir: string;
let sock: string;
let server: ApiServer | undefined;
let raw: Server | undefined;
const errors: { msg: string; fields?: object }[] = [];
const log = { info() {}, warn() {}, error: (msg: string, fields?: object) => void errors.push({ msg, fields }) };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-contract-'));
  sock = join(dir, 'vmgmt.sock');
  errors.length = 0;
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await new Promise((r) => (raw ? raw.close(r) : r(undefined)));
  raw = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A manager with a bug: its answers are not the contract's shape. */
class BrokenManager extends FakeVmManager {
  override inspect(name: string): VmDetails {
    return { ...super.inspect(name), pid: 'many' } as unknown as VmDetails;
  }
  override async copyToGuest(name: string, opts: HostCopyOptions & { sizeBytes: number }): Promise<{ bytes: number }> {
    await super.copyToGuest(name, opts);
    return { bytes: -1 };
  }
}

/** A stand-in daemon that answers every request with this JSON. */
async function answerWith(status: number, body: unknown, contentType = 'application/json'): Promise<void> {
  raw = createServer((_req, res) => res.writeHead(status, { 'Content-Type': contentType }).end(typeof body === 'string' ? body : JSON.stringify(body)));
  await new Promise<void>((r) => raw!.listen(sock, r));
}

async function details(): Promise<VmDetails> {
  const m = new FakeVmManager();
  await m.create(vmDefinitionSchema.parse({ name: 'a' }));
  return m.start('a');
}

describe('API contract: the server', () => {
  it('passes what the manager answers when it keeps the contract', async () => {
    const m = new FakeVmManager();
    const created = await m.create(vmDefinitionSchema.parse({ name: 'a' }));
    expect(checkContract(vmDetailsSchema, created).ok).toBe(true);
    expect(checkContract(vmListSchema, { vms: m.list() }).ok).toBe(true);
    expect(answerProblems('inspect', { status: 200, kind: 'json', body: await details() })).toEqual([]);
    expect(answerProblems('remove', { status: 204, kind: 'empty' })).toEqual([]);
  });

  it('answers INTERNAL naming the field, and says why, when the manager breaks the contract', async () => {
    const m = new BrokenManager();
    await m.create(vmDefinitionSchema.parse({ name: 'a' }));
    const result = await dispatchApiRequest(m, { method: 'GET', url: '/v1/vms/a', bodyText: '' }, { version: 't' });
    expect(result.response).toMatchObject({ status: 500, kind: 'json', body: { code: 'INTERNAL', details: { problems: [{ path: 'pid' }] } } });
    expect((result.response as { body: { message: string } }).body.message).toMatch(/breaks the API contract: pid: /);
    expect(result.unexpectedError).toBeInstanceOf(Error);
    expect(answerProblems('logs', { status: 200, kind: 'json', body: {} })).toEqual([{ path: '(answer)', message: 'must be text, not json' }]);
  });

  it('logs the broken answer and the client sees an INTERNAL error', async () => {
    const m = new BrokenManager();
    await m.create(vmDefinitionSchema.parse({ name: 'a' }));
    server = await startApiServer({ socketPath: sock, manager: m, log, version: 't' });
    const err = (await createApiClient({ socketPath: sock }).inspect('a').catch((e: unknown) => e)) as ApiError;
    expect(err).toMatchObject({ status: 500, code: 'INTERNAL' });
    expect(errors).toContainEqual(expect.objectContaining({ msg: 'API request failed unexpectedly' }));
  });

  it('sends an INTERNAL error event instead of an event that breaks the contract, and logs it', async () => {
    const m = new BrokenManager();
    await m.create(vmDefinitionSchema.parse({ name: 'a' }));
    await m.start('a');
    server = await startApiServer({ socketPath: sock, manager: m, log, transferDir: join(dir, 'transfers') });
    const text = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: sock, method: 'POST', path: '/v1/vms/a/files/push?guestPath=/f', headers: { 'Content-Length': '3' } }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve(t));
      });
      req.on('error', reject);
      req.end(Buffer.from('abc'));
    });
    const events = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; bytes?: number; code?: string; message?: string });
    expect(events.filter((e) => e.bytes === -1)).toEqual([]);
    const broken = events.find((e) => e.event === 'error');
    expect(broken).toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/breaks the API contract: bytes: /) });
    expect(errors).toContainEqual(expect.objectContaining({ msg: 'file transfer event not sent (a bug: please report it)' }));
  });
});

describe('API contract: the client', () => {
  it('refuses an answer that breaks the contract, naming the field', async () => {
    const good = await details();
    await answerWith(200, { ...good, state: 'flying', paths: undefined });
    const err = (await createApiClient({ socketPath: sock }).inspect('a').catch((e: unknown) => e)) as ApiError;
    expect(err).toMatchObject({ name: 'ApiError', code: 'BAD_RESPONSE' });
    expect(err.message).toMatch(/^the daemon's answer to GET \/v1\/vms\/a is not what the API promises: /);
    const paths = (err.details.problems as { path: string }[]).map((p) => p.path).sort();
    expect(paths).toEqual(['paths', 'state']);
  });

  it('names the field deep inside a list', async () => {
    const good = await details();
    await answerWith(200, { vms: [{ ...good, restarts: -1 }] });
    const err = (await createApiClient({ socketPath: sock }).list().catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe('BAD_RESPONSE');
    expect(err.details.problems).toEqual([{ path: 'vms.0.restarts', message: expect.any(String) }]);
  });

  it('takes a valid answer, dropping fields it does not know (a newer daemon may add some)', async () => {
    const good = await details();
    await answerWith(200, { ...good, future: 1 });
    const vm = await createApiClient({ socketPath: sock }).inspect('a');
    expect(vm).toEqual(good);
  });

  it('passes on an error code it does not know as sent', async () => {
    await answerWith(418, { code: 'NEW_CODE', message: 'a newer daemon', details: {} });
    await expect(createApiClient({ socketPath: sock }).inspect('a')).rejects.toMatchObject({ status: 418, code: 'NEW_CODE', message: 'a newer daemon' });
  });

  it('refuses a transfer event that breaks the contract, naming the field', async () => {
    await answerWith(200, '{"event":"ready","bytes":"3","download":"/v1/transfers/x"}\n', 'application/x-ndjson');
    const err = (await pullFile(sock, 'a', { guestPath: '/f' }).catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe('BAD_RESPONSE');
    expect(err.message).toMatch(/not a transfer event: bytes: /);
  });
});

describe('the CLI', () => {
  it('imports the API contract, never the daemon (but for running it: `vmgmt daemon`)', () => {
    const cliDir = path.join(import.meta.dirname, '../cli');
    const offenders: string[] = [];
    for (const file of readdirSync(cliDir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const text = readFileSync(path.join(cliDir, file), 'utf8');
      for (const m of text.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
        const target = m[1]!;
        if (!target.includes('/daemon/')) continue;
        if (file === 'cli-main.ts' && target === '../daemon/run-daemon.js' && m[0].startsWith('import(')) continue;
        offenders.push(`${file}: ${target}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
