// The CPU scheduling policy: from what a guest declares (demand 0..100) and what the host measures of its
// vCPU threads (CPU time, run-queue delay), the weight its vCPU threads get now. Pure: values in, a
// decision out (with its reason in words); the daemon applies it (cpu-control.ts).
//
//   demand d -> factor  0.25 + 0.75 d/50   (d <= 50: 0.25 at 0, 1 at 50)
//                       1 + 3 (d-50)/50    (d > 50: 4 at 100)
//   no demand declared (or none recent)   -> factor 1: the base weight
//   weight = base x factor, within 1..10000
//
// A weight above the base is a boost. A VM may be boosted for boostBudgetSec in total: the budget drains
// while it is boosted and its vCPUs are busy (boosting an idle VM costs nothing), and refills at a quarter of
// real time while it is not boosted. A VM that spends its budget is held at its base weight until the budget
// is half full again (no flapping at every tick). The hard cap (capPercent of one host CPU) always applies.
import { STATS_SHARE_FLAG } from '../../../device-backend/layout/wire-layout.js';

export const POLICY = {
  MIN_WEIGHT: 1,
  MAX_WEIGHT: 10_000,
  /** vCPU use (percent of a host CPU) below which a boosted VM does not spend budget. */
  BUSY_PERCENT: 5,
  /** Budget refill per ms while not boosted. */
  REFILL_PER_MS: 0.25,
  /** A spent budget must refill to this part before boosting again. */
  RESUME_AT: 0.5,
  /** Run-queue delay (percent of the period) above which the VM counts as contended (in the reason). */
  CONTENDED_PERCENT: 10,
} as const;

export interface CpuLimits {
  /** Base weight, cgroup v2 scale (default 100). */
  weight: number;
  /** Hard cap, percent of one host CPU. */
  capPercent?: number | undefined;
  boostBudgetSec: number;
}

export interface PolicyInput {
  limits: CpuLimits;
  /** Declared demand 0..100 from the guest's recent records, or null. */
  demand: { demand: number; reason: string } | null;
  /** Percent of one host CPU the vCPU threads used over the last period; null before the first period. */
  vcpuPercent: number | null;
  runDelayPercent: number | null;
  /** Time since the previous decision. */
  elapsedMs: number;
  enabled: boolean;
}

export interface BoostState {
  leftMs: number;
  /** Spent: held at base until leftMs >= RESUME_AT x budget. */
  spent: boolean;
}

export interface PolicyDecision {
  weight: number;
  capPercent: number | null;
  boost: BoostState;
  flags: number;
  reason: string;
}

export function demandFactor(demand: number): number {
  return demand <= 50 ? 0.25 + (0.75 * demand) / 50 : 1 + (3 * (demand - 50)) / 50;
}

export function initialBoost(limits: CpuLimits): BoostState {
  return { leftMs: limits.boostBudgetSec * 1000, spent: false };
}

const clampWeight = (w: number): number => Math.min(POLICY.MAX_WEIGHT, Math.max(POLICY.MIN_WEIGHT, Math.round(w)));

export function decide(input: PolicyInput, prev: BoostState): PolicyDecision {
  const { limits } = input;
  const base = clampWeight(limits.weight);
  const budgetMs = limits.boostBudgetSec * 1000;
  const cap = limits.capPercent ?? null;
  const capFlag = cap !== null ? STATS_SHARE_FLAG.CAPPED : 0;
  const capText = cap !== null ? `, capped at ${cap}% of a CPU` : '';
  if (!input.enabled) {
    return { weight: base, capPercent: cap, boost: prev, flags: capFlag, reason: `policy off: base weight ${base}${capText}` };
  }
  const flags = STATS_SHARE_FLAG.POLICY_ON | capFlag;
  const measured = input.vcpuPercent === null ? '' : `; vCPUs used ${Math.round(input.vcpuPercent)}%${(input.runDelayPercent ?? 0) >= POLICY.CONTENDED_PERCENT ? `, waited ${Math.round(input.runDelayPercent!)}% (contended)` : ''}`;
  const refill = (b: BoostState): BoostState => {
    const leftMs = Math.min(budgetMs, b.leftMs + input.elapsedMs * POLICY.REFILL_PER_MS);
    return { leftMs, spent: b.spent && leftMs < budgetMs * POLICY.RESUME_AT };
  };
  if (!input.demand) {
    return { weight: base, capPercent: cap, boost: refill(prev), flags, reason: `no demand declared: base weight ${base}${capText}${measured}` };
  }
  const { demand, reason } = input.demand;
  const why = reason ? ` (${reason})` : '';
  const wanted = clampWeight(base * demandFactor(demand));
  if (wanted <= base) {
    return { weight: wanted, capPercent: cap, boost: refill(prev), flags, reason: `demand ${demand}${why}: weight ${wanted} of base ${base}${capText}${measured}` };
  }
  if (prev.spent || prev.leftMs <= 0) {
    const boost = refill({ leftMs: Math.max(0, prev.leftMs), spent: true });
    return {
      weight: base,
      capPercent: cap,
      boost,
      flags: flags | STATS_SHARE_FLAG.BUDGET_SPENT,
      reason: `demand ${demand}${why} but the boost budget of ${limits.boostBudgetSec} s is used up: base weight ${base} until it refills${capText}${measured}`,
    };
  }
  const busy = (input.vcpuPercent ?? 100) >= POLICY.BUSY_PERCENT;
  const leftMs = busy ? Math.max(0, prev.leftMs - input.elapsedMs) : prev.leftMs;
  return {
    weight: wanted,
    capPercent: cap,
    boost: { leftMs, spent: leftMs <= 0 },
    flags: flags | STATS_SHARE_FLAG.BOOSTED,
    reason: `demand ${demand}${why}: boosted to weight ${wanted} (base ${base}), ${Math.round(leftMs / 1000)} s of ${limits.boostBudgetSec} s boost budget left${capText}${measured}`,
  };
}

/** cgroup v1 cpu.shares for a v2-scale weight (100 <-> 1024). */
export function weightToShares(weight: number): number {
  return Math.max(2, Math.min(262_144, Math.round((weight * 1024) / 100)));
}

/** A nice value whose CFS weight is closest to weight/100 of nice 0's (each nice step is about 1.25x). */
export function weightToNice(weight: number): number {
  return Math.max(-20, Math.min(19, Math.round(-Math.log(weight / 100) / Math.log(1.25)))) || 0;
}
