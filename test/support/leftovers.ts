import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** QEMU processes whose command line mentions `marker` (a run directory), for cleanup assertions. */
export function qemuProcessesMentioning(marker: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', 'qemu-system'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(marker));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

export function expectNoLeftovers(runDir: string): string[] {
  const problems = qemuProcessesMentioning(runDir).map((p) => `QEMU still running: ${p}`);
  if (existsSync(runDir)) problems.push(`run directory still there: ${runDir}`);
  return problems;
}
