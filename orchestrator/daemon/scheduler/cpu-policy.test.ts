import { describe, expect, it } from 'vitest';
import { STATS_SHARE_FLAG } from '../../../device-backend/layout/wire-layout.js';
import { decide, demandFactor, initialBoost, type PolicyInput, weightToNice, weightToShares } from './cpu-policy.js';

const limits = { weight: 100, boostBudgetSec: 20 };
const input = (over: Partial<PolicyInput> = {}): PolicyInput => ({ limits, demand: null, vcpuPercent: 90, runDelayPercent: 40, elapsedMs: 1000, enabled: true, ...over });

describe('cpu policy', () => {
  it('maps demand to a factor: 0.25 at 0, 1 at 50, 4 at 100; 90 vs 10 is more than 8x', () => {
    expect([0, 50, 100].map(demandFactor)).toEqual([0.25, 1, 4]);
    expect(demandFactor(90) / demandFactor(10)).toBeGreaterThan(8);
  });

  it('keeps the base weight without a demand, and when off', () => {
    expect(decide(input(), initialBoost(limits))).toMatchObject({ weight: 100, flags: STATS_SHARE_FLAG.POLICY_ON });
    const off = decide(input({ enabled: false, demand: { demand: 100, reason: '' } }), initialBoost(limits));
    expect(off).toMatchObject({ weight: 100, flags: 0 });
    expect(off.reason).toMatch(/policy off/);
  });

  it('boosts a high demand until the budget is spent, then holds the base until it is half refilled', () => {
    let boost = initialBoost(limits);
    const hi = { demand: 90, reason: 'build' };
    const weights: number[] = [];
    for (let t = 0; t < 25; t++) {
      const d = decide(input({ demand: hi }), boost);
      weights.push(d.weight);
      boost = d.boost;
    }
    expect(weights.slice(0, 20).every((w) => w === 340)).toBe(true);
    expect(weights.slice(20)).toEqual([100, 100, 100, 100, 100]);
    const spent = decide(input({ demand: hi }), boost);
    expect(spent.flags & STATS_SHARE_FLAG.BUDGET_SPENT).toBeTruthy();
    expect(spent.reason).toMatch(/used up/);
    // Refills at a quarter of real time: 10 s of budget (half) after 40 s without boost.
    for (let t = 0; t < 40; t++) boost = decide(input({ demand: { demand: 10, reason: '' } }), boost).boost;
    expect(boost.spent).toBe(false);
    expect(decide(input({ demand: hi }), boost).weight).toBe(340);
  });

  it('spends no budget while the vCPUs are idle; lowers a low demand below the base; keeps the cap', () => {
    const idle = decide(input({ demand: { demand: 100, reason: '' }, vcpuPercent: 1 }), initialBoost(limits));
    expect(idle.boost.leftMs).toBe(20_000);
    const low = decide(input({ demand: { demand: 10, reason: '' }, limits: { ...limits, capPercent: 50 } }), initialBoost(limits));
    expect(low).toMatchObject({ weight: 40, capPercent: 50 });
    expect(low.flags & STATS_SHARE_FLAG.CAPPED).toBeTruthy();
  });

  it('converts weights to v1 shares and nice values', () => {
    expect(weightToShares(100)).toBe(1024);
    expect(weightToNice(100)).toBe(0);
    expect(weightToNice(400)).toBeLessThan(-5);
    expect(weightToNice(25)).toBeGreaterThan(5);
  });
});
