// What `make demo` prints, laid out for a person: short sections, aligned figures, no raw tables. Pure:
// figures in, text out (demo-cli.ts gathers them; the README shows this as printed).
import type { PingSummary } from './ping-summary.js';

/** One `put:`/`get:` line of `vmgmt-guest file`: `put: bytes=N ms=T MBps=R sha256=<hex|skipped>`. */
export interface FileCopyLine {
  op: 'put' | 'get';
  bytes: number;
  ms: number;
  mbps: number;
  sha256: string;
}

const COPY_LINE = /^(put|get): bytes=(\d+) ms=(\d+) MBps=([\d.]+) sha256=(\S+)$/gm;

export function parseFileCopyLines(output: string): FileCopyLine[] {
  return [...output.matchAll(COPY_LINE)].map((m) => ({ op: m[1] as 'put' | 'get', bytes: Number(m[2]), ms: Number(m[3]), mbps: Number(m[4]), sha256: m[5]! }));
}

export interface DemoFigures {
  accel: { accel: string; reason: string; fromCache: boolean };
  bootToReadyMs: number;
  ping: PingSummary;
  core: { messages: number; doorbells: number; notificationsSent: number; protocolErrors: number };
  files: { root: string; copies: FileCopyLine[]; refusal: string | undefined };
}

const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
const us = (n: number): string => `${n.toFixed(1)} µs`;

/** Lines wrapped at width, each continuation indented. */
function wrap(text: string, width: number, indent: string): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.trimStart().length + 1 + word.length > width) {
      out.push(line);
      line = indent + word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out.join('\n');
}

export function formatDemoHeader(f: Pick<DemoFigures, 'accel' | 'bootToReadyMs'>): string {
  const why = f.accel.reason.replace(/ \[cached [^\]]*\]$/, '');
  return [
    `  accelerator  ${f.accel.accel}${f.accel.fromCache ? ' (the cached answer of the KVM self-probe)' : ''}`,
    `  why          ${wrap(why, 86, '               ')}`,
    `  guest ready  ${(f.bootToReadyMs / 1000).toFixed(2)} s after QEMU started`,
  ].join('\n');
}

export function formatDemoPing(ping: PingSummary, core: DemoFigures['core']): string {
  return [
    `Ping through the device: ${ping.n} round trips, timed inside the guest (guest waits by ${ping.wait})`,
    `  min ${us(ping.minUs)}   median ${us(ping.medianUs)}   p99 ${us(ping.p99Us)}   max ${us(ping.maxUs)}`,
    `  the core served ${core.messages} messages on ${core.doorbells} doorbells, sent ${core.notificationsSent} guest notifications, saw ${core.protocolErrors} protocol errors`,
  ].join('\n');
}

export function formatDemoFiles(files: DemoFigures['files']): string {
  const lines = [`File mode: the guest reads and writes under one host directory (${files.root})`];
  const rows = files.copies.map((c) => ({ what: `${c.op} ${mib(c.bytes)} ${c.op === 'put' ? 'guest -> host' : 'host -> guest'}`, c }));
  const width = Math.max(17, ...rows.map((r) => r.what.length));
  for (const { what, c } of rows) {
    const hash = c.sha256 === 'skipped' ? '' : `   sha256 ${c.sha256.slice(0, 12)}… checked`;
    lines.push(`  ${what.padEnd(width)}  ${String(c.ms).padStart(5)} ms  ${c.mbps.toFixed(1).padStart(7)} MB/s${hash}`);
  }
  if (files.refusal) lines.push(`  ${'get ../etc/passwd'.padEnd(width)}  refused: ${files.refusal}`);
  return lines.join('\n');
}
