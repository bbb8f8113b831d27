import { describe, expect, it } from 'vitest';
import { initialStatus, restartDelayMs, transition, type VmEvent, type VmStatus, wantsRestart } from './vm-state-machine.js';

function run(events: VmEvent[], from: VmStatus = initialStatus()): VmStatus {
  return events.reduce((s, e) => {
    const t = transition(s, e);
    if (!t.ok) throw new Error(t.reason);
    return t.status;
  }, from);
}

const exited = (exitCode: number | null, signal: string | null = null, known = true): VmEvent => ({ type: 'exited', exitCode, signal, known });

describe('VM state machine', () => {
  it('defined -> starting -> running -> stopping -> stopped', () => {
    expect(run([{ type: 'start' }]).state).toBe('starting');
    expect(run([{ type: 'start' }, { type: 'started' }]).state).toBe('running');
    const s = run([{ type: 'start' }, { type: 'started' }, { type: 'stop' }, exited(0)]);
    expect(s).toMatchObject({ state: 'stopped', reason: 'stopped (exit code 0)' });
  });

  it('pauses and resumes on QMP STOP/RESUME', () => {
    const paused = run([{ type: 'start' }, { type: 'started' }, { type: 'qmp', event: 'STOP' }]);
    expect(paused.state).toBe('paused');
    expect(run([{ type: 'qmp', event: 'RESUME' }], paused).state).toBe('running');
  });

  it('a guest that shuts itself down ends stopped, not crashed', () => {
    expect(run([{ type: 'start' }, { type: 'started' }, { type: 'qmp', event: 'SHUTDOWN' }, exited(0)]).state).toBe('stopped');
  });

  it('a guest reset or panic under -no-reboot (QMP SHUTDOWN reason) is a crash, and the restart policy applies', () => {
    const reset = run([{ type: 'start' }, { type: 'started' }, { type: 'qmp', event: 'SHUTDOWN', reason: 'guest-reset' }, exited(0)]);
    expect(reset).toMatchObject({ state: 'crashed', reason: expect.stringMatching(/^the guest reset itself .*guest-reset.*; QEMU ended \(exit code 0\)$/) });
    expect(wantsRestart(reset, { policy: 'on-failure', maxRestarts: 3 }, 0)).toBe(true);
    expect(run([{ type: 'start' }, { type: 'started' }, { type: 'qmp', event: 'SHUTDOWN', reason: 'guest-panic' }, exited(0)]).state).toBe('crashed');
    // A stop that was asked for, and the guest's own power-off, stay stops.
    expect(run([{ type: 'start' }, { type: 'started' }, { type: 'stop' }, { type: 'qmp', event: 'SHUTDOWN', reason: 'guest-reset' }, exited(0)]).state).toBe('stopped');
    expect(run([{ type: 'start' }, { type: 'started' }, { type: 'qmp', event: 'SHUTDOWN', reason: 'guest-shutdown' }, exited(0)]).state).toBe('stopped');
  });

  it('an unexpected exit is a crash, with how it ended', () => {
    expect(run([{ type: 'start' }, { type: 'started' }, exited(null, 'SIGKILL')])).toMatchObject({ state: 'crashed', reason: 'QEMU ended unexpectedly (killed by SIGKILL)' });
    expect(run([{ type: 'start' }, { type: 'started' }, exited(null, null, false)]).reason).toMatch(/exit status unknown/);
  });

  it('a guest panic is a crash that the following exit does not hide', () => {
    const s = run([{ type: 'start' }, { type: 'started' }, { type: 'qmp', event: 'GUEST_PANICKED' }, exited(null, 'SIGKILL')]);
    expect(s.state).toBe('crashed');
    expect(s.reason).toMatch(/panicked/);
  });

  it('refuses impossible requests with a reason', () => {
    expect(transition(initialStatus(), { type: 'stop' })).toEqual({ ok: false, reason: 'cannot stop a VM that is defined' });
    const running = run([{ type: 'start' }, { type: 'started' }]);
    expect(transition(running, { type: 'start' })).toEqual({ ok: false, reason: 'cannot start a VM that is running' });
  });

  it('a crashed or stopped VM can be started again', () => {
    const crashed = run([{ type: 'start' }, { type: 'started' }, exited(1)]);
    expect(run([{ type: 'start' }], crashed)).toMatchObject({ state: 'starting', stopRequested: false, guestShutdown: false });
  });

  it('restart policy: only crashes, only on-failure, up to the limit, with exponential back-off', () => {
    const crashed = run([{ type: 'start' }, { type: 'started' }, exited(1)]);
    const stopped = run([{ type: 'start' }, { type: 'started' }, { type: 'stop' }, exited(0)]);
    const policy = { policy: 'on-failure' as const, maxRestarts: 2 };
    expect(wantsRestart(crashed, policy, 0)).toBe(true);
    expect(wantsRestart(crashed, policy, 2)).toBe(false);
    expect(wantsRestart(stopped, policy, 0)).toBe(false);
    expect(wantsRestart(crashed, { policy: 'never', maxRestarts: 5 }, 0)).toBe(false);
    expect([0, 1, 2].map((n) => restartDelayMs(1000, n))).toEqual([1000, 2000, 4000]);
    expect(restartDelayMs(1000, 30)).toBe(300_000);
  });

  it('a new daemon re-attaches an active VM through events: running, paused or still stopping', () => {
    const running = run([{ type: 'start' }, { type: 'started' }]);
    expect(run([{ type: 'reattached', qemuStatus: 'running' }], running)).toMatchObject({ state: 'running', reason: 're-attached after a daemon restart (QEMU status running)' });
    expect(run([{ type: 'reattached', qemuStatus: 'paused' }], running).state).toBe('paused');
    const stopping = run([{ type: 'stop' }], running);
    expect(run([{ type: 'reattached', qemuStatus: 'running' }], stopping)).toMatchObject({ state: 'stopping', stopRequested: true });
    expect(run([{ type: 'reattached', qemuStatus: 'running' }], run([{ type: 'start' }])).state).toBe('running');
    expect(transition(initialStatus(), { type: 'reattached', qemuStatus: 'running' })).toEqual({ ok: false, reason: 'cannot re-attach a VM that is defined' });
  });

  it('a VM whose QEMU ended while no daemon ran is a crash, exit status unknown', () => {
    const running = run([{ type: 'start' }, { type: 'started' }]);
    const gone = run([{ type: 'vanished', why: 'process 42 is gone' }], running);
    expect(gone).toMatchObject({ state: 'crashed', reason: 'QEMU ended while the daemon was not running (exit status unknown; process 42 is gone)' });
    expect(wantsRestart(gone, { policy: 'on-failure', maxRestarts: 1 }, 0)).toBe(true);
    expect(transition(gone, { type: 'vanished', why: 'x' }).ok).toBe(false);
  });
});
