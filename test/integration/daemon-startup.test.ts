// One daemon per state directory, and a daemon stopped at any point of its start-up leaves nothing behind.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findRepoRoot } from '../../orchestrator/vm/repo-root.js';

const cli = path.join(findRepoRoot(), 'dist/orchestrator/cli/vmgmt.js');

interface Daemon {
  output: () => string;
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill: (signal: NodeJS.Signals) => void;
  waitFor: (text: string) => Promise<void>;
}

function daemon(base: string): Daemon {
  const child = spawn(process.execPath, [cli, 'daemon', '--state-dir', path.join(base, 'state'), '--runtime-dir', path.join(base, 'run')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return {
    output: () => out,
    exited,
    kill: (signal) => void child.kill(signal),
    waitFor: async (text) => {
      const deadline = Date.now() + 30_000;
      while (!out.includes(text)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${text} from the daemon:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

describe('daemon start-up', () => {
  let base: string;
  const running: Daemon[] = [];
  beforeEach(() => {
    base = mkdtempSync(path.join(tmpdir(), 'vmgmt-startup-'));
  });
  afterEach(async () => {
    for (const d of running.splice(0)) {
      d.kill('SIGKILL');
      await d.exited;
    }
    rmSync(base, { recursive: true, force: true });
  });

  it('a second daemon on the same state directory refuses to start and names the first one', async () => {
    const first = daemon(base);
    running.push(first);
    await first.waitFor('"msg":"ready"');
    const second = daemon(base);
    const { code } = await second.exited;
    expect(code).not.toBe(0);
    const pid = readFileSync(path.join(base, 'state', 'daemon.lock'), 'utf8').trim();
    expect(second.output()).toMatch(new RegExp(`another vmgmt daemon \\(pid ${pid}\\) is using the state directory`));
    // The first is untouched: its socket is still there.
    expect(existsSync(path.join(base, 'run', 'vmgmt.sock'))).toBe(true);
  });

  it.each(['"msg":"vmgmt daemon started"', '"msg":"ready"'])('SIGTERM right after %s: exits 0 and leaves no socket and no lock holder', async (at) => {
    const d = daemon(base);
    await d.waitFor(at);
    d.kill('SIGTERM');
    const { code } = await d.exited;
    expect(code, d.output()).toBe(0);
    expect(d.output()).toMatch(/"msg":"daemon stopped"/);
    expect(existsSync(path.join(base, 'run', 'vmgmt.sock'))).toBe(false);
    expect(readFileSync(path.join(base, 'state', 'daemon.lock'), 'utf8')).toBe('');
    // The next daemon starts at once on the same directories.
    const next = daemon(base);
    running.push(next);
    await next.waitFor('"msg":"ready"');
  });

  it.each([0, 50, 150, 300])('SIGTERM %i ms after the start leaves no socket, and the next daemon starts', async (afterMs) => {
    const d = daemon(base);
    await new Promise((r) => setTimeout(r, afterMs));
    d.kill('SIGTERM');
    const { code, signal } = await d.exited;
    // Before Node has installed the daemon's handler the signal ends it; after, it stops cleanly with 0.
    expect(signal === 'SIGTERM' || code === 0, d.output()).toBe(true);
    expect(existsSync(path.join(base, 'run', 'vmgmt.sock'))).toBe(false);
    const next = daemon(base);
    running.push(next);
    await next.waitFor('"msg":"ready"');
  });
});
