// The long fuzz run, `make fuzz`: the core scenarios of core.test.ts and the decoder properties of
// decoders.test.ts, for as many operations as asked. Prints operations tried and their rate, and for each
// failure its seed, path and shrunk counterexample, with the command that replays it; exits 1 on failure.
//
//   VMGMT_FUZZ_OPS    core operations to try (default 1000000)
//   VMGMT_FUZZ_SEED   base seed (default: random, printed first)
//   VMGMT_FUZZ_PATH   with VMGMT_FUZZ_SEED: replay one failing core scenario (seed and path as printed)
import fc from 'fast-check';
import { newStats, runScenario, type RunStats } from './core-harness.js';
import { scenarioArb } from './core-scenario.js';
import { decoderProperties } from './decoder-properties.js';
import { UNIT_MAX_OPS } from './fuzz-config.js';

const SCENARIOS_PER_ROUND = 50;
const MAX_FAILURES = 10;

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${raw} is not an integer`);
  return n;
}

const rate = (n: number, ms: number): string => `${Math.round(n / Math.max(ms / 1000, 1e-3))}/s`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function errorText(details: { errorInstance: unknown }): string {
  const e = details.errorInstance;
  return e instanceof Error ? (e.message.split('\n').slice(0, 12).join('\n      ')) : String(e);
}

interface Failure {
  what: string;
  seed: number;
  path: string | null;
  counterexample: string;
  error: string;
  replay: string;
}

function printFailure(f: Failure): void {
  console.log(`FAILURE ${f.what}`);
  console.log(`  seed ${f.seed}, path ${f.path}`);
  console.log(`  replay: ${f.replay}`);
  console.log(`  counterexample (shrunk): ${f.counterexample.length > 4000 ? `${f.counterexample.slice(0, 4000)}…` : f.counterexample}`);
  console.log(`  error: ${f.error}`);
}

async function replay(seed: number, path: string): Promise<number> {
  const stats = newStats();
  console.log(`replaying core scenario seed ${seed} path ${path}`);
  const details = await fc.check(fc.asyncProperty(scenarioArb(UNIT_MAX_OPS), (s) => runScenario(s, stats)), { seed, path, numRuns: SCENARIOS_PER_ROUND });
  if (!details.failed) {
    console.log('the scenario passes now');
    return 0;
  }
  console.log(`counterexample: ${fc.stringify(details.counterexample)}`);
  console.log(`error: ${errorText(details)}`);
  return 1;
}

async function main(): Promise<number> {
  const targetOps = envInt('VMGMT_FUZZ_OPS', 1_000_000);
  const seed = envInt('VMGMT_FUZZ_SEED', (Math.random() * 2 ** 31) | 0);
  const path = process.env.VMGMT_FUZZ_PATH;
  if (path) return replay(seed, path);

  console.log(`vmgmt fuzz: ${targetOps} core operations, seed ${seed} (VMGMT_FUZZ_OPS, VMGMT_FUZZ_SEED to change)`);
  const failures: Failure[] = [];

  // Decoders: every property, with runs in proportion to the core operations asked for.
  const props = decoderProperties();
  const runsPerProp = Math.max(100, Math.round(targetOps / 50));
  const decoderStart = Date.now();
  let cases = 0;
  for (const p of props) {
    const details = fc.check(p.property, { seed, numRuns: runsPerProp });
    cases += details.numRuns;
    if (details.failed) {
      const f: Failure = {
        what: `decoder property "${p.group} › ${p.name}"`,
        seed: details.seed,
        path: details.counterexamplePath,
        counterexample: fc.stringify(details.counterexample),
        error: errorText(details),
        replay: `VMGMT_FUZZ_SEED=${details.seed} VMGMT_FUZZ_PATH=${details.counterexamplePath} npx vitest run --project unit device-backend/fuzz/decoders.test.ts -t '${p.name.replace(/'/g, "'\\''")}'`,
      };
      failures.push(f);
      printFailure(f);
    }
  }
  const decoderMs = Date.now() - decoderStart;
  console.log(`decoders: ${props.length} properties × ${runsPerProp} runs = ${cases} cases in ${seconds(decoderMs)} (${rate(cases, decoderMs)}), ${failures.length} failures`);

  // The core: rounds of scenarios, each round its own seed, until the operations are done.
  const stats: RunStats = newStats();
  const coreStart = Date.now();
  let lastReport = coreStart;
  let scenarios = 0;
  let coreFailures = 0;
  for (let round = 0; stats.ops < targetOps && failures.length < MAX_FAILURES; round++) {
    const roundSeed = (seed + round * 7919) | 0;
    const opsBefore = stats.ops;
    const details = await fc.check(fc.asyncProperty(scenarioArb(UNIT_MAX_OPS), (s) => runScenario(s, stats)), { seed: roundSeed, numRuns: SCENARIOS_PER_ROUND });
    scenarios += details.numRuns;
    if (details.failed) {
      coreFailures++;
      const f: Failure = {
        what: `core scenario (round ${round})`,
        seed: details.seed,
        path: details.counterexamplePath,
        counterexample: fc.stringify(details.counterexample),
        error: errorText(details),
        replay: `VMGMT_FUZZ_SEED=${details.seed} VMGMT_FUZZ_PATH=${details.counterexamplePath} make fuzz`,
      };
      failures.push(f);
      printFailure(f);
    }
    if (stats.ops === opsBefore) throw new Error('a round of scenarios ran no operations');
    const now = Date.now();
    if (now - lastReport >= 10_000) {
      lastReport = now;
      console.log(`core: ${stats.ops} operations, ${scenarios} scenarios, ${rate(stats.ops, now - coreStart)}, ${coreFailures} failures`);
    }
  }
  const coreMs = Date.now() - coreStart;
  console.log(
    `core: ${stats.ops} operations in ${seconds(coreMs)} (${rate(stats.ops, coreMs)}), ${scenarios} scenarios, ` +
      `${stats.goodAnswers} answers checked on well-behaved channels, ${stats.accesses} memory accesses checked, ${coreFailures} failures`,
  );
  const seen = stats.seen ?? {};
  const counter = (k: string) => seen[k] ?? 0;
  console.log(
    `  device A: ${counter('device A messages')} messages served, ${counter('device A protocolErrors')} protocol errors, ` +
      `${counter('device A channelResets')} channel resets, ${counter('device A deviceResets')} device resets, ${counter('device A restarts')} restarts`,
  );
  console.log(`  device B: ${counter('device B messages')} messages served, ${counter('device B protocolErrors')} protocol errors`);
  console.log(failures.length === 0 ? 'no failures' : `${failures.length} failures (seeds above)`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 2;
  },
);
