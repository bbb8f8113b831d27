// bench/density: how many TCG VMs one host runs through one daemon. For each fleet size, in each run, a
// real daemon (own temp state and runtime dirs) starts N test-image VMs (1 vCPU, 256 MiB) at once; the
// table gives boot figures, idle CPU, memory, ping round trips and `vm ls` latency beside the targets of
// issue 9. A fleet with devices.prefaultRegions in each run measures the region memory both ways.
// `make bench-density`; flags: density-args.ts.
import { parseDensityArgs, DENSITY_USAGE } from './density/density-args.js';
import { bootTimelineTable, daemonRssSlopeMiB, densityTable, failureLines, overRuns, prefaultTable } from './density/density-report.js';
import { Fleet, type FleetResult } from './density/fleet.js';

async function main(): Promise<void> {
  const parsed = parseDensityArgs(process.argv.slice(2));
  if (!parsed.ok) {
    console.error(`bench-density: ${parsed.reason}\n${DENSITY_USAGE}`);
    process.exit(2);
  }
  const args = parsed.args;
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const sizes = [...new Set(args.sizes)].sort((a, b) => a - b);
  // The prefault comparison needs the same size without prefaulting in the same run.
  const lazySizes = args.prefaultSize > 0 && !sizes.includes(args.prefaultSize) ? [...sizes, args.prefaultSize].sort((a, b) => a - b) : sizes;

  let active: Fleet | undefined;
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) return;
    interrupted = true;
    say('\ninterrupted: killing this fleet\'s VMs and daemon, removing its directories and cgroups...');
    void (active?.teardown({ hard: true }) ?? Promise.resolve())
      .catch((err: unknown) => say(`cleanup: ${(err as Error).message}`))
      .finally(() => process.exit(130));
  });

  const results: FleetResult[] = [];
  const startedAt = Date.now();
  for (let run = 1; run <= args.runs; run++) {
    const lazy = lazySizes.map((size) => ({ size, prefault: false }));
    const eager = args.prefaultSize > 0 ? [{ size: args.prefaultSize, prefault: true }] : [];
    // The prefaulted fleet goes last in odd runs and first in even ones, so the order does not favour either.
    const fleets = run % 2 ? [...lazy, ...eager] : [...eager, ...lazy];
    for (const f of fleets) {
      if (interrupted) return;
      say(`run ${run}/${args.runs}: ${f.size} VMs${f.prefault ? ', regions prefaulted' : ''}`);
      const fleet = new Fleet({ size: f.size, memoryMiB: args.memoryMiB, prefaultRegions: f.prefault, bootTimeoutS: args.bootTimeoutS, settleS: args.settleS, idleS: args.idleS, pings: args.pings, say });
      active = fleet;
      try {
        const r = await fleet.run();
        results.push(r);
        // A line per fleet as it ends, so an interrupted run still has its figures.
        say(`  => ${r.up}/${r.size} up, ${r.failures.length} failed, all answered ${r.allAnsweredS?.toFixed(1) ?? '-'} s, slowest agent ${r.agentsSlowestS?.toFixed(1) ?? '-'} s; idle VMs ${r.idle.vmsTotalPercent.toFixed(1)}% (${r.idle.perVmMedianPercent.toFixed(2)}%/VM), daemon ${r.idle.daemonPercent.toFixed(2)}%, host ${r.idle.hostBusyPercent.toFixed(0)}%; daemon RSS ${(r.daemonIdle.rssBytes / 2 ** 20).toFixed(0)} MiB (before ${(r.daemonBaseline.rssBytes / 2 ** 20).toFixed(0)}), QEMU RSS ${(r.qemuRssMedianBytes / 2 ** 20).toFixed(0)} MiB; ping ${r.pingMedianUs.toFixed(1)} us; GET /v1/vms ${r.lsApiMedianMs.toFixed(1)} ms, vm ls ${r.lsCliMedianMs.toFixed(0)} ms`);
      } catch (err) {
        say(`fleet failed: ${(err as Error).message}\n--- daemon output (tail) ---\n${fleet.daemonLog.slice(-4000)}`);
        await fleet.teardown({ hard: true });
        throw err;
      }
      await fleet.teardown();
      active = undefined;
    }
  }

  const minutes = ((Date.now() - startedAt) / 60_000).toFixed(1);
  console.log(`\ndensity: test image under TCG, 1 vCPU and ${args.memoryMiB} MiB per VM, each fleet started at once through one daemon; ${args.runs} run(s), ${minutes} min`);
  console.log('cells: one run\'s figure, or median (min-max) over the runs; idle figures over ' + `${args.idleS} s after ${args.settleS} s of quiet, from /proc/PID/stat`);
  console.table(densityTable(results, sizes));
  if (sizes.length > 1) {
    console.log(`daemon RSS per added VM between ${sizes[0]} and ${sizes.at(-1)} VMs (lazy regions), MiB: ${overRuns(daemonRssSlopeMiB(results), 2)}`);
  }
  console.log('\nboot timeline per fleet, s from sending every start (guest clock: its uptime at "vmgmt-init: up", which runs ahead under TCG when the host is busy):');
  console.table(bootTimelineTable(results));
  if (args.prefaultSize > 0) {
    console.log(`\nregion memory, ${args.prefaultSize} VMs, the same runs (64 MiB regions; daemon figures are (RSS with the VMs - RSS before) / VMs):`);
    console.table(prefaultTable(results, args.prefaultSize));
  }
  const failures = failureLines(results);
  console.log(failures.length ? `\nfailures:\n${failures.join('\n')}` : '\nno boot failures, every ping answered');
}

main().catch((err: unknown) => {
  console.error(`bench-density failed: ${(err as Error).message}`);
  process.exit(1);
});
