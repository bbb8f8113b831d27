import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_PULL_BYTES,
  LiveDaemonConfig,
  loadDaemonConfig,
  parseDaemonConfig,
  planReload,
  resolveDaemonConfig,
  daemonConfigFileSchema,
  type ConfigSource,
} from './daemon-config.js';
import { createLogger } from './logger.js';
import { policyProblem } from '../../device-backend/services/chat/chat-policy.js';
import { VmgmtError } from './vmgmt-error.js';

let dir: string;
let file: string;
const explicit = (): ConfigSource => ({ path: file, explicit: true });
const write = (value: unknown): void => writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
const problemsOf = (text: string) => {
  const r = parseDaemonConfig(text);
  if (r.ok) throw new Error('expected problems');
  return r.problems;
};

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-config-'));
  file = path.join(dir, 'config.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

class RecordingLog {
  readonly entries: { level: string; msg: string; fields?: object }[] = [];
  info = (msg: string, fields?: object): void => void this.entries.push({ level: 'info', msg, fields });
  warn = (msg: string, fields?: object): void => void this.entries.push({ level: 'warn', msg, fields });
  error = (msg: string, fields?: object): void => void this.entries.push({ level: 'error', msg, fields });
}

describe('daemon config file', () => {
  it('a missing default file is every default', () => {
    expect(loadDaemonConfig({ path: path.join(dir, 'none.json'), explicit: false })).toEqual({
      stateDir: '/var/lib/vmgmt',
      runtimeDir: '/run/vmgmt',
      socketPath: '/run/vmgmt/vmgmt.sock',
      logLevel: 'info',
      transfers: { maxPullBytes: 16 * 1024 ** 3, transferDir: '/run/vmgmt/transfers', maxTreeDepth: 64, maxTreeEntries: 100_000 },
      boot: { maxConcurrent: 4, agentWaitMs: 120_000 },
      chat: { rules: [] },
      stats: { intervalMs: 1000 },
      scheduling: { enabled: true, periodMs: 1000 },
      devices: { prefaultRegions: false },
      calc: { outputBudgetBytes: 1024 ** 3, programs: [] },
      metrics: { enabled: true, host: '127.0.0.1', port: 9479, auth: 'token', tokenFile: '/var/lib/vmgmt/dashboard.token' },
      cgroupParent: 'vmgmt',
      daemonId: undefined,
      cluster: undefined,
    });
    expect(DEFAULT_MAX_PULL_BYTES).toBe(17_179_869_184);
  });

  it('a missing file named with --config is an error', () => {
    const missing = path.join(dir, 'none.json');
    expect(() => loadDaemonConfig({ path: missing, explicit: true })).toThrow(`cannot read the daemon config file ${missing}: no such file`);
    expect(() => loadDaemonConfig({ path: missing, explicit: true })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', details: { file: missing, errno: 'ENOENT' } }));
  });

  it('reads every field; socket and transfer directory default under the runtime directory', () => {
    write({ stateDir: '/s', runtimeDir: '/r', logLevel: 'debug', transfers: { maxPullBytes: 1024 }, boot: { maxConcurrent: 2, agentWaitMs: 5000 }, stats: { intervalMs: 500 }, scheduling: { enabled: false }, devices: { prefaultRegions: true } });
    expect(loadDaemonConfig(explicit())).toEqual({
      stateDir: '/s',
      runtimeDir: '/r',
      socketPath: '/r/vmgmt.sock',
      logLevel: 'debug',
      transfers: { maxPullBytes: 1024, transferDir: '/r/transfers', maxTreeDepth: 64, maxTreeEntries: 100_000 },
      boot: { maxConcurrent: 2, agentWaitMs: 5000 },
      chat: { rules: [] },
      stats: { intervalMs: 500 },
      scheduling: { enabled: false, periodMs: 1000 },
      devices: { prefaultRegions: true },
      calc: { outputBudgetBytes: 1024 ** 3, programs: [] },
      metrics: { enabled: true, host: '127.0.0.1', port: 9479, auth: 'token', tokenFile: '/s/dashboard.token' },
      cgroupParent: 'vmgmt',
      daemonId: undefined,
      cluster: undefined,
    });
    write({ socketPath: '/x/v.sock', transfers: { transferDir: '/t' } });
    expect(loadDaemonConfig(explicit())).toMatchObject({ socketPath: '/x/v.sock', transfers: { maxPullBytes: DEFAULT_MAX_PULL_BYTES, transferDir: '/t' } });
  });

  it('flags override the file', () => {
    write({ stateDir: '/s', runtimeDir: '/r', socketPath: '/r/file.sock' });
    expect(loadDaemonConfig(explicit(), { runtimeDir: '/flag-r', socketPath: '/flag.sock' })).toMatchObject({
      stateDir: '/s',
      runtimeDir: '/flag-r',
      socketPath: '/flag.sock',
      transfers: { transferDir: '/flag-r/transfers' },
    });
    expect(resolveDaemonConfig(daemonConfigFileSchema.parse({}), { stateDir: 'rel' }).stateDir).toBe(path.resolve('rel'));
  });

  it('names every bad field and why, like a VM definition', () => {
    const problems = problemsOf(JSON.stringify({ stateDir: 'relative', logLevel: 'loud', colour: 1, transfers: { maxPullBytes: -1, extra: true }, devices: { prefaultRegions: 'yes' } }));
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(Object.keys(byPath).sort()).toEqual(['(top level)', 'devices.prefaultRegions', 'logLevel', 'stateDir', 'transfers', 'transfers.maxPullBytes']);
    expect(byPath.stateDir).toBe('must be an absolute path');
    expect(byPath['(top level)']).toMatch(/colour/);
    expect(byPath.transfers).toMatch(/extra/);
    expect(problemsOf('{"stateDir": ')).toEqual([{ path: '(file)', message: expect.stringMatching(/^not valid JSON/) }]);
    expect(problemsOf('[]')).toEqual([{ path: '(top level)', message: expect.any(String) }]);
  });

  it('reads the metrics listener: loopback only, the token on by default', () => {
    write({ metrics: { port: 0, auth: 'none', tokenFile: '/etc/vmgmt/token' } });
    expect(loadDaemonConfig(explicit()).metrics).toEqual({ enabled: true, host: '127.0.0.1', port: 0, auth: 'none', tokenFile: '/etc/vmgmt/token' });
    const byPath = Object.fromEntries(problemsOf(JSON.stringify({ metrics: { host: '0.0.0.0', port: 70000, auth: 'maybe' } })).map((p) => [p.path, p.message]));
    expect(byPath['metrics.host']).toMatch(/must be a loopback address: 127.0.0.1, ::1, localhost/);
    expect(Object.keys(byPath).sort()).toEqual(['metrics.auth', 'metrics.host', 'metrics.port']);
  });

  it('reads cluster mode from the section and --cluster, and daemonId scopes the cgroups', () => {
    const parsed = (o: unknown) => {
      const r = parseDaemonConfig(JSON.stringify(o));
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      return r.file;
    };
    expect(resolveDaemonConfig(parsed({}))).toMatchObject({ cluster: undefined, cgroupParent: 'vmgmt', daemonId: undefined });
    const section = { daemonId: 'ha', cluster: { credentialsFile: '/etc/vmgmt/ha.nk' } };
    expect(resolveDaemonConfig(parsed(section), { clusterUrl: 'nats://10.0.0.1:4222' })).toMatchObject({
      cgroupParent: 'vmgmt-ha',
      cluster: { url: 'nats://10.0.0.1:4222', host: 'ha', credentialsFile: '/etc/vmgmt/ha.nk', bucket: 'vmgmt-chat', heartbeatMs: 1000, leaseMs: 4000 },
    });
    expect(() => resolveDaemonConfig(parsed({}), { clusterUrl: 'nats://h:4222' })).toThrow(/needs a "cluster" section .*credentialsFile/);
    expect(() => resolveDaemonConfig(parsed(section))).toThrow(/no cluster.url/);
    expect(problemsOf(JSON.stringify({ cluster: { url: 'nats://h:1' } }))).toEqual([{ path: 'cluster.credentialsFile', message: expect.any(String) }]);
    expect(problemsOf(JSON.stringify({ daemonId: 'Bad/Id' }))).toEqual([{ path: 'daemonId', message: expect.stringMatching(/a-z 0-9/) }]);
    expect(problemsOf(JSON.stringify({ cluster: { credentialsFile: '/k', heartbeatMs: 1000, leaseMs: 1500 } }))).toEqual([{ path: 'cluster.leaseMs', message: expect.stringMatching(/twice/) }]);
  });

  it('reads the chat policy: ordered rules in the documented shape', () => {
    const rules = [
      { from: { vm: 'lab-1' }, to: { name: 'vault' }, action: 'deny', note: 'lab-1 may not reach the vault' },
      { from: { group: 'lab' }, to: { group: 'prod' }, action: 'allow' },
      { from: { vm: '@host', name: 'ops' }, to: {}, action: 'deny' },
    ];
    write({ chat: { rules } });
    expect(loadDaemonConfig(explicit()).chat).toEqual({ rules });
    write({ chat: {} });
    expect(loadDaemonConfig(explicit()).chat).toEqual({ rules: [] });
  });

  it('names each bad field of a chat rule precisely', () => {
    const problems = problemsOf(
      JSON.stringify({
        chat: {
          rules: [
            { from: {}, to: {}, action: 'allow' },
            { from: { vm: 'a', colour: 'red' }, to: { name: '' }, action: 'maybe' },
            { to: {}, action: 'deny' },
            { from: { group: 7 }, to: {}, action: 'deny', extra: 1 },
          ],
          default: 'deny',
        },
      }),
    );
    expect(problems.map((p) => p.path).sort()).toEqual(
      ['chat', 'chat.rules.1.from', 'chat.rules.1.to.name', 'chat.rules.1.action', 'chat.rules.2.from', 'chat.rules.3.from.group', 'chat.rules.3'].sort(),
    );
    expect(problems.find((p) => p.path === 'chat.rules.1.from')?.message).toMatch(/colour/);
    expect(problems.find((p) => p.path === 'chat.rules.1.to.name')?.message).toMatch(/must not be empty/);
    expect(problems.find((p) => p.path === 'chat')?.message).toMatch(/default/);
  });

  it('rules the config accepts are rules the chat policy accepts', () => {
    write({ chat: { rules: [{ from: { vm: '@host' }, to: { group: 'g' }, action: 'allow', note: 'n' }] } });
    expect(policyProblem(loadDaemonConfig(explicit()).chat.rules)).toBeUndefined();
  });

  it('throws INVALID_CONFIG with the file and one problem per field', () => {
    write({ logLevel: 'loud', transfers: { maxPullBytes: 1.5 } });
    let err: unknown;
    try {
      loadDaemonConfig(explicit());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmgmtError);
    expect(err).toMatchObject({ code: 'INVALID_CONFIG', details: { file, problems: [{ path: 'logLevel' }, { path: 'transfers.maxPullBytes' }] } });
    expect((err as Error).message).toMatch(new RegExp(`^invalid daemon config in ${file}: logLevel: .*; transfers.maxPullBytes: `));
  });
});

describe('config reload (SIGHUP)', () => {
  it('applies logLevel, maxPullBytes and prefaultRegions at once; reports fields that need a restart', () => {
    write({ stateDir: '/s', logLevel: 'info' });
    const live = LiveDaemonConfig.load(explicit(), { socketPath: '/flag.sock' });
    write({ stateDir: '/other', socketPath: '/file.sock', logLevel: 'debug', transfers: { maxPullBytes: 4096, transferDir: '/t' }, devices: { prefaultRegions: true } });
    const log = new RecordingLog();
    const outcome = live.reload(log);
    expect(outcome.ok).toBe(true);
    expect(live.current).toMatchObject({ stateDir: '/s', socketPath: '/flag.sock', logLevel: 'debug', transfers: { maxPullBytes: 4096, transferDir: '/run/vmgmt/transfers' }, devices: { prefaultRegions: true } });
    const warned = log.entries.filter((e) => e.level === 'warn').map((e) => e.msg);
    // The socket comes from a flag, so the file's socketPath changes nothing.
    expect(warned).toEqual([
      'config: stateDir changed; it takes effect when the daemon restarts',
      'config: transfers.transferDir changed; it takes effect when the daemon restarts',
      // The token file's default is under the state directory.
      'config: metrics.tokenFile changed; it takes effect when the daemon restarts',
    ]);
    expect(log.entries.at(-1)).toMatchObject({
      level: 'info',
      msg: 'config reloaded',
      fields: {
        applied: [
          { field: 'logLevel', from: 'info', to: 'debug' },
          { field: 'transfers.maxPullBytes', from: DEFAULT_MAX_PULL_BYTES, to: 4096 },
          { field: 'devices.prefaultRegions', from: false, to: true },
        ],
      },
    });
  });

  it('applies new chat rules at once, and logs the change', () => {
    write({ chat: { rules: [] } });
    const live = LiveDaemonConfig.load(explicit());
    const rules = [{ from: { vm: 'a' }, to: {}, action: 'deny' as const }];
    write({ chat: { rules } });
    const log = new RecordingLog();
    expect(live.reload(log).ok).toBe(true);
    expect(live.current.chat.rules).toEqual(rules);
    expect(log.entries.at(-1)).toMatchObject({ msg: 'config reloaded', fields: { applied: [{ field: 'chat.rules', from: [], to: rules }] } });
    // The same rules again: nothing to apply.
    const again = new RecordingLog();
    live.reload(again);
    expect(again.entries.at(-1)).toMatchObject({ msg: 'config reloaded: nothing to apply' });
  });

  it('keeps the running config when the file no longer parses', () => {
    write({ logLevel: 'warn' });
    const live = LiveDaemonConfig.load(explicit());
    const before = live.current;
    write({ logLevel: 'loud' });
    const log = new RecordingLog();
    expect(live.reload(log)).toMatchObject({ ok: false, error: { code: 'INVALID_CONFIG' } });
    expect(live.current).toBe(before);
    expect(log.entries).toEqual([
      { level: 'error', msg: 'config reload failed: the daemon keeps its running config', fields: expect.objectContaining({ file, problems: [expect.objectContaining({ path: 'logLevel' })] }) },
    ]);
    rmSync(file);
    expect(live.reload(log).ok).toBe(false);
    expect(live.current).toBe(before);
  });

  it('a reload with nothing changed says so', () => {
    const running = loadDaemonConfig({ path: path.join(dir, 'none.json'), explicit: false });
    expect(planReload(running, running)).toEqual({ config: running, applied: [], needRestart: [] });
  });

  it('the daemon logger follows the reloaded level', () => {
    write({ logLevel: 'warn' });
    const live = LiveDaemonConfig.load(explicit());
    const lines: string[] = [];
    const log = createLogger({ write: (l) => void lines.push(l), level: () => live.current.logLevel }).child({ vm: 'a' });
    log.info('hidden');
    write({ logLevel: 'info' });
    live.reload({ info() {}, warn() {}, error() {} });
    log.info('shown');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });
});
