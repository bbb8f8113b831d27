import { describe, expect, it } from 'vitest';
import { DENSITY_DEFAULTS, parseDensityArgs } from './density-args.js';
import { daemonRssSlopeMiB, MIB, overRuns } from './density-report.js';
import type { FleetResult } from './fleet.js';
import { parseHostCpuTicks, parseProcessCpuTicks, parseProcessMemory, percentOfOneCore } from './proc-stats.js';

describe('density benchmark flags', () => {
  it('defaults, --flag value and --flag=value', () => {
    expect(parseDensityArgs([])).toEqual({ ok: true, args: DENSITY_DEFAULTS });
    expect(parseDensityArgs(['--runs', '1', '--sizes=2,4', '--prefault-size', '0'])).toMatchObject({ ok: true, args: { runs: 1, sizes: [2, 4], prefaultSize: 0 } });
  });

  it('refuses what it does not know, missing values and out-of-range numbers', () => {
    expect(parseDensityArgs(['--vms', '3'])).toEqual({ ok: false, reason: 'unknown argument --vms' });
    expect(parseDensityArgs(['--runs'])).toEqual({ ok: false, reason: '--runs needs a value' });
    expect(parseDensityArgs(['--runs', '0'])).toMatchObject({ ok: false, reason: expect.stringMatching(/^--runs 0: an integer 1\.\./) });
    expect(parseDensityArgs(['--sizes', '8,x'])).toMatchObject({ ok: false, reason: expect.stringMatching(/^--sizes 8,x/) });
    expect(parseDensityArgs(['--sizes', '100'])).toMatchObject({ ok: false });
  });
});

describe('/proc parsers', () => {
  it('process CPU ticks: utime + stime, with a command name holding spaces and parentheses', () => {
    const stat = '4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 900 1000 50 ...';
    expect(parseProcessCpuTicks(stat)).toBe(281);
    expect(() => parseProcessCpuTicks('garbage')).toThrow(/not a \/proc\/PID\/stat line/);
  });

  it('host CPU ticks: busy is everything but idle and iowait', () => {
    const text = 'cpu  100 5 50 1000 20 1 2 3 40 0\ncpu0 50 2 25 500 10 0 1 1 20 0\n';
    expect(parseHostCpuTicks(text)).toEqual({ busy: 161, total: 1181 });
  });

  it('process memory from /proc/PID/status', () => {
    const text = 'Name:\tnode\nVmRSS:\t  2048 kB\nRssAnon:\t  1024 kB\nRssFile:\t   512 kB\nRssShmem:\t   512 kB\n';
    expect(parseProcessMemory(text)).toEqual({ rssBytes: 2048 * 1024, anonBytes: 1024 * 1024, fileBytes: 512 * 1024, shmemBytes: 512 * 1024 });
    expect(() => parseProcessMemory('Name: x\n')).toThrow(/no VmRSS/);
  });

  it('ticks over seconds as a percentage of one core', () => {
    expect(percentOfOneCore(50, 10)).toBe(5);
  });
});

describe('figures over runs', () => {
  it('one run is its figure; several are median (min-max); missing runs are counted', () => {
    expect(overRuns([1.25], 1)).toBe('1.3');
    expect(overRuns([3, 1, 2], 0)).toBe('2 (1-3)');
    expect(overRuns([4, null], 0)).toBe('4, 1 run(s) none');
    expect(overRuns([null], 0)).toBe('-');
  });
});

describe('daemon RSS per added VM', () => {
  const fleet = (size: number, rssMiB: number, prefaultRegions = false): FleetResult => ({ size, prefaultRegions, daemonIdle: { rssBytes: rssMiB * MIB } }) as FleetResult;

  it('is the slope from the smallest to the largest lazy fleet of each run', () => {
    const results = [fleet(8, 70), fleet(16, 74), fleet(32, 82), fleet(8, 600, true), fleet(8, 72), fleet(16, 73), fleet(32, 78)];
    expect(daemonRssSlopeMiB(results)).toEqual([0.5, 0.25]);
    expect(daemonRssSlopeMiB([fleet(8, 70), fleet(8, 71)])).toEqual([null, null]);
  });
});
