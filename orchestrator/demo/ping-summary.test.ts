import { describe, expect, it } from 'vitest';
import { parsePingSummary } from './ping-summary.js';

describe('parsePingSummary', () => {
  it('reads the last line of vmgmt-guest ping', () => {
    const out = 'ping 1: 40.1 us\nping: n=1000 min_us=20.5 median_us=31.0 p99_us=80.2 max_us=400.9 wait=msix\n';
    expect(parsePingSummary(out)).toEqual({ n: 1000, minUs: 20.5, medianUs: 31, p99Us: 80.2, maxUs: 400.9, wait: 'msix' });
  });

  it('returns undefined when there is no summary', () => {
    expect(parsePingSummary('vmgmt-guest: timed out')).toBeUndefined();
  });
});
