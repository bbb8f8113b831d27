// Declared programs run for real: execa through vmgmt-calc-exec into a job cgroup, as nobody. Needs root
// (the launcher drops to nobody, the cgroups are the host's) and the built launcher (`make build`).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/core-logger.js';
import { STATUS } from '../../layout/wire-layout.js';
import { Refusal } from '../refusal.js';
import type { CalcFunction } from './calc-functions.js';
import { calcLauncherPath } from './calc-launcher.js';
import { CalcRefusal } from './calc-program-runner.js';
import { type CalcProgramSpec, type CalcSettings, DEFAULT_ARG_PATTERN } from './calc-program.js';
import { accountId, CalcPrograms } from './calc-programs.js';
import { createCalcCgroupRoot } from './job-cgroup.js';

const spec = (name: string, argv: string[], more: Partial<CalcProgramSpec> = {}): CalcProgramSpec => ({
  name,
  description: `test ${name}`,
  argv,
  timeoutMs: 20_000,
  maxOutputBytes: 1 << 20,
  maxPerVm: 1,
  maxHostWide: 2,
  cpuPercent: 50,
  memoryMaxBytes: 32 << 20,
  pidsMax: 16,
  allow: { vms: ['a', 'b', 'c'], groups: ['lab'] },
  user: 'nobody',
  group: 'nogroup',
  args: { max: 0, pattern: DEFAULT_ARG_PATTERN },
  ...more,
});

const PROGRAMS: CalcProgramSpec[] = [
  spec('upper', ['/usr/bin/tr', 'a-z', 'A-Z']),
  spec('whoami', ['/usr/bin/id', '-u']),
  spec('args', ['/usr/bin/printf', '%s|', '{vm}', '{group}', '{function}', '{inputBytes}', 'x{{y}}']),
  spec('env', ['/usr/bin/env']),
  spec('sleepy', ['/usr/bin/sleep', '30'], { timeoutMs: 300 }),
  spec('hold', ['/usr/bin/sleep', '30']),
  spec('flood', ['/usr/bin/head', '-c', '100000', '/dev/zero'], { maxOutputBytes: 1000 }),
  spec('fails', ['/usr/bin/ls', '/nonexistent-calc-test']),
  spec('hog', ['/usr/bin/python3', '-c', 'b = bytearray(96 << 20); print(len(b))'], { memoryMaxBytes: 16 << 20 }),
  spec('secret', ['/usr/bin/cat'], { allow: { vms: ['z'], groups: [] } }),
];

const canRun = process.getuid?.() === 0 && existsSync(calcLauncherPath());
// This test process's pid: these cgroups are ours alone, and a daemon's sweep leaves them (we are alive).
const CGROUP_PID = process.pid;

async function run(fn: CalcFunction, input: string, id = 1): Promise<string> {
  const out: Buffer[] = [];
  const job = fn.start((b) => void out.push(Buffer.from(b)), { id, inputSize: Buffer.byteLength(input), args: [] });
  if (input) await job.write(new TextEncoder().encode(input));
  await job.finish();
  return Buffer.concat(out).toString();
}

async function refusal(p: Promise<unknown>): Promise<Refusal> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Refusal) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe.skipIf(!canRun)('declared programs (as root, with the launcher built)', () => {
  const settings: CalcSettings = { outputBudgetBytes: 1 << 30, programs: PROGRAMS };
  const cgroups = createCalcCgroupRoot({ pid: CGROUP_PID });
  const programs = new CalcPrograms({ settings: () => settings, launcherPath: calcLauncherPath(), cgroups: () => cgroups, log: silentLogger });
  const lab = programs.catalogFor({ vm: 'a', group: 'lab' });
  const fn = (name: string): CalcFunction => {
    const f = lab.find(name);
    if (!f.ok) throw new Error(f.reason);
    return f.fn;
  };
  const jobDirs = (): string[] => (cgroups.ok ? cgroups.root.dirs.flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)) : []);

  afterAll(async () => {
    await programs.close();
    if (cgroups.ok) for (const d of cgroups.root.dirs) expect(existsSync(d)).toBe(false);
  });

  it('finds, refuses and lists by the allow-list', () => {
    expect(lab.find('nope')).toMatchObject({ ok: false, status: STATUS.CALC_NO_FUNCTION.code });
    expect(lab.find('secret')).toMatchObject({ ok: false, status: STATUS.CALC_NOT_ALLOWED.code, reason: expect.stringMatching(/VM a \(group lab\) is not on the allow-list of secret/) });
    expect(lab.find('sha256')).toMatchObject({ ok: true });
    expect(lab.list().map((f) => f.name)).toEqual(['sha256', 'sha512', 'crc32c', 'gzip', 'gunzip', ...PROGRAMS.filter((p) => p.name !== 'secret').map((p) => p.name)]);
    expect(programs.catalogFor({ vm: 'z' }).list().map((f) => f.name)).toContain('secret');
  });

  it('streams stdin to stdout; argv is the template, one argument each; the environment is empty', async () => {
    expect(cgroups.ok).toBe(true);
    expect(await run(fn('upper'), 'hello calc')).toBe('HELLO CALC');
    expect(await run(fn('args'), 'abcd')).toBe('a|lab|args|4|x{y}|');
    expect(await run(fn('env'), '')).toBe('');
    expect(jobDirs()).toEqual([]);
  });

  it('runs as nobody, in its cgroup with the CPU, memory and process limits', async () => {
    expect(await run(fn('whoami'), '')).toBe(`${accountId(readFileSync('/etc/passwd', 'utf8'), 'nobody')}\n`);
    const job = fn('hold').start(() => {}, { id: 1, inputSize: 0, args: [] });
    const [dir] = jobDirs().map((name) => path.join(cgroups.ok ? cgroups.root.dirs[0]! : '', name));
    // The launcher joins the cgroup, drops to nobody and execs sleep: wait for the program itself.
    const procsNow = (): string[] => readFileSync(path.join(dir!, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean);
    await waitUntil(() => procsNow().length === 1 && /^Name:\tsleep$/m.test(readFileSync(`/proc/${procsNow()[0]}/status`, 'utf8')));
    const procs = procsNow();
    if (cgroups.ok && cgroups.root.version === 2) {
      expect(readFileSync(path.join(dir!, 'cpu.max'), 'utf8').trim()).toBe('50000 100000');
      expect(readFileSync(path.join(dir!, 'memory.max'), 'utf8').trim()).toBe(String(32 << 20));
    } else if (cgroups.ok) {
      const inHierarchy = (h: string, file: string): string => readFileSync(path.join(cgroups.root.dirs.find((d) => d.includes(`/${h}/`))!, path.basename(dir!), file), 'utf8').trim();
      expect(inHierarchy('cpu', 'cpu.cfs_quota_us')).toBe('50000');
      expect(inHierarchy('memory', 'memory.limit_in_bytes')).toBe(String(32 << 20));
    }
    const status = readFileSync(`/proc/${procs[0]}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\t65534\t65534\t65534\t65534$/m);
    expect(status).toMatch(/^Groups:\s*$/m);
    expect(status).toMatch(/^NoNewPrivs:\t1$/m);
    job.abort();
    await waitUntil(() => jobDirs().length === 0);
  });

  it('the time limit, the output limit and a failure each have their status; a failure carries exit status and stderr', async () => {
    expect((await refusal(run(fn('sleepy'), ''))).status).toBe(STATUS.CALC_TIMED_OUT.code);
    expect((await refusal(run(fn('flood'), ''))).status).toBe(STATUS.CALC_TOO_LARGE.code);
    const failed = await refusal(run(fn('fails'), 'x'));
    expect(failed).toBeInstanceOf(CalcRefusal);
    expect(failed.status).toBe(STATUS.CALC_PROGRAM_FAILED.code);
    const f = (failed as CalcRefusal).failure!;
    expect({ exitCode: f.exitCode, signal: f.signal }).toEqual({ exitCode: 2, signal: 0 });
    expect(Buffer.from(f.stderr).toString()).toMatch(/nonexistent-calc-test.*No such file or directory/);
    expect(f.stderrTotal).toBe(f.stderr.byteLength);
    expect(jobDirs()).toEqual([]);
  });

  it('the memory limit kills a program that passes it, and says so', async () => {
    const failed = (await refusal(run(fn('hog'), ''))) as CalcRefusal;
    expect(failed.status).toBe(STATUS.CALC_PROGRAM_FAILED.code);
    expect(failed.failure!.signal).toBe(9);
    expect(Buffer.from(failed.failure!.stderr).toString()).toMatch(/^\[host: killed by its cgroup memory limit\]/);
  });

  it('concurrency: per VM, then host-wide; a slot frees when the job ends', async () => {
    const b = programs.catalogFor({ vm: 'b' });
    const c = programs.catalogFor({ vm: 'c' });
    const hold = (cat: typeof b) => {
      const f = cat.find('hold');
      if (!f.ok) throw new Error(f.reason);
      return f.fn;
    };
    const first = hold(lab).start(() => {}, { id: 1, inputSize: 0, args: [] });
    expect(() => hold(lab).start(() => {}, { id: 2, inputSize: 0, args: [] })).toThrow(expect.objectContaining({ status: STATUS.CALC_BUSY.code, reason: expect.stringMatching(/VM a runs 1 jobs of it/) }));
    const second = hold(b).start(() => {}, { id: 1, inputSize: 0, args: [] });
    expect(() => hold(c).start(() => {}, { id: 1, inputSize: 0, args: [] })).toThrow(expect.objectContaining({ status: STATUS.CALC_BUSY.code, reason: expect.stringMatching(/the host runs 2 jobs of it/) }));
    expect(programs.running('hold')).toBe(2);
    first.abort();
    await waitUntil(() => programs.running('hold') === 1);
    const third = hold(c).start(() => {}, { id: 1, inputSize: 0, args: [] });
    second.abort();
    third.abort();
    await waitUntil(() => programs.running('hold') === 0 && jobDirs().length === 0);
  });
});

describe.skipIf(!canRun)('the calc cgroups of a daemon that died', () => {
  it('are swept by the next daemon: what still runs there is killed, then the directories go', async () => {
    let deadPid = 4_000_000 + (process.pid % 100_000);
    while (existsSync(`/proc/${deadPid}`)) deadPid++;
    const stale = createCalcCgroupRoot({ pid: deadPid });
    if (!stale.ok) throw new Error(stale.reason);
    const job = stale.root.createJob('j1', { cpuPercent: 10, memoryMaxBytes: 16 << 20, pidsMax: 4 });
    const orphan = execa(calcLauncherPath(), ['--uid', '65534', '--gid', '65534', ...job.procsFiles.flatMap((f) => ['--cgroup', f]), '--', '/usr/bin/sleep', '60'], { env: {}, extendEnv: false, reject: false });
    await waitUntil(() => readFileSync(job.procsFiles[0]!, 'utf8').trim() !== '');
    // A daemon starts (any pid but the dead one's): its sweep kills the orphan.
    const next = createCalcCgroupRoot({ pid: CGROUP_PID });
    expect(next.ok).toBe(true);
    expect((await orphan).signal).toBe('SIGKILL');
    // The directories go at that sweep, or the next one once the killed process has left.
    await waitUntil(() => {
      createCalcCgroupRoot({ pid: CGROUP_PID });
      return stale.root.dirs.every((d) => !existsSync(d));
    });
    if (next.ok) await next.root.remove();
  });
});

async function waitUntil(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !done(); ) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
