// The README's walk-through with the real `vmgmt` CLI: define two VMs from the test image, start them,
// list them, survive a daemon kill -9, stop them.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonFixture } from '../support/daemon-fixture.js';

describe('vmgmt CLI walk-through', () => {
  let d: DaemonFixture;
  const vmgmt = (...args: string[]) => d.cli(...args);

  beforeAll(async () => {
    d = await DaemonFixture.start();
  });

  afterAll(async () => {
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  it('create, start, ls, daemon kill -9, ls, stop', async () => {
    for (const name of ['it-cli-1', 'it-cli-2']) {
      const file = path.join(d.baseDir, `${name}.json`);
      writeFileSync(file, JSON.stringify({ name, accel: 'tcg' }));
      const created = await vmgmt('vm', 'create', '-f', file);
      expect(created.code, created.stderr).toBe(0);
      const started = await vmgmt('vm', 'start', name);
      expect(started.code, started.stderr).toBe(0);
      expect(started.stdout).toMatch(new RegExp(`started vm ${name} \\(pid \\d+\\)`));
      // Booted far enough to handle the power button that `vm stop` presses.
      expect((await d.guest(name, 'true')).exitCode).toBe(0);
    }
    // The serial console: type a command at the guest's shell, read its answer, detach with Ctrl-].
    const consoleOut = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [d.cliPath, '--socket', d.socketPath, 'vm', 'console', 'it-cli-1'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const giveUp = setTimeout(() => child.kill(), 30_000);
      child.on('error', reject);
      child.on('exit', () => {
        clearTimeout(giveUp);
        clearInterval(detach);
        resolve(out);
      });
      child.stdin.write('echo console-$((6*7))\n');
      const detach = setInterval(() => {
        if (out.includes('console-42')) {
          clearInterval(detach);
          child.stdin.write('\x1d');
        }
      }, 100);
    });
    expect(consoleOut).toContain('console-42');
    expect(consoleOut).toMatch(/detached from vm it-cli-1/);

    const ls = await vmgmt('vm', 'ls');
    expect(ls.stdout).toMatch(/NAME\s+STATE\s+PID/);
    expect(ls.stdout).toMatch(/it-cli-1\s+running/);
    expect(ls.stdout).toMatch(/it-cli-2\s+running/);

    await d.kill9();
    const noDaemon = await vmgmt('vm', 'ls');
    expect(noDaemon.code).toBe(3);
    expect(noDaemon.stderr).toMatch(/daemon is not running/);

    await d.startDaemon();
    const after = JSON.parse((await vmgmt('vm', 'ls', '--json')).stdout) as { vms: { name: string; state: string }[] };
    expect(after.vms.map((v) => [v.name, v.state])).toEqual([['it-cli-1', 'running'], ['it-cli-2', 'running']]);
    const inspect = JSON.parse((await vmgmt('vm', 'inspect', 'it-cli-1', '--json')).stdout);
    expect(inspect.device).toMatchObject({ attached: true, origin: 'reattached' });

    for (const name of ['it-cli-1', 'it-cli-2']) {
      const stopped = await vmgmt('vm', 'stop', name);
      expect(stopped.code, stopped.stderr).toBe(0);
    }
    const final = JSON.parse((await vmgmt('vm', 'ls', '--json')).stdout) as { vms: { state: string }[] };
    expect(final.vms.map((v) => v.state)).toEqual(['stopped', 'stopped']);
    const missing = await vmgmt('vm', 'start', 'nope');
    expect(missing.code).toBe(4);
  });
});
