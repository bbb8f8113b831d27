// The scheduler's loop: every period it measures each running VM's vCPU threads (CPU time and run-queue
// delay from /proc/PID/task/TID/schedstat; thread ids from QMP query-cpus-fast), asks the pure policy
// (cpu-policy.ts) for a weight, applies it (cpu-control.ts), records it in the stats hub, pushes it to the
// guest (STATS_SHARE) and logs each change with its reason. Stopping it restores every VM's weights.
import { readFileSync } from 'node:fs';
import type { StatsHub } from '../../../device-backend/services/stats/stats-hub.js';
import type { ShareNotice } from '../../../device-backend/services/stats/stats-codec.js';
import type { Logger } from '../logger.js';
import type { CpuControl } from './cpu-control.js';
import { type BoostState, type CpuLimits, decide, initialBoost } from './cpu-policy.js';

export interface SchedTarget {
  name: string;
  pid: number;
  limits: CpuLimits;
  /** Thread ids of the VM's vCPUs (QMP query-cpus-fast). */
  vcpuThreads(): Promise<number[]>;
  pushShare(share: ShareNotice): void;
  /** The host's stats interval changed: tell the guest. */
  intervalChanged(): void;
  log: Logger;
}

export interface SchedulerOptions {
  hub: StatsHub;
  control: CpuControl & { mechanismOf?(vm: string): string };
  log: Logger;
  config: () => { enabled: boolean; periodMs: number };
  targets: () => SchedTarget[];
  /** Default: /proc/PID/task/TID/schedstat (ns on CPU, ns waiting on a run queue). */
  readThread?: (pid: number, tid: number) => { runNs: number; waitNs: number } | null;
  nowMs?: () => number;
}

interface VmSched {
  pid: number;
  threads: number[];
  threadsAtMs: number;
  prev: Map<number, { runNs: number; waitNs: number }>;
  prevAtMs: number;
  boost: BoostState;
  applied: { weight: number; cap: number | null } | null;
  lastLogged: string;
}

const THREADS_REFRESH_MS = 30_000;

export function readSchedstat(pid: number, tid: number): { runNs: number; waitNs: number } | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return run === undefined || wait === undefined || Number.isNaN(run) || Number.isNaN(wait) ? null : { runNs: run, waitNs: wait };
  } catch {
    return null;
  }
}

export class CpuScheduler {
  private readonly vms = new Map<string, VmSched>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private lastIntervalMs: number;
  private readonly nowMs: () => number;
  private readonly readThread: (pid: number, tid: number) => { runNs: number; waitNs: number } | null;

  constructor(private readonly opts: SchedulerOptions) {
    this.nowMs = opts.nowMs ?? Date.now;
    this.readThread = opts.readThread ?? readSchedstat;
    this.lastIntervalMs = opts.hub.intervalMs();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.opts.log.info(`cpu scheduler started: ${this.opts.config().enabled ? 'policy on' : 'policy off'}, through ${this.opts.control.mechanism}, every ${this.opts.config().periodMs} ms`);
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.tick()
        .catch((err: unknown) => this.opts.log.warn('cpu scheduler tick failed', { error: (err as Error).message }))
        .finally(() => this.schedule());
    }, this.opts.config().periodMs);
    this.timer.unref();
  }

  /** One measurement and decision for every running VM. */
  async tick(): Promise<void> {
    const now = this.nowMs();
    const { enabled } = this.opts.config();
    const targets = this.opts.targets();
    const intervalMs = this.opts.hub.intervalMs();
    const intervalChanged = intervalMs !== this.lastIntervalMs;
    this.lastIntervalMs = intervalMs;
    const seen = new Set<string>();
    for (const t of targets) {
      seen.add(t.name);
      if (intervalChanged) t.intervalChanged();
      try {
        await this.tickVm(t, now, enabled);
      } catch (err) {
        t.log.warn('cpu scheduler: could not apply the share', { error: (err as Error).message });
      }
    }
    for (const name of [...this.vms.keys()]) {
      if (seen.has(name)) continue;
      this.opts.control.restore(name);
      this.vms.delete(name);
    }
  }

  private async tickVm(t: SchedTarget, now: number, enabled: boolean): Promise<void> {
    let s = this.vms.get(t.name);
    if (!s || s.pid !== t.pid) {
      if (s) this.opts.control.restore(t.name);
      s = { pid: t.pid, threads: [], threadsAtMs: 0, prev: new Map(), prevAtMs: now, boost: initialBoost(t.limits), applied: null, lastLogged: '' };
      this.vms.set(t.name, s);
    }
    if (s.threads.length === 0 || now - s.threadsAtMs > THREADS_REFRESH_MS) {
      s.threads = await t.vcpuThreads();
      s.threadsAtMs = now;
    }
    // Measure: the vCPU threads' CPU time and run-queue wait since the previous tick.
    let runNs = 0;
    let waitNs = 0;
    let complete = true;
    const next = new Map<number, { runNs: number; waitNs: number }>();
    for (const tid of s.threads) {
      const r = this.readThread(t.pid, tid);
      if (!r) {
        complete = false;
        continue;
      }
      next.set(tid, r);
      const p = s.prev.get(tid);
      if (p) {
        runNs += r.runNs - p.runNs;
        waitNs += r.waitNs - p.waitNs;
      } else {
        complete = false;
      }
    }
    if (next.size < s.threads.length) s.threadsAtMs = 0; // a thread went away: ask QMP again next time
    const elapsedMs = Math.max(1, now - s.prevAtMs);
    const measured = complete && s.prev.size > 0;
    s.prev = next;
    s.prevAtMs = now;
    const vcpuPercent = measured ? (runNs / 1e6 / elapsedMs) * 100 : null;
    const runDelayPercent = measured ? (waitNs / 1e6 / elapsedMs) * 100 : null;
    if (measured) this.opts.hub.setHost(t.name, { atMs: now, vcpuPercent: round1(vcpuPercent!), runDelayPercent: round1(runDelayPercent!), vcpuThreads: s.threads.length });

    const decision = decide({ limits: t.limits, demand: this.opts.hub.demand(t.name), vcpuPercent, runDelayPercent, elapsedMs, enabled }, s.boost);
    s.boost = decision.boost;
    // Policy off: the VM's weights are what they were before the scheduler touched them.
    let mechanism: string;
    if (!enabled && decision.capPercent === null) {
      if (s.applied) this.opts.control.restore(t.name);
      s.applied = null;
      mechanism = 'none (policy off: weights as they were)';
    } else {
      if (!s.applied || s.applied.weight !== decision.weight || s.applied.cap !== decision.capPercent || next.size !== s.threads.length) {
        this.opts.control.apply(t.name, s.threads, decision.weight, decision.capPercent);
      }
      s.applied = { weight: decision.weight, cap: decision.capPercent };
      mechanism = this.opts.control.mechanismOf?.(t.name) ?? this.opts.control.mechanism;
    }
    const notice: ShareNotice = {
      weight: decision.weight,
      baseWeight: t.limits.weight,
      capPercent: decision.capPercent,
      boostLeftMs: decision.boost.leftMs,
      flags: decision.flags,
      demand: this.opts.hub.demand(t.name)?.demand ?? null,
      reason: decision.reason,
    };
    this.opts.hub.setShare(t.name, { ...notice, atMs: now, mechanism });
    t.pushShare(notice);
    const key = `${decision.weight}/${decision.flags}/${decision.capPercent}`;
    if (key !== s.lastLogged) {
      t.log.info(`cpu share: weight ${decision.weight}${s.lastLogged ? ` (was ${s.lastLogged.split('/')[0]})` : ''}: ${decision.reason}`, { mechanism, vcpuThreads: s.threads });
      s.lastLogged = key;
    }
  }

  /** Stops the loop and restores every VM's weights (the daemon is stopping). */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    for (const name of this.vms.keys()) this.opts.control.restore(name);
    if (this.vms.size > 0) this.opts.log.info(`cpu scheduler stopped: weights of ${this.vms.size} VMs restored`);
    this.vms.clear();
  }
}

const round1 = (v: number): number => Math.round(v * 10) / 10;
