// `vmgmt top`: rates from two answers of GET /v1/figures, and the table. Pure.
import type { VmFigures, VmFiguresList } from '../api/api-contract.js';

export interface TopRow {
  name: string;
  state: string;
  guestCpuPercent: number | null;
  stealPercent: number | null;
  demand: number | null;
  weight: number | null;
  /** The QEMU process's CPU over the interval, percent of one host CPU. */
  hostCpuPercent: number | null;
  rssBytes: number | null;
  messagesPerSec: number | null;
  bytesPerSec: number | null;
}

/** Rows of `cur`, with rates against `prev` (null where there is no earlier figure of the same process). */
export function topRows(prev: VmFiguresList | undefined, cur: VmFiguresList): TopRow[] {
  const dt = prev ? (cur.atMs - prev.atMs) / 1000 : 0;
  const before = new Map((prev?.vms ?? []).map((v) => [v.name, v]));
  return cur.vms.map((v) => {
    const p = before.get(v.name);
    const same = p !== undefined && dt > 0 && p.pid === v.pid;
    const rate = (a: number | undefined, b: number | undefined): number | null => (same && a !== undefined && b !== undefined && b >= a ? (b - a) / dt : null);
    const cpuRate = rate(p?.process?.cpuSeconds, v.process?.cpuSeconds);
    return {
      name: v.name,
      state: v.state,
      guestCpuPercent: v.guest?.cpuBusyPercent ?? null,
      stealPercent: v.guest?.stealPercent ?? null,
      demand: v.guest?.demand ?? null,
      weight: v.share?.weight ?? null,
      hostCpuPercent: cpuRate === null ? null : cpuRate * 100,
      rssBytes: v.process?.rssBytes ?? null,
      messagesPerSec: rate(p?.device?.messages, v.device?.messages),
      bytesPerSec: rate(p?.device?.bytes, v.device?.bytes),
    };
  });
}

const dash = '-';
const pct = (n: number | null): string => (n === null ? dash : `${n.toFixed(1)}%`);
const num = (n: number | null, digits = 1): string => (n === null ? dash : n.toFixed(digits));

export function humanBytes(n: number | null): string {
  if (n === null) return dash;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)}${units[u]}` : `${v.toFixed(1)}${units[u]}`;
}

const HEADER = ['NAME', 'STATE', 'GUEST-CPU', 'STEAL', 'DEMAND', 'SHARE', 'HOST-CPU', 'RSS', 'MSG/S', 'BYTES/S'];

export function formatTopTable(rows: readonly TopRow[]): string {
  const cells = rows.map((r) => [r.name, r.state, pct(r.guestCpuPercent), pct(r.stealPercent), r.demand === null ? dash : String(r.demand), r.weight === null ? dash : String(r.weight), pct(r.hostCpuPercent), humanBytes(r.rssBytes), num(r.messagesPerSec), r.bytesPerSec === null ? dash : `${humanBytes(r.bytesPerSec)}/s`]);
  const all = [HEADER, ...cells];
  const widths = HEADER.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const lines = all.map((row) => row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
  if (rows.length === 0) lines.push('(no VMs: `vmgmt vm create`)');
  return lines.join('\n') + '\n';
}

export type { VmFigures };
