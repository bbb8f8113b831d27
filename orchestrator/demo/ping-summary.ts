// Parses the summary line `vmgmt-guest ping` prints last. Pure.

export interface PingSummary {
  n: number;
  minUs: number;
  medianUs: number;
  p99Us: number;
  maxUs: number;
  wait: string;
}

const SUMMARY = /^ping: n=(\d+) min_us=([\d.]+) median_us=([\d.]+) p99_us=([\d.]+) max_us=([\d.]+) wait=(\S+)$/m;

export function parsePingSummary(output: string): PingSummary | undefined {
  const m = SUMMARY.exec(output);
  if (!m) return undefined;
  const [, n, min, median, p99, max, wait] = m;
  return { n: Number(n), minUs: Number(min), medianUs: Number(median), p99Us: Number(p99), maxUs: Number(max), wait: wait! };
}
