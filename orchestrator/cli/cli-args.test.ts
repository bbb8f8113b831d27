import { describe, expect, it } from 'vitest';
import { parseCli, type ParsedCli } from './cli-args.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

const parse = (line: string, env: Record<string, string> = {}): ParsedCli => parseCli(line ? line.split(' ') : [], env);
const usage = (line: string): string => {
  const p = parse(line);
  if (p.ok) throw new Error(`expected a usage error for "${line}", got ${JSON.stringify(p.command)}`);
  return p.message;
};

describe('parseCli', () => {
  it('parses every vm command', () => {
    expect(parse('vm create -f def.json')).toMatchObject({ ok: true, command: { kind: 'vm-create', file: 'def.json' } });
    expect(parse('vm create -f -')).toMatchObject({ ok: true, command: { kind: 'vm-create', file: '-' } });
    expect(parse('vm ls')).toMatchObject({ ok: true, command: { kind: 'vm-ls' } });
    expect(parse('vm list')).toMatchObject({ ok: true, command: { kind: 'vm-ls' } });
    expect(parse('vm inspect a')).toMatchObject({ ok: true, command: { kind: 'vm-inspect', name: 'a' } });
    expect(parse('vm start a')).toMatchObject({ ok: true, command: { kind: 'vm-start', name: 'a' } });
    expect(parse('vm stop a')).toEqual({ ok: true, command: { kind: 'vm-stop', name: 'a' }, globals: expect.anything() });
    expect(parse('vm stop a --timeout 5000')).toMatchObject({ ok: true, command: { kind: 'vm-stop', name: 'a', timeoutMs: 5000 } });
    expect(parse('vm kill a')).toMatchObject({ ok: true, command: { kind: 'vm-kill', name: 'a' } });
    expect(parse('vm rm a')).toMatchObject({ ok: true, command: { kind: 'vm-rm', name: 'a', force: false } });
    expect(parse('vm rm --force a')).toMatchObject({ ok: true, command: { kind: 'vm-rm', name: 'a', force: true } });
    expect(parse('vm logs a --source qemu --tail 4096')).toMatchObject({
      ok: true,
      command: { kind: 'vm-logs', name: 'a', source: 'qemu', tailBytes: 4096 },
    });
    expect(parse('vm console a')).toMatchObject({ ok: true, command: { kind: 'vm-console', name: 'a' } });
  });

  it('parses cp, with global options anywhere', () => {
    expect(parse('cp ./f vm1:/tmp/f')).toEqual({
      ok: true,
      command: { kind: 'cp', direction: 'push', vm: 'vm1', localPath: './f', guestPath: '/tmp/f' },
      globals: { socketPath: '/run/vmgmt/vmgmt.sock', json: false },
    });
    expect(parse('--json cp vm1:/etc/hostname .')).toMatchObject({
      ok: true,
      command: { kind: 'cp', direction: 'pull', guestPath: '/etc/hostname', localPath: '.' },
      globals: { json: true },
    });
    expect(parseCli(['cp', '--', '--odd-name', 'vm1:/x'], {})).toMatchObject({ ok: true, command: { localPath: '--odd-name' } });
    expect(usage('cp ./f vm1:/x --force')).toMatch(/^--force does not apply to `vmgmt cp`: it takes -r, --recursive/);
    expect(usage('cp ./f')).toMatch(/needs a source and a destination/);
    expect(parse('cp ./a ./b --json')).toMatchObject({ ok: false, group: 'cp', globals: { json: true } });
  });

  it('passes --config to the daemon, and refuses an empty one', () => {
    expect(parse('daemon --config /etc/x.json --socket /x.sock')).toMatchObject({ ok: true, command: { kind: 'daemon', configPath: '/etc/x.json', socketPath: '/x.sock' } });
    expect(parse('daemon')).toEqual({ ok: true, command: { kind: 'daemon' }, globals: expect.anything() });
    expect(usage('daemon --config=')).toMatch(/--config needs a path/);
    expect(usage('vm ls --config /x.json')).toMatch(/--config does not apply to `vmgmt vm ls`/);
  });

  it('parses the daemon command, passing only the options given', () => {
    expect(parse('daemon')).toMatchObject({ ok: true, command: { kind: 'daemon' } });
    expect(parse('daemon --state-dir /s --runtime-dir /r --socket /r/x.sock')).toMatchObject({
      ok: true,
      command: { kind: 'daemon', stateDir: '/s', runtimeDir: '/r', socketPath: '/r/x.sock' },
    });
    expect(parse('daemon', { VMGMT_SOCKET: '/e.sock' })).toMatchObject({ command: { kind: 'daemon', socketPath: '/e.sock' } });
  });

  it('parses cluster mode: daemon --cluster nats://HOST:PORT and cluster keygen FILE', () => {
    expect(parse('daemon --cluster nats://10.0.0.1:4222')).toMatchObject({ ok: true, command: { kind: 'daemon', cluster: 'nats://10.0.0.1:4222' } });
    expect(usage('daemon --cluster http://x:1')).toMatch(/nats:\/\/HOST:PORT/);
    expect(usage('vm ls --cluster nats://x:1')).toMatch(/--cluster does not apply/);
    expect(parse('cluster keygen /etc/vmgmt/ha.nk')).toMatchObject({ ok: true, command: { kind: 'cluster-keygen', file: '/etc/vmgmt/ha.nk' } });
    expect(usage('cluster keygen')).toMatch(/vmgmt cluster keygen FILE/);
  });

  it('takes global options anywhere, --socket over VMGMT_SOCKET over the default', () => {
    expect(parse('vm ls').globals).toEqual({ socketPath: '/run/vmgmt/vmgmt.sock', json: false });
    expect(parse('vm ls', { VMGMT_SOCKET: '/e.sock' }).globals.socketPath).toBe('/e.sock');
    expect(parse('--socket /f.sock vm ls --json', { VMGMT_SOCKET: '/e.sock' }).globals).toEqual({ socketPath: '/f.sock', json: true });
  });

  it('answers help for -h, --help and help', () => {
    for (const line of ['--help', '-h', 'help']) expect(parse(line)).toMatchObject({ ok: true, command: { kind: 'help', words: [] } });
    expect(parse('vm start --help')).toMatchObject({ ok: true, command: { kind: 'help', words: ['vm', 'start'] } });
    expect(parse('vm logs web --tail 5 -h')).toMatchObject({ ok: true, command: { kind: 'help', words: ['vm', 'logs', 'web'] } });
    expect(parse('help vm create')).toMatchObject({ ok: true, command: { kind: 'help', words: ['vm', 'create'] } });
    expect(parse('help definition')).toMatchObject({ ok: true, command: { kind: 'help', words: ['definition'] } });
  });

  it('reports usage errors that say what is wrong', () => {
    expect(usage('')).toBe('no command given');
    expect(usage('frobnicate')).toMatch(/unknown command "frobnicate"/);
    expect(usage('vm')).toMatch(/needs a subcommand/);
    expect(usage('vm reboot a')).toMatch(/unknown command `vmgmt vm reboot`/);
    expect(usage('vm start')).toMatch(/needs a VM name/);
    expect(usage('vm start a b')).toMatch(/unexpected "b"/);
    expect(usage('vm ls x')).toMatch(/takes no arguments/);
    expect(usage('vm create')).toMatch(/needs -f FILE/);
    expect(usage('vm start a --force')).toMatch(/^--force does not apply to `vmgmt vm start`: it takes no options of its own \(and --socket PATH, --json, --help\)$/);
    expect(usage('vm stop a --timeout soon')).toMatch(/--timeout takes milliseconds/);
    expect(usage('vm logs a --tail 0')).toMatch(/--tail takes a byte count/);
    expect(usage('vm logs a --source serial')).toMatch(/--source must be console, qemu or daemon/);
    expect(usage('vm ls --bogus')).toBe('unknown option --bogus for `vmgmt vm ls`: it takes -q, --quiet (and --socket PATH, --json, --help)');
    expect(usage('daemon --force')).toMatch(/--force does not apply to `vmgmt daemon`/);
  });

  it('says what an option expected, also when its value starts with a dash', () => {
    expect(usage('vm logs web --tail -5')).toBe('--tail takes a byte count as a whole number >= 1 (got "-5")');
    expect(usage('vm stop web --timeout -1')).toBe('--timeout takes milliseconds as a whole number >= 0 (got "-1")');
    expect(usage('vm logs web --tail')).toBe('--tail needs a value BYTES: the last BYTES of the log, a whole number >= 1 (default 65536)');
    expect(usage('vm logs web --follow=yes')).toBe('--follow is a switch and takes no value (`vmgmt vm logs`)');
    expect(usage('vm logs web --bogus')).toMatch(/^unknown option --bogus for `vmgmt vm logs`: it takes --source SOURCE, --tail BYTES, -f, --follow/);
    // A dash value that is one of the command's options is still an option.
    expect(usage('vm create -f --json')).toMatch(/-f needs a value FILE/);
  });

  it('parses the verbs added for issue 14', () => {
    expect(parse('vm logs -f web')).toMatchObject({ ok: true, command: { kind: 'vm-logs', name: 'web', follow: true } });
    expect(parse('vm logs web')).toMatchObject({ ok: true, command: { kind: 'vm-logs', name: 'web', follow: false } });
    expect(parse('vm update web -f w.json')).toMatchObject({ ok: true, command: { kind: 'vm-update', name: 'web', file: 'w.json' } });
    expect(usage('vm update web')).toMatch(/needs -f FILE/);
    expect(parse('vm edit web')).toMatchObject({ ok: true, command: { kind: 'vm-edit', name: 'web' } });
    expect(parse('vm ls -q')).toMatchObject({ ok: true, command: { kind: 'vm-ls', quiet: true } });
    expect(parse('completion bash')).toMatchObject({ ok: true, command: { kind: 'completion', shell: 'bash' } });
    expect(usage('completion zsh')).toMatch(/takes the shell: bash/);
    expect(parse('host')).toMatchObject({ ok: true, command: { kind: 'host' } });
    expect(parse('vm console web --linger 8000')).toMatchObject({ ok: true, command: { kind: 'vm-console', name: 'web', lingerMs: 8000 } });
    expect(usage('vm console web --linger 0')).toBe('--linger takes milliseconds, 1..30000 (got "0")');
  });

  it('keeps --json for usage errors so they can be reported as JSON', () => {
    expect(parse('vm start --json')).toMatchObject({ ok: false, globals: { json: true } });
    expect(parse('vm ls --bogus --json')).toMatchObject({ ok: false, globals: { json: true } });
  });
});

describe('exitCodeFor', () => {
  it('maps daemon codes to the documented exit codes', () => {
    expect(exitCodeFor('NOT_FOUND')).toBe(4);
    expect(exitCodeFor('ALREADY_EXISTS')).toBe(5);
    expect(exitCodeFor('INVALID_STATE')).toBe(5);
    expect(exitCodeFor('INVALID_DEFINITION')).toBe(6);
    expect(exitCodeFor('TIMEOUT')).toBe(7);
    expect(exitCodeFor('QEMU_FAILED')).toBe(EXIT.ERROR);
    expect(exitCodeFor('INTERNAL')).toBe(1);
  });
});

describe('parseCli: chat', () => {
  const parse = (line: string) => parseCli(line.split(' '), {});
  it('parses each chat verb', () => {
    expect(parse('chat peers --watch')).toMatchObject({ ok: true, command: { kind: 'chat-peers', watch: true } });
    expect(parse('chat send bob -')).toMatchObject({ ok: true, command: { kind: 'chat-send', target: 'bob', message: '-' } });
    expect(parse('chat call calc 2+2 --timeout 500')).toMatchObject({ ok: true, command: { kind: 'chat-call', target: 'calc', message: '2+2', timeoutMs: 500 } });
    expect(parse('chat listen --as ops --exec cat')).toMatchObject({ ok: true, command: { kind: 'chat-listen', as: 'ops', exec: 'cat' } });
    expect(parse('chat policy check a/x b')).toMatchObject({ ok: true, command: { kind: 'chat-policy-check', from: 'a/x', to: 'b' } });
  });
  it('says what is wrong', () => {
    expect(parse('chat')).toMatchObject({ ok: false, message: expect.stringContaining('needs a subcommand') });
    expect(parse('chat send bob')).toMatchObject({ ok: false, message: '`vmgmt chat send TARGET MESSAGE`: MESSAGE is missing' });
    expect(parse('chat peers --as x')).toMatchObject({ ok: false, message: '--as does not apply to `vmgmt chat peers`: it takes --watch (and --socket PATH, --json, --help)' });
    expect(parse('chat listen --exec cat')).toMatchObject({ ok: false, message: expect.stringContaining('give --as NAME too') });
    expect(parse('chat call x y --timeout 300001')).toMatchObject({ ok: false });
    expect(parse('chat policy explain a b')).toMatchObject({ ok: false, message: expect.stringContaining('policy check FROM TO') });
  });
});

describe('parseCli: agent update', () => {
  const parse = (line: string) => parseCli(line.split(' '), {});
  it('takes VM names or --all, with --binary and --sha256', () => {
    expect(parse('agent update a b --binary ./vg')).toMatchObject({ ok: true, command: { kind: 'agent-update', names: ['a', 'b'], all: false, binary: './vg' } });
    expect(parse(`agent update --all --sha256 ${'ab'.repeat(32)}`)).toMatchObject({ ok: true, command: { kind: 'agent-update', names: [], all: true, sha256: 'ab'.repeat(32) } });
  });
  it('says what is wrong', () => {
    expect(parse('agent')).toMatchObject({ ok: false, message: expect.stringContaining('needs a subcommand: update') });
    expect(parse('agent update')).toMatchObject({ ok: false, message: expect.stringContaining('or --all') });
    expect(parse('agent update --all a')).toMatchObject({ ok: false, message: expect.stringContaining('takes no VM names') });
    expect(parse('agent update a --sha256 xyz')).toMatchObject({ ok: false, message: expect.stringContaining('64 lowercase hex') });
    expect(parse('agent update a --force')).toMatchObject({ ok: false, message: expect.stringMatching(/^--force does not apply to `vmgmt agent update`: it takes --all/) });
  });
});
