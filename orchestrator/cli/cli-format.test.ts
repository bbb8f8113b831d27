import { describe, expect, it } from 'vitest';
import { vmDefinitionSchema } from '../daemon/vm-definition.js';
import type { VmDetails, VmSummary } from '../daemon/vm-manager-api.js';
import { formatActionResult, formatBytes, formatErrorLines, formatTable, formatUptime, formatVmDetails, formatVmTable } from './cli-format.js';
import { splitAtDetach } from './console-escape.js';

const NOW = Date.parse('2025-01-01T12:00:00.000Z');

const summary = (over: Partial<VmSummary>): VmSummary => ({
  name: 'a',
  uuid: 'u',
  state: 'defined',
  pid: null,
  accel: null,
  startedAt: null,
  restarts: 0,
  lastExit: null,
  ...over,
});

const details = (over: Partial<VmDetails> = {}): VmDetails => ({
  ...summary({}),
  definition: vmDefinitionSchema.parse({ name: 'a' }),
  paths: {
    runDir: '/run/vmgmt/vms/a',
    qmpSocket: '/run/vmgmt/vms/a/qmp.sock',
    consoleSocket: '/run/vmgmt/vms/a/console.sock',
    consoleLog: '/run/vmgmt/vms/a/console.log',
    qemuLog: '/run/vmgmt/vms/a/qemu.log',
    controlSocket: '/run/vmgmt/vms/a/control.sock',
    ivshmemSocket: '/run/vmgmt/vms/a/ivshmem.sock',
  },
  device: null,
  stateReason: 'created',
  ...over,
});

describe('formatUptime', () => {
  it('uses the two largest units', () => {
    expect(formatUptime(0)).toBe('0s');
    expect(formatUptime(45_900)).toBe('45s');
    expect(formatUptime(185_000)).toBe('3m05s');
    expect(formatUptime((2 * 60 + 3) * 60_000)).toBe('2h03m');
    expect(formatUptime((4 * 24 + 7) * 3_600_000)).toBe('4d07h');
    expect(formatUptime(-5)).toBe('0s');
  });
});

describe('formatVmTable', () => {
  it('aligns NAME STATE PID ACCEL UPTIME RESTARTS', () => {
    const text = formatVmTable(
      [
        summary({ name: 'web-frontend', state: 'running', pid: 12345, accel: 'tcg', startedAt: '2025-01-01T11:57:55.000Z', restarts: 2 }),
        summary({ name: 'b', state: 'stopped', startedAt: '2025-01-01T11:00:00.000Z' }),
      ],
      NOW,
    );
    expect(text).toBe(
      [
        'NAME          STATE    PID    ACCEL  UPTIME  RESTARTS',
        'web-frontend  running  12345  tcg    2m05s   2',
        'b             stopped  -      -      -       0',
        '',
      ].join('\n'),
    );
  });

  it('prints just the header for no VMs, and formatTable leaves no trailing blanks', () => {
    expect(formatVmTable([], NOW)).toBe('NAME  STATE  PID  ACCEL  UPTIME  RESTARTS\n');
    expect(formatTable(['A', 'B'], [['long', '']])).toBe('A     B\nlong\n');
  });
});

describe('formatVmDetails', () => {
  it("prints what each of the device's services counted, sizes in binary units", () => {
    const text = formatVmDetails(
      details({
        state: 'running',
        device: { attached: true, origin: 'fresh', regionSizeBytes: 4194304, messages: 3, protocolErrors: 0, doorbells: 3, services: { agent: { agent_claims: 1, copy_bytes: 4194304 }, ping: {} } },
      }),
      NOW,
    );
    const lines = text.trimEnd().split('\n');
    expect(lines).toContain('service agent:     agent_claims 1, copy_bytes 4 MiB');
    expect(lines.some((l) => l.startsWith('service ping'))).toBe(false);
  });

  it('prints aligned key: value lines', () => {
    const text = formatVmDetails(
      details({
        state: 'running',
        pid: 99,
        accel: 'tcg',
        startedAt: '2025-01-01T11:59:00.000Z',
        stateReason: 'started by request',
        device: { attached: true, origin: 'fresh', regionSizeBytes: 4194304, messages: 12, protocolErrors: 0, doorbells: 7 },
      }),
      NOW,
    );
    const lines = text.trimEnd().split('\n');
    expect(lines).toContain('name:              a');
    expect(lines).toContain('state:             running (started by request)');
    expect(lines).toContain('started:           2025-01-01T11:59:00.000Z (up 1m00s)');
    expect(lines).toContain('accel:             tcg (wanted: auto)');
    expect(lines).toContain('boot:              test image (images/build)');
    expect(lines).toContain('device:            64 MiB region, 8 channels, 64 slots x 256 B, 2 vectors');
    expect(lines).toContain('device state:      attached (fresh), 12 messages, 7 doorbells, 0 protocol errors');
    expect(lines).toContain('console socket:    /run/vmgmt/vms/a/console.sock');
    const valueColumn = new Set(lines.map((l) => /^[^:]+:\s+/.exec(l)?.[0].length));
    expect(valueColumn.size).toBe(1);
  });
});

describe('formatActionResult and formatErrorLines', () => {
  it('prints one line per action', () => {
    expect(formatActionResult('started', details({ pid: 1234, state: 'running' }))).toBe('started vm a (pid 1234)\n');
    expect(formatActionResult('created', details())).toBe('created vm a\n');
    expect(formatActionResult('killed', details({ lastExit: { exitCode: null, signal: 'SIGKILL', at: 't', reason: 'r' } }))).toBe(
      'killed vm a (signal SIGKILL)\n',
    );
    expect(formatActionResult('stopped', details({ lastExit: { exitCode: 0, signal: null, at: 't', reason: 'r' } }))).toBe(
      'stopped vm a (exit code 0)\n',
    );
    expect(
      formatActionResult('stopped', details({ lastExit: { exitCode: 0, signal: null, at: 't', reason: 'r', stoppedBy: 'quit', stopNote: 'the guest did not power off within 30000 ms; QEMU was told to quit' } })),
    ).toBe('stopped vm a by QEMU quit (exit code 0)\n  the guest did not power off within 30000 ms; QEMU was told to quit\n');
    expect(formatActionResult('stopped', details({ lastExit: { exitCode: 0, signal: null, at: 't', reason: 'r', stoppedBy: 'powerdown' } }))).toBe(
      'stopped vm a by the power button (exit code 0)\n',
    );
  });

  it('puts each field problem on its own line', () => {
    const problems = [
      { path: 'name', message: 'bad' },
      { path: 'cpus', message: 'Too small' },
    ];
    expect(formatErrorLines('invalid VM definition: name: bad; cpus: Too small', { problems })).toBe(
      'vmgmt: invalid VM definition:\n  name: bad\n  cpus: Too small\n',
    );
    expect(formatErrorLines('no vm named x', { name: 'x' })).toBe('vmgmt: no vm named x\n');
  });

  it('formats sizes in the largest exact unit', () => {
    expect(formatBytes(4 * 1024 * 1024)).toBe('4 MiB');
    expect(formatBytes(1536)).toBe('1536 B');
    expect(formatBytes(2048)).toBe('2 KiB');
  });
});

describe('splitAtDetach', () => {
  it('forwards bytes before Ctrl-] and reports the detach', () => {
    expect(splitAtDetach(Buffer.from('ls\n'))).toEqual({ forward: Buffer.from('ls\n'), detach: false });
    const r = splitAtDetach(Buffer.from([0x61, 0x1d, 0x62]));
    expect(r.detach).toBe(true);
    expect([...r.forward]).toEqual([0x61]);
  });
});
