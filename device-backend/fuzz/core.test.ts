// The bounded fuzz of the whole core in `make test`: fixed seed, replayable with VMGMT_FUZZ_SEED/PATH.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { newStats, runScenario } from './core-harness.js';
import { scenarioArb } from './core-scenario.js';
import { UNIT_MAX_OPS, unitParams } from './fuzz-config.js';

describe('DeviceCore under a hostile guest', () => {
  it('never throws, stays in each channel’s memory, answers what it must, and keeps serving the others', async () => {
    const stats = newStats();
    await fc.assert(
      fc.asyncProperty(scenarioArb(UNIT_MAX_OPS), (scenario) => runScenario(scenario, stats)),
      unitParams(Number(process.env.VMGMT_FUZZ_UNIT_RUNS ?? 1000)),
    );
    console.log(`core fuzz: ${stats.ops} operations, ${stats.goodAnswers} answers checked on well-behaved channels, ${stats.accesses} memory accesses checked`);
    if (process.env.VMGMT_FUZZ_VERBOSE) console.log(Object.entries(stats.seen ?? {}).sort().map(([k, v]) => `  ${k}: ${v}`).join('\n'));
  }, 600_000); // bounded: each run waits at most ASYNC_QUIESCE_MS for thread-pool answers; slow when the pool is shared with other files
});
