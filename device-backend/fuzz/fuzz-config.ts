// How hard the property tests push, and with which seed: one place for the unit runs and the long run.
// The unit runs use a fixed seed (a red `make test` is then a real, replayable failure, not bad luck);
// VMGMT_FUZZ_SEED (and VMGMT_FUZZ_PATH, from a failure report) replays or varies it.

export interface FuzzRunParams {
  seed: number;
  /** fast-check's counterexample path, to replay one failure directly. */
  path?: string;
}

export const DEFAULT_UNIT_SEED = 0x766d676d; // "vmgm"

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`${name}=${raw} is not an integer`);
  return n;
}

/** Seed and replay path for a fast-check run, from the environment or the given default. */
export function fuzzRunParams(defaultSeed: number = DEFAULT_UNIT_SEED): FuzzRunParams {
  const seed = envInt('VMGMT_FUZZ_SEED') ?? defaultSeed;
  const path = process.env.VMGMT_FUZZ_PATH;
  return path ? { seed, path } : { seed };
}

/** fast-check parameters for a unit-suite property: fixed seed, `numRuns` runs, replayable. */
export function unitParams(numRuns: number): { seed: number; numRuns: number; path?: string; endOnFailure: boolean } {
  return { ...fuzzRunParams(), numRuns, endOnFailure: false };
}

/** Longest operation sequence of one core scenario: the same in the unit run and the long run, so a
 * failure's seed and path replay in either. */
export const UNIT_MAX_OPS = 200;
