// The density benchmark's tables: figures over runs beside the targets. Pure.
import { type FleetResult, median } from './fleet.js';

export const MIB = 1024 * 1024;

/** Targets of issue 9 item 7: figures to report against, not assertions. */
export const IDLE_TARGET_PERCENT_OF_ONE_CORE = 20;
export const AGENT_STARVATION_S = 60;

export type Row = Record<string, string>;

const fmt = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** One figure over the runs: the value for one run, else "median (min-max)". */
export function overRuns(values: readonly (number | null)[], digits: number): string {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const missing = values.length - xs.length;
  if (xs.length === 0) return '-';
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const body = s.length === 1 ? fmt(mid, digits) : `${fmt(mid, digits)} (${fmt(s[0]!, digits)}-${fmt(s.at(-1)!, digits)})`;
  return missing ? `${body}, ${missing} run(s) none` : body;
}

const daemonPerVm = (r: FleetResult, key: 'rssBytes' | 'anonBytes' | 'shmemBytes'): number => (r.daemonIdle[key] - r.daemonBaseline[key]) / r.size / MIB;

interface Metric {
  metric: string;
  target: (size: number) => string;
  cell: (runs: readonly FleetResult[]) => string;
}

const METRICS: Metric[] = [
  { metric: 'VMs up with live devices, each run', target: (n) => `${n}/${n} every run`, cell: (rs) => rs.map((r) => `${r.up}/${r.size}`).join(' ') },
  { metric: 'boot failures, all runs', target: () => '0', cell: (rs) => String(rs.reduce((a, r) => a + r.failures.length, 0)) },
  { metric: 'every device answered a ping, s', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.allAnsweredS), 1) },
  { metric: 'slowest agent claimed its channel, s', target: () => `< ${AGENT_STARVATION_S} (else starvation)`, cell: (rs) => overRuns(rs.map((r) => r.agentsSlowestS), 1) },
  { metric: 'agents not up by the boot deadline', target: () => '0', cell: (rs) => String(rs.reduce((a, r) => a + r.agentsMissing, 0)) },
  { metric: 'idle CPU, all VMs, % of one core', target: () => `< ${IDLE_TARGET_PERCENT_OF_ONE_CORE}`, cell: (rs) => overRuns(rs.map((r) => r.idle.vmsTotalPercent), 1) },
  { metric: 'idle CPU per VM, % of one core (median VM)', target: (n) => `< ${fmt(IDLE_TARGET_PERCENT_OF_ONE_CORE / n, 2)} (20/${n})`, cell: (rs) => overRuns(rs.map((r) => r.idle.perVmMedianPercent), 2) },
  { metric: 'idle CPU per VM, % of one core (busiest VM)', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.idle.perVmMaxPercent), 2) },
  { metric: 'daemon CPU while idle, % of one core', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.idle.daemonPercent), 2) },
  { metric: 'daemon CPU during the boot, % of one core', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.bootDaemonCpuPercent), 1) },
  { metric: 'host busy while idle (everything), % of one core', target: () => '(context)', cell: (rs) => overRuns(rs.map((r) => r.idle.hostBusyPercent), 1) },
  { metric: 'daemon RSS with the VMs idle, MiB', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.daemonIdle.rssBytes / MIB), 0) },
  { metric: 'daemon RSS per VM, MiB', target: () => '-', cell: (rs) => overRuns(rs.map((r) => daemonPerVm(r, 'rssBytes')), 2) },
  { metric: '  of it the device regions (RssShmem), MiB', target: () => '-', cell: (rs) => overRuns(rs.map((r) => daemonPerVm(r, 'shmemBytes')), 2) },
  { metric: 'QEMU RSS per VM, MiB (median VM)', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.qemuRssMedianBytes / MIB), 0) },
  { metric: '  of it its own (RssAnon), MiB', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.qemuAnonMedianBytes / MIB), 0) },
  { metric: 'device region allocated per VM, MiB', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.regionAllocatedMedianBytes / MIB), 2) },
  { metric: 'ping round trip, us (median of the VMs\' medians)', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.pingMedianUs), 1) },
  { metric: 'ping round trip, us (worst VM\'s median)', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.pingWorstMedianUs), 1) },
  { metric: 'GET /v1/vms, ms (median of 20)', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.lsApiMedianMs), 1) },
  { metric: '`vmgmt vm ls`, ms (median of 5, node start included)', target: () => '-', cell: (rs) => overRuns(rs.map((r) => r.lsCliMedianMs), 0) },
];

/** Rows of metrics; a target column for the largest size, then one column per fleet size. */
export function densityTable(results: readonly FleetResult[], sizes: readonly number[]): Row[] {
  const largest = Math.max(...sizes);
  return METRICS.map((m) => {
    const row: Row = { metric: m.metric, [`target (${largest} VMs)`]: m.target(largest) };
    for (const n of sizes) row[`${n} VMs`] = m.cell(results.filter((r) => r.size === n && !r.prefaultRegions));
    return row;
  });
}

/**
 * Daemon RSS per added VM between the smallest and the largest fleet of each run (lazy regions): the
 * start-up heap that (RSS with - RSS before) / VMs suffers from cancels out. Null with one size.
 */
export function daemonRssSlopeMiB(results: readonly FleetResult[]): (number | null)[] {
  const lazy = results.filter((r) => !r.prefaultRegions);
  const runs: FleetResult[][] = [];
  // Fleets come in run order, sizes ascending within a run: a size not larger than the last starts a run.
  for (const r of lazy) {
    const run = runs.at(-1);
    if (!run || r.size <= run.at(-1)!.size) runs.push([r]);
    else run.push(r);
  }
  return runs.map((run) => {
    const a = run[0]!;
    const b = run.at(-1)!;
    return b.size > a.size ? (b.daemonIdle.rssBytes - a.daemonIdle.rssBytes) / (b.size - a.size) / MIB : null;
  });
}

const t = (s: number | undefined): number => s ?? Number.NaN;
const maxOf = (xs: number[]): number => (xs.some((x) => Number.isNaN(x)) || xs.length === 0 ? Number.NaN : Math.max(...xs));

/** One row per fleet: when its VMs reached each step (seconds from sending every start). */
export function bootTimelineTable(results: readonly FleetResult[]): Row[] {
  return results.map((r) => {
    const med = (f: (v: FleetResult['vms'][number]) => number | undefined): string => fmt(median(r.vms.map((v) => t(f(v))).filter((x) => !Number.isNaN(x))), 1);
    const max = (f: (v: FleetResult['vms'][number]) => number | undefined): string => fmt(maxOf(r.vms.map((v) => t(f(v)))), 1);
    return {
      fleet: `${r.size} VMs${r.prefaultRegions ? ', prefaulted' : ''}`,
      'start answered (max)': max((v) => v.startedS),
      'console up (median / max)': `${med((v) => v.consoleUpS)} / ${max((v) => v.consoleUpS)}`,
      'guest clock at up (median / max)': `${med((v) => v.guestUptimeS)} / ${max((v) => v.guestUptimeS)}`,
      'control answers (max)': max((v) => v.controlS),
      'ping answered (median / max)': `${med((v) => v.pingS)} / ${max((v) => v.pingS)}`,
      'agent claimed (median / max)': `${med((v) => v.agentS)} / ${max((v) => v.agentS)}`,
      'control retries': String(r.vms.reduce((a, v) => a + v.controlRetries, 0)),
    };
  });
}

/** The same fleet size with and without devices.prefaultRegions, from the same runs. */
export function prefaultTable(results: readonly FleetResult[], size: number): Row[] {
  const lazy = results.filter((r) => r.size === size && !r.prefaultRegions);
  const eager = results.filter((r) => r.size === size && r.prefaultRegions);
  const rows: [string, (rs: readonly FleetResult[]) => string][] = [
    ['daemon RSS before any VM, MiB', (rs) => overRuns(rs.map((r) => r.daemonBaseline.rssBytes / MIB), 0)],
    ['daemon RSS with the VMs idle, MiB', (rs) => overRuns(rs.map((r) => r.daemonIdle.rssBytes / MIB), 0)],
    ['daemon RSS per VM, MiB', (rs) => overRuns(rs.map((r) => daemonPerVm(r, 'rssBytes')), 2)],
    ['  of it shared memory (RssShmem), MiB', (rs) => overRuns(rs.map((r) => daemonPerVm(r, 'shmemBytes')), 2)],
    ['  of it anonymous (RssAnon), MiB', (rs) => overRuns(rs.map((r) => daemonPerVm(r, 'anonBytes')), 2)],
    ['device region allocated on the host per VM, MiB', (rs) => overRuns(rs.map((r) => r.regionAllocatedMedianBytes / MIB), 2)],
    ['QEMU RSS per VM, MiB (median VM)', (rs) => overRuns(rs.map((r) => r.qemuRssMedianBytes / MIB), 0)],
    ['every device answered a ping, s', (rs) => overRuns(rs.map((r) => r.allAnsweredS), 1)],
    ['ping round trip, us (median of the VMs\' medians)', (rs) => overRuns(rs.map((r) => r.pingMedianUs), 1)],
  ];
  return rows.map(([metric, cell]) => ({ metric, 'lazy (default)': cell(lazy), 'prefaulted (MAP_POPULATE)': cell(eager) }));
}

/** Boot failures with their console tails, and pings that failed after boot. */
export function failureLines(results: readonly FleetResult[]): string[] {
  const lines: string[] = [];
  results.forEach((r) => {
    for (const vm of r.failures) {
      const f = vm.failure!;
      lines.push(`${vm.name} (${r.size} VMs${r.prefaultRegions ? ', prefaulted' : ''}): failed at ${f.stage}: ${f.why}`);
      lines.push(...f.consoleTail.trimEnd().split('\n').slice(-12).map((l) => `    | ${l}`));
    }
    for (const p of r.pingFailures) lines.push(`ping after boot failed (${r.size} VMs): ${p}`);
  });
  return lines;
}
