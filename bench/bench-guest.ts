// What the benchmarks share: the median, a guest command that must succeed, and a guest command timed by
// the guest's own clock (/proc/uptime, 10 ms resolution; the host's clock would count the control channel).
import type { DeviceVm } from '../orchestrator/vm/device-vm.js';

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function guestRun(vm: DeviceVm, cmd: string, timeoutMs = 600_000): Promise<string> {
  const r = await vm.control.run(cmd, { timeoutMs });
  if (r.exitCode !== 0) throw new Error(`guest command failed (${r.exitCode}): ${cmd}\n${r.stdout}`);
  return r.stdout;
}

/** Seconds `cmd` took in the guest (its output discarded). */
export async function guestSeconds(vm: DeviceVm, cmd: string): Promise<number> {
  const out = await guestRun(vm, `s=$(cut -d' ' -f1 /proc/uptime); ${cmd} >/dev/null 2>&1 || echo FAILED; e=$(cut -d' ' -f1 /proc/uptime); echo "elapsed $s $e"`);
  if (out.includes('FAILED')) throw new Error(`guest command failed: ${cmd}`);
  const m = /elapsed ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`no elapsed time in:\n${out}`);
  return Math.max(Number(m[2]) - Number(m[1]), 0.01);
}

/** MB/s for `bytes` moved in `seconds`, one decimal. */
export const mbps = (bytes: number, seconds: number): number => Math.round((bytes / seconds / 1e6) * 10) / 10;
