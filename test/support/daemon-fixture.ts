// A real vmgmt daemon in its own process with its own state and runtime directories, for integration
// tests: HTTP over its UNIX socket, kill -9 and restart, guest commands, and a cleanup that leaves no
// QEMU, socket or directory behind even when the daemon is dead.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GuestControlClient } from '../../orchestrator/guest-control/guest-control-client.js';
import { rawApiRequest, type RawApiAnswer } from '../../orchestrator/api/raw-api-request.js';
import { findRepoRoot } from '../../orchestrator/vm/repo-root.js';
import { qemuProcessesMentioning } from './leftovers.js';
import { waitFor } from './wait-for.js';

export type ApiResponse<T = any> = RawApiAnswer<T>;

export class DaemonFixture {
  private child: ChildProcess | undefined;
  private output = '';
  private previousOutput = '';
  readonly stateDir: string;
  readonly runtimeDir: string;
  readonly socketPath: string;

  private constructor(readonly baseDir: string) {
    this.stateDir = path.join(baseDir, 'state');
    this.runtimeDir = path.join(baseDir, 'run');
    this.socketPath = path.join(this.runtimeDir, 'vmgmt.sock');
  }

  /**
   * With `config`, the daemon runs with `--config` naming a file of it (writeConfig changes it; SIGHUP reloads).
   * `prefix` runs the daemon through a command (e.g. `nsenter --net=/run/netns/NS`, which execs it: the pid
   * stays the daemon's; `netns: NS` is `ip netns exec NS`); `args` are more `vmgmt daemon` flags (`--cluster URL`).
   */
  static async start(opts: { config?: unknown; readyTimeoutMs?: number; netns?: string; prefix?: string[]; args?: string[] } = {}): Promise<DaemonFixture> {
    const d = new DaemonFixture(mkdtempSync(path.join(tmpdir(), 'vmgmt-it-')));
    if (opts.netns !== undefined) d.netns = opts.netns;
    if (opts.config !== undefined) d.writeConfig(opts.config);
    if (opts.readyTimeoutMs !== undefined) d.readyTimeoutMs = opts.readyTimeoutMs;
    d.prefix = opts.prefix ?? [];
    d.args = opts.args ?? [];
    await d.startDaemon();
    return d;
  }

  private configPath: string | undefined;
  /** The daemon (and so its QEMUs) runs in this network namespace (`ip netns exec`), for bridge tests. */
  private netns: string | undefined;
  private readyTimeoutMs = 20_000;
  private prefix: string[] = [];
  private args: string[] = [];

  /** Writes the daemon's config file (used by the next start; a running daemon reads it on SIGHUP). */
  writeConfig(config: unknown): void {
    this.configPath = path.join(this.baseDir, 'config.json');
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
  }

  /** SIGHUP: the daemon reloads its config file. */
  hangup(): void {
    this.child?.kill('SIGHUP');
  }

  /** Whether the current daemon process is still running (it was started and has not exited). */
  get daemonRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The current daemon process's pid, if one was started. */
  get daemonPid(): number | undefined {
    return this.child?.pid;
  }

  /** Everything the daemon processes of this fixture printed. */
  get log(): string {
    return this.previousOutput + this.output;
  }

  get cliPath(): string {
    const cli = path.join(findRepoRoot(), 'dist/orchestrator/cli/vmgmt.js');
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\` (the daemon runs from compiled JavaScript)`);
    return cli;
  }

  async startDaemon(): Promise<void> {
    this.previousOutput += this.output;
    this.output = '';
    const config = this.configPath === undefined ? [] : ['--config', this.configPath];
    const argv = [process.execPath, this.cliPath, 'daemon', ...config, '--state-dir', this.stateDir, '--runtime-dir', this.runtimeDir, ...this.args];
    // ip netns exec execs the daemon in place: the child's pid is the daemon's.
    const prefix = this.netns === undefined ? this.prefix : ['ip', 'netns', 'exec', this.netns, ...this.prefix];
    const [command, ...rest] = [...prefix, ...argv] as [string, ...string[]];
    const child = spawn(command, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (b: Buffer) => (this.output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (this.output += b.toString()));
    this.child = child;
    const deadline = Date.now() + this.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${this.output}`);
      if (this.output.includes('"msg":"ready"')) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`daemon not ready within ${this.readyTimeoutMs} ms:\n${this.output}`);
  }

  /** SIGKILL: no cleanup of any kind runs in the daemon. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async sigterm(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return exited;
  }

  api<T = any>(method: string, urlPath: string, body?: unknown, timeoutMs = 120_000): Promise<ApiResponse<T>> {
    return rawApiRequest<T>(this.socketPath, method, urlPath, body, timeoutMs);
  }

  async waitFor(name: string, done: (vm: any) => boolean, timeoutMs = 60_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: any;
    while (Date.now() < deadline) {
      last = (await this.api('GET', `/v1/vms/${name}`)).body;
      if (done(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`VM ${name} did not reach the expected state within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
  }

  /** Runs the real `vmgmt` CLI against this daemon. */
  cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [this.cliPath, '--socket', this.socketPath, ...args], { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  /**
   * Starts the real `vmgmt` CLI and hands its stdout to onStdout as it arrives (a copy's --json progress),
   * so a test can act in the middle of it. `done` settles when the CLI exits.
   */
  cliStreaming(args: string[], onStdout: (all: string) => void): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
    const child = spawn(process.execPath, [this.cliPath, '--socket', this.socketPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => {
      stdout += b.toString();
      onStdout(stdout);
    });
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
    );
    return { child, done };
  }

  get transferDir(): string {
    return path.join(this.runtimeDir, 'transfers');
  }

  /** Runs a command in the guest over its control channel (ttyS1). */
  /** Waits until the VM's guest agent serves (it has put a channel into AGENT mode). */
  async waitForAgent(name: string, timeoutMs = 90_000, everyMs = 500): Promise<void> {
    await waitFor(`the guest agent of ${name}`, async () => (/"mode":"agent"/.test((await this.guest(name, 'vmgmt-guest info --json', timeoutMs)).stdout) ? true : undefined), timeoutMs, everyMs);
  }

  async guest(name: string, command: string, timeoutMs = 60_000): Promise<{ exitCode: number; stdout: string }> {
    const client = await GuestControlClient.connect(path.join(this.runtimeDir, 'vms', name, 'control.sock'), { timeoutMs: 10_000 });
    try {
      await client.waitReady({ timeoutMs: 60_000 });
      return await client.run(command, { timeoutMs });
    } finally {
      client.close();
    }
  }

  /** Kills the daemon and every QEMU under this fixture's directories, then removes them. */
  async cleanup(): Promise<string[]> {
    await this.kill9();
    for (const line of qemuProcessesMentioning(this.baseDir)) {
      const pid = Number(line.trim().split(/\s+/)[0]);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const deadline = Date.now() + 10_000;
    while (qemuProcessesMentioning(this.baseDir).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const left = qemuProcessesMentioning(this.baseDir);
    removeCgroups(this.baseDir);
    rmSync(this.baseDir, { recursive: true, force: true });
    return left;
  }
}

function removeCgroups(_baseDir: string): void {
  // Per-VM cgroups are named by VM: the daemon removes them when a VM stops; an empty leftover is harmless
  // but tidy it up for names the tests use.
  try {
    // Only groups with no process left (a VM still running, maybe another test's, is left alone); the vCPU
    // sub-group (scheduler) first: a daemon killed with -9 leaves it, and the parent cannot go before it.
    execFileSync('sh', ['-c', 'for d in /sys/fs/cgroup/*/vmgmt/it-* /sys/fs/cgroup/vmgmt/it-*; do [ -d "$d" ] || continue; grep -q . "$d/cgroup.procs" && continue; [ -d "$d/vcpus" ] && ! grep -q . "$d/vcpus/cgroup.procs" && rmdir "$d/vcpus"; rmdir "$d"; done 2>/dev/null; true']);
  } catch {
    // nothing to remove
  }
}
