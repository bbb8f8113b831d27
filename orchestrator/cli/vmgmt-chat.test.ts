// `vmgmt chat ...` end to end: runCli with captured streams, against the real API server on a UNIX socket,
// backed by a real LocalChatHub (host-side peers stand in for guests) and the daemon's ChatControl.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalChatHub } from '../../device-backend/services/chat/local-chat-hub.js';
import type { ChatMessage } from '../../device-backend/services/chat/chat-hub.js';
import type { ChatRule } from '../../device-backend/services/chat/chat-policy.js';
import { startApiServer, type ApiServer } from '../api/api-server.js';
import { ApiEventHub } from '../api/event-hub.js';
import { FakeVmManager } from '../api/fake-vm-manager.js';
import { ChatControl } from '../daemon/chat-control.js';
import { runCli } from './cli-main.js';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const quiet = { info() {}, warn() {}, error() {} };
let dir: string;
let sock: string;
let server: ApiServer | undefined;
let hub: LocalChatHub;
let chat: ChatControl;
let rules: ChatRule[];
const toHost: ChatMessage[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-chat-'));
  sock = join(dir, 'vmgmt.sock');
  rules = [{ from: { vm: '@host' }, to: { name: 'vault' }, action: 'deny', note: 'the host may not reach the vault' }];
  const events = new ApiEventHub();
  const publish = ChatControl.hostMessageHandler(events);
  hub = new LocalChatHub({ log: quiet, policy: () => ({ rules }), onHostMessage: (m) => void (toHost.push(m), publish(m)) });
  const groups: Record<string, string | undefined> = { 'lab-a': 'lab', 'lab-b': 'lab', solo: undefined };
  chat = new ChatControl({ hub, events, log: quiet, vmGroup: (vm) => (Object.hasOwn(groups, vm) ? { exists: true, group: groups[vm] } : { exists: false }) });
  server = await startApiServer({ socketPath: sock, manager: new FakeVmManager(join(dir, 'vms')), log: quiet, version: '1', chat, events });
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  chat.close();
  toHost.length = 0;
  await rm(dir, { recursive: true, force: true });
});

function vmgmt(args: string[], stdinText?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const stdin = new PassThrough();
  stdin.end(stdinText ?? '');
  return runCli(args, { stdin, stdout, stderr, env: { VMGMT_SOCKET: sock } }).then((code) => ({ code, stdout: stdout.text, stderr: stderr.text }));
}

/** Starts a long-running command; `out()` is what it printed so far. */
function background(args: string[]) {
  const stdout = new Sink();
  const stderr = new Sink();
  const stdin = new PassThrough();
  stdin.end();
  const done = runCli(args, { stdin, stdout, stderr, env: { VMGMT_SOCKET: sock } });
  return { done, out: () => stdout.text, err: () => stderr.text };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('vmgmt chat', () => {
  it('peers, send and its refusals, with exit codes', async () => {
    const got: string[] = [];
    hub.registerHost('bob', (m) => void got.push(`${m.from.vm ?? '@host'}/${m.from.name}: ${dec.decode(m.data)}`));
    hub.registerHost('vault', () => {});
    const peers = await vmgmt(['chat', 'peers']);
    expect(peers).toMatchObject({ code: 0, stdout: '@host/bob\n@host/host\n' });
    expect(JSON.parse((await vmgmt(['chat', 'peers', '--json'])).stdout)).toEqual({ peers: [{ vm: null, name: 'bob' }, { vm: null, name: 'host' }] });
    expect(await vmgmt(['chat', 'send', 'bob', 'hello bob'])).toMatchObject({ code: 0, stdout: 'delivered to bob\n' });
    expect(await vmgmt(['chat', 'send', 'bob', '-'], 'from stdin\n')).toMatchObject({ code: 0 });
    expect(JSON.parse((await vmgmt(['chat', 'send', 'bob', 'j', '--json'])).stdout)).toEqual({ to: 'bob', delivered: 1, refused: 0 });
    expect(got).toEqual(['@host/host: hello bob', '@host/host: from stdin\n', '@host/host: j']);
    const none = await vmgmt(['chat', 'send', 'nobody', 'x']);
    expect(none.code).toBe(4);
    expect(none.stderr).toContain('no one holds the name nobody');
    const denied = await vmgmt(['chat', 'send', 'vault', 'x', '--json']);
    expect(denied.code).toBe(8);
    expect(JSON.parse(denied.stdout)).toMatchObject({ code: 'CHAT_REFUSED', details: { refusal: 'NOT_ALLOWED', to: 'vault' } });
    expect(JSON.parse(denied.stdout).message).toContain('the host may not reach the vault');
    expect((await vmgmt(['chat', 'send', 'Bad!', 'x'])).code).toBe(2);
  });

  it('call prints the reply as it came; a non-zero status exits 8', async () => {
    hub.registerHost('calc', (m) => (dec.decode(m.data) === 'fail' ? { status: 3, data: enc.encode('no') } : enc.encode(dec.decode(m.data).toUpperCase())));
    expect(await vmgmt(['chat', 'call', 'calc', 'two plus two'])).toMatchObject({ code: 0, stdout: 'TWO PLUS TWO' });
    const failed = await vmgmt(['chat', 'call', 'calc', 'fail']);
    expect(failed).toMatchObject({ code: 8, stdout: 'no' });
    expect(failed.stderr).toContain('call calc: the callee answered with its status 3');
    hub.registerHost('slow', () => new Promise(() => {}));
    const slow = await vmgmt(['chat', 'call', 'slow', 'x', '--timeout', '50']);
    expect(slow.code).toBe(7);
    expect(slow.stderr).toContain('slow did not reply within 50 ms');
  });

  it('listen --as NAME --exec CMD holds a host-side name, prints messages and answers calls', async () => {
    const l = background(['chat', 'listen', '--as', 'ops', '--exec', 'tr a-z A-Z; exit 4']);
    await until('ops to register', () => hub.peers({ vm: null, name: 'x', group: undefined }).some((p) => p.name === 'ops'));
    const guest = hub.registerHost('alice', () => {});
    expect(await guest.send('ops', enc.encode('hi ops'))).toMatchObject({ ok: true, delivered: 1 });
    const r = await guest.call('ops', enc.encode('shout'), 5000);
    expect(r).toEqual({ ok: true, status: 4, data: enc.encode('SHOUT') });
    await until('the lines', () => l.out().includes('(call)'));
    expect(l.out()).toBe('@host/alice -> ops: hi ops\n@host/alice -> ops (call): shout\n');
    expect(l.err()).toContain('chat: registered ops on the host');
    // A second listener cannot take the name.
    const taken = await vmgmt(['chat', 'listen', '--as', 'ops']);
    expect(taken.code).toBe(5);
    // The daemon stops: the stream ends, the listener exits 3, and the name is released.
    await server!.close();
    expect(await l.done).toBe(3);
    expect(l.err()).toContain('the daemon is stopping');
    expect(hub.peers({ vm: null, name: 'x', group: undefined }).some((p) => p.name === 'ops')).toBe(false);
  });

  it('listen without --as shows what is sent to host; --as without --exec answers calls status 1', async () => {
    const l = background(['chat', 'listen', '--json']);
    const w = background(['chat', 'listen', '--as', 'shy']);
    await until('shy to register', () => hub.peers({ vm: null, name: 'x', group: undefined }).some((p) => p.name === 'shy'));
    await until('the host listener', () => l.err().includes('listening'));
    const guest = hub.registerHost('alice', () => {});
    await guest.send('host', enc.encode('to the host'));
    await until('the event', () => l.out().includes('to the host'));
    expect(JSON.parse(l.out())).toMatchObject({ kind: 'chat.message', data: { from: { vm: null, name: 'alice' }, to: 'host', text: 'to the host', callId: null } });
    expect(toHost).toHaveLength(1);
    const r = await guest.call('shy', enc.encode('?'), 5000);
    expect(r).toMatchObject({ ok: true, status: 1 });
    expect(r.ok && dec.decode(r.data)).toContain('no --exec');
    expect(w.out()).not.toContain('to the host');
    await server!.close();
    await Promise.all([l.done, w.done]);
  });

  it('peers --watch lists, then follows joins and leaves', async () => {
    const w = background(['chat', 'peers', '--watch']);
    await until('the listing', () => w.out().includes('@host/host'));
    const p = hub.registerHost('temp', () => {});
    p.close();
    await until('the leave', () => w.out().includes('leave'));
    expect(w.out()).toBe('@host/host\njoin @host/temp (registered)\nleave @host/temp (host name removed)\n');
    await server!.close();
    expect(await w.done).toBe(3);
  });

  it('policy check names the rule or default that decides; denied exits 8', async () => {
    hub.registerHost('vault', () => {});
    const denied = await vmgmt(['chat', 'policy', 'check', '@host/ops', 'vault']);
    expect(denied.code).toBe(8);
    expect(denied.stdout).toBe('from:       @host/ops (no chat group)\nto:         @host/vault (no chat group)\nverdict:    denied\ndecided by: rule 0 (the host may not reach the vault): deny\n');
    const same = await vmgmt(['chat', 'policy', 'check', 'lab-a', 'lab-b/bob', '--json']);
    expect(same.code).toBe(0);
    expect(JSON.parse(same.stdout)).toEqual({
      from: { vm: 'lab-a', name: '', group: 'lab' },
      to: { vm: 'lab-b', name: 'bob', group: 'lab' },
      allowed: true,
      decidedBy: { kind: 'default', name: 'same-group' },
      reason: 'default: same chat group lab',
    });
    const cross = await vmgmt(['chat', 'policy', 'check', 'lab-a/x', 'solo/y']);
    expect(cross.code).toBe(8);
    expect(cross.stdout).toContain('default: lab-a/x (group lab) and solo/y are not in one chat group');
    rules = [{ from: { group: 'lab' }, to: { vm: 'solo' }, action: 'allow' }];
    expect((await vmgmt(['chat', 'policy', 'check', 'lab-a/x', 'solo/y'])).stdout).toContain('rule 0 (group=lab -> vm=solo): allow');
    const unknown = await vmgmt(['chat', 'policy', 'check', 'nowhere/x', 'solo']);
    expect(unknown.code).toBe(4);
  });

  it('the event stream is plain SSE that curl -N can follow', async () => {
    const curl = new Promise<string>((resolve) => execFile('curl', ['-sN', '--max-time', '1', '--unix-socket', sock, 'http://x/v1/events?kinds=chat.presence'], (_e, stdout) => resolve(stdout)));
    await until('the curl client', () => (server ? true : false));
    await new Promise((r) => setTimeout(r, 300));
    hub.registerHost('seen', () => {});
    const text = await curl;
    expect(text).toMatch(/^id: \d+\nevent: stream.open\ndata: \{.*"kind":"stream.open".*\}\n\n/);
    expect(text).toMatch(/event: chat.presence\ndata: \{"id":\d+,"kind":"chat.presence","at":"[^"]+","data":\{"event":"join","reason":"registered","peer":\{"vm":null,"name":"seen"\}\}\}\n\n/);
  });

  it('a stream that does not read is dropped at its bound; its name is released and senders are refused, never told delivered', async () => {
    const { request } = await import('node:http');
    let seen = '';
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => request({ socketPath: sock, path: '/v1/events?as=slow' }, resolve).end());
    res.once('data', (c: Buffer) => (seen += c.toString()));
    await until('the stream to open', () => seen.includes('stream.open'));
    res.pause(); // reads nothing more
    const guest = hub.registerHost('alice', () => {});
    const big = new Uint8Array(60_000).fill(120);
    const outcomes: string[] = [];
    for (let i = 0; i < 200 && !outcomes.includes('QUEUE_FULL') && !outcomes.includes('NO_PEER'); i++) {
      const r = await guest.send('slow', big);
      outcomes.push(r.ok ? 'ok' : r.code);
      await new Promise((r) => setImmediate(r));
    }
    // At most 1 MiB waits for the client (plus what the socket holds): a few dozen 80 KB frames, not 200.
    expect(outcomes.filter((o) => o === 'ok').length).toBeLessThan(60);
    expect(outcomes.at(-1)).toMatch(/QUEUE_FULL|NO_PEER/);
    await until('the name to be released', () => !hub.peers({ vm: null, name: 'x', group: undefined }).some((p) => p.name === 'slow'));
    expect(await guest.send('slow', big)).toMatchObject({ ok: false, code: 'NO_PEER' });
    res.destroy();
  });

  it('the API validates chat requests field by field', async () => {
    const bad = await vmgmt(['chat', 'call', 'x', 'y', '--timeout', '0']);
    expect(bad.code).toBe(2);
    const { createApiClient } = await import('./api-client.js');
    const client = createApiClient({ socketPath: sock });
    await expect(client.chatSend({ to: 'bob' })).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('body.text: give the message as exactly one of text or dataBase64') });
    await expect(client.chatSend({ to: 'bob', text: 'x'.repeat(70_000) })).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('at most 65536') });
    await expect(client.chatReply({ as: 'nobody', callId: 5, status: 0, text: '' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const events = client.events({ kinds: ['chat.message'], as: 'host' }, () => {});
    await expect(events.opened).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
  });
});
