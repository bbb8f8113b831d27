import { describe, expect, it } from 'vitest';
import { parseCpuSeconds, parseRssBytes, readProcessFigures } from './process-figures.js';

describe('process figures', () => {
  it('reads utime + stime after a command name with spaces and parentheses', () => {
    const stat = '4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 100 1000000 2000 18446744073709551615';
    expect(parseCpuSeconds(stat)).toBe(3);
    expect(parseCpuSeconds('garbage')).toBeNull();
  });

  it('reads VmRSS in bytes, and nothing from a zombie', () => {
    expect(parseRssBytes('Name:\tqemu\nVmRSS:\t  123456 kB\nRssAnon:\t1 kB\n')).toBe(123456 * 1024);
    expect(parseRssBytes('Name:\tqemu\nState:\tZ (zombie)\n')).toBeNull();
  });

  it('reads this process, and null for one that does not exist', () => {
    const me = readProcessFigures(process.pid);
    expect(me!.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(me!.cpuSeconds).toBeGreaterThan(0);
    expect(readProcessFigures(2 ** 22 + 7)).toBeNull();
  });
});
