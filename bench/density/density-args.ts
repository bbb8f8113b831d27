// Flags of `make bench-density` (node dist/bench/density.js). Pure.

export interface DensityArgs {
  runs: number;
  /** Fleet sizes, each started at once through one daemon. */
  sizes: number[];
  /** Also start a fleet of this size with devices.prefaultRegions in each run (0: not). */
  prefaultSize: number;
  memoryMiB: number;
  /** From the starts being sent until a VM that has not answered a ping counts as a boot failure. */
  bootTimeoutS: number;
  /** Quiet time after the last VM came up, before idle CPU is measured. */
  settleS: number;
  idleS: number;
  /** Pings per device in the round-trip measurement. */
  pings: number;
}

export const DENSITY_DEFAULTS: DensityArgs = { runs: 3, sizes: [8, 16, 32], prefaultSize: 8, memoryMiB: 256, bootTimeoutS: 180, settleS: 10, idleS: 10, pings: 100 };

export const DENSITY_USAGE = `usage: node dist/bench/density.js [--runs N] [--sizes 8,16,32] [--prefault-size N] [--memory-mib M]
                                [--boot-timeout-s S] [--settle-s S] [--idle-s S] [--pings N]
defaults: --runs ${DENSITY_DEFAULTS.runs} --sizes ${DENSITY_DEFAULTS.sizes.join(',')} --prefault-size ${DENSITY_DEFAULTS.prefaultSize} --memory-mib ${DENSITY_DEFAULTS.memoryMiB} --boot-timeout-s ${DENSITY_DEFAULTS.bootTimeoutS} --settle-s ${DENSITY_DEFAULTS.settleS} --idle-s ${DENSITY_DEFAULTS.idleS} --pings ${DENSITY_DEFAULTS.pings}`;

const FLAGS = {
  '--runs': 'runs',
  '--sizes': 'sizes',
  '--prefault-size': 'prefaultSize',
  '--memory-mib': 'memoryMiB',
  '--boot-timeout-s': 'bootTimeoutS',
  '--settle-s': 'settleS',
  '--idle-s': 'idleS',
  '--pings': 'pings',
} as const satisfies Record<string, keyof DensityArgs>;

/** Upper bound on one fleet: names are 1-32 characters and the host has 2 cores. */
export const MAX_FLEET = 99;

export type DensityArgsResult = { ok: true; args: DensityArgs } | { ok: false; reason: string };

export function parseDensityArgs(argv: readonly string[]): DensityArgsResult {
  const args: DensityArgs = { ...DENSITY_DEFAULTS, sizes: [...DENSITY_DEFAULTS.sizes] };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const [flag, inline] = raw.includes('=') ? [raw.slice(0, raw.indexOf('=')), raw.slice(raw.indexOf('=') + 1)] : [raw, undefined];
    if (!Object.hasOwn(FLAGS, flag)) return { ok: false, reason: `unknown argument ${raw}` };
    const key = FLAGS[flag as keyof typeof FLAGS];
    const value = inline ?? argv[++i];
    if (value === undefined) return { ok: false, reason: `${flag} needs a value` };
    if (key === 'sizes') {
      const sizes = value.split(',').map((s) => Number(s.trim()));
      if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_FLEET)) return { ok: false, reason: `--sizes ${value}: a comma-separated list of integers 1..${MAX_FLEET}` };
      args.sizes = sizes;
      continue;
    }
    const n = Number(value);
    const min = key === 'prefaultSize' || key === 'settleS' ? 0 : 1;
    const max = key === 'prefaultSize' ? MAX_FLEET : key === 'memoryMiB' ? 16384 : 100_000;
    if (!Number.isInteger(n) || n < min || n > max) return { ok: false, reason: `${flag} ${value}: an integer ${min}..${max}` };
    args[key] = n;
  }
  return { ok: true, args };
}
