// The CLI end to end: runCli with captured streams, against the real API server on a UNIX socket in a tmp
// dir, backed by the in-memory FakeVmManager.
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../api/api-server.js';
import { FakeVmManager } from '../api/fake-vm-manager.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import { runCli, type CliIo, type RunDaemon } from './cli-main.js';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let sock: string;
let manager: FakeVmManager;
let server: ApiServer | undefined;
const quiet = { info() {}, warn() {}, error() {} };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgmt-cli-'));
  sock = join(dir, 'vmgmt.sock');
  manager = new FakeVmManager(join(dir, 'vms'));
  server = await startApiServer({ socketPath: sock, manager, log: quiet, version: '1.2.3' });
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function vmgmt(line: string, opts: { stdin?: PassThrough; env?: Record<string, string>; loadRunDaemon?: () => Promise<RunDaemon> } = {}): Promise<Run> {
  const stdout = new Sink();
  const stderr = new Sink();
  const stdin = opts.stdin ?? new PassThrough();
  if (!opts.stdin) stdin.end();
  const io: CliIo = {
    stdin,
    stdout,
    stderr,
    env: opts.env ?? { VMGMT_SOCKET: sock },
    nowMs: () => Date.now(),
    ...(opts.loadRunDaemon ? { loadRunDaemon: opts.loadRunDaemon } : {}),
  };
  const code = await runCli(line.split(' ').filter(Boolean), io);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function defineFile(name: string, body: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, typeof body === 'string' ? body : JSON.stringify(body));
  return file;
}

describe('vmgmt vm ... against the API server', () => {
  it('creates, starts, lists as a table, stops and removes a VM', async () => {
    const file = await defineFile('a.json', { name: 'a', memoryMiB: 128 });
    expect(await vmgmt('vm ls')).toEqual({ code: 0, stdout: 'NAME  STATE  PID  ACCEL  UPTIME  RESTARTS\n', stderr: '' });
    expect(await vmgmt(`vm create -f ${file}`)).toEqual({ code: 0, stdout: 'created vm a\n', stderr: '' });
    await vmgmt(`vm create -f ${await defineFile('long.json', { name: 'long-name-vm' })}`);
    expect(await vmgmt('vm start a')).toEqual({ code: 0, stdout: 'started vm a (pid 4242)\n', stderr: '' });

    const ls = await vmgmt('vm ls');
    expect(ls.code).toBe(0);
    // The fake started the VM moments ago: uptime is 0s unless the machine is very slow.
    expect(ls.stdout.replace(/ [0-9]s  /, ' 0s  ')).toBe(
      [
        'NAME          STATE    PID   ACCEL  UPTIME  RESTARTS',
        'a             running  4242  tcg    0s      0',
        'long-name-vm  defined  -     -      -       0',
        '',
      ].join('\n'),
    );

    const inspect = await vmgmt('vm inspect a');
    expect(inspect.stdout).toMatch(/^name: +a$/m);
    expect(inspect.stdout).toMatch(/^memory: +128 MiB$/m);
    expect(inspect.stdout).toMatch(/^pid: +4242$/m);

    expect(await vmgmt('vm stop a --timeout 2500')).toMatchObject({ code: 0, stdout: 'stopped vm a (exit code 0)\n' });
    expect(manager.calls.find((c) => c.method === 'stop')?.args).toEqual(['a', { timeoutMs: 2500 }]);
    expect(await vmgmt('vm logs a --source qemu --tail 7')).toEqual({ code: 0, stdout: 'line 2\n', stderr: '' });
    // -f of a VM that is down: the log, then the end, said on stderr (as docker logs -f of a stopped container).
    const followed = await vmgmt('vm logs -f a');
    expect(followed).toMatchObject({ code: 0, stdout: 'console log of a\nline 2\n' });
    expect(followed.stderr).toMatch(/^vmgmt: vm a stopped.*; the log ends here\n$/);
    expect(await vmgmt('vm rm a')).toEqual({ code: 0, stdout: 'removed vm a\n', stderr: '' });
  });

  it('prints the API JSON with --json, one document on stdout', async () => {
    await vmgmt(`vm create -f ${await defineFile('a.json', { name: 'a' })}`);
    const ls = await vmgmt('vm ls --json');
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual({ vms: [expect.objectContaining({ name: 'a', state: 'defined', pid: null })] });
    const started = await vmgmt('--json vm start a');
    expect(JSON.parse(started.stdout)).toMatchObject({ name: 'a', state: 'running', definition: { name: 'a' }, paths: { consoleSocket: expect.any(String) } });
    expect(JSON.parse((await vmgmt('vm logs a --json')).stdout)).toEqual({ name: 'a', source: 'console', text: 'console log of a\nline 2\n' });
    expect(JSON.parse((await vmgmt('vm rm a --force --json')).stdout)).toEqual({ name: 'a', removed: true });
  });

  it('reads the definition from stdin with -f -', async () => {
    const stdin = new PassThrough();
    stdin.end('{"name":"from-stdin"}');
    expect(await vmgmt('vm create -f -', { stdin })).toMatchObject({ code: 0, stdout: 'created vm from-stdin\n' });
  });

  it('exits 6 on an invalid definition, one field problem per line', async () => {
    const file = await defineFile('bad.json', { name: 'Bad!', cpus: 0, colour: 'red' });
    const run = await vmgmt(`vm create -f ${file}`);
    expect(run.code).toBe(6);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe('vmgmt: invalid VM definition:');
    expect(lines.slice(1).sort()).toEqual([
      expect.stringMatching(/^ {2}\(top level\): .*colour/),
      expect.stringMatching(/^ {2}cpus: /),
      expect.stringMatching(/^ {2}name: use 1-32 characters/),
    ]);

    const json = await vmgmt(`vm create -f ${file} --json`);
    expect(json.code).toBe(6);
    expect(json.stderr).toBe('');
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'INVALID_DEFINITION', details: { problems: expect.any(Array) } });

    const notJson = await vmgmt(`vm create -f ${await defineFile('x.json', '{"name": ')}`);
    expect(notJson.code).toBe(6);
    expect(notJson.stderr).toMatch(/^vmgmt: invalid VM definition in .*x\.json:\n {2}\(file\): not valid JSON/);
  });

  it('exits 4 for a VM that does not exist', async () => {
    const run = await vmgmt('vm inspect ghost');
    expect(run).toMatchObject({ code: 4, stdout: '' });
    expect(run.stderr).toMatch(/^vmgmt: no vm named ghost/);
    const json = await vmgmt('vm start ghost --json');
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toEqual({ code: 'NOT_FOUND', message: expect.any(String), details: { name: 'ghost' } });
  });

  it('exits 5 on conflicts and 7 on timeouts', async () => {
    const file = await defineFile('a.json', { name: 'a' });
    await vmgmt(`vm create -f ${file}`);
    expect((await vmgmt(`vm create -f ${file}`)).code).toBe(5);
    await vmgmt('vm start a');
    const rmRunning = await vmgmt('vm rm a');
    expect(rmRunning.code).toBe(5);
    expect(rmRunning.stderr).toMatch(/is running: stop it first/);
    manager.failNext = new VmgmtError('TIMEOUT', 'vm a did not power off within 10 ms', { timeoutMs: 10 });
    expect(await vmgmt('vm stop a --timeout 10')).toMatchObject({ code: 7, stderr: 'vmgmt: vm a did not power off within 10 ms\n' });
  });

  it('exits 3 with the start hint when the daemon is not running', async () => {
    const missing = join(dir, 'nowhere.sock');
    const run = await vmgmt(`vm ls --socket ${missing}`);
    expect(run).toEqual({
      code: 3,
      stdout: '',
      stderr: `vmgmt: the daemon is not running (no socket at ${missing}): start it with \`vmgmt daemon\` or \`systemctl start vmgmt\`\n`,
    });
    const json = await vmgmt('vm ls --json', { env: { VMGMT_SOCKET: missing } });
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'DAEMON_NOT_RUNNING', details: { socketPath: missing, reason: 'no-socket' } });

    // A stale socket file: bound, moved aside from the name libuv unlinks, then closed.
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(join(dir, 'tmp.sock'), resolve));
    await rename(join(dir, 'tmp.sock'), join(dir, 'stale.sock'));
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    const refused = await vmgmt(`vm ls --socket ${join(dir, 'stale.sock')}`);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/the daemon is not running \(nothing is listening on .*stale\.sock\)/);
  });

  it('exits 2 on usage errors, as JSON with --json', async () => {
    expect(await vmgmt('vm start')).toEqual({ code: 2, stdout: '', stderr: 'vmgmt: `vmgmt vm start` needs a VM name\nrun `vmgmt vm start --help` for usage\n' });
    const json = await vmgmt('vm frob --json');
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/unknown command/) });
    const help = await vmgmt('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit codes:\n {2}0 {2}ok/);
  });

  it('attaches to the serial console, forwards input and detaches on Ctrl-]', async () => {
    await vmgmt(`vm create -f ${await defineFile('a.json', { name: 'a' })}`);
    await vmgmt('vm start a');
    const consolePath = manager.inspect('a').paths.consoleSocket;
    await mkdir(join(dir, 'vms', 'a'), { recursive: true });
    const received: Buffer[] = [];
    const qemu: Server = createServer((s: Socket) => {
      s.write('login: ');
      s.on('data', (c: Buffer) => {
        received.push(c);
        if (c.includes('root\n')) s.write('# ');
      });
    });
    await new Promise<void>((resolve) => qemu.listen(consolePath, resolve));
    try {
      const stdin = new PassThrough();
      const running = vmgmt('vm console a', { stdin });
      await new Promise((r) => setTimeout(r, 100));
      stdin.write('root\n');
      await new Promise((r) => setTimeout(r, 100));
      stdin.write(Buffer.from([0x1d, 0x61]));
      const run = await running;
      expect(run.code).toBe(0);
      expect(run.stdout).toBe('login: # ');
      expect(Buffer.concat(received).toString()).toBe('root\n');
      expect(run.stderr).toBe('vmgmt: attached to the serial console of vm a; detach with Ctrl-]\n\nvmgmt: detached from vm a\n');
    } finally {
      await new Promise<void>((resolve) => qemu.close(() => resolve()));
    }
  });

  it('puts a terminal in raw mode while attached and restores it', async () => {
    await vmgmt(`vm create -f ${await defineFile('a.json', { name: 'a' })}`);
    const consolePath = manager.inspect('a').paths.consoleSocket;
    await mkdir(join(dir, 'vms', 'a'), { recursive: true });
    const qemu = createServer((s: Socket) => s.write('ready\r\n'));
    await new Promise<void>((resolve) => qemu.listen(consolePath, resolve));
    try {
      const rawCalls: boolean[] = [];
      const tty = Object.assign(new PassThrough(), { isTTY: true, setRawMode: (raw: boolean) => rawCalls.push(raw) });
      const running = vmgmt('vm console a', { stdin: tty });
      await new Promise((r) => setTimeout(r, 100));
      expect(rawCalls).toEqual([true]);
      tty.write('\x1d');
      const run = await running;
      expect(run).toMatchObject({ code: 0, stdout: 'ready\r\n' });
      expect(rawCalls).toEqual([true, false]);
      expect(run.stderr).toMatch(/\r\nvmgmt: detached from vm a\n$/);
    } finally {
      await new Promise<void>((resolve) => qemu.close(() => resolve()));
    }
  });

  it('exits 5 when the VM has no console socket', async () => {
    await vmgmt(`vm create -f ${await defineFile('a.json', { name: 'a' })}`);
    const run = await vmgmt('vm console a');
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(/vm a has no console to attach to .*: start it with `vmgmt vm start a`/);
  });

  it('runs the daemon with the options given', async () => {
    let got: unknown;
    const run = await vmgmt('daemon --state-dir /s --socket /x.sock', {
      loadRunDaemon: async () => async (opts) => {
        got = opts;
      },
    });
    expect(run.code).toBe(0);
    expect(got).toEqual({ stateDir: '/s', socketPath: '/x.sock' });
    const failing = await vmgmt('daemon', {
      loadRunDaemon: async () => async () => {
        throw new VmgmtError('INVALID_STATE', `another vmgmt daemon is running on ${sock}: stop it first`);
      },
    });
    expect(failing).toMatchObject({ code: 5, stderr: expect.stringMatching(/another vmgmt daemon is running/) });
  });

  it('vmgmt daemon refuses a missing or invalid config file before starting anything, naming each field', async () => {
    const missing = join(dir, 'none.json');
    expect(await vmgmt(`daemon --config ${missing}`)).toEqual({ code: 1, stdout: '', stderr: `vmgmt: cannot read the daemon config file ${missing}: no such file\n` });
    const bad = join(dir, 'config.json');
    await writeFile(bad, JSON.stringify({ logLevel: 'loud', transfers: { maxPullBytes: 0 } }));
    const run = await vmgmt(`daemon --config ${bad}`);
    expect(run.code).toBe(1);
    expect(run.stderr.split('\n')).toEqual([`vmgmt: invalid daemon config in ${bad}:`, expect.stringMatching(/^  logLevel: /), expect.stringMatching(/^  transfers.maxPullBytes: /), '']);
    const json = await vmgmt(`daemon --config ${bad} --json`);
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'INVALID_CONFIG', details: { file: bad, problems: [{ path: 'logLevel' }, { path: 'transfers.maxPullBytes' }] } });
  });
});
