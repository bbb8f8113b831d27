import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findRepoRoot } from '../vm/repo-root.js';
import type { VmDetails, VmStats } from '../api/api-contract.js';
import { createDaemonMetrics } from './metrics.js';
import { parsePromText, promValue } from './prom-text.js';
import type { VmObservation } from './vm-figures.js';

const details = (over: Partial<VmDetails>): VmDetails =>
  ({
    name: 'a',
    uuid: 'u',
    state: 'running',
    pid: 42,
    accel: 'tcg',
    startedAt: null,
    restarts: 2,
    lastExit: null,
    device: {
      attached: true,
      origin: 'fresh',
      regionSizeBytes: 1,
      messages: 10,
      protocolErrors: 1,
      doorbells: 7,
      serviceFailures: 0,
      channelResets: 3,
      deviceResets: 1,
      services: { file: { bytes_to_guest: 100, bytes_from_guest: 50 }, chat: { sends: 4, calls: 1, delivered: 2, delivered_bytes: 9, refused_not_allowed: 1 }, agent: { copy_bytes: 5, copies_to_guest: 1 } },
      answers: [
        { mode: 'file', type: 'file_read', status: 'ok', count: 6 },
        { mode: 'none', type: 'ping', status: 'ok', count: 2 },
      ],
      channels: [
        { channel: 0, mode: 'agent', messages: 7, protocolErrors: 0, resets: 1, answers: [{ status: 'ok', count: 7 }] },
        { channel: 1, mode: 'file', messages: 3, protocolErrors: 1, resets: 2, answers: [{ status: 'ok', count: 2 }, { status: 'not_found', count: 1 }] },
      ],
    },
    ...over,
  }) as VmDetails;

const stats = (over: Partial<VmStats> = {}): VmStats => ({
  name: 'a',
  state: 'running',
  intervalMs: 1000,
  policyEnabled: true,
  accepted: 5,
  refused: 1,
  host: { atMs: 1, vcpuPercent: 50, runDelayPercent: 10, vcpuThreads: 1 },
  share: { atMs: 1, weight: 340, baseWeight: 100, capPercent: null, boostLeftMs: 0, flags: 0, demand: 90, reason: 'x', mechanism: 'cgroup-v2' },
  samples: [{ atMs: Date.now(), seq: 1, uptimeMs: 1, cpu: { user: 10, system: 5, idle: 85, iowait: 0, steal: 2, busy: 15 }, memTotalKiB: 1000, memAvailableKiB: 600, load: [0, 0, 0], runnable: 1, cpus: 1, psi: { cpuSome: null, memSome: null, memFull: null, ioSome: null, ioFull: null }, demand: 90, demandReason: '' }],
  ...over,
});

describe('daemon metrics', () => {
  it('serves every per-VM figure under its name, and valid Prometheus text', async () => {
    let vms: VmObservation[] = [
      { details: details({}), stats: stats(), process: { cpuSeconds: 12.5, rssBytes: 4096 } },
      { details: details({ name: 'b', state: 'stopped', pid: null, device: null }), stats: stats({ name: 'b', host: null, share: null, samples: [] }), process: null },
    ];
    const metrics = createDaemonMetrics({ observe: () => vms }, { counters: { published: 8, dropped: 1 }, subscriberCount: 2 });
    const parsed = parsePromText(await metrics.render());
    if (!parsed.ok) throw new Error(parsed.reason);
    const f = parsed.families;
    const v = (name: string, labels: Record<string, string> = {}) => promValue(f, name, labels);
    expect(v('vmgmt_vm_state', { vm: 'a', state: 'running' })).toBe(1);
    expect(v('vmgmt_vm_state', { vm: 'a', state: 'stopped' })).toBe(0);
    expect(v('vmgmt_vm_state', { vm: 'b', state: 'stopped' })).toBe(1);
    expect(v('vmgmt_vm_restarts', { vm: 'a' })).toBe(2);
    expect(v('vmgmt_qemu_cpu_seconds_total', { vm: 'a' })).toBe(12.5);
    expect(v('vmgmt_qemu_resident_memory_bytes', { vm: 'a' })).toBe(4096);
    expect(v('vmgmt_qemu_cpu_seconds_total', { vm: 'b' })).toBeUndefined();
    expect(v('vmgmt_device_doorbells_total', { vm: 'a' })).toBe(7);
    expect(v('vmgmt_device_answers_total', { vm: 'a', type: 'file_read', status: 'ok' })).toBe(6);
    expect(v('vmgmt_file_operations_total', { vm: 'a', type: 'file_read' })).toBe(6);
    expect(v('vmgmt_file_operations_total', { vm: 'a', type: 'ping' })).toBeUndefined();
    expect(v('vmgmt_device_channel_resets_total', { vm: 'a' })).toBe(3);
    expect(v('vmgmt_channel_mode', { vm: 'a', channel: '1', mode: 'file' })).toBe(1);
    expect(v('vmgmt_channel_mode', { vm: 'a', channel: '1', mode: 'agent' })).toBeUndefined();
    expect(v('vmgmt_channel_messages_total', { vm: 'a', channel: '0' })).toBe(7);
    expect(v('vmgmt_channel_answers_total', { vm: 'a', channel: '1', status: 'not_found' })).toBe(1);
    expect(v('vmgmt_channel_protocol_errors_total', { vm: 'a', channel: '1' })).toBe(1);
    expect(v('vmgmt_channel_resets_total', { vm: 'a', channel: '1' })).toBe(2);
    expect(f.get('vmgmt_channel_messages_total')!.samples.filter((x) => x.labels.vm === 'b')).toEqual([]);
    expect(v('vmgmt_file_bytes_total', { vm: 'a', direction: 'to_guest' })).toBe(100);
    expect(v('vmgmt_chat_sent_messages_total', { vm: 'a', kind: 'send' })).toBe(4);
    expect(v('vmgmt_chat_refusals_total', { vm: 'a', reason: 'not_allowed' })).toBe(1);
    expect(v('vmgmt_service_events_total', { vm: 'a', service: 'chat', counter: 'delivered_bytes' })).toBe(9);
    expect(v('vmgmt_guest_cpu_busy_ratio', { vm: 'a' })).toBeCloseTo(0.15);
    expect(v('vmgmt_guest_memory_available_bytes', { vm: 'a' })).toBe(600 * 1024);
    expect(v('vmgmt_guest_demand_ratio', { vm: 'a' })).toBeCloseTo(0.9);
    expect(v('vmgmt_sched_weight', { vm: 'a' })).toBe(340);
    expect(v('vmgmt_sched_vcpu_ratio', { vm: 'a' })).toBeCloseTo(0.5);
    expect(v('vmgmt_guest_stats_records_total', { vm: 'a', verdict: 'refused' })).toBe(1);
    expect(v('vmgmt_events_published_total')).toBe(8);
    expect(v('vmgmt_event_streams')).toBe(2);
    expect(f.get('vmgmt_device_doorbells_total')!.type).toBe('counter');
    expect(f.get('nodejs_eventloop_lag_seconds')!.samples.length).toBeGreaterThan(0);
    expect(f.get('process_open_fds')!.samples[0]!.value).toBeGreaterThan(0);
    expect(f.get('nodejs_heap_size_used_bytes')).toBeDefined();
    // A VM removed is gone from the next scrape.
    vms = vms.slice(1);
    const again = parsePromText(await metrics.render());
    if (!again.ok) throw new Error(again.reason);
    expect(promValue(again.families, 'vmgmt_device_doorbells_total', { vm: 'a' })).toBeUndefined();
  });

  it('documents every vmgmt_ metric in the README\'s table, with its type and labels', () => {
    const metrics = createDaemonMetrics({ observe: () => [] });
    const readme = readFileSync(path.join(findRepoRoot(), 'README.md'), 'utf8');
    const rows = new Map<string, { type: string; labels: string }>();
    for (const m of readme.matchAll(/^\| `(vmgmt_[a-z_]+)` \| (\w+) \| ([^|]*) \|/gm)) rows.set(m[1]!, { type: m[2]!, labels: m[3]!.trim() });
    const ours = metrics.registry.getMetricsAsArray().filter((x) => x.name.startsWith('vmgmt_'));
    expect(ours.length).toBeGreaterThan(30);
    for (const x of ours) expect(rows.get(x.name), x.name).toEqual({ type: x.type, labels: ((x as unknown as { labelNames: string[] }).labelNames ?? []).join(', ') });
    expect([...rows.keys()].sort()).toEqual(ours.map((x) => x.name).sort());
  });
});
