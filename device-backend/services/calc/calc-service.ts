// The calculation mode: a guest asks the host to run a named function on input it streams through its
// channel's data slice, and reads the result back the same way. One job per channel; the output waits in
// a memfd of the job's own (not the daemon's heap), read with one pread straight into the slice. What the
// VM may call (built-ins, declared host programs) and how much output it may hold come from its catalog.
import { CALC_LIMITS, MODE, MSG_HEADER, MSG_TYPE, STATUS } from '../../layout/wire-layout.js';
import type { CoreLogger } from '../../core/core-logger.js';
import type { ChannelPort, MessageService, ServiceContext, ServiceCounters } from '../../core/message-service.js';
import type { VmgmtNative } from '../../native/index.js';
import { type Message, responseTo } from '../../protocol/message-codec.js';
import { type BeginReq, decodeArgs, decodeBegin, decodeIo, decodeJob, decodeList, encodeFailure, encodeIoResult, encodeJob, encodeList, encodeListResult, encodeResult } from './calc-codec.js';
import type { CalcFunction, CalcJob } from './calc-functions.js';
import { CalcRefusal } from './calc-program-runner.js';
import { BUILTIN_CATALOG, type CalcCatalog } from './calc-programs.js';
import { need, preadFully, Refusal } from '../refusal.js';

type JobState = 'input' | 'running' | 'done';

interface Job {
  readonly id: number;
  readonly fn: CalcFunction;
  readonly run: CalcJob;
  /** Declared input bytes; undefined when streamed (the input ends at CALC_RUN). */
  readonly inputSize: number | undefined;
  given: number;
  state: JobState;
  /** The output so far, in a memfd of this job's; -1 once the job is dropped. */
  outFd: number;
  outSize: number;
  /** Input requests run one after another, in the order they came. */
  chain: Promise<unknown>;
}



export interface CalcServiceOptions {
  native: VmgmtNative;
  log: CoreLogger;
  /** Functions this VM may call and its output budget; default the built-ins and 1 GiB. */
  catalog?: CalcCatalog;
  /** Output of one job at most; default CALC_LIMITS.MAX_JOB_BYTES. */
  maxOutputBytes?: number;
}

export class CalcService implements MessageService {
  readonly name = 'calc';
  readonly modes = [MODE.CALC];
  readonly types = [MSG_TYPE.CALC_BEGIN, MSG_TYPE.CALC_INPUT, MSG_TYPE.CALC_RUN, MSG_TYPE.CALC_OUTPUT, MSG_TYPE.CALC_END, MSG_TYPE.CALC_LIST];
  private readonly jobs = new Map<number, Job>();
  private readonly catalog: CalcCatalog;
  private readonly maxOutputBytes: number;
  /** Output bytes all of this VM's jobs hold (their memfds), against the catalog's budget. */
  private heldBytes = 0;
  private nextJob = 1;
  private counters: ServiceCounters = { add: () => {} };

  constructor(private readonly opts: CalcServiceOptions) {
    this.catalog = opts.catalog ?? BUILTIN_CATALOG;
    this.maxOutputBytes = opts.maxOutputBytes ?? CALC_LIMITS.MAX_JOB_BYTES;
  }

  attach(host: { counters: ServiceCounters }): void {
    this.counters = host.counters;
  }

  /** The functions on offer, for the API and `vmgmt-guest calc --list`. */
  get functionNames(): string[] {
    return this.catalog.list().map((f) => f.name);
  }

  /** Output bytes this VM's jobs hold now. */
  get outputHeldBytes(): number {
    return this.heldBytes;
  }

  handle(req: Message, ctx: ChannelPort): Message | Promise<Message> {
    try {
      const answer = this.dispatch(req, ctx);
      if (answer instanceof Promise) return answer.then((p) => responseTo(req, STATUS.OK.code, p), (err: unknown) => this.refused(req, err, ctx));
      return responseTo(req, STATUS.OK.code, answer);
    } catch (err) {
      return this.refused(req, err, ctx);
    }
  }

  private refused(req: Message, err: unknown, ctx: ChannelPort): Message {
    if (!(err instanceof Refusal)) throw err;
    this.counters.add('refusals');
    this.opts.log.info('calculation request refused', { type: req.type, status: err.status, reason: err.reason });
    // A failed program's exit status and stderr go with the answer, as much as the slot holds.
    const payload = err instanceof CalcRefusal && err.failure ? encodeFailure(err.failure, ctx.slotSizeBytes - MSG_HEADER.sizeBytes) : undefined;
    return responseTo(req, err.status, payload);
  }

  private dispatch(req: Message, ctx: ServiceContext): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    switch (req.type) {
      case MSG_TYPE.CALC_BEGIN:
        return this.begin(ctx, need(decodeBegin(req.payload)));
      case MSG_TYPE.CALC_INPUT:
        return this.input(ctx, need(decodeIo(req.payload)));
      case MSG_TYPE.CALC_RUN:
        return this.run(ctx, need(decodeJob(req.payload)).job);
      case MSG_TYPE.CALC_OUTPUT:
        return this.output(ctx, need(decodeIo(req.payload)));
      case MSG_TYPE.CALC_END:
        this.job(ctx, need(decodeJob(req.payload)).job);
        this.drop(ctx.channel);
        return undefined;
      case MSG_TYPE.CALC_LIST:
        return this.list(ctx, need(decodeList(req.payload)));
      default:
        throw new Refusal(STATUS.UNKNOWN_TYPE.code, `type ${req.type}`);
    }
  }

  private job(ctx: ServiceContext, id: number, state?: JobState): Job {
    const job = this.jobs.get(ctx.channel);
    if (!job || job.id !== id) throw new Refusal(STATUS.CALC_BAD_JOB.code, `no job ${id} on channel ${ctx.channel}`);
    if (state && job.state !== state) throw new Refusal(STATUS.CALC_BAD_JOB.code, `job ${id} is ${job.state}, this request needs it ${state}`);
    return job;
  }

  private begin(ctx: ServiceContext, req: BeginReq): Uint8Array {
    if (this.jobs.has(ctx.channel)) throw new Refusal(STATUS.CALC_BUSY.code, `channel ${ctx.channel} has job ${this.jobs.get(ctx.channel)!.id} open`);
    const found = this.catalog.find(req.name);
    if (!found.ok) throw new Refusal(found.status, found.reason);
    const fn = found.fn;
    const args = this.args(ctx, req);
    if (args.length > 0) {
      const why = fn.checkArgs ? fn.checkArgs(args) : `${fn.name} is a built-in and takes no arguments`;
      if (why) throw new Refusal(STATUS.CALC_BAD_ARGS.code, why);
    }
    const id = this.nextJob;
    this.nextJob = (this.nextJob % 0xfffffffe) + 1;
    const outFd = this.opts.native.memfdCreate(`vmgmt-calc-${id}`, 0);
    const job: Job = { id, fn, inputSize: req.inputSize, given: 0, state: 'input', outFd, outSize: 0, chain: Promise.resolve(), run: undefined as unknown as CalcJob };
    try {
      (job as { run: CalcJob }).run = fn.start((bytes) => this.sink(job, bytes), { id, inputSize: req.inputSize, args });
    } catch (err) {
      this.opts.native.close(outFd);
      throw err;
    }
    this.jobs.set(ctx.channel, job);
    this.counters.add(`jobs_${fn.name}`);
    return encodeJob(id);
  }

  /** A function's output lands in the job's memfd; past the limit the function fails with TOO_LARGE. */
  private sink(job: Job, bytes: Uint8Array): void {
    if (job.outFd < 0) throw new Error('the job was dropped');
    if (job.outSize + bytes.byteLength > this.maxOutputBytes) throw new RangeError(`output larger than ${this.maxOutputBytes} bytes`);
    const budget = this.catalog.outputBudgetBytes();
    if (this.heldBytes + bytes.byteLength > budget) {
      throw new Refusal(STATUS.CALC_OUTPUT_BUDGET.code, `${job.fn.name}: this VM's jobs would hold more than calc.outputBudgetBytes ${budget} bytes of output (${this.heldBytes} held)`);
    }
    this.opts.native.pwrite(job.outFd, bytes, job.outSize);
    job.outSize += bytes.byteLength;
    this.heldBytes += bytes.byteLength;
  }

  private input(ctx: ServiceContext, req: { job: number; length: number; offset: number; bufOffset: number }): Promise<Uint8Array> {
    const job = this.job(ctx, req.job, 'input');
    if (req.offset !== job.given + this.pendingBytes(job)) throw new Refusal(STATUS.CALC_BAD_JOB.code, `input at ${req.offset}, the job expects ${job.given + this.pendingBytes(job)} next`);
    if (job.inputSize !== undefined && req.offset + req.length > job.inputSize) throw new Refusal(STATUS.WRITE_PAST_SIZE.code, `input past the ${job.inputSize} bytes CALC_BEGIN declared`);
    if (req.offset + req.length > CALC_LIMITS.MAX_JOB_BYTES) throw new Refusal(STATUS.CALC_TOO_LARGE.code, `streamed input past ${CALC_LIMITS.MAX_JOB_BYTES} bytes`);
    const bytes = ctx.slice.copyOut(req.bufOffset, req.length);
    if (!bytes.ok) throw new Refusal(bytes.status, bytes.reason);
    const chunk = bytes.bytes;
    this.pending.set(job, this.pendingBytes(job) + chunk.byteLength);
    const step = job.chain.then(async () => {
      try {
        await job.run.write(chunk);
      } catch (err) {
        // The function gave up on this input: the job is over (the guest may begin another at once).
        this.counters.add('failures');
        if (this.jobs.get(ctx.channel) === job) this.drop(ctx.channel);
        throw asRefusal(job, err);
      } finally {
        this.pending.set(job, this.pendingBytes(job) - chunk.byteLength);
      }
      job.given += chunk.byteLength;
      this.counters.add('input_bytes', chunk.byteLength);
      return encodeIoResult(chunk.byteLength);
    });
    job.chain = step.catch(() => {});
    return step;
  }

  private readonly pending = new WeakMap<Job, number>();

  /** The guest's arguments for the function, copied out of the slice and checked. */
  private args(ctx: ServiceContext, req: BeginReq): string[] {
    if (req.argc === 0 && req.argsLen === 0) return [];
    const bytes = ctx.slice.copyOut(req.argsOffset, req.argsLen);
    if (!bytes.ok) throw new Refusal(bytes.status, bytes.reason);
    return need(decodeArgs(bytes.bytes, req.argc));
  }

  private pendingBytes(job: Job): number {
    return this.pending.get(job) ?? 0;
  }

  private async run(ctx: ServiceContext, id: number): Promise<Uint8Array> {
    const job = this.job(ctx, id, 'input');
    job.state = 'running';
    await job.chain;
    if (job.inputSize !== undefined && job.given !== job.inputSize) {
      job.state = 'input';
      throw new Refusal(STATUS.CALC_BAD_JOB.code, `job ${id} has ${job.given} of its ${job.inputSize} input bytes`);
    }
    try {
      await job.run.finish();
    } catch (err) {
      this.counters.add('failures');
      this.drop(ctx.channel);
      throw asRefusal(job, err);
    }
    if (this.jobs.get(ctx.channel) !== job) throw new Refusal(STATUS.CALC_BAD_JOB.code, `job ${id} was dropped while it ran`);
    job.state = 'done';
    this.counters.add('output_bytes', job.outSize);
    return encodeResult(job.outSize);
  }

  private output(ctx: ServiceContext, req: { job: number; length: number; offset: number; bufOffset: number }): Uint8Array {
    const job = this.job(ctx, req.job, 'done');
    const view = ctx.slice.view(req.bufOffset, req.length);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    const want = Math.max(0, Math.min(req.length, job.outSize - req.offset));
    return encodeIoResult(preadFully(this.opts.native, job.outFd, view.bytes.subarray(0, want), req.offset));
  }

  private drop(channel: number): void {
    const job = this.jobs.get(channel);
    if (!job) return;
    this.jobs.delete(channel);
    job.run.abort();
    if (job.outFd >= 0) this.opts.native.close(job.outFd);
    job.outFd = -1;
    this.heldBytes -= job.outSize;
  }

  /** CALC_LIST: the functions this VM may call, as vmgmt_calc_entry records into the slice. */
  private list(ctx: ServiceContext, req: { bufOffset: number; bufLen: number; cookie: number }): Uint8Array {
    const view = ctx.slice.view(req.bufOffset, req.bufLen);
    if (!view.ok) throw new Refusal(view.status, view.reason);
    const entries = this.catalog.list().map((f) => ({ name: f.name, kind: f.kind ?? 0, description: f.description }));
    if (req.cookie > entries.length) throw new Refusal(STATUS.BAD_LENGTH.code, `cookie ${req.cookie} past the ${entries.length} functions`);
    const { bytes, count, nextCookie } = encodeList(entries, req.cookie, req.bufLen);
    if (count === 0 && req.cookie < entries.length) throw new Refusal(STATUS.BAD_BUFFER.code, `a buffer of ${req.bufLen} bytes holds no CALC_LIST entry`);
    view.bytes.set(bytes);
    return encodeListResult(count, bytes.byteLength, nextCookie);
  }

  channelReset(channel: number): void {
    this.drop(channel);
  }

  close(): void {
    for (const channel of [...this.jobs.keys()]) this.drop(channel);
  }
}

/** What a job's failure tells the guest: a function's own refusal, the output limit, or a plain failure. */
function asRefusal(job: Job, err: unknown): Refusal {
  if (err instanceof Refusal) return err;
  return new Refusal(err instanceof RangeError ? STATUS.CALC_TOO_LARGE.code : STATUS.CALC_FAILED.code, `${job.fn.name}: ${(err as Error).message}`);
}
