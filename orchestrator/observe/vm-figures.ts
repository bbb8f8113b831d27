// What the daemon sees of each VM now, read from one place for the metrics, `GET /v1/figures` (`vmgmt top`,
// the dashboard): the VM's state, its QEMU process, its device's counters (as `vm inspect` shows them), the
// guest's newest stats record and the scheduler's share (as `vmgmt stats` shows them).
import type { VmDetails, VmFigures, VmFiguresList, VmStats } from '../api/api-contract.js';
import type { VmManagerApi } from '../daemon/vm-manager-api.js';
import { type ProcessFigures, readProcessFigures } from './process-figures.js';

/** One VM as the API reports it: `vm inspect`, its newest stats, and what /proc says of its QEMU. */
export interface VmObservation {
  details: VmDetails;
  stats: VmStats;
  process: ProcessFigures | null;
}

export interface ObserveSource {
  /** Every VM now; a VM removed while it is read is left out. */
  observe(): VmObservation[];
}

/** The manager's VMs with their QEMU processes read from /proc (readProcess is replaced in unit tests). */
export function managerSource(manager: VmManagerApi, readProcess: (pid: number) => ProcessFigures | null = readProcessFigures): ObserveSource {
  return {
    observe() {
      const out: VmObservation[] = [];
      for (const summary of manager.list()) {
        try {
          const details = manager.inspect(summary.name);
          const stats = manager.stats(summary.name, { limit: 1 });
          out.push({ details, stats, process: details.pid === null ? null : readProcess(details.pid) });
        } catch {
          // removed in between: it is not there any more
        }
      }
      return out;
    },
  };
}

/** Bytes the device's services moved: every service counter whose name ends in `bytes`. */
export function deviceBytes(services: Record<string, Record<string, number>> | undefined): number {
  let total = 0;
  for (const counts of Object.values(services ?? {})) for (const [name, n] of Object.entries(counts)) if (name.endsWith('bytes')) total += n;
  return total;
}

export function figuresOf(o: VmObservation): VmFigures {
  const { details: d, stats } = o;
  const sample = stats.samples.at(-1);
  return {
    name: d.name,
    state: d.state,
    restarts: d.restarts,
    pid: d.pid,
    process: o.process,
    guest: sample
      ? { atMs: sample.atMs, cpuBusyPercent: sample.cpu?.busy ?? null, stealPercent: sample.cpu?.steal ?? null, demand: sample.demand, memTotalKiB: sample.memTotalKiB, memAvailableKiB: sample.memAvailableKiB }
      : null,
    share: stats.share ? { weight: stats.share.weight, baseWeight: stats.share.baseWeight, capPercent: stats.share.capPercent } : null,
    hostVcpuPercent: stats.host?.vcpuPercent ?? null,
    device: d.device ? { messages: d.device.messages, doorbells: d.device.doorbells, protocolErrors: d.device.protocolErrors, bytes: deviceBytes(d.device.services) } : null,
  };
}

export function figuresList(source: ObserveSource, nowMs: () => number = Date.now): VmFiguresList {
  return { atMs: nowMs(), vms: source.observe().map(figuresOf) };
}
