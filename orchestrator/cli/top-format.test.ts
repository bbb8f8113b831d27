import { describe, expect, it } from 'vitest';
import type { VmFigures, VmFiguresList } from '../api/api-contract.js';
import { formatTopTable, humanBytes, topRows } from './top-format.js';

const vm = (over: Partial<VmFigures>): VmFigures => ({
  name: 'a',
  state: 'running',
  restarts: 0,
  pid: 10,
  process: { cpuSeconds: 10, rssBytes: 300 * 1024 * 1024 },
  guest: { atMs: 0, cpuBusyPercent: 12.5, stealPercent: 0.5, demand: 40, memTotalKiB: 1, memAvailableKiB: 1 },
  share: { weight: 160, baseWeight: 100, capPercent: null },
  hostVcpuPercent: 20,
  device: { messages: 100, doorbells: 1, protocolErrors: 0, bytes: 1000 },
  ...over,
});

describe('vmgmt top', () => {
  it('takes rates between two answers of the same process', () => {
    const prev: VmFiguresList = { atMs: 1000, vms: [vm({}), vm({ name: 'b', pid: 20 })] };
    const cur: VmFiguresList = {
      atMs: 3000,
      vms: [
        vm({ process: { cpuSeconds: 11, rssBytes: 300 * 1024 * 1024 }, device: { messages: 140, doorbells: 1, protocolErrors: 0, bytes: 5096 } }),
        vm({ name: 'b', pid: 21 }),
        vm({ name: 'c', state: 'stopped', pid: null, process: null, guest: null, share: null, device: null }),
      ],
    };
    const rows = topRows(prev, cur);
    expect(rows[0]).toMatchObject({ hostCpuPercent: 50, messagesPerSec: 20, bytesPerSec: 2048, guestCpuPercent: 12.5, weight: 160 });
    // b restarted (a new pid): no rate across two processes.
    expect(rows[1]).toMatchObject({ hostCpuPercent: null, messagesPerSec: null });
    expect(rows[2]).toMatchObject({ state: 'stopped', hostCpuPercent: null, rssBytes: null, guestCpuPercent: null });
    expect(topRows(undefined, cur)[0]!.hostCpuPercent).toBeNull();
    const table = formatTopTable(rows).split('\n');
    expect(table[0]).toMatch(/^NAME\s+STATE\s+GUEST-CPU\s+STEAL\s+DEMAND\s+SHARE\s+HOST-CPU\s+RSS\s+MSG\/S\s+BYTES\/S$/);
    expect(table[1]).toMatch(/^a\s+running\s+12\.5%\s+0\.5%\s+40\s+160\s+50\.0%\s+300\.0MiB\s+20\.0\s+2\.0KiB\/s$/);
    expect(table[3]).toMatch(/^c\s+stopped(\s+-){8}$/);
  });

  it('writes byte counts in binary units', () => {
    expect(humanBytes(512)).toBe('512B');
    expect(humanBytes(1536)).toBe('1.5KiB');
    expect(humanBytes(null)).toBe('-');
  });

  it('says when there is nothing to show', () => {
    expect(formatTopTable([])).toContain('no VMs');
  });
});
