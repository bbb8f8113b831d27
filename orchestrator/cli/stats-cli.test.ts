// `vmgmt stats`: argument parsing, the API's stats routes and the table.
import { describe, expect, it } from 'vitest';
import { parseApiRequest } from '../api/api-requests.js';
import { parseCli } from './cli-args.js';
import { formatStatsTable } from './cli-format.js';

describe('vmgmt stats', () => {
  it('parses stats [NAME] [--watch] [--json]', () => {
    expect(parseCli(['stats'], {})).toMatchObject({ ok: true, command: { kind: 'stats', watch: false } });
    expect(parseCli(['stats', 'web', '--watch', '--json'], {})).toMatchObject({ ok: true, command: { kind: 'stats', name: 'web', watch: true }, globals: { json: true } });
    expect(parseCli(['stats', 'a', 'b'], {})).toMatchObject({ ok: false, message: expect.stringMatching(/at most one VM name/) });
    expect(parseCli(['stats', '--force'], {})).toMatchObject({ ok: false, message: expect.stringMatching(/--force does not apply/) });
  });

  it('routes GET /v1/stats and /v1/vms/:name/stats?limit=', () => {
    expect(parseApiRequest({ method: 'GET', url: '/v1/stats', bodyText: '' })).toMatchObject({ ok: true, action: { kind: 'stats' } });
    expect(parseApiRequest({ method: 'GET', url: '/v1/vms/web/stats?limit=10', bodyText: '' })).toMatchObject({ ok: true, action: { kind: 'vm-stats', name: 'web', limit: 10 } });
    expect(parseApiRequest({ method: 'GET', url: '/v1/vms/web/stats?limit=99999', bodyText: '' }).ok).toBe(false);
    expect(parseApiRequest({ method: 'GET', url: '/v1/vms/web/stats?colour=1', bodyText: '' }).ok).toBe(false);
  });

  it('prints guest CPU, steal, demand, host figures and the share with its reason', () => {
    const text = formatStatsTable([
      {
        name: 'web', state: 'running', intervalMs: 1000, policyEnabled: true, accepted: 3, refused: 0,
        host: { atMs: 1, vcpuPercent: 81.2, runDelayPercent: 12, vcpuThreads: 1 },
        share: { atMs: 1, weight: 340, baseWeight: 100, capPercent: null, boostLeftMs: 5000, flags: 3, demand: 90, reason: 'demand 90: boosted', mechanism: 'cgroup-v1 cpu.shares' },
        samples: [{ atMs: 1, seq: 1, uptimeMs: 1, cpu: { user: 90, system: 5, idle: 5, iowait: 0, steal: 0, busy: 95 }, memTotalKiB: 1, memAvailableKiB: 1, load: [1, 1, 1], runnable: 2, cpus: 1, psi: { cpuSome: null, memSome: null, memFull: null, ioSome: null, ioFull: null }, demand: 90, demandReason: '' }],
      },
      { name: 'db', state: 'stopped', intervalMs: 1000, policyEnabled: true, accepted: 0, refused: 0, host: null, share: null, samples: [] },
    ]);
    expect(text).toMatch(/^NAME\s+STATE\s+GUEST-CPU\s+STEAL\s+DEMAND\s+VCPU-HOST\s+RUN-WAIT\s+WEIGHT\s+WHY/);
    expect(text).toMatch(/web\s+running\s+95%\s+0%\s+90\s+81%\s+12%\s+340\/100\s+demand 90: boosted/);
    expect(text).toMatch(/db\s+stopped\s+-\s+-\s+-\s+-\s+-\s+-\s+no share yet/);
  });
});
