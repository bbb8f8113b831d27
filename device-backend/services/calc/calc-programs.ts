// The daemon's declared calculation programs (config `calc`), shared by every VM: for one VM, the
// functions it may call (CalcCatalog: built-ins + the programs its allow-list entry names), each program
// job counted against its per-VM and host-wide limits, run in a cgroup of its own as the configured
// unprivileged user. The settings are read at each CALC_BEGIN and CALC_LIST, so a SIGHUP applies to the
// next job; a running job keeps what it started with.
import { existsSync, readFileSync } from 'node:fs';
import type { CoreLogger } from '../../core/core-logger.js';
import { CALC_KIND, CALC_LIMITS, STATUS } from '../../layout/wire-layout.js';
import { Refusal } from '../refusal.js';
import { BUILTIN_FUNCTIONS, type CalcFunction } from './calc-functions.js';
import { type CalcCaller, type CalcProgramSpec, type CalcSettings, expandArgv, mayCall, refuseArgs } from './calc-program.js';
import { startProgramJob } from './calc-program-runner.js';
import { type CalcCgroupResult, createCalcCgroupRoot } from './job-cgroup.js';

/** The functions one VM sees. */
export interface CalcCatalog {
  /** The function by name, or the refusal (CALC_NO_FUNCTION, CALC_NOT_ALLOWED). */
  find(name: string): { ok: true; fn: CalcFunction } | { ok: false; status: number; reason: string };
  /** What `vmgmt-guest calc --list` shows: the functions this VM may call. */
  list(): CalcFunction[];
  /** Calculation output the daemon holds for this VM at once. */
  outputBudgetBytes(): number;
}

const builtins = (): CalcFunction[] => BUILTIN_FUNCTIONS.map((f) => ({ ...f, kind: CALC_KIND.BUILTIN }));

/** A VM without declared programs: the built-ins, and the 1 GiB budget of one job. */
export const BUILTIN_CATALOG: CalcCatalog = {
  find: (name) => {
    const fn = builtins().find((f) => f.name === name);
    return fn ? { ok: true, fn } : { ok: false, status: STATUS.CALC_NO_FUNCTION.code, reason: `no function ${name}; there are ${BUILTIN_FUNCTIONS.map((f) => f.name).join(', ')}` };
  },
  list: builtins,
  outputBudgetBytes: () => CALC_LIMITS.MAX_JOB_BYTES,
};

export interface CalcProgramsOptions {
  /** The daemon's calc settings as of now (LiveDaemonConfig). */
  settings: () => CalcSettings;
  /** vmgmt-calc-exec. */
  launcherPath: string;
  /** Where jobs' cgroups go (made at the first job); without one, programs are refused (they never run without their limits). Default: createCalcCgroupRoot(). */
  cgroups?: () => CalcCgroupResult;
  log: CoreLogger;
  /** /etc/passwd and /etc/group, for tests. */
  accountFiles?: { passwd: string; group: string };
}

/** uid or gid of a name (or a number) from a passwd/group file's text; undefined if it has none. Pure. */
export function accountId(text: string, account: string): number | undefined {
  if (/^[0-9]+$/.test(account)) return Number(account);
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === account && f.length >= 3 && /^[0-9]+$/.test(f[2]!)) return Number(f[2]);
  }
  return undefined;
}

export class CalcPrograms {
  private readonly hostWide = new Map<string, number>();
  private readonly perVm = new Map<string, number>();
  private nextCgroup = 1;
  private cgroupRoot: CalcCgroupResult | undefined;

  constructor(private readonly opts: CalcProgramsOptions) {}

  /** Running jobs of a program on the whole host (for tests and metrics). */
  running(program: string): number {
    return this.hostWide.get(program) ?? 0;
  }

  catalogFor(caller: CalcCaller): CalcCatalog {
    const programs = (): readonly CalcProgramSpec[] => this.opts.settings().programs;
    return {
      find: (name) => {
        const found = BUILTIN_CATALOG.find(name);
        if (found.ok) return found;
        const spec = programs().find((p) => p.name === name);
        if (!spec) return { ok: false, status: STATUS.CALC_NO_FUNCTION.code, reason: `no function ${name}` };
        if (!mayCall(spec, caller)) {
          return { ok: false, status: STATUS.CALC_NOT_ALLOWED.code, reason: `VM ${caller.vm}${caller.group ? ` (group ${caller.group})` : ''} is not on the allow-list of ${name}` };
        }
        return { ok: true, fn: this.programFunction(spec, caller) };
      },
      list: () => [...builtins(), ...programs().filter((p) => mayCall(p, caller)).map((p) => this.programFunction(p, caller))],
      outputBudgetBytes: () => this.opts.settings().outputBudgetBytes,
    };
  }

  private ids(spec: CalcProgramSpec): { uid: number; gid: number } {
    const files = this.opts.accountFiles ?? { passwd: '/etc/passwd', group: '/etc/group' };
    const uid = accountId(readFileSync(files.passwd, 'utf8'), spec.user);
    const gid = accountId(readFileSync(files.group, 'utf8'), spec.group);
    if (uid === undefined) throw new Refusal(STATUS.CALC_FAILED.code, `calc user ${spec.user} of ${spec.name} does not exist on this host (scripts/setup.sh creates nobody/nogroup)`);
    if (gid === undefined) throw new Refusal(STATUS.CALC_FAILED.code, `calc group ${spec.group} of ${spec.name} does not exist on this host`);
    if (uid === 0 || gid === 0) throw new Refusal(STATUS.CALC_FAILED.code, `calc user ${spec.user}/${spec.group} of ${spec.name} is root: input from a guest never runs as root`);
    return { uid, gid };
  }

  private programFunction(spec: CalcProgramSpec, caller: CalcCaller): CalcFunction {
    return {
      name: spec.name,
      description: spec.description,
      kind: CALC_KIND.PROGRAM,
      checkArgs: (args) => refuseArgs(spec, args),
      start: (sink, job) => {
        const vmKey = `${caller.vm}\0${spec.name}`;
        const onHost = this.hostWide.get(spec.name) ?? 0;
        const onVm = this.perVm.get(vmKey) ?? 0;
        if (onVm >= spec.maxPerVm) throw new Refusal(STATUS.CALC_BUSY.code, `${spec.name}: VM ${caller.vm} runs ${onVm} jobs of it, its limit (concurrency.perVm)`);
        if (onHost >= spec.maxHostWide) throw new Refusal(STATUS.CALC_BUSY.code, `${spec.name}: the host runs ${onHost} jobs of it, its limit (concurrency.hostWide)`);
        if (!existsSync(this.opts.launcherPath)) throw new Refusal(STATUS.CALC_FAILED.code, `${spec.name}: ${this.opts.launcherPath} is missing: run \`make build\``);
        const cgroups = this.cgroups();
        if (!cgroups.ok) throw new Refusal(STATUS.CALC_FAILED.code, `${spec.name} cannot run without its cgroup limits: ${cgroups.reason}`);
        const { uid, gid } = this.ids(spec);
        const argv = expandArgv(spec.argv, { vm: caller.vm, group: caller.group ?? '', function: spec.name, job: String(job.id), inputBytes: String(job.inputSize ?? -1), args: job.args });
        let cgroup;
        try {
          cgroup = cgroups.root.createJob(`j${this.nextCgroup++}`, { cpuPercent: spec.cpuPercent, memoryMaxBytes: spec.memoryMaxBytes, pidsMax: spec.pidsMax });
        } catch (err) {
          throw new Refusal(STATUS.CALC_FAILED.code, `${spec.name}: cannot make its job cgroup: ${(err as Error).message}`);
        }
        this.hostWide.set(spec.name, onHost + 1);
        this.perVm.set(vmKey, onVm + 1);
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          this.hostWide.set(spec.name, (this.hostWide.get(spec.name) ?? 1) - 1);
          this.perVm.set(vmKey, (this.perVm.get(vmKey) ?? 1) - 1);
        };
        this.opts.log.info('calc program started', { vm: caller.vm, function: spec.name, job: job.id, argv, uid, gid, cgroup: cgroup.name });
        try {
          return startProgramJob({ launcherPath: this.opts.launcherPath, argv, uid, gid, cgroup, timeoutMs: spec.timeoutMs, maxOutputBytes: spec.maxOutputBytes, sink, onExit: release });
        } catch (err) {
          release();
          void cgroup.remove();
          throw err;
        }
      },
    };
  }

  private cgroups(): CalcCgroupResult {
    if (!this.cgroupRoot || !this.cgroupRoot.ok) {
      this.cgroupRoot = (this.opts.cgroups ?? createCalcCgroupRoot)();
      if (!this.cgroupRoot.ok) this.opts.log.error('calc programs cannot run: no cgroup for their limits', { reason: this.cgroupRoot.reason });
    }
    return this.cgroupRoot;
  }

  /** The daemon stops: its calc cgroups go (jobs' processes are killed with them). */
  async close(): Promise<void> {
    if (this.cgroupRoot?.ok) await this.cgroupRoot.root.remove();
    this.cgroupRoot = undefined;
  }
}
