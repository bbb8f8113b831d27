import { describe, expect, it } from 'vitest';
import { EXEC_FRAME, execFrameHeader, ExecFrameParser } from './exec-frames.js';
import { execExitCode } from '../cli/exec-command.js';
import { parseCli } from '../cli/cli-args.js';

const frame = (kind: 1 | 2 | 3 | 4, text: string): Buffer => Buffer.concat([execFrameHeader(kind, Buffer.byteLength(text)), Buffer.from(text)]);

describe('exec frames', () => {
  it('parses frames split at any byte', () => {
    const all = Buffer.concat([frame(EXEC_FRAME.STDOUT, 'hello'), frame(EXEC_FRAME.STDERR, ''), frame(EXEC_FRAME.EXIT, '{"exitCode":0}')]);
    for (let cut = 0; cut <= all.byteLength; cut++) {
      const p = new ExecFrameParser();
      const a = p.push(all.subarray(0, cut));
      const b = p.push(all.subarray(cut));
      if (!a.ok || !b.ok) throw new Error('refused');
      expect([...a.frames, ...b.frames].map((f) => [f.kind, f.payload.toString()])).toEqual([
        [1, 'hello'],
        [2, ''],
        [3, '{"exitCode":0}'],
      ]);
      expect(p.leftoverBytes).toBe(0);
    }
  });

  it('refuses an unknown kind and an oversized frame', () => {
    expect(new ExecFrameParser().push(Buffer.from([9, 0, 0, 0, 0])).ok).toBe(false);
    expect(new ExecFrameParser().push(Buffer.from([1, 0xff, 0xff, 0xff, 0xff])).ok).toBe(false);
  });

  it('maps how a command ended to the CLI exit code', () => {
    const base = { stdoutBytes: 0, stderrBytes: 0, durationMs: 1 };
    expect(execExitCode({ ...base, exitCode: 3, signal: null, timedOut: false })).toBe(3);
    expect(execExitCode({ ...base, exitCode: null, signal: 9, timedOut: false })).toBe(137);
    expect(execExitCode({ ...base, exitCode: null, signal: 9, timedOut: true })).toBe(124);
  });

  it('parses vm exec: options before --, the command after it untouched', () => {
    const r = parseCli(['vm', 'exec', 'web', '--tty', '--timeout', '500', '--env', 'A=1', '--cwd', '/tmp', '--', 'ls', '--all', '--', '-x'], {});
    expect(r).toMatchObject({ ok: true, command: { kind: 'vm-exec', name: 'web', argv: ['ls', '--all', '--', '-x'], tty: true, timeoutMs: 500, env: ['A=1'], cwd: '/tmp' } });
    expect(parseCli(['vm', 'exec', 'web'], {})).toMatchObject({ ok: false, message: expect.stringContaining('needs the command after --') });
    expect(parseCli(['vm', 'exec', 'web', '--env', 'bad', '--', 'x'], {})).toMatchObject({ ok: false, message: expect.stringContaining('NAME=VALUE') });
    expect(parseCli(['vm', 'pause', 'web'], {})).toMatchObject({ ok: true, command: { kind: 'vm-pause', name: 'web' } });
  });
});
