// bench/observe: what looking costs the daemon. (1) A /metrics scrape (read every VM's figures, set every
// per-VM metric, render the text) against its peers in the same run: serialising the same VMs' `vm inspect`
// and stats answers (what a client polling the JSON API per VM makes the daemon do), and `GET /v1/figures`'s
// answer; for 1, 8, 32 and 128 VMs with the counters a running guest has (device answers of every mode,
// 8 channels of which 4 in a mode, service counters, a stats sample, a share), and QEMU figures read from
// this process's own /proc (real reads). (2) Publishing a stats.record event to 1, 10 and 100 open streams against serialising the same
// record alone. `make bench-observe`. Prints two tables.
import type { VmDetails, VmStats } from '../orchestrator/api/api-contract.js';
import { ApiEventHub, type EventSink } from '../orchestrator/api/event-hub.js';
import { createDaemonMetrics } from '../orchestrator/observe/metrics.js';
import { readProcessFigures } from '../orchestrator/observe/process-figures.js';
import { figuresList, type ObserveSource, type VmObservation } from '../orchestrator/observe/vm-figures.js';
import { median } from './bench-guest.js';

const REPS = Number(process.env.VMGMT_BENCH_REPS ?? 50);

async function timeMs(reps: number, fn: () => unknown): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    runs.push(performance.now() - t);
  }
  return median(runs);
}

const round = (n: number, d = 3): number => Math.round(n * 10 ** d) / 10 ** d;

const sample = { atMs: Date.now(), seq: 1, uptimeMs: 1000, cpu: { user: 1, system: 1, idle: 97, iowait: 0, steal: 1, busy: 3 }, memTotalKiB: 500_000, memAvailableKiB: 400_000, load: [0, 0, 0] as [number, number, number], runnable: 1, cpus: 1, psi: { cpuSome: null, memSome: null, memFull: null, ioSome: null, ioFull: null }, demand: 40, demandReason: 'build' };

/** A running VM's details and stats as the API reports them: every mode's answers, service counters, a sample. */
function observation(i: number): Omit<VmObservation, 'process'> {
  const answers = ['file_read', 'file_write', 'file_open', 'file_close', 'chat_send', 'stats_record', 'ping'].flatMap((type) => ['ok', 'not_found'].map((status) => ({ mode: type.split('_')[0]!, type, status, count: 1000 + i })));
  const details = {
    name: `vm${i}`, uuid: `u${i}`, state: 'running', pid: 1000 + i, accel: 'tcg', startedAt: null, restarts: 0, lastExit: null, stateReason: 'QEMU started',
    definition: {}, paths: {},
    device: { attached: true, origin: 'fresh', regionSizeBytes: 64 << 20, messages: 5000, protocolErrors: 0, doorbells: 4000, serviceFailures: 0, channelResets: 3, deviceResets: 1, answers,
      channels: Array.from({ length: 8 }, (_, channel) => ({ channel, mode: ['stats', 'agent', 'chat', 'file'][channel] ?? 'none', messages: channel < 4 ? 1000 + i : 0, protocolErrors: 0, resets: channel < 4 ? 1 : 0, answers: channel < 4 ? [{ status: 'ok', count: 990 + i }, { status: 'not_found', count: 10 }] : [] })),
      services: { file: { requests: 100, refusals: 1, bytes_to_guest: 1 << 20, bytes_from_guest: 1 << 19 }, agent: { agent_claims: 1, copies_to_guest: 2, copy_bytes: 1 << 20 }, chat: { sends: 10, calls: 2, delivered: 12, delivered_bytes: 400, refused_not_allowed: 1 }, stats: { records: 900, claims: 1, shares_pushed: 900 } } },
  } as unknown as VmDetails;
  const stats: VmStats = { name: `vm${i}`, state: 'running', intervalMs: 1000, policyEnabled: true, accepted: 900, refused: 0, host: { atMs: 1, vcpuPercent: 20, runDelayPercent: 1, vcpuThreads: 1 }, share: { atMs: 1, weight: 160, baseWeight: 100, capPercent: null, boostLeftMs: 1000, flags: 0, demand: 40, reason: 'demand 40', mechanism: 'cgroup-v1 cpu.shares' }, samples: [sample] };
  return { details, stats };
}

async function scrapes(): Promise<void> {
  const rows = [];
  for (const n of [1, 8, 32, 128]) {
    const vms = Array.from({ length: n }, (_, i) => observation(i));
    const source: ObserveSource = { observe: () => vms.map((o) => ({ ...o, process: readProcessFigures(process.pid) })) };
    const metrics = createDaemonMetrics(source);
    const bytes = (await metrics.render()).length;
    const scrape = await timeMs(REPS, () => metrics.render());
    const json = await timeMs(REPS, () => source.observe().map((o) => JSON.stringify(o.details) + JSON.stringify(o.stats)));
    const figures = await timeMs(REPS, () => JSON.stringify(figuresList(source)));
    rows.push({ VMs: n, 'scrape ms': round(scrape), 'scrape KiB': round(bytes / 1024, 1), 'inspect+stats JSON ms': round(json), 'GET /v1/figures ms': round(figures), 'scrape / JSON': round(scrape / json, 1), 'scrape / figures': round(scrape / figures, 1) });
  }
  console.log(`\n/metrics scrape vs the JSON answers of the same VMs, same run (median of ${REPS}; real /proc reads):`);
  console.table(rows);
}

function publishes(): void {
  const record = { vm: 'vm0', sample, share: null, host: null };
  const EVENTS = 20_000;
  const rows = [];
  const alone = (() => {
    const t = performance.now();
    for (let i = 0; i < EVENTS; i++) JSON.stringify(record);
    return ((performance.now() - t) * 1000) / EVENTS;
  })();
  for (const subs of [1, 10, 100]) {
    const hub = new ApiEventHub();
    const sink: EventSink = { write: () => {}, bufferedBytes: () => 0, end: () => {} };
    for (let i = 0; i < subs; i++) hub.subscribe(['stats.record'], sink);
    const t = performance.now();
    for (let i = 0; i < EVENTS; i++) hub.publish('stats.record', record);
    const us = ((performance.now() - t) * 1000) / EVENTS;
    rows.push({ streams: subs, 'publish µs/event': round(us, 2), 'JSON.stringify alone µs': round(alone, 2), ratio: round(us / alone, 1), 'replay buffer events': hub.replayCount });
  }
  console.log(`\npublishing a stats.record event (${EVENTS} events) vs serialising it alone, same run:`);
  console.table(rows);
}

await scrapes();
publishes();
