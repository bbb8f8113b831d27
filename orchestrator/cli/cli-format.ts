// Human output of the CLI: tables, key: value blocks, one-line results, error lines. Pure: values in, text out.
import type { AgentUpdateResult, ChatMessageEventData, ChatPeer, ChatPolicyCheck, ChatPresenceEventData, HostInfo, VmDefinition, VmDetails, VmExitInfo, VmStats, VmSummary } from '../api/api-contract.js';

/** `45s`, `3m05s`, `2h03m`, `4d07h`. */
export function formatUptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${pad2(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${pad2(m % 60)}m`;
  return `${Math.floor(h / 24)}d${pad2(h % 24)}h`;
}

/** States in which a VM's QEMU process is up, so an uptime means something. */
const LIVE_STATES: ReadonlySet<VmSummary['state']> = new Set(['starting', 'running', 'paused', 'stopping']);

/** Uptime of a VM whose QEMU is up, else `-`. */
export function vmUptime(vm: Pick<VmSummary, 'startedAt' | 'state'>, nowMs: number): string {
  if (vm.startedAt === null || !LIVE_STATES.has(vm.state)) return '-';
  const startedMs = Date.parse(vm.startedAt);
  return Number.isNaN(startedMs) ? '-' : formatUptime(nowMs - startedMs);
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatVmTable(vms: readonly VmSummary[], nowMs: number): string {
  return formatTable(
    ['NAME', 'STATE', 'PID', 'ACCEL', 'UPTIME', 'RESTARTS'],
    vms.map((vm) => [vm.name, vm.state, vm.pid === null ? '-' : String(vm.pid), vm.accel ?? '-', vmUptime(vm, nowMs), String(vm.restarts)]),
  );
}

/** `key: value` lines with the values aligned. */
export function formatKeyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`.trimEnd()).join('\n') + '\n';
}

export function formatVmDetails(vm: VmDetails, nowMs: number): string {
  const d = vm.definition;
  const pairs: [string, string][] = [
    ['name', vm.name],
    ['uuid', vm.uuid],
    ['state', vm.stateReason ? `${vm.state} (${vm.stateReason})` : vm.state],
    ['pid', vm.pid === null ? '-' : String(vm.pid)],
    ['accel', vm.accel === null ? `- (wanted: ${d.accel})` : `${vm.accel} (wanted: ${d.accel})`],
    ...(vm.accelReason ? [['accel reason', vm.accelReason] as [string, string]] : []),
    ['started', vm.startedAt === null ? '-' : LIVE_STATES.has(vm.state) ? `${vm.startedAt} (up ${vmUptime(vm, nowMs)})` : vm.startedAt],
    ['restarts', vm.restartGaveUpAt ? `${vm.restarts} (the on-failure policy gave up at ${vm.restartGaveUpAt})` : String(vm.restarts)],
    ['last exit', formatExit(vm.lastExit)],
    ['memory', `${d.memoryMiB} MiB`],
    ['cpus', String(d.cpus)],
    ['boot', formatBoot(d)],
    [
      'device',
      `${formatBytes(d.device.regionSizeBytes)} region, ${d.device.channels} channels, ${d.device.ringSlots} slots x ${formatBytes(d.device.slotSizeBytes)}, ${d.device.vectors} vectors`,
    ],
    ['device state', formatDeviceState(vm)],
    ['agent', formatAgent(vm)],
    ...formatServiceCounters(vm),
    ['files', d.files ? `${d.files.root}${d.files.readOnly ? ' (read-only)' : ''}` : '-'],
    ['chat group', d.chatGroup ?? '-'],
    ['network', formatNetwork(vm)],
    [
      'restart',
      d.restart.policy === 'never' ? 'never' : `${d.restart.policy} (max ${d.restart.maxRestarts}, backoff ${d.restart.backoffMs} ms)`,
    ],
    ['powerdown timeout', `${d.powerdownTimeoutMs} ms`],
    ['run dir', vm.paths.runDir],
    ['console socket', vm.paths.consoleSocket],
    ['console log', vm.paths.consoleLog],
    ['qemu log', vm.paths.qemuLog],
    ['qmp socket', vm.paths.qmpSocket],
    ['control socket', vm.paths.controlSocket],
    ['ivshmem socket', vm.paths.ivshmemSocket],
  ];
  return formatKeyValues(pairs);
}

/** The guest agent's version as it reported in, and the last driver update. */
export function formatAgent(vm: VmDetails): string {
  const a = vm.agent;
  if (!a) return '-';
  const u = a.lastUpdate;
  const last = u ? `; last update to ${u.toVersion}: ${u.outcome}${u.gapMs !== undefined ? ` (${u.gapMs.toFixed(1)} ms handover)` : ''}${u.reason && u.outcome !== 'updated' ? ` (${u.reason})` : ''}` : '';
  return `version ${a.version}, pid ${a.pid}, channel ${a.channel}${a.takeover ? ', took over in an update' : ''}${last}`;
}

/** `vmgmt agent update`: one row per VM. */
export function formatAgentUpdates(rows: readonly { name: string; result?: AgentUpdateResult; error?: string }[]): string {
  const header = ['VM', 'FROM', 'TO', 'HANDOVER MS', 'TOTAL MS', 'OUTCOME'];
  const body = rows.map((r) =>
    r.result
      ? [r.name, r.result.fromVersion ?? '-', r.result.toVersion, r.result.gapMs.toFixed(1), String(Math.round(r.result.totalMs)), 'updated']
      : [r.name, '-', '-', '-', '-', `failed: ${r.error ?? 'unknown'}`],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  return [header, ...body].map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

export function formatExit(exit: VmExitInfo | null): string {
  if (exit === null) return '-';
  const lastConsole = exit.consoleTail?.split('\n').at(-1);
  const stop = exit.stoppedBy ? `; stopped by ${exit.stoppedBy === 'powerdown' ? 'the power button' : exit.stoppedBy}${exit.stopNote ? `: ${exit.stopNote}` : ''}` : '';
  return `${exitHow(exit)} at ${exit.at}${exit.reason ? ` (${exit.reason})` : ''}${stop}${lastConsole ? `; console: ${lastConsole}` : ''}`;
}

/** `signal SIGKILL`, `exit code 0`, or `exit status unknown`. */
export function exitHow(exit: VmExitInfo): string {
  if (exit.signal !== null) return `signal ${exit.signal}`;
  return exit.exitCode !== null ? `exit code ${exit.exitCode}` : 'exit status unknown';
}

function formatBoot(d: VmDefinition): string {
  const boot = d.boot;
  if (boot === undefined) return 'test image (images/build)';
  if ('kernel' in boot) {
    const parts = [`kernel ${boot.kernel}`];
    if (boot.initrd !== undefined) parts.push(`initrd ${boot.initrd}`);
    if (boot.append !== undefined) parts.push(`append ${JSON.stringify(boot.append)}`);
    return parts.join(', ');
  }
  return `disk ${boot.disk} (${boot.format})`;
}

/** `service agent:     agent_claims 1, copies_to_guest 2, copy_bytes 4.0 MiB` rows, when the daemon sent them. */
function formatServiceCounters(vm: VmDetails): [string, string][] {
  const services = vm.device?.services ?? {};
  return Object.entries(services)
    .filter(([, counts]) => Object.keys(counts).length > 0)
    .map(([name, counts]) => [
      `service ${name}`,
      Object.entries(counts)
        .map(([k, v]) => `${k} ${k.includes('bytes') ? formatBytes(v) : v}`)
        .join(', '),
    ]);
}

function formatDeviceState(vm: VmDetails): string {
  const dev = vm.device;
  if (dev === null) return '-';
  if (!dev.attached) return `not attached (${dev.origin})`;
  return `attached (${dev.origin}), ${dev.messages} messages, ${dev.doorbells} doorbells, ${dev.protocolErrors} protocol errors`;
}

export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} B`;
}

/** `user, mac 52:54:00:…, tcp 127.0.0.1:8080 -> guest 80`; `none`. */
export function formatNetwork(vm: VmDetails): string {
  const n = vm.network;
  if (!n || n.mode === 'none') return 'none';
  const parts = [n.mode, `mac ${n.mac ?? '-'}`];
  if (n.mode === 'user') {
    parts.push('guest reaches the host at 10.0.2.2');
    for (const f of n.forwards ?? []) parts.push(`${f.protocol} ${f.hostAddress}:${f.hostPort} -> guest ${f.guestPort}`);
  }
  if (n.bridge) parts.push(`bridge ${n.bridge}`);
  if (n.ifname) parts.push(`tap ${n.ifname}`);
  return parts.join(', ');
}

export type VmAction = 'created' | 'started' | 'stopped' | 'killed' | 'paused' | 'resumed';

/** `started vm a (pid 1234)`, `stopped vm a (exit code 0)`, ... */
export function formatActionResult(action: VmAction, vm: VmDetails): string {
  switch (action) {
    case 'created':
      return `created vm ${vm.name}\n`;
    case 'started':
      return `started vm ${vm.name}${vm.pid === null ? ` (${vm.state})` : ` (pid ${vm.pid})`}\n`;
    case 'paused':
    case 'resumed':
      return `${action} vm ${vm.name}\n`;
    case 'stopped': {
      const e = vm.lastExit;
      if (!e) return `stopped vm ${vm.name}\n`;
      const how = e.stoppedBy === 'quit' ? 'by QEMU quit' : e.stoppedBy === 'kill' ? 'by SIGKILL' : e.stoppedBy === 'powerdown' ? 'by the power button' : '';
      return `stopped vm ${vm.name} ${how ? `${how} ` : ''}(${exitHow(e)})\n${e.stopNote ? `  ${e.stopNote}\n` : ''}`;
    }
    case 'killed':
      return `${action} vm ${vm.name}${vm.lastExit ? ` (${exitHow(vm.lastExit)})` : ''}\n`;
  }
}

export interface FieldProblemLike {
  path: string;
  message: string;
}

/**
 * `vmgmt: message`, then one indented line per field problem when details.problems holds them (the
 * one-line list the daemon appends to its message is then left off).
 */
export function formatErrorLines(message: string, details: Record<string, unknown>): string {
  const problems = fieldProblems(details);
  if (problems.length === 0) return `vmgmt: ${message}\n`;
  const inline = `: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`;
  const headline = message.endsWith(inline) ? message.slice(0, -inline.length) : message;
  return [`vmgmt: ${headline}${headline === message ? '' : ':'}`, ...problems.map((p) => `  ${p.path}: ${p.message}`)].join('\n') + '\n';
}

export function fieldProblems(details: Record<string, unknown>): FieldProblemLike[] {
  const problems = details.problems;
  if (!Array.isArray(problems)) return [];
  return problems.filter(
    (p): p is FieldProblemLike => typeof p === 'object' && p !== null && typeof p.path === 'string' && typeof p.message === 'string',
  );
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

// ---- chat ----------------------------------------------------------------------------------------------

const who = (p: { vm: string | null; name: string }): string => `${p.vm ?? '@host'}/${p.name || '-'}`;

/** `vmgmt chat peers`: one VM/NAME a line (`@host/NAME` for host-side names), like the guest's. */
export function formatChatPeers(peers: readonly ChatPeer[]): string {
  return peers.map((p) => `${who(p)}\n`).join('');
}

const PRESENCE_WORDS: Readonly<Record<ChatPresenceEventData['reason'], string>> = {
  registered: 'registered',
  unregistered: 'unregistered',
  'process-gone': 'process gone',
  'vm-stopped': 'vm stopped or crashed',
  'host-left': 'host name removed',
  'host-unreachable': 'its host is unreachable',
};

/** `join it-a/bob (registered)`, `leave it-a/bob (vm stopped or crashed)`: the guest driver's words. */
export function formatPresence(e: ChatPresenceEventData): string {
  return `${e.event} ${who(e.peer)} (${PRESENCE_WORDS[e.reason]})\n`;
}

/** `it-a/alice -> bob: hello`, `it-a/- -> calc (call): 2+2`: the guest driver's listen lines. */
export function formatChatMessage(m: ChatMessageEventData): string {
  const mark = m.callId !== null ? ' (call)' : m.broadcast ? ' (group)' : '';
  const body = m.text ?? `<${Math.floor((m.dataBase64.replace(/=+$/, '').length * 3) / 4)} bytes, not UTF-8: ${m.dataBase64}>`;
  return `${who(m.from)} -> ${m.to}${mark}: ${body}\n`;
}

export function formatPolicyCheck(c: ChatPolicyCheck): string {
  const party = (p: ChatPolicyCheck['from']): string => `${who(p)}${p.group === null ? ' (no chat group)' : ` (group ${p.group})`}`;
  return formatKeyValues([
    ['from', party(c.from)],
    ['to', party(c.to)],
    ['verdict', c.allowed ? 'allowed' : 'denied'],
    ['decided by', c.reason],
  ]);
}

/** `vmgmt stats`: one row per VM, the newest guest figures beside what the host measured and gives it. */
export function formatStatsTable(vms: readonly VmStats[]): string {
  const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : `${Math.round(v)}%`);
  const rows = vms.map((vm) => {
    const s = vm.samples.at(-1);
    const share = vm.share;
    return [
      vm.name,
      vm.state,
      pct(s?.cpu?.busy),
      pct(s?.cpu?.steal),
      s?.demand === null || s === undefined ? '-' : String(s.demand),
      pct(vm.host?.vcpuPercent),
      pct(vm.host?.runDelayPercent),
      share ? `${share.weight}/${share.baseWeight}` : '-',
      share ? share.reason : vm.policyEnabled ? 'no share yet' : 'policy off',
    ];
  });
  return formatTable(['NAME', 'STATE', 'GUEST-CPU', 'STEAL', 'DEMAND', 'VCPU-HOST', 'RUN-WAIT', 'WEIGHT', 'WHY'], rows);
}

/** `vmgmt host`: the KVM self-probe's cached answer for this host, or why the next start probes. */
export function formatHostInfo(info: HostInfo): string {
  const p = info.kvmProbe;
  const pairs: [string, string][] = [['kvm probe cache', p.cachePath]];
  if (p.key) for (const [k, v] of Object.entries(p.key)) pairs.push([`  key ${k}`, String(v)]);
  if (p.problem) pairs.push(['accel auto', p.problem]);
  else if (p.cached) {
    pairs.push(['accel auto', `${p.cached.accel} (probed ${p.cached.probedAt}, took ${p.cached.probeDurationMs} ms)`]);
    pairs.push(['why', p.cached.reason]);
  } else pairs.push(['accel auto', `not probed yet (${p.stale ?? 'no answer cached'})`]);
  return formatKeyValues(pairs);
}
