// `vmgmt events`: one line per event. Pure.
import type { ApiEvent } from '../api/api-contract.js';
import { formatChatMessage, formatPresence } from './cli-format.js';

const time = (iso: string): string => (/T(\d\d:\d\d:\d\d)/.exec(iso)?.[1] ?? iso);
const mib = (kib: number): string => `${Math.round(kib / 1024)}`;

/** The line for an event, or undefined for stream.* bookkeeping. */
export function formatEventLine(e: ApiEvent): string | undefined {
  const at = time(e.at);
  switch (e.kind) {
    case 'vm.state':
      return `${at} vm ${e.data.vm}: ${e.data.previous ?? '(new)'} -> ${e.data.state} (${e.data.reason})\n`;
    case 'stats.record': {
      const s = e.data.sample;
      const cpu = s.cpu ? `cpu ${s.cpu.busy.toFixed(1)}% steal ${s.cpu.steal.toFixed(1)}%` : 'cpu -';
      const share = e.data.share ? ` share ${e.data.share.weight}` : '';
      return `${at} stats ${e.data.vm}: ${cpu} mem ${mib(s.memTotalKiB - s.memAvailableKiB)}/${mib(s.memTotalKiB)} MiB demand ${s.demand ?? '-'}${share}\n`;
    }
    case 'transfer': {
      const t = e.data;
      const what = t.phase === 'done' ? `done, ${t.bytes} bytes` : t.phase === 'failed' ? `failed: ${t.error ?? 'unknown'}` : 'started';
      return `${at} copy ${t.vm} #${t.transferId} ${t.direction} ${t.guestPath}: ${what}\n`;
    }
    case 'chat.presence':
      return `${at} chat ${formatPresence(e.data)}`;
    case 'chat.message':
      return `${at} chat ${formatChatMessage(e.data)}`;
    default:
      return undefined;
  }
}
