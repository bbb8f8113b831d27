// One job of a declared host program: started with execa through vmgmt-calc-exec (which joins the job's
// cgroup and drops to the unprivileged user), the guest's input written to its stdin as it comes (with
// backpressure), its stdout to the job's output sink, the first part of its stderr kept for the guest.
// Nothing here blocks the event loop: the program is a child process.
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import { execa } from 'execa';
import { CALC_LIMITS, STATUS } from '../../layout/wire-layout.js';
import { Refusal } from '../refusal.js';
import type { CalcJob, OutputSink } from './calc-functions.js';
import type { ProgramFailure } from './calc-codec.js';
import type { JobCgroup } from './job-cgroup.js';

/** A refusal with an answer payload (CALC_PROGRAM_FAILED carries vmgmt_calc_failure + stderr). */
export class CalcRefusal extends Refusal {
  constructor(
    status: number,
    reason: string,
    readonly failure?: ProgramFailure,
  ) {
    super(status, reason);
  }
}


export interface ProgramJobOptions {
  launcherPath: string;
  argv: readonly string[];
  uid: number;
  gid: number;
  cgroup: JobCgroup;
  timeoutMs: number;
  maxOutputBytes: number;
  sink: OutputSink;
  /** Once, when the process has exited and its cgroup is gone (the concurrency slot is free again). */
  onExit: () => void;
}


/** Input queued for a program beyond what its pipe holds, before CALC_INPUT waits for it to read. */
const STDIN_QUEUE_BYTES = 4 * 1024 * 1024;

/** Settles when the stream drained, closed or failed (never rejects: the program's exit says what happened). */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      for (const e of ['drain', 'close', 'error'] as const) stream.off(e, done);
      resolve();
    };
    for (const e of ['drain', 'close', 'error'] as const) stream.on(e, done);
  });
}

type Ending = { kind: 'ok' } | { kind: 'refused'; refusal: Refusal } | { kind: 'sink'; error: unknown };

export function startProgramJob(opts: ProgramJobOptions): CalcJob {
  const name = opts.argv[0]!;
  const child = execa(
    opts.launcherPath,
    ['--uid', String(opts.uid), '--gid', String(opts.gid), ...opts.cgroup.procsFiles.flatMap((f) => ['--cgroup', f]), '--', ...opts.argv],
    { env: {}, extendEnv: false, cwd: '/', stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false, stripFinalNewline: false, cleanup: true },
  );
  let outBytes = 0;
  let stderrTotal = 0;
  const stderrHead: Buffer[] = [];
  let stderrHeadBytes = 0;
  let timedOut = false;
  let tooLarge = false;
  let sinkError: unknown;
  let aborted = false;

  const killAll = (): void => {
    opts.cgroup.kill();
    child.kill('SIGKILL');
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, opts.timeoutMs);

  child.stdout!.on('data', (b: Buffer) => {
    if (tooLarge || sinkError !== undefined || aborted) return;
    if (outBytes + b.byteLength > opts.maxOutputBytes) {
      tooLarge = true;
      killAll();
      return;
    }
    outBytes += b.byteLength;
    try {
      opts.sink(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    } catch (err) {
      sinkError = err;
      killAll();
    }
  });
  child.stderr!.on('data', (b: Buffer) => {
    stderrTotal = Math.min(0xffffffff, stderrTotal + b.byteLength);
    if (stderrHeadBytes < CALC_LIMITS.MAX_STDERR_BYTES) {
      const part = b.subarray(0, CALC_LIMITS.MAX_STDERR_BYTES - stderrHeadBytes);
      stderrHead.push(Buffer.from(part));
      stderrHeadBytes += part.byteLength;
    }
  });
  // A program that exits without reading all of its input closes the pipe: not an error by itself.
  child.stdin!.on('error', () => {});

  const ended: Promise<Ending> = child.then(async (result) => {
    clearTimeout(timer);
    const oom = opts.cgroup.oomKilled();
    await opts.cgroup.remove();
    opts.onExit();
    if (sinkError !== undefined) return { kind: 'sink', error: sinkError };
    if (timedOut) return { kind: 'refused', refusal: new Refusal(STATUS.CALC_TIMED_OUT.code, `${name} still ran after ${opts.timeoutMs} ms: killed`) };
    if (tooLarge) return { kind: 'refused', refusal: new Refusal(STATUS.CALC_TOO_LARGE.code, `${name} wrote more than its ${opts.maxOutputBytes} bytes of output: killed`) };
    const signal = result.signal ? (constants.signals[result.signal] ?? 0) : 0;
    const exitCode = result.exitCode ?? -1;
    if (exitCode === 0 && !signal) return { kind: 'ok' };
    let stderr = Buffer.concat(stderrHead);
    if (oom) stderr = Buffer.concat([Buffer.from('[host: killed by its cgroup memory limit]\n'), stderr]).subarray(0, CALC_LIMITS.MAX_STDERR_BYTES);
    const failure: ProgramFailure = { exitCode: signal ? -1 : exitCode, signal, stderr, stderrTotal };
    const how = signal ? `was killed by ${result.signal}${oom ? ' (memory limit)' : ''}` : `exited with status ${exitCode}`;
    return { kind: 'refused', refusal: new CalcRefusal(STATUS.CALC_PROGRAM_FAILED.code, `${name} ${how}: ${stderr.toString('utf8').slice(0, 200)}`, failure) };
  });

  const raise = (e: Ending): void => {
    if (e.kind === 'refused') throw e.refusal;
    if (e.kind === 'sink') throw e.error;
  };
  let exited: Ending | undefined;
  void ended.then((e) => (exited = e));

  return {
    write: async (chunk) => {
      if (exited) return raise(exited); // exited 0 early: the rest of the input is not needed
      const stdin = child.stdin!;
      // The guest's next chunk may come while the program reads this one: up to STDIN_QUEUE_BYTES wait
      // in the pipe's queue, then the answer waits until the program has taken them (backpressure). An
      // EPIPE is not an error by itself: the exit decides what the guest is told.
      stdin.write(Buffer.from(chunk));
      if (stdin.writableLength > STDIN_QUEUE_BYTES) await Promise.race([drained(stdin), ended]);
      if (exited) raise(exited);
    },
    finish: async () => {
      child.stdin!.end();
      raise(await ended);
    },
    abort: () => {
      aborted = true;
      killAll();
    },
  };
}
