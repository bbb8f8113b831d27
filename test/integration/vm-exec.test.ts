// `vmgmt vm exec` through the real CLI, daemon, device and guest agent: 100 MB of output streamed intact,
// exit codes, stdin, stderr, timeout, --json, and back-pressure (a client that stops reading holds the guest,
// not the daemon's memory).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

const VM = 'it-exec';

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  sha: string;
  bytes: number;
}

describe('vmgmt vm exec', () => {
  let d: DaemonFixture;

  /** The CLI with stdout hashed as it streams (it may be far larger than a buffer should hold). */
  const run = (args: string[], opts: { stdin?: Buffer; keepStdout?: boolean } = {}): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [d.cliPath, '--socket', d.socketPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      const h = createHash('sha256');
      const kept: Buffer[] = [];
      let bytes = 0;
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => {
        h.update(b);
        bytes += b.byteLength;
        if (opts.keepStdout !== false) kept.push(b);
      });
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('close', (code) => resolve({ code, stdout: Buffer.concat(kept), stderr, sha: h.digest('hex'), bytes }));
      child.stdin.end(opts.stdin ?? Buffer.alloc(0));
    });

  beforeAll(async () => {
    d = await DaemonFixture.start();
    expect((await d.api('POST', '/v1/vms', { name: VM, accel: 'tcg', memoryMiB: 256 })).status).toBe(201);
    const started = await d.cli('vm', 'start', VM);
    expect(started.code, started.stderr).toBe(0);
    await d.waitForAgent(VM);
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('runs a command and prints its stdout and stderr apart', async () => {
    const r = await run(['vm', 'exec', VM, '--', 'sh', '-c', 'echo out; echo err >&2; echo "$0 $1" ', 'a b', 'c']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe('out\na b c\n');
    expect(r.stderr).toBe('err\n');
  });

  it('exits with the command exit code, 127 for a missing command, 128+N for a signal', async () => {
    expect((await run(['vm', 'exec', VM, '--', 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await run(['vm', 'exec', VM, '--', 'false'])).code).toBe(1);
    const missing = await run(['vm', 'exec', VM, '--', 'no-such-command-here']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('no-such-command-here');
    expect((await run(['vm', 'exec', VM, '--', 'sh', '-c', 'kill -9 $$'])).code).toBe(137);
  });

  it('streams 100 MB of output intact (checksum computed in the guest)', async () => {
    const size = 100 * 1024 * 1024;
    const script = `rm -f /tmp/p /tmp/sum; mkfifo /tmp/p; (sha256sum </tmp/p >/tmp/sum) & head -c ${size} /dev/urandom | tee /tmp/p; wait`;
    const t0 = Date.now();
    const r = await run(['vm', 'exec', VM, '--', 'sh', '-c', script], { keepStdout: false });
    const seconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.bytes).toBe(size);
    const guestSum = await run(['vm', 'exec', VM, '--', 'cat', '/tmp/sum']);
    expect(guestSum.stdout.toString().split(' ')[0]).toBe(r.sha);
    console.log(`100 MiB through vm exec in ${seconds.toFixed(1)} s (${(100 / seconds).toFixed(1)} MiB/s, including the guest's urandom and sha256)`);
  }, 600_000);

  it('forwards stdin to the end of input', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const r = await run(['vm', 'exec', VM, '--', 'sha256sum'], { stdin: data });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString().split(' ')[0]).toBe(createHash('sha256').update(data).digest('hex'));
    const echo = await run(['vm', 'exec', VM, '--', 'cat'], { stdin: Buffer.from('line one\nline two\n') });
    expect(echo.stdout.toString()).toBe('line one\nline two\n');
  }, 300_000);

  it('--env and --cwd reach the command', async () => {
    const r = await run(['vm', 'exec', VM, '--env', 'GREETING=hi there', '--cwd', '/proc', '--', 'sh', '-c', 'echo "$GREETING"; pwd']);
    expect(r.stdout.toString()).toBe('hi there\n/proc\n');
  });

  it('--timeout kills the command and exits 124, saying so', async () => {
    const t0 = Date.now();
    const r = await run(['vm', 'exec', VM, '--timeout', '1500', '--', 'sleep', '60']);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/sleep did not finish within 1500 ms and was killed/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('--tty runs the command on a pseudo-terminal of the size asked for, stdin through it', async () => {
    const r = await run(['vm', 'exec', VM, '--tty', '--', 'sh', '-c', 'read line; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty-ok; stty size; echo "got $line"'], {
      stdin: Buffer.from('typed\n'),
    });
    expect(r.code, r.stderr).toBe(0);
    // The terminal echoes what is typed; the command reads its line before it prints, so the echo comes first
    // and cannot land inside a line the command prints.
    const out = r.stdout.toString().replace(/\r/g, '');
    expect(out).toContain('tty-ok\n');
    expect(out).toContain('24 80\n');
    expect(out).toContain('got typed\n');
    expect(r.stderr).toBe('');
  });

  it('pipes behave as on a shell: a reader that quits ends the writer with SIGPIPE', async () => {
    const r = await run(['vm', 'exec', VM, '--', 'sh', '-c', 'yes | head -n 3; echo "${PIPESTATUS:-done}"']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe('y\ny\ny\ndone\n');
  });

  it('more commands at once than the device has channels: the rest fail at once, saying why', async () => {
    const t0 = Date.now();
    const runs = await Promise.all(Array.from({ length: 9 }, () => run(['vm', 'exec', VM, '--', 'sleep', '3'])));
    const ok = runs.filter((r) => r.code === 0).length;
    const refused = runs.filter((r) => r.code !== 0);
    expect(ok).toBeGreaterThanOrEqual(4);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) expect(r.stderr).toMatch(/could not start an exec process \(fork failed, or no free channel\)/);
    expect(Date.now() - t0).toBeLessThan(60_000);
  }, 120_000);

  it('--json prints output events and the exit', async () => {
    const r = await run(['--json', 'vm', 'exec', VM, '--', 'sh', '-c', 'printf abc; printf xyz >&2; exit 4']);
    expect(r.code).toBe(4);
    const events = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'output' && e.stream === 'stdout').map((e) => e.text).join('')).toBe('abc');
    expect(events.filter((e) => e.event === 'output' && e.stream === 'stderr').map((e) => e.text).join('')).toBe('xyz');
    expect(events.at(-1)).toMatchObject({ event: 'exit', exitCode: 4, signal: null, timedOut: false, stdoutBytes: 3, stderrBytes: 3 });
  });

  it('a client that stops reading holds the guest: what the daemon took stays bounded', async () => {
    const child = spawn(process.execPath, [d.cliPath, '--socket', d.socketPath, 'vm', 'exec', VM, '--', 'cat', '/dev/zero'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const took = async (): Promise<number> => {
      const vm = (await d.api('GET', `/v1/vms/${VM}`)).body;
      return Number(vm.device?.services?.exec?.stdout_bytes ?? 0);
    };
    const before = await took();
    let read = 0;
    child.stdout.on('data', (b: Buffer) => {
      read += b.byteLength;
      if (read > 4 * 1024 * 1024) child.stdout.pause(); // then never read again
    });
    try {
      const deadline = Date.now() + 60_000;
      while (read <= 4 * 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(read).toBeGreaterThan(4 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 3000));
      const a = (await took()) - before;
      await new Promise((r) => setTimeout(r, 3000));
      const b = (await took()) - before;
      // Stalled: nothing more taken from the guest, and no more than the pipes and socket buffers hold.
      expect(b).toBe(a);
      expect(b - read).toBeLessThan(32 * 1024 * 1024);
    } finally {
      child.kill('SIGKILL');
    }
    // The CLI gone, the daemon kills the command: a later exec still runs.
    const deadline = Date.now() + 30_000;
    let ps = '';
    while (Date.now() < deadline) {
      ps = (await run(['vm', 'exec', VM, '--', 'sh', '-c', 'ps | grep -c "[c]at /dev/zero"'])).stdout.toString().trim();
      if (ps === '0') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(ps).toBe('0');
  }, 180_000);
});
