// bench/agent-update: the guest agent's disruption window when its driver is replaced, in one TCG guest with
// the real device and driver: the in-place update (`vmgmt agent update`: trial, handover of vfio and the
// relay, rollback ready) against its peer, a plain restart of the agent (SIGTERM, the test image's init
// respawns it). `make bench-agent-update` (or node dist/bench/agent-update.js). Target: under 500 ms.
//   no agent (host): ms during which the host has no agent channel that said hello, from the service's
//     own events (a channel reset, then the next AGENT_HELLO).
//   relay paused (guest): ms from the old agent pausing its interrupt relay to the new agent's hello,
//     measured in the guest with CLOCK_MONOTONIC (AGENT_HELLO gap_us); for the restart, the host window.
//   total: the whole operation as the host waits for it (staging copy and checks included).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { AgentEvent } from '../device-backend/services/agent/agent-update.js';
import { findRepoRoot } from '../orchestrator/vm/repo-root.js';
import { type DeviceVm, startDeviceVm } from '../orchestrator/vm/device-vm.js';

const UPDATES = Number(process.env.VMGMT_BENCH_AGENT_UPDATES ?? 6);
const RESTARTS = Number(process.env.VMGMT_BENCH_AGENT_RESTARTS ?? 3);
const TARGET_MS = 500;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Windows without an attached agent, from the service's events. */
class Attached {
  private readonly live = new Set<number>();
  private emptySince: number | undefined;
  readonly windows: number[] = [];
  readonly hellos: Array<{ atMs: number; version: string }> = [];

  constructor(initial: number[]) {
    for (const c of initial) this.live.add(c);
  }

  on(e: AgentEvent): void {
    if (e.kind === 'hello') {
      this.hellos.push({ atMs: e.atMs, version: e.version });
      if (this.live.size === 0 && this.emptySince !== undefined) this.windows.push(e.atMs - this.emptySince);
      this.emptySince = undefined;
      this.live.add(e.channel);
    } else {
      this.live.delete(e.channel);
      if (this.live.size === 0) this.emptySince = e.atMs;
    }
  }
}

async function waitFor(what: string, ok: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const repo = findRepoRoot();
  const dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-bench-agent-update-'));
  let vm: DeviceVm | undefined;
  try {
    const builds = ['1.0.1-bench-a', '1.0.1-bench-b'].map((v) => ({ version: v, file: path.join(dir, `vmgmt-guest-${v}`) }));
    console.log(`building ${builds.map((b) => b.version).join(' and ')} (guest-driver, make variant)...`);
    await Promise.all(builds.map((b) => execa('make', ['-s', '-C', path.join(repo, 'guest-driver'), 'variant', `VERSION=${b.version}`, `OUT=${b.file}`])));
    console.log('booting one TCG guest (1 vCPU)...');
    vm = await startDeviceVm({ name: 'bench-agent-update', accel: 'tcg' });
    const updater = vm.agentUpdate;
    await waitFor('the agent to report in', () => updater.current !== undefined);

    // Peer: the agent restarted by its supervisor.
    const restart = new Attached([updater.current!.channel]);
    const stopRestart = updater.watch((e) => restart.on(e));
    const restartTotals: number[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      const before = updater.current!;
      const hellos = restart.hellos.length;
      const t0 = performance.now();
      await vm.control.run(`kill ${before.pid}`, { timeoutMs: 30_000 });
      await waitFor('the restarted agent', () => restart.hellos.length > hellos && updater.current !== undefined && updater.current.pid !== before.pid);
      restartTotals.push(performance.now() - t0);
      process.stdout.write(`  restart ${i + 1}/${RESTARTS}: ${restart.windows.at(-1)?.toFixed(0) ?? '?'} ms without an agent\n`);
    }
    stopRestart();

    // The in-place update, alternating two builds.
    const update = new Attached([updater.current!.channel]);
    const stopUpdate = updater.watch((e) => update.on(e));
    const gaps: number[] = [];
    const totals: number[] = [];
    const hostWindows: number[] = [];
    for (let i = 0; i < UPDATES; i++) {
      const b = builds[i % builds.length]!;
      const windowsBefore = update.windows.length;
      const r = await updater.update({ binary: readFileSync(b.file), tempDir: dir });
      if (r.toVersion !== b.version) throw new Error(`updated to ${r.toVersion}, not ${b.version}`);
      gaps.push(r.gapMs);
      totals.push(r.totalMs);
      hostWindows.push(update.windows.slice(windowsBefore).reduce((a, x) => a + x, 0));
      process.stdout.write(`  update ${i + 1}/${UPDATES} to ${b.version}: relay paused ${r.gapMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms\n`);
    }
    stopUpdate();

    const rows = [
      ['method', 'runs', 'no agent (host) med/max ms', 'relay paused (guest) med/max ms', 'total med ms'],
      [
        'in-place update (handover)',
        String(UPDATES),
        `${median(hostWindows).toFixed(1)} / ${Math.max(...hostWindows).toFixed(1)}`,
        `${median(gaps).toFixed(1)} / ${Math.max(...gaps).toFixed(1)}`,
        median(totals).toFixed(0),
      ],
      [
        'restart (SIGTERM, init respawns)',
        String(RESTARTS),
        `${median(restart.windows).toFixed(1)} / ${Math.max(...restart.windows).toFixed(1)}`,
        `${median(restart.windows).toFixed(1)} / ${Math.max(...restart.windows).toFixed(1)}`,
        median(restartTotals).toFixed(0),
      ],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    console.log('');
    for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    const worst = Math.max(Math.max(...gaps), Math.max(...hostWindows));
    console.log('');
    console.log(`update vs restart, median: relay paused ${(median(restart.windows) / Math.max(median(gaps), 0.001)).toFixed(1)}x shorter; no-agent window ${median(hostWindows) === 0 ? 'none at all (the new agent attaches before the old one lets go)' : `${(median(restart.windows) / median(hostWindows)).toFixed(1)}x shorter`}`);
    console.log(`target: disruption under ${TARGET_MS} ms: ${worst < TARGET_MS ? 'met' : 'MISSED'} (worst ${worst.toFixed(1)} ms)`);
  } finally {
    await vm?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
