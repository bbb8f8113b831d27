// Metrics and the event stream of a real daemon with two real guests: /metrics on the loopback listener is
// scraped, parsed as Prometheus text, and agrees with the control API (`vm inspect`, `vmgmt stats`) and
// /proc for both VMs; a request without the token or with another Host is refused; the event stream
// delivers lifecycle changes, stats records and copies, and a client that reconnects with Last-Event-ID
// gets exactly what it missed; `vmgmt events --vm` and `vmgmt top --once --json` show the same, and
// `vmgmt events` reconnects by itself after a daemon restart (kill -9) and says what it could not get back.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../orchestrator/api/api-contract.js';
import { parsePromText, promValue, type PromFamily } from '../../orchestrator/observe/prom-text.js';
import { parseCpuSeconds } from '../../orchestrator/observe/process-figures.js';
import { DaemonFixture } from '../support/daemon-fixture.js';
import { dashboardGet, openEventStream, type TestEventStream } from '../support/event-stream.js';
import { waitFor } from '../support/wait-for.js';

const suffix = (process.pid % 10_000).toString();
const A = `it-mx-a-${suffix}`;
const B = `it-mx-b-${suffix}`;

const stateEvents = (events: ApiEvent[]) => events.filter((e) => e.kind === 'vm.state').map((e) => ({ id: e.id, ...(e.data as object) }));

describe('metrics and the event stream of a daemon with two guests', () => {
  let d: DaemonFixture;
  let info: { url: string; metricsUrl: string; token: string; tokenFile: string };
  let all: TestEventStream;
  let viaDashboard: TestEventStream;
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'vmgmt-mx-'));
    d = await DaemonFixture.start({ config: { metrics: { port: 0 }, stats: { intervalMs: 1000 } }, readyTimeoutMs: 60_000 });
    const dash = await d.api('GET', '/v1/dashboard');
    expect(dash.status, JSON.stringify(dash.body)).toBe(200);
    info = dash.body;
    // One stream on the control socket that stays open throughout, one on the dashboard listener.
    all = openEventStream({ socketPath: d.socketPath }, 'kinds=vm.state,stats.record,transfer');
    viaDashboard = openEventStream({ url: info.url, token: info.token }, 'kinds=vm.state');
    await Promise.all([all.opened, viaDashboard.opened]);
    for (const name of [A, B]) expect((await d.api('POST', '/v1/vms', { name, accel: 'tcg' })).status).toBe(201);
    const started = await Promise.all([A, B].map((name) => d.api('POST', `/v1/vms/${name}/start`, undefined, 300_000)));
    for (const s of started) expect(s.status, JSON.stringify(s.body)).toBe(200);
    // Both guests' agents send stats records (and the scheduler has given each its share).
    for (const name of [A, B]) {
      await waitFor(`stats of ${name}`, async () => {
        const s = (await d.api('GET', `/v1/vms/${name}/stats?limit=1`)).body;
        return s.accepted >= 2 && s.share && s.host ? true : undefined;
      });
    }
  });

  afterAll(async () => {
    all?.close();
    viaDashboard?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (d) expect(await d.cleanup()).toEqual([]);
  });

  async function scrape(): Promise<Map<string, PromFamily>> {
    const r = await dashboardGet(info.metricsUrl, info.token);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const parsed = parsePromText(r.text);
    if (!parsed.ok) throw new Error(`line ${parsed.line}: ${parsed.reason}`);
    return parsed.families;
  }

  it('serves /metrics as Prometheus text that agrees with the API for both VMs', async () => {
    const procCpu = (pid: number): number => parseCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'))!;
    const before = new Map<string, { vm: any; stats: any; cpu: number }>();
    for (const name of [A, B]) {
      const vm = (await d.api('GET', `/v1/vms/${name}`)).body;
      before.set(name, { vm, stats: (await d.api('GET', `/v1/vms/${name}/stats?limit=1`)).body, cpu: procCpu(vm.pid) });
    }
    const f = await scrape();
    for (const name of [A, B]) {
      const b = before.get(name)!;
      const vm = (await d.api('GET', `/v1/vms/${name}`)).body;
      const stats = (await d.api('GET', `/v1/vms/${name}/stats?limit=1`)).body;
      const cpuAfter = procCpu(vm.pid);
      const v = (metric: string, labels: Record<string, string> = {}): number => {
        const got = promValue(f, metric, { vm: name, ...labels });
        if (got === undefined) throw new Error(`no ${metric} ${JSON.stringify({ vm: name, ...labels })} in the scrape`);
        return got;
      };
      // Counters move while we look: the scrape lies between the API's answers before and after it.
      const between = (metric: string, lo: number, hi: number, labels: Record<string, string> = {}): void => {
        const got = v(metric, labels);
        expect(got, `${metric} of ${name}`).toBeGreaterThanOrEqual(lo);
        expect(got, `${metric} of ${name}`).toBeLessThanOrEqual(hi);
      };
      expect(v('vmgmt_vm_state', { state: 'running' })).toBe(1);
      expect(v('vmgmt_vm_state', { state: 'stopped' })).toBe(0);
      expect(v('vmgmt_vm_restarts')).toBe(vm.restarts);
      between('vmgmt_device_doorbells_total', b.vm.device.doorbells, vm.device.doorbells);
      between('vmgmt_device_messages_total', b.vm.device.messages, vm.device.messages);
      expect(v('vmgmt_device_protocol_errors_total')).toBe(vm.device.protocolErrors);
      expect(v('vmgmt_device_channel_resets_total')).toBe(vm.device.channelResets);
      for (const a of vm.device.answers as Array<{ mode: string; type: string; status: string; count: number }>) {
        const was = b.vm.device.answers.find((x: any) => x.mode === a.mode && x.type === a.type && x.status === a.status)?.count ?? 0;
        between('vmgmt_device_answers_total', was, a.count, { mode: a.mode, type: a.type, status: a.status });
      }
      expect(vm.device.answers.some((a: any) => a.mode === 'stats' && a.status === 'ok')).toBe(true);
      between('vmgmt_service_events_total', b.vm.device.services.stats.records, vm.device.services.stats.records, { service: 'stats', counter: 'records' });
      between('vmgmt_guest_stats_records_total', b.stats.accepted, stats.accepted, { verdict: 'accepted' });
      between('vmgmt_qemu_cpu_seconds_total', b.cpu, cpuAfter);
      expect(v('vmgmt_qemu_resident_memory_bytes')).toBeGreaterThan(50 * 1024 * 1024);
      expect(v('vmgmt_guest_memory_total_bytes')).toBe(stats.samples[0].memTotalKiB * 1024);
      expect(v('vmgmt_sched_weight')).toBe(stats.share.weight);
      expect(v('vmgmt_sched_base_weight')).toBe(stats.share.baseWeight);
      const busy = v('vmgmt_guest_cpu_busy_ratio');
      expect(busy).toBeGreaterThanOrEqual(0);
      expect(busy).toBeLessThanOrEqual(1);
      expect(v('vmgmt_guest_stats_age_seconds')).toBeLessThan(30);
    }
    // The daemon's own process and event loop (prom-client's defaults), and the event stream.
    expect(promValue(f, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(promValue(f, 'process_open_fds')).toBeGreaterThan(10);
    expect(promValue(f, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(1024 * 1024);
    expect(promValue(f, 'vmgmt_event_streams')).toBe(2);
    expect(f.get('vmgmt_device_doorbells_total')!.type).toBe('counter');
    expect(f.get('vmgmt_qemu_resident_memory_bytes')!.type).toBe('gauge');
    for (const fam of f.values()) if (fam.name.startsWith('vmgmt_') && fam.type === 'counter') expect(fam.name).toMatch(/_total$/);
  });

  it('counts per channel: a guest command on a known channel moves that channel\'s series and no other', async () => {
    type Channel = { channel: number; mode: string; messages: number; protocolErrors: number; resets: number; answers: Array<{ status: string; count: number }> };
    const channelsOf = async (): Promise<Channel[]> => (await d.api('GET', `/v1/vms/${A}`)).body.device.channels;
    const perChannel = (f: Map<string, PromFamily>, metric: string, channel: number, labels: Record<string, string> = {}): number => promValue(f, metric, { vm: A, channel: String(channel), ...labels }) ?? 0;
    const before = await scrape();
    const apiBefore = await channelsOf();
    expect(apiBefore.length).toBe(8);
    // Five round trips, then one message of a type the layout does not have (a protocol error). Each
    // command claims the first free channel (a claim resets it) and says which with -v.
    const r = await d.guest(A, 'vmgmt-guest ping -n 5 -v 2>&1; echo "ping rc=$?"; vmgmt-guest debug raw --type 0x777 -v 2>&1; echo "raw rc=$?"', 60_000);
    expect(r.stdout).toContain('ping rc=0');
    const used = [...r.stdout.matchAll(/channel (\d+): reset done/g)].map((m) => Number(m[1]));
    expect(used, r.stdout).toHaveLength(2);
    expect(r.stdout).toMatch(/status=\d+ \(/);
    const [pingCh, rawCh] = used as [number, number];
    const after = await scrape();
    const apiAfter = await channelsOf();
    const expected = new Map<number, { messages: number; protocolErrors: number; resets: number; ok: number; unknown: number }>();
    const want = (ch: number) => expected.get(ch) ?? expected.set(ch, { messages: 0, protocolErrors: 0, resets: 0, ok: 0, unknown: 0 }).get(ch)!;
    Object.assign(want(pingCh), { messages: want(pingCh).messages + 5, resets: want(pingCh).resets + 1, ok: want(pingCh).ok + 5 });
    Object.assign(want(rawCh), { protocolErrors: want(rawCh).protocolErrors + 1, resets: want(rawCh).resets + 1, unknown: want(rawCh).unknown + 1 });
    for (const [ch, e] of expected) {
      const delta = (metric: string, labels: Record<string, string> = {}) => perChannel(after, metric, ch, labels) - perChannel(before, metric, ch, labels);
      expect(delta('vmgmt_channel_messages_total'), `messages on channel ${ch}`).toBe(e.messages);
      expect(delta('vmgmt_channel_protocol_errors_total'), `protocol errors on channel ${ch}`).toBe(e.protocolErrors);
      expect(delta('vmgmt_channel_resets_total'), `resets of channel ${ch}`).toBe(e.resets);
      expect(delta('vmgmt_channel_answers_total', { status: 'ok' }), `ok answers on channel ${ch}`).toBe(e.ok);
      expect(delta('vmgmt_channel_answers_total', { status: 'unknown_type' }), `unknown_type answers on channel ${ch}`).toBe(e.unknown);
      // The channel is idle again: the API says the same as the scrape, and its mode is none.
      const api = apiAfter.find((c) => c.channel === ch)!;
      expect(perChannel(after, 'vmgmt_channel_messages_total', ch)).toBe(api.messages);
      expect(perChannel(after, 'vmgmt_channel_resets_total', ch)).toBe(api.resets);
      expect(perChannel(after, 'vmgmt_channel_mode', ch, { mode: 'none' })).toBe(1);
    }
    // The agent's channels (agent mode, stats mode) are the ones that move on their own; every channel
    // that is neither of the two commands' nor in a mode did not move at all.
    for (const c of apiAfter) {
      if (expected.has(c.channel)) continue;
      const was = apiBefore.find((x) => x.channel === c.channel)!;
      if (c.mode === 'none') expect({ ch: c.channel, messages: c.messages, resets: c.resets }).toEqual({ ch: c.channel, messages: was.messages, resets: was.resets });
    }
    expect(apiAfter.some((c) => c.mode === 'agent')).toBe(true);
    expect(apiAfter.some((c) => c.mode === 'stats')).toBe(true);
    // In one scrape the channels add up to the device's totals.
    const sum = (metric: string) => after.get(metric)!.samples.filter((x) => x.labels.vm === A).reduce((n, x) => n + x.value, 0);
    expect(sum('vmgmt_channel_messages_total')).toBe(promValue(after, 'vmgmt_device_messages_total', { vm: A }));
    expect(sum('vmgmt_channel_protocol_errors_total')).toBe(promValue(after, 'vmgmt_device_protocol_errors_total', { vm: A }));
    expect(sum('vmgmt_channel_resets_total')).toBe(promValue(after, 'vmgmt_device_channel_resets_total', { vm: A }));
    expect(promValue(after, 'vmgmt_device_protocol_errors_total', { vm: A })).toBeGreaterThanOrEqual(1);
  });

  it('refuses /metrics and the API without the token, with a wrong one, or with another Host', async () => {
    expect((await dashboardGet(info.metricsUrl, undefined)).status).toBe(401);
    expect((await dashboardGet(info.metricsUrl, 'f'.repeat(64))).status).toBe(401);
    expect((await dashboardGet(info.url.replace(/#.*$/, 'v1/vms'), undefined)).status).toBe(401);
    const rebound = await dashboardGet(info.metricsUrl, info.token, { Host: `attacker.example:${new URL(info.metricsUrl).port}` });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.text)).toMatchObject({ code: 'FORBIDDEN', details: { refusal: 'BAD_HOST' } });
    const crossSite = await dashboardGet(info.url.replace(/#.*$/, 'v1/vms'), info.token, { Origin: 'http://attacker.example' });
    expect(crossSite.status).toBe(403);
    // The token file is the daemon's: 0600, and holds what /v1/dashboard says.
    expect(statSync(info.tokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(info.tokenFile, 'utf8').trim()).toBe(info.token);
  });

  it('the event stream delivers lifecycle changes, stats records and copies', async () => {
    for (const name of [A, B]) {
      const mine = stateEvents(all.events).filter((e: any) => e.vm === name).map((e: any) => `${e.previous ?? '(new)'}->${e.state}`);
      expect(mine, name).toEqual(['(new)->defined', 'defined->starting', 'starting->running']);
      await all.waitFor(`a stats record of ${name}`, (e) => e.kind === 'stats.record' && e.data.vm === name);
    }
    const file = path.join(tmp, 'payload');
    writeFileSync(file, Buffer.alloc(100_000, 7));
    const cp = await d.cli('cp', file, `${A}:/tmp/payload`);
    expect(cp.code, cp.stderr).toBe(0);
    const done = await all.waitFor('the copy done', (e) => e.kind === 'transfer' && e.data.phase === 'done');
    expect(done.data).toMatchObject({ vm: A, direction: 'to-guest', guestPath: '/tmp/payload', bytes: 100_000 });
    expect(all.events.some((e) => e.kind === 'transfer' && e.data.phase === 'started' && e.data.transferId === (done.data as any).transferId)).toBe(true);
  });

  it('vmgmt events --vm follows one VM; vmgmt top --once --json shows both', async () => {
    let out = '';
    const follow = d.cliStreaming(['events', '--vm', B, '--json'], (all) => (out = all));
    await waitFor('two stats records of B from vmgmt events', async () => (out.split('\n').filter((l) => l.includes('"stats.record"')).length >= 2 ? true : undefined), 60_000);
    follow.child.kill('SIGINT');
    expect((await follow.done).code).toBe(0);
    const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ApiEvent);
    expect(lines.every((e) => (e.data as { vm?: string }).vm === B)).toBe(true);
    const top = await d.cli('top', '--once', '--json');
    expect(top.code, top.stderr).toBe(0);
    const rows = JSON.parse(top.stdout).vms as any[];
    expect(rows.map((r) => r.name).sort()).toEqual([A, B].sort());
    for (const r of rows) {
      expect(r.state).toBe('running');
      // An idle guest can spend less than one 10 ms clock tick in top's one-second window.
      expect(r.hostCpuPercent).toBeGreaterThanOrEqual(0);
      expect(r.rssBytes).toBeGreaterThan(50 * 1024 * 1024);
      expect(r.messagesPerSec).toBeGreaterThanOrEqual(0);
    }
    const table = await d.cli('top', '--once');
    expect(table.stdout).toMatch(/NAME\s+STATE\s+GUEST-CPU\s+STEAL\s+DEMAND\s+SHARE\s+HOST-CPU\s+RSS\s+MSG\/S\s+BYTES\/S/);
  });

  it('a client that reconnects with Last-Event-ID gets exactly the lifecycle changes it missed', async () => {
    const seen = stateEvents(viaDashboard.events);
    expect(seen.length).toBeGreaterThanOrEqual(6);
    const lastId = seen.at(-1)!.id;
    viaDashboard.close();
    // While it is away: B is killed.
    expect((await d.api('POST', `/v1/vms/${B}/kill`)).status).toBe(200);
    await all.waitFor('B killed', (e) => e.kind === 'vm.state' && e.data.vm === B && e.id > lastId && (e.data.state === 'stopped' || e.data.state === 'crashed'));
    const resumed = openEventStream({ url: info.url, token: info.token }, 'kinds=vm.state', lastId);
    const open = await resumed.opened;
    const missed = stateEvents(all.events).filter((e) => e.id > lastId);
    expect(missed.length).toBeGreaterThanOrEqual(2);
    expect(open.data.resume).toEqual({ afterId: lastId, replayed: missed.length, complete: true });
    await resumed.waitFor('the replay', () => stateEvents(resumed.events).length >= missed.length, 10_000);
    expect(stateEvents(resumed.events)).toEqual(missed);
    expect(missed.map((e: any) => `${e.vm} ${e.previous}->${e.state}`)).toContain(`${B} running->stopping`);
    // And it goes on live: A is stopped, the resumed stream hears it.
    expect((await d.api('POST', `/v1/vms/${A}/kill`)).status).toBe(200);
    await resumed.waitFor('A killed, live', (e) => e.kind === 'vm.state' && e.data.vm === A && e.data.previous === 'stopping');
    resumed.close();
  });

  it('vmgmt events reconnects after a daemon restart and says what it could not get back', async () => {
    let out = '';
    const streams = async (): Promise<number> => promValue(await scrape(), 'vmgmt_event_streams')!;
    const before = await streams();
    const follow = d.cliStreaming(['events', '--json'], (all) => (out = all));
    await waitFor('vmgmt events connected', async () => ((await streams()) === before + 1 ? true : undefined), 30_000);
    await d.kill9();
    await d.startDaemon();
    const C = `it-mx-c-${suffix}`;
    expect((await d.api('POST', '/v1/vms', { name: C, accel: 'tcg' })).status).toBe(201);
    await waitFor('the new VM in vmgmt events', async () => (out.includes(`"vm":"${C}"`) ? true : undefined), 30_000);
    follow.child.kill('SIGINT');
    const done = await follow.done;
    expect(done.code).toBe(0);
    expect(done.stderr).toMatch(/reconnecting/);
    // Ids of the new daemon are greater than the old one's, and it cannot replay what the old one held.
    expect(done.stderr).toMatch(/some were missed/);
    const created = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ApiEvent).find((e) => e.kind === 'vm.state' && e.data.vm === C)!;
    expect(created.data).toMatchObject({ state: 'defined', previous: null });
  });
});
