// The VM lifecycle as an explicit state machine. Pure: the VM instance feeds it events (requests, QMP
// events, process exit) and acts on the state it returns.
import { ACTIVE_VM_STATES } from '../api/api-contract.js';
import type { VmStateName } from './vm-manager-api.js';

export type VmEvent =
  | { type: 'start' }
  | { type: 'started' }
  | { type: 'start-failed'; reason: string }
  | { type: 'stop' }
  | { type: 'kill' }
  /** `reason`: QMP's SHUTDOWN reason (guest-shutdown, guest-reset, guest-panic, host-qmp-quit, ...). */
  | { type: 'qmp'; event: 'STOP' | 'RESUME' | 'RESET' | 'SHUTDOWN' | 'POWERDOWN' | 'GUEST_PANICKED'; reason?: string }
  | { type: 'exited'; exitCode: number | null; signal: string | null; known: boolean }
  /** A new daemon found the VM's QEMU alive and took it back; qemuStatus is QMP's query-status answer. */
  | { type: 'reattached'; qemuStatus: string }
  /** A new daemon found the VM's QEMU gone: it ended while no daemon watched, exit status unknown. */
  | { type: 'vanished'; why: string };

export interface VmStatus {
  state: VmStateName;
  reason: string;
  /** The guest shut itself down (QMP SHUTDOWN seen): an exit that follows is clean. */
  guestShutdown: boolean;
  /** A user asked for stop or kill: an exit that follows is not a failure. */
  stopRequested: boolean;
}

export type Transition = { ok: true; status: VmStatus } | { ok: false; reason: string };

const RUNNING_LIKE: ReadonlySet<VmStateName> = new Set(ACTIVE_VM_STATES);

export const isActive = (s: VmStateName): boolean => RUNNING_LIKE.has(s);

export function initialStatus(): VmStatus {
  return { state: 'defined', reason: 'defined, never started', guestShutdown: false, stopRequested: false };
}

export function transition(s: VmStatus, e: VmEvent): Transition {
  const to = (state: VmStateName, reason: string, extra: Partial<VmStatus> = {}): Transition => ({ ok: true, status: { ...s, state, reason, ...extra } });
  const refuse = (what: string): Transition => ({ ok: false, reason: `cannot ${what} a VM that is ${s.state}` });
  switch (e.type) {
    case 'start':
      return isActive(s.state) ? refuse('start') : to('starting', 'start requested', { guestShutdown: false, stopRequested: false });
    case 'started':
      return s.state === 'starting' ? to('running', 'QEMU started') : refuse('mark started');
    case 'start-failed':
      return s.state === 'starting' ? to('crashed', `start failed: ${e.reason}`) : refuse('fail the start of');
    case 'stop':
      return s.state === 'running' || s.state === 'paused' || s.state === 'starting'
        ? to('stopping', 'stop requested: ACPI power button sent', { stopRequested: true })
        : refuse('stop');
    case 'kill':
      return isActive(s.state) ? to('stopping', 'kill requested', { stopRequested: true }) : refuse('kill');
    case 'qmp':
      switch (e.event) {
        case 'STOP':
          return s.state === 'running' ? to('paused', 'paused (QMP STOP)') : { ok: true, status: s };
        case 'RESUME':
          return s.state === 'paused' ? to('running', 'resumed (QMP RESUME)') : { ok: true, status: s };
        case 'SHUTDOWN':
          if (!isActive(s.state)) return { ok: true, status: s };
          // Under -no-reboot a guest that resets (a kernel panic with panic=N, a triple fault, a reboot)
          // makes QEMU shut down: that is a crash, unless a stop was asked for.
          if ((e.reason === 'guest-reset' || e.reason === 'guest-panic') && !s.stopRequested) {
            return to('crashed', e.reason === 'guest-panic' ? 'the guest panicked (QEMU shut down: guest-panic)' : 'the guest reset itself (QEMU shut down with -no-reboot: guest-reset)');
          }
          return to('stopping', 'guest shut down', { guestShutdown: true });
        case 'GUEST_PANICKED':
          return isActive(s.state) ? to('crashed', 'guest kernel panicked (pvpanic)') : { ok: true, status: s };
        case 'RESET':
        case 'POWERDOWN':
          return { ok: true, status: s };
      }
      return { ok: true, status: s };
    case 'reattached': {
      if (!isActive(s.state)) return refuse('re-attach');
      const state = e.qemuStatus === 'paused' ? 'paused' : s.state === 'stopping' ? 'stopping' : 'running';
      return to(state, `re-attached after a daemon restart (QEMU status ${e.qemuStatus})`);
    }
    case 'vanished':
      return isActive(s.state)
        ? to('crashed', `QEMU ended while the daemon was not running (exit status unknown; ${e.why})`)
        : refuse('mark as gone');
    case 'exited': {
      const how = !e.known ? 'exit status unknown' : e.signal ? `killed by ${e.signal}` : `exit code ${e.exitCode}`;
      if (s.state === 'crashed') return to('crashed', `${s.reason}; QEMU ended (${how})`);
      if (s.stopRequested || s.guestShutdown) return to('stopped', `stopped (${how})`);
      if (e.known && e.exitCode === 0 && !e.signal) return to('stopped', 'QEMU exited cleanly');
      return to('crashed', `QEMU ended unexpectedly (${how})`);
    }
  }
}

/** Whether the restart policy applies to a VM that just reached `status`. */
export function wantsRestart(status: VmStatus, policy: { policy: 'never' | 'on-failure'; maxRestarts: number }, restarts: number): boolean {
  return status.state === 'crashed' && policy.policy === 'on-failure' && restarts < policy.maxRestarts;
}

/** Exponential back-off: backoffMs, 2×, 4× ... capped at 5 minutes. */
export function restartDelayMs(backoffMs: number, restarts: number): number {
  return Math.min(backoffMs * 2 ** restarts, 300_000);
}
