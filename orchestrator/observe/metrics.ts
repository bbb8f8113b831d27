// The daemon's Prometheus metrics (prom-client), in a registry of their own (no process-wide default
// registry). At each scrape the per-VM figures are read once from the ObserveSource (what `vm inspect`
// and `vmgmt stats` report, and /proc for QEMU) and every per-VM metric is set from them; the daemon's
// own process and event loop come from prom-client's default metrics. Names and labels: README "Metrics".
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { VmObservation, ObserveSource } from './vm-figures.js';
import { VM_STATES } from '../api/api-contract.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** What the event stream counts (ApiEventHub). */
export interface EventStreamFigures {
  readonly counters: { readonly published: number; readonly dropped: number };
  readonly subscriberCount: number;
}

export interface DaemonMetrics {
  readonly registry: Registry;
  /** The metrics as Prometheus text, every per-VM figure read now. */
  render(): Promise<string>;
}

export function createDaemonMetrics(source: ObserveSource, events?: EventStreamFigures): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });

  const gauge = <N extends string>(name: string, help: string, labelNames: readonly N[]) => new Gauge<N>({ name, help, labelNames: [...labelNames], registers: [registry] });
  const counter = <N extends string>(name: string, help: string, labelNames: readonly N[]) => new Counter<N>({ name, help, labelNames: [...labelNames], registers: [registry] });
  const VM = ['vm'] as const;

  const m = {
    state: gauge('vmgmt_vm_state', 'The VM is in this lifecycle state (1) or not (0)', ['vm', 'state']),
    restarts: gauge('vmgmt_vm_restarts', 'Restarts the on-failure policy made since the VM last ran steadily (restart.resetAfterMs)', VM),
    qemuCpu: counter('vmgmt_qemu_cpu_seconds_total', 'CPU time (user + system) of the VM\'s QEMU process, all threads', VM),
    qemuRss: gauge('vmgmt_qemu_resident_memory_bytes', 'Resident memory of the VM\'s QEMU process', VM),
    doorbells: counter('vmgmt_device_doorbells_total', 'Doorbells the management device took from the guest', VM),
    messages: counter('vmgmt_device_messages_total', 'Guest requests the management device routed to a service (SET_MODE included)', VM),
    answers: counter('vmgmt_device_answers_total', 'Answers the management device sent to guest requests, by channel mode, request type and status', ['vm', 'mode', 'type', 'status']),
    protocolErrors: counter('vmgmt_device_protocol_errors_total', 'Guest messages the management device refused as malformed', VM),
    channelResets: counter('vmgmt_device_channel_resets_total', 'Channel resets the guest asked for', VM),
    deviceResets: counter('vmgmt_device_resets_total', 'Device resets the guest asked for', VM),
    serviceFailures: counter('vmgmt_device_service_failures_total', 'Requests a service failed on (answered INTERNAL_ERROR: a daemon bug)', VM),
    channelMode: gauge('vmgmt_channel_mode', 'The device channel is in this mode now (1; only the current mode is shown)', ['vm', 'channel', 'mode']),
    channelMessages: counter('vmgmt_channel_messages_total', 'Guest requests the management device routed to a service on this channel (SET_MODE included)', ['vm', 'channel']),
    channelAnswers: counter('vmgmt_channel_answers_total', 'Answers the management device sent to guest requests on this channel, by status', ['vm', 'channel', 'status']),
    channelProtocolErrors: counter('vmgmt_channel_protocol_errors_total', 'Guest messages on this channel the management device refused as malformed', ['vm', 'channel']),
    channelResetsBy: counter('vmgmt_channel_resets_total', 'Resets of this channel the guest asked for (each claim of a channel resets it)', ['vm', 'channel']),
    serviceEvents: counter('vmgmt_service_events_total', 'Every figure a device service counts, by service and counter name (as `vm inspect` shows them)', ['vm', 'service', 'counter']),
    fileBytes: counter('vmgmt_file_bytes_total', 'Bytes the file mode moved between the VM\'s host file root and the guest', ['vm', 'direction']),
    fileOps: counter('vmgmt_file_operations_total', 'File requests answered (file and agent modes), by mode, type and status', ['vm', 'mode', 'type', 'status']),
    copyBytes: counter('vmgmt_copy_bytes_total', 'Bytes moved by host-started copies through the guest agent (vmgmt cp)', VM),
    copies: counter('vmgmt_copies_total', 'Host-started copies through the guest agent, by direction', ['vm', 'direction']),
    copiesFailed: counter('vmgmt_copies_failed_total', 'Host-started copies that did not finish', VM),
    chatSent: counter('vmgmt_chat_sent_messages_total', 'Chat messages the guest sent (kind send or call)', ['vm', 'kind']),
    chatDelivered: counter('vmgmt_chat_delivered_messages_total', 'Chat messages delivered into the guest\'s rings', VM),
    chatDeliveredBytes: counter('vmgmt_chat_delivered_bytes_total', 'Bytes of chat messages delivered into the guest\'s rings', VM),
    chatRefusals: counter('vmgmt_chat_refusals_total', 'Chat requests of the guest refused, by reason (not_allowed, no_peer, queue_full, ...)', ['vm', 'reason']),
    guestCpu: gauge('vmgmt_guest_cpu_busy_ratio', 'Busy share of the guest\'s CPUs over its last stats interval, as the guest reports it (0..1)', VM),
    guestSteal: gauge('vmgmt_guest_cpu_steal_ratio', 'Steal share of the guest\'s CPUs over its last stats interval, as the guest reports it (0..1)', VM),
    guestMemTotal: gauge('vmgmt_guest_memory_total_bytes', 'MemTotal the guest reports', VM),
    guestMemAvailable: gauge('vmgmt_guest_memory_available_bytes', 'MemAvailable the guest reports', VM),
    guestDemand: gauge('vmgmt_guest_demand_ratio', 'CPU demand the guest declares (0..1); absent while it declares none', VM),
    guestRecordAge: gauge('vmgmt_guest_stats_age_seconds', 'Age of the guest\'s newest accepted stats record', VM),
    records: counter('vmgmt_guest_stats_records_total', 'Stats records of the guest, accepted or refused', ['vm', 'verdict']),
    weight: gauge('vmgmt_sched_weight', 'CPU weight the scheduler gives the VM now', VM),
    baseWeight: gauge('vmgmt_sched_base_weight', 'The VM\'s base CPU weight (its definition)', VM),
    cap: gauge('vmgmt_sched_cap_ratio', 'CPU cap the scheduler applies, in host CPUs (absent when uncapped)', VM),
    vcpu: gauge('vmgmt_sched_vcpu_ratio', 'CPU the VM\'s vCPU threads got over the scheduler\'s last period, in host CPUs', VM),
    runDelay: gauge('vmgmt_sched_run_delay_ratio', 'Share of the scheduler\'s last period the vCPU threads waited runnable', VM),
    eventsPublished: counter('vmgmt_events_published_total', 'Events published on the API\'s event stream', []),
    eventStreams: gauge('vmgmt_event_streams', 'Event streams open now', []),
    eventStreamsDropped: counter('vmgmt_event_streams_dropped_total', 'Event streams closed because the client fell behind', []),
  };

  const perVm = Object.values(m);

  function fill(vms: VmObservation[], nowMs: number): void {
    for (const metric of perVm) metric.reset();
    for (const o of vms) fillVm(o, nowMs);
    if (events) {
      m.eventsPublished.inc(events.counters.published);
      m.eventStreams.set(events.subscriberCount);
      m.eventStreamsDropped.inc(events.counters.dropped);
    }
  }

  function fillVm({ details: d, stats, process }: VmObservation, nowMs: number): void {
    const vm = { vm: d.name };
    for (const state of VM_STATES) m.state.set({ ...vm, state }, state === d.state ? 1 : 0);
    m.restarts.set(vm, d.restarts);
    if (process) {
      m.qemuCpu.inc(vm, process.cpuSeconds);
      m.qemuRss.set(vm, process.rssBytes);
    }
    const dev = d.device;
    if (dev) {
      m.doorbells.inc(vm, dev.doorbells);
      m.messages.inc(vm, dev.messages);
      m.protocolErrors.inc(vm, dev.protocolErrors);
      m.channelResets.inc(vm, dev.channelResets ?? 0);
      m.deviceResets.inc(vm, dev.deviceResets ?? 0);
      m.serviceFailures.inc(vm, dev.serviceFailures ?? 0);
      for (const a of dev.answers ?? []) {
        const labels = { ...vm, mode: a.mode, type: a.type, status: a.status };
        m.answers.inc(labels, a.count);
        if (a.type.startsWith('file_')) m.fileOps.inc(labels, a.count);
      }
      for (const c of dev.channels ?? []) {
        const ch = { ...vm, channel: String(c.channel) };
        m.channelMode.set({ ...ch, mode: c.mode }, 1);
        m.channelMessages.inc(ch, c.messages);
        m.channelProtocolErrors.inc(ch, c.protocolErrors);
        m.channelResetsBy.inc(ch, c.resets);
        for (const a of c.answers) m.channelAnswers.inc({ ...ch, status: a.status }, a.count);
      }
      const services = dev.services ?? {};
      for (const [service, counts] of Object.entries(services)) for (const [name, n] of Object.entries(counts)) m.serviceEvents.inc({ ...vm, service, counter: name }, n);
      const file = services['file'] ?? {};
      m.fileBytes.inc({ ...vm, direction: 'to_guest' }, file['bytes_to_guest'] ?? 0);
      m.fileBytes.inc({ ...vm, direction: 'from_guest' }, file['bytes_from_guest'] ?? 0);
      const agent = services['agent'] ?? {};
      m.copyBytes.inc(vm, agent['copy_bytes'] ?? 0);
      m.copies.inc({ ...vm, direction: 'to_guest' }, agent['copies_to_guest'] ?? 0);
      m.copies.inc({ ...vm, direction: 'from_guest' }, agent['copies_from_guest'] ?? 0);
      m.copiesFailed.inc(vm, agent['copies_failed'] ?? 0);
      const chat = services['chat'] ?? {};
      m.chatSent.inc({ ...vm, kind: 'send' }, chat['sends'] ?? 0);
      m.chatSent.inc({ ...vm, kind: 'call' }, chat['calls'] ?? 0);
      m.chatDelivered.inc(vm, chat['delivered'] ?? 0);
      m.chatDeliveredBytes.inc(vm, chat['delivered_bytes'] ?? 0);
      for (const [name, n] of Object.entries(chat)) {
        if (name.startsWith('refused_')) m.chatRefusals.inc({ ...vm, reason: name.slice('refused_'.length) }, n);
        if (name === 'queue_full' || name === 'malformed') m.chatRefusals.inc({ ...vm, reason: name }, n);
      }
    }
    m.records.inc({ ...vm, verdict: 'accepted' }, stats.accepted);
    m.records.inc({ ...vm, verdict: 'refused' }, stats.refused);
    const sample = stats.samples.at(-1);
    if (sample) {
      if (sample.cpu) {
        m.guestCpu.set(vm, sample.cpu.busy / 100);
        m.guestSteal.set(vm, sample.cpu.steal / 100);
      }
      m.guestMemTotal.set(vm, sample.memTotalKiB * 1024);
      m.guestMemAvailable.set(vm, sample.memAvailableKiB * 1024);
      if (sample.demand !== null) m.guestDemand.set(vm, sample.demand / 100);
      m.guestRecordAge.set(vm, Math.max(0, (nowMs - sample.atMs) / 1000));
    }
    if (stats.share) {
      m.weight.set(vm, stats.share.weight);
      m.baseWeight.set(vm, stats.share.baseWeight);
      if (stats.share.capPercent !== null) m.cap.set(vm, stats.share.capPercent / 100);
    }
    if (stats.host) {
      m.vcpu.set(vm, stats.host.vcpuPercent / 100);
      m.runDelay.set(vm, stats.host.runDelayPercent / 100);
    }
  }

  return {
    registry,
    async render() {
      fill(source.observe(), Date.now());
      return registry.metrics();
    },
  };
}
