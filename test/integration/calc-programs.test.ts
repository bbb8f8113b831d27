// Declared host programs as calculation functions, through the real daemon and a real guest: the daemon's
// config declares them (argv template, limits, allow-list), the guest calls them with `vmgmt-guest calc`,
// and each limit comes back as its own status in words: timeout, output size, concurrency, the VM's output
// budget, a VM not on the allow-list (also after a SIGHUP takes it off), a program that fails (its exit
// status and stderr). The program runs as nobody/nogroup in a job cgroup, which is gone afterwards.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { waitFor } from '../support/wait-for.js';

const VM = 'it-calcp';
const LAB = { groups: ['lab'] };

const programs = (upperAllow: unknown) => [
  { name: 'upper', description: 'the input in upper case (tr a-z A-Z)', argv: ['/usr/bin/tr', 'a-z', 'A-Z'], allow: upperAllow },
  { name: 'whoami', description: 'who the program runs as', argv: ['/usr/bin/id'], allow: { vms: [VM] } },
  { name: 'where', description: 'the cgroup the program runs in', argv: ['/usr/bin/cat', '/proc/self/cgroup'], allow: LAB },
  { name: 'sleepy', argv: ['/usr/bin/sleep', '60'], timeoutMs: 1500, allow: LAB },
  { name: 'flood', argv: ['/usr/bin/head', '-c', '1000000', '/dev/zero'], maxOutputBytes: 65_536, allow: LAB },
  { name: 'hold', description: 'one at a time on the host', argv: ['/usr/bin/sleep', '25'], timeoutMs: 120_000, concurrency: { perVm: 1, hostWide: 1 }, allow: LAB },
  { name: 'fails', argv: ['/usr/bin/ls', '/nonexistent-{vm}-{inputBytes}'], allow: LAB },
  { name: 'secret', description: 'only for another VM', argv: ['/usr/bin/cat'], allow: { vms: ['someone-else'], groups: ['prod'] } },
  { name: 'first', description: 'the first N bytes (head -c N)', argv: ['/usr/bin/head', '-c', '{args}'], args: { max: 1, pattern: '[0-9]{1,9}' }, allow: LAB },
  // zstd through Debian's zstd (scripts/setup.sh installs it): Node 20 has no zstd (docs/decisions/calc-programs.md).
  { name: 'zstd', description: 'zstd -3 (Debian\'s zstd)', argv: ['/usr/bin/zstd', '-q', '-c', '-3'], allow: LAB },
  { name: 'unzstd', description: 'zstd -d', argv: ['/usr/bin/zstd', '-q', '-d', '-c'], allow: LAB },
  { name: 'argv', description: 'its arguments, one a line', argv: ['/usr/bin/printf', '%s\\n', '{args}', 'in={inputBytes}'], args: { max: 4 }, allow: LAB },
];
const config = (upperAllow: unknown = LAB) => ({ logLevel: 'info', calc: { outputBudgetBytes: 2 * 1024 * 1024, programs: programs(upperAllow) } });

/** The daemon's calc cgroup directories (v2, or each v1 hierarchy). */
const calcDirs = (pid: number): string[] =>
  ['/sys/fs/cgroup/vmgmt', '/sys/fs/cgroup/cpu/vmgmt', '/sys/fs/cgroup/memory/vmgmt', '/sys/fs/cgroup/pids/vmgmt'].map((p) => path.join(p, `calc.${pid}`)).filter((p) => existsSync(p));
const jobDirs = (pid: number): string[] => calcDirs(pid).flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(d, e.name)));

describe('declared calculation programs through the real daemon', () => {
  let d: DaemonFixture;
  let daemonPid: number;

  beforeAll(async () => {
    d = await DaemonFixture.start({ config: config(), readyTimeoutMs: 120_000 });
    daemonPid = d.daemonPid!;
    const created = await d.api('POST', '/v1/vms', { name: VM, accel: 'tcg', chatGroup: 'lab' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const started = await d.api('POST', `/v1/vms/${VM}/start`, undefined, 300_000);
    expect(started.status, JSON.stringify(started.body)).toBe(200);
  });

  afterAll(async () => {
    if (!d) return;
    // A clean stop removes the daemon's calc cgroups; then every QEMU and directory goes.
    await d.sigterm();
    const left = calcDirs(daemonPid);
    expect(await d.cleanup()).toEqual([]);
    expect(left).toEqual([]);
  });

  const sh = (cmd: string, timeoutMs = 170_000) => d.guest(VM, cmd, timeoutMs);

  it('guest arguments go where the template says {args}, one argv element each, and only as the config allows', async () => {
    expect((await sh('printf abcdefgh | vmgmt-guest calc first 3 2>/dev/null')).stdout).toBe('abc');
    // Spaces and shell characters stay inside one argument (no shell); a streamed input has inputBytes -1.
    expect((await sh("printf x | vmgmt-guest calc argv one two=2 2>/dev/null")).stdout).toBe('one\ntwo=2\nin=-1\n');
    expect((await sh('vmgmt-guest calc argv a -i /dev/null 2>/dev/null')).stdout).toBe('a\nin=-1\n');
    const option = await sh('printf abc | vmgmt-guest calc first -- -n 2>&1; echo "exit $?"');
    expect(option.stdout).toMatch(/argument 1 \("-n"\) of first does not match|does not take these arguments/);
    expect(option.stdout).toMatch(/\(status 79\)/);
    expect(option.stdout).toMatch(/exit 8/);
    const many = await sh('printf abc | vmgmt-guest calc first 1 2 2>&1; echo "exit $?"');
    expect(many.stdout).toMatch(/\(status 79\)[\s\S]*exit 8/);
    const none = await sh('printf abc | vmgmt-guest calc upper x 2>&1; echo "exit $?"');
    expect(none.stdout).toMatch(/\(status 79\)[\s\S]*exit 8/);
    // After the refusals the channel still computes.
    expect((await sh('printf abc | vmgmt-guest calc upper 2>/dev/null')).stdout).toBe('ABC');
  });

  it('zstd as a declared program: compressed on the host, decompressed on the host, the same bytes back', async () => {
    const r = await sh('seq 1 100000 > /tmp/seq.txt; vmgmt-guest calc zstd < /tmp/seq.txt > /tmp/seq.zst 2>/dev/null && vmgmt-guest calc unzstd < /tmp/seq.zst 2>/dev/null | cmp - /tmp/seq.txt && wc -c < /tmp/seq.txt && wc -c < /tmp/seq.zst && head -c 4 /tmp/seq.zst | od -An -tx1');
    const [plain, packed, magic] = r.stdout.trim().split('\n').map((l) => l.trim());
    expect(Number(packed)).toBeLessThan(Number(plain) / 3);
    expect(magic).toBe('28 b5 2f fd'); // the zstd frame magic
  });

  it('a declared program gives its result; argv is the template, input on stdin', async () => {
    const r = await sh('printf "hello, calc programs" | vmgmt-guest calc upper 2>/dev/null');
    expect(r).toMatchObject({ exitCode: 0, stdout: 'HELLO, CALC PROGRAMS' });
    // A larger input streamed through several slices' worth of CALC_INPUT.
    const big = await sh('head -c 1000000 /dev/urandom | base64 -w 0 > /tmp/in.txt; vmgmt-guest calc upper -i /tmp/in.txt -o /tmp/out.txt 2>/dev/null && tr a-z A-Z < /tmp/in.txt | cmp - /tmp/out.txt && echo same');
    expect(big.stdout).toMatch(/same/);
  });

  it('runs as the unprivileged user and group, in a job cgroup of its own that is removed after', async () => {
    const who = await sh('vmgmt-guest calc whoami < /dev/null 2>/dev/null');
    expect(who.exitCode).toBe(0);
    expect(who.stdout.trim()).toBe('uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)');
    const where = await sh('vmgmt-guest calc where < /dev/null 2>/dev/null');
    expect(where.exitCode).toBe(0);
    const lines = where.stdout.trim().split('\n');
    // cgroup v2: one line "0::/vmgmt/calc.PID/jN"; v1: the cpu and memory hierarchies' lines.
    const inJob = lines.filter((l) => new RegExp(`:/vmgmt/calc\\.${daemonPid}/j\\d+$`).test(l));
    expect(inJob.length, where.stdout).toBeGreaterThanOrEqual(1);
    expect(jobDirs(daemonPid)).toEqual([]);
  });

  it('calc --list shows the built-ins and the programs this VM may call, each with its description', async () => {
    const r = await sh('vmgmt-guest calc --list');
    expect(r.exitCode, r.stdout).toBe(0);
    const names = r.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]);
    expect(names).toEqual(['sha256', 'sha512', 'crc32c', 'gzip', 'gunzip', 'upper', 'whoami', 'where', 'sleepy', 'flood', 'hold', 'fails', 'first', 'zstd', 'unzstd', 'argv']);
    expect(r.stdout).toMatch(/^upper\s+program\s+the input in upper case \(tr a-z A-Z\)$/m);
    expect(r.stdout).toMatch(/^sha256\s+built-in\s+SHA-256 of the input: 32 bytes$/m);
    expect(r.stdout).toMatch(/^sleepy\s+program\s+host program \/usr\/bin\/sleep$/m);
    expect(r.stdout).not.toContain('secret');
  });

  it('a program that fails: its exit status and the start of its stderr, in words', async () => {
    // stdin redirected from a file has a known size (a pipe would be -1).
    const r = await sh('printf abc > /tmp/abc; vmgmt-guest calc fails < /tmp/abc 2>&1; echo "exit $?"');
    expect(r.stdout).toContain('the host program failed (its exit status and the start of its error output follow) (status 77): exit status 2');
    // The argv template put the VM's name and the input size into the argument.
    expect(r.stdout).toMatch(/ls: cannot access '\/nonexistent-it-calcp-3': No such file or directory/);
    expect(r.stdout).toMatch(/exit 8/);
  });

  it('the time limit kills the program: CALC_TIMED_OUT', async () => {
    const r = await sh('vmgmt-guest calc sleepy < /dev/null 2>&1; echo "exit $?"');
    expect(r.stdout).toContain('the host program did not finish within its time limit and was killed (status 76)');
    expect(r.stdout).toMatch(/exit 8/);
    await waitFor('the killed job cgroup to go', () => (jobDirs(daemonPid).length === 0 ? true : undefined), 30_000);
  });

  it('the output size limit kills the program: CALC_TOO_LARGE', async () => {
    const r = await sh('vmgmt-guest calc flood < /dev/null 2>&1 >/dev/null; echo "exit $?"');
    expect(r.stdout).toContain("(1 GiB, or the function's own output limit) (status 71)");
    expect(r.stdout).toMatch(/exit 8/);
  });

  it('the concurrency limit: a second job while one runs is refused as busy; the first one finishes', async () => {
    const starts = (): number => d.log.split('\n').filter((l) => l.includes('"msg":"calc program started"') && l.includes('"function":"hold"')).length;
    const before = starts();
    const bg = await sh('(vmgmt-guest calc hold < /dev/null > /tmp/hold.out 2> /tmp/hold.err; echo "exit $?" > /tmp/hold.rc) > /dev/null 2>&1 & echo started');
    expect(bg.stdout).toMatch(/started/);
    await waitFor('the first hold job on the host', () => (starts() > before ? true : undefined), 60_000);
    const second = await sh('vmgmt-guest calc hold < /dev/null 2>&1; echo "exit $?"');
    expect(second.stdout).toContain('the host runs as many jobs of this function as it allows (for this VM or host-wide): retry later (status 72)');
    expect(second.stdout).toMatch(/exit 8/);
    const rc = await waitFor(
      'the first hold job to finish',
      async () => {
        const r = await sh('cat /tmp/hold.rc 2>/dev/null');
        return r.stdout.includes('exit') ? r.stdout.trim() : undefined;
      },
      120_000,
    );
    expect(rc).toBe('exit 0');
  });

  it('the VM output budget: output the daemon would hold past calc.outputBudgetBytes is refused', async () => {
    const r = await sh('head -c 3000000 /dev/urandom > /tmp/rand.bin; vmgmt-guest calc gzip -i /tmp/rand.bin -o /dev/null 2>&1; echo "exit $?"');
    expect(r.stdout).toContain('the host holds as much calculation output for this VM as it may (calc.outputBudgetBytes): end other jobs first, or retry later (status 78)');
    expect(r.stdout).toMatch(/exit 8/);
    // Small output still fits after the refused job released what it held.
    expect((await sh('printf abc | vmgmt-guest calc upper 2>/dev/null')).stdout).toBe('ABC');
  });

  it('a VM not on the allow-list is refused in words; a SIGHUP that takes it off applies to the next job', async () => {
    const secret = await sh('printf x | vmgmt-guest calc secret 2>&1; echo "exit $?"');
    expect(secret.stdout).toContain("this VM may not use this calculation function (the host's calc allow-list names neither the VM nor its group) (status 75)");
    expect(secret.stdout).toMatch(/exit 8/);
    const unknown = await sh('printf x | vmgmt-guest calc nothing-like-it 2>&1; echo "exit $?"');
    expect(unknown.stdout).toContain('(status 70)');

    d.writeConfig(config({ vms: ['someone-else'] }));
    d.hangup();
    await waitFor('the reload', () => (d.log.includes('"field":"calc"') ? true : undefined), 30_000);
    const after = await sh('printf abc | vmgmt-guest calc upper 2>&1; echo "exit $?"');
    expect(after.stdout).toContain('(status 75)');
    expect((await sh('vmgmt-guest calc --list')).stdout).not.toMatch(/^upper/m);
  });
});
