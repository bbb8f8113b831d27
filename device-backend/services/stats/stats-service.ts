// The stats mode: the guest agent holds a channel in MODE.STATS and sends a STATS_RECORD every interval;
// the service decodes and validates each (stats-codec.ts, stats-validate.ts) into the daemon's StatsHub,
// and pushes to the guest the interval the host wants (STATS_CONFIG, at the claim and when it changes)
// and the CPU share the scheduler decided (STATS_SHARE). A refused record gets its status and changes
// nothing. The orchestrator asks this service to push; it never touches the core's rings.
import type { ChannelPort, MessageService, ServiceHost } from '../../core/message-service.js';
import { MODE, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import { decodeStatsRecord, encodeStatsConfig, encodeStatsShare, type ShareNotice } from './stats-codec.js';
import type { StatsHub } from './stats-hub.js';

export interface StatsServiceOptions {
  hub: StatsHub;
}

export class StatsService implements MessageService {
  readonly name = 'stats';
  readonly modes = [MODE.STATS];
  readonly types = [MSG_TYPE.STATS_RECORD];
  private host: ServiceHost | undefined;
  /** Stats channels and the interval last pushed on each. */
  private readonly channels = new Map<number, { intervalMs: number }>();
  private lastShare: ShareNotice | undefined;

  constructor(private readonly opts: StatsServiceOptions) {}

  private get vm(): string {
    return this.host?.vm.name ?? '?';
  }

  attach(host: ServiceHost): void {
    this.host = host;
    // A new device: a new boot, or a daemon that re-attached. Counters start again either way.
    this.opts.hub.resetBaseline(host.vm.name);
  }

  handle(request: Message, port: ChannelPort): Message {
    if (request.type !== MSG_TYPE.STATS_RECORD) return responseTo(request, STATUS.UNKNOWN_TYPE.code);
    if (!this.channels.has(port.channel)) this.claimed(port);
    const decoded = decodeStatsRecord(request.payload);
    const verdict = decoded.ok ? this.opts.hub.accept(this.vm, port.channel, decoded.value) : decoded;
    if (!verdict.ok) {
      if (!decoded.ok) this.opts.hub.noteRefused(this.vm);
      this.host?.counters.add('records_refused');
      this.host?.log.info('stats record refused', { channel: port.channel, status: verdict.status, reason: verdict.reason });
      return responseTo(request, verdict.status);
    }
    this.host?.counters.add('records');
    // The guest may have missed a change of interval (a push dropped by a full queue): tell it again.
    if (decoded.ok && decoded.value.intervalMs !== this.opts.hub.intervalMs()) this.pushConfig(port);
    return responseTo(request, STATUS.OK.code);
  }

  channelClaimed(port: ChannelPort): void {
    this.claimed(port);
  }

  private claimed(port: ChannelPort): void {
    this.channels.set(port.channel, { intervalMs: 0 });
    this.host?.counters.add('claims');
    this.pushConfig(port);
    if (this.lastShare) port.push(MSG_TYPE.STATS_SHARE, encodeStatsShare(this.lastShare));
  }

  private pushConfig(port: ChannelPort): void {
    const intervalMs = this.opts.hub.intervalMs();
    const r = port.push(MSG_TYPE.STATS_CONFIG, encodeStatsConfig(intervalMs));
    if (r.ok) this.channels.set(port.channel, { intervalMs });
  }

  /** The host's interval changed (a config reload): push it to every stats channel. */
  intervalChanged(): void {
    for (const [channel, c] of this.channels) {
      const port = this.host?.port(channel);
      if (port && c.intervalMs !== this.opts.hub.intervalMs()) this.pushConfig(port);
    }
  }

  /** Pushes the share the host gives the VM now to every stats channel (vmgmt-guest stats share shows it). */
  pushShare(share: ShareNotice): number {
    this.lastShare = share;
    let pushed = 0;
    for (const channel of this.channels.keys()) {
      const port = this.host?.port(channel);
      if (port?.push(MSG_TYPE.STATS_SHARE, encodeStatsShare(share)).ok) pushed++;
    }
    if (pushed > 0) this.host?.counters.add('shares_pushed', pushed);
    return pushed;
  }

  get statsChannels(): number {
    return this.channels.size;
  }

  channelReset(channel: number): void {
    this.channels.delete(channel);
    this.opts.hub.channelGone(this.vm, channel);
  }

  deviceReset(): void {
    this.channels.clear();
    this.opts.hub.resetBaseline(this.vm);
  }

  close(): void {
    this.channels.clear();
  }
}
