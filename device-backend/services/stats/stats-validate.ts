// What a record must be beside its own ranges (stats-codec.ts): counters that only grow against the VM's
// last accepted record, a sequence number that grows per channel, and a per-VM rate limit (a token
// bucket refilled at twice the interval the host asked for). Pure: values and a clock reading in, a
// verdict out; a refused record changes nothing.
import { STATUS } from '../../layout/wire-layout.js';
import { CPU_TICK_FIELDS, type StatsRecord } from './stats-codec.js';

export const STATS_RATE = {
  /** Records a VM may send at once before the rate applies. */
  BURST: 5,
  /** Sustained: this many records per interval the host set. */
  PER_INTERVAL: 2,
} as const;

export interface RateBucket {
  tokens: number;
  atMs: number;
}

export type Verdict = { ok: true } | { ok: false; status: number; reason: string };

/** Takes one token if there is one; the bucket is updated in place only when the record is accepted (take()). */
export function rateCheck(bucket: RateBucket | undefined, nowMs: number, intervalMs: number): { ok: true; next: RateBucket } | { ok: false; status: number; reason: string } {
  const ratePerMs = STATS_RATE.PER_INTERVAL / intervalMs;
  const tokens = bucket ? Math.min(STATS_RATE.BURST, bucket.tokens + Math.max(0, nowMs - bucket.atMs) * ratePerMs) : STATS_RATE.BURST;
  if (tokens < 1) {
    return { ok: false, status: STATUS.STATS_TOO_FREQUENT.code, reason: `more than ${STATS_RATE.BURST} records at once or ${STATS_RATE.PER_INTERVAL} per ${intervalMs} ms interval` };
  }
  return { ok: true, next: { tokens: tokens - 1, atMs: nowMs } };
}

/** Counters of `next` against the VM's last accepted record. */
export function countersCheck(prev: StatsRecord | undefined, next: StatsRecord): Verdict {
  if (!prev) return { ok: true };
  if (next.uptimeMs < prev.uptimeMs) return { ok: false, status: STATUS.STATS_COUNTER_BACKWARDS.code, reason: `uptime_ms ${next.uptimeMs} below the last record's ${prev.uptimeMs}` };
  for (const f of CPU_TICK_FIELDS) {
    if (next.cpu[f] < prev.cpu[f]) return { ok: false, status: STATUS.STATS_COUNTER_BACKWARDS.code, reason: `cpu_${f} ${next.cpu[f]} below the last record's ${prev.cpu[f]}` };
  }
  return { ok: true };
}

export function seqCheck(prevSeq: number | undefined, seq: number): Verdict {
  if (prevSeq !== undefined && seq <= prevSeq) return { ok: false, status: STATUS.STATS_COUNTER_BACKWARDS.code, reason: `seq ${seq} not above the channel's last ${prevSeq}` };
  return { ok: true };
}

/** Guest CPU split in percent of all the guest's CPU time between two records; null when no time passed. */
export interface CpuSplit {
  user: number;
  system: number;
  idle: number;
  iowait: number;
  steal: number;
  /** Everything but idle and iowait: what the guest used. */
  busy: number;
}

export function cpuSplit(prev: StatsRecord, next: StatsRecord): CpuSplit | null {
  const d = Object.fromEntries(CPU_TICK_FIELDS.map((f) => [f, next.cpu[f] - prev.cpu[f]])) as Record<(typeof CPU_TICK_FIELDS)[number], number>;
  const total = CPU_TICK_FIELDS.reduce((s, f) => s + d[f], 0);
  if (total <= 0) return null;
  const pct = (v: number): number => Math.round((v / total) * 1000) / 10;
  return {
    user: pct(d.user + d.nice),
    system: pct(d.system + d.irq + d.softirq),
    idle: pct(d.idle),
    iowait: pct(d.iowait),
    steal: pct(d.steal),
    busy: pct(total - d.idle - d.iowait),
  };
}
