// The daemon's statistics of every VM: a bounded time series per VM (an hour at the default interval),
// the validation state records are checked against, the host's own figures (vCPU use, run delay) and the
// share the scheduler decided. One object shared by every VM's stats service, like the chat hub. Pure:
// the clock is passed in; nothing here touches files or sockets.
import { STATS_LIMITS } from '../../layout/wire-layout.js';
import type { ShareNotice, StatsRecord } from './stats-codec.js';
import { countersCheck, cpuSplit, type CpuSplit, rateCheck, type RateBucket, seqCheck, type Verdict } from './stats-validate.js';

/** Samples kept per VM: an hour at the default interval of 1 s. */
export const STATS_SERIES_SAMPLES = 3600;

export interface StatsSample {
  /** Host time the record was accepted, ms since the epoch. */
  atMs: number;
  seq: number;
  uptimeMs: number;
  /** Null for the first record after a (re)start: no interval to compare with. */
  cpu: CpuSplit | null;
  memTotalKiB: number;
  memAvailableKiB: number;
  load: [number, number, number];
  runnable: number;
  cpus: number;
  psi: StatsRecord['psi'];
  demand: number | null;
  demandReason: string;
}

/** What the host measured of the VM's vCPU threads over the scheduler's last period. */
export interface HostFigures {
  atMs: number;
  /** CPU time the vCPU threads got, percent of one host CPU. */
  vcpuPercent: number;
  /** Time they waited runnable on a run queue, percent of the period (schedstat). */
  runDelayPercent: number;
  vcpuThreads: number;
}

export interface ShareState extends ShareNotice {
  atMs: number;
  /** cgroup v1 cpu.shares, v2 cpu.weight, setpriority, or none. */
  mechanism: string;
}

class VmStats {
  readonly samples: StatsSample[] = [];
  last: StatsRecord | undefined;
  bucket: RateBucket | undefined;
  readonly seqByChannel = new Map<number, number>();
  host: HostFigures | null = null;
  share: ShareState | null = null;
  accepted = 0;
  refused = 0;
}

export interface StatsHubOptions {
  /** The interval the host asks guests for, read when needed (a config reload changes it). */
  intervalMs: () => number;
  nowMs?: () => number;
  samples?: number;
}

export class StatsHub {
  private readonly vms = new Map<string, VmStats>();
  private readonly nowMs: () => number;
  private readonly capacity: number;
  private readonly listeners = new Set<(vm: string) => void>();

  constructor(private readonly opts: StatsHubOptions) {
    this.nowMs = opts.nowMs ?? Date.now;
    this.capacity = opts.samples ?? STATS_SERIES_SAMPLES;
  }

  intervalMs(): number {
    return Math.min(STATS_LIMITS.MAX_INTERVAL_MS, Math.max(STATS_LIMITS.MIN_INTERVAL_MS, this.opts.intervalMs()));
  }

  private entry(vm: string): VmStats {
    let e = this.vms.get(vm);
    if (!e) this.vms.set(vm, (e = new VmStats()));
    return e;
  }

  /** Checks a decoded record and, only when it passes, adds it to the VM's series. */
  accept(vm: string, channel: number, record: StatsRecord): Verdict {
    const e = this.entry(vm);
    const now = this.nowMs();
    const rate = rateCheck(e.bucket, now, this.intervalMs());
    // A refused record costs its token too: a guest sending garbage fast is held to the same rate.
    if (rate.ok) e.bucket = rate.next;
    const verdict = !rate.ok ? rate : [countersCheck(e.last, record), seqCheck(e.seqByChannel.get(channel), record.seq)].find((v) => !v.ok) ?? { ok: true as const };
    if (!verdict.ok) {
      e.refused++;
      return verdict;
    }
    e.seqByChannel.set(channel, record.seq);
    const sample: StatsSample = {
      atMs: now,
      seq: record.seq,
      uptimeMs: record.uptimeMs,
      cpu: e.last ? cpuSplit(e.last, record) : null,
      memTotalKiB: record.memTotalKiB,
      memAvailableKiB: record.memAvailableKiB,
      load: record.load,
      runnable: record.runnable,
      cpus: record.cpus,
      psi: record.psi,
      demand: record.demand,
      demandReason: record.reason,
    };
    e.last = record;
    e.accepted++;
    e.samples.push(sample);
    if (e.samples.length > this.capacity) e.samples.splice(0, e.samples.length - this.capacity);
    for (const l of this.listeners) l(vm);
    return { ok: true };
  }

  /** A record refused before the hub saw it (it did not decode): counted with the others. */
  noteRefused(vm: string): void {
    this.entry(vm).refused++;
  }

  /** A new boot (or a reset device): counters start again, the series stays. */
  resetBaseline(vm: string): void {
    const e = this.entry(vm);
    e.last = undefined;
    e.seqByChannel.clear();
  }

  channelGone(vm: string, channel: number): void {
    this.vms.get(vm)?.seqByChannel.delete(channel);
  }

  /** The declared demand of the VM's last record, if it is recent (three intervals) and still holds. */
  demand(vm: string): { demand: number; reason: string } | null {
    const e = this.vms.get(vm);
    const s = e?.samples.at(-1);
    if (!e || !s || s.demand === null) return null;
    if (this.nowMs() - s.atMs > 3 * this.intervalMs() + 1000) return null;
    return { demand: s.demand, reason: s.demandReason };
  }

  setHost(vm: string, figures: HostFigures): void {
    this.entry(vm).host = figures;
  }

  setShare(vm: string, share: ShareState | null): void {
    this.entry(vm).share = share;
  }

  forget(vm: string): void {
    this.vms.delete(vm);
  }

  view(vm: string, limit?: number): { samples: StatsSample[]; host: HostFigures | null; share: ShareState | null; accepted: number; refused: number } {
    const e = this.vms.get(vm);
    if (!e) return { samples: [], host: null, share: null, accepted: 0, refused: 0 };
    const samples = limit !== undefined ? e.samples.slice(Math.max(0, e.samples.length - limit)) : [...e.samples];
    return { samples, host: e.host, share: e.share, accepted: e.accepted, refused: e.refused };
  }

  /** Called with the VM's name after each accepted record. */
  onRecord(listener: (vm: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
