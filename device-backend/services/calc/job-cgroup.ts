// The cgroups declared calculation programs run in: one per job, under one directory per daemon process
// (`vmgmt/calc.<pid>`: a VM's cgroup is `vmgmt/<vm>` and VM names have no dot, so they cannot collide, nor
// can two daemons), with the program's CPU, memory and process limits. cgroup v2 where the host has the
// controllers there, else the v1 cpu, memory and pids hierarchies. The launcher (vmgmt-calc-exec) joins
// the job's cgroup before it drops to the unprivileged user and execs, so nothing escapes the limits.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface JobLimits {
  /** Percent of one CPU: quota = cpuPercent% of a 100 ms period. */
  cpuPercent: number;
  memoryMaxBytes: number;
  pidsMax: number;
}

export interface JobCgroup {
  readonly name: string;
  /** The cgroup.procs file of each hierarchy: the launcher writes itself into each. */
  readonly procsFiles: readonly string[];
  /** SIGKILL to everything in the job's cgroup (the program and anything it forked). */
  kill(): void;
  /** Whether the kernel's OOM killer killed a process of the job (its memory limit). */
  oomKilled(): boolean;
  /** Kills what is left and removes the cgroup; retries while killed processes are still exiting. */
  remove(): Promise<void>;
}

export interface CalcCgroupRoot {
  readonly version: 1 | 2;
  /** The daemon's directory in each hierarchy. */
  readonly dirs: readonly string[];
  createJob(name: string, limits: JobLimits): JobCgroup;
  /** Removes the daemon's directories (jobs first). */
  remove(): Promise<void>;
}

export type CalcCgroupResult = { ok: true; root: CalcCgroupRoot } | { ok: false; reason: string };

const CGROUP_ROOT = '/sys/fs/cgroup';
const PERIOD_US = 100_000;
const DAEMON_DIR = /^calc\.(\d+)$/;

const read = (file: string): string => readFileSync(file, 'utf8');
const write = (file: string, value: string): void => writeFileSync(file, value);

/** The daemon's calc cgroup directories; also removes empty ones left by daemons that died. */
export function createCalcCgroupRoot(opts: { root?: string; pid?: number } = {}): CalcCgroupResult {
  const root = opts.root ?? CGROUP_ROOT;
  const pid = opts.pid ?? process.pid;
  try {
    const v2Controllers = existsSync(path.join(root, 'cgroup.controllers')) ? read(path.join(root, 'cgroup.controllers')) : '';
    if (/\bcpu\b/.test(v2Controllers) && /\bmemory\b/.test(v2Controllers)) {
      const parent = path.join(root, 'vmgmt');
      const mine = path.join(parent, `calc.${pid}`);
      mkdirSync(mine, { recursive: true });
      const controllers = ['cpu', 'memory', ...(/\bpids\b/.test(v2Controllers) ? ['pids'] : [])].map((c) => `+${c}`).join(' ');
      for (const dir of [root, parent, mine]) write(path.join(dir, 'cgroup.subtree_control'), controllers);
      sweepStale([parent], pid);
      return { ok: true, root: makeRoot(2, [mine]) };
    }
    const hierarchies = ['cpu', 'memory', 'pids'].map((c) => path.join(root, c)).filter((p) => existsSync(path.join(p, 'cgroup.procs')));
    const names = hierarchies.map((h) => path.basename(h));
    if (!names.includes('cpu') || !names.includes('memory')) {
      return { ok: false, reason: `no cgroup v2 with the cpu and memory controllers at ${root}, and no v1 cpu and memory hierarchies under it` };
    }
    const mine = hierarchies.map((h) => path.join(h, 'vmgmt', `calc.${pid}`));
    for (const dir of mine) mkdirSync(dir, { recursive: true });
    sweepStale(hierarchies.map((h) => path.join(h, 'vmgmt')), pid);
    return { ok: true, root: makeRoot(1, mine) };
  } catch (err) {
    return { ok: false, reason: `cannot create the calculation cgroups under ${root}: ${(err as Error).message}` };
  }
}

/**
 * The job and daemon directories of daemons that are gone (a kill -9 leaves them): what still runs in them
 * is an orphaned job nobody will read, so it is killed; the directories go once it has left them.
 */
function sweepStale(parents: string[], pid: number): void {
  for (const parent of parents) {
    for (const entry of readdirSync(parent)) {
      const m = DAEMON_DIR.exec(entry);
      if (!m || Number(m[1]) === pid || alive(Number(m[1]))) continue;
      const dir = path.join(parent, entry);
      try {
        for (const job of readdirSync(dir, { withFileTypes: true })) {
          if (!job.isDirectory()) continue;
          const jobDir = path.join(dir, job.name);
          for (const p of pidsIn([jobDir])) {
            try {
              process.kill(p, 'SIGKILL');
            } catch {
              // exited meanwhile
            }
          }
          rmdirSync(jobDir);
        }
        rmdirSync(dir);
      } catch {
        // Killed processes still leaving: a later daemon's sweep removes what is left.
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function makeRoot(version: 1 | 2, dirs: string[]): CalcCgroupRoot {
  const jobs = new Set<JobCgroup>();
  return {
    version,
    dirs,
    createJob(name, limits) {
      const jobDirs = dirs.map((d) => path.join(d, name));
      const job = makeJob(version, name, jobDirs, () => jobs.delete(job));
      try {
        for (const d of jobDirs) mkdirSync(d);
        applyLimits(version, jobDirs, limits);
      } catch (err) {
        void job.remove();
        throw err;
      }
      jobs.add(job);
      return job;
    },
    async remove() {
      await Promise.all([...jobs].map((j) => j.remove()));
      for (const d of dirs) {
        try {
          rmdirSync(d);
        } catch {
          // Busy or gone: a later daemon's sweep removes it.
        }
      }
    },
  };
}

function applyLimits(version: 1 | 2, dirs: string[], limits: JobLimits): void {
  const quotaUs = Math.round((limits.cpuPercent / 100) * PERIOD_US);
  const inDir = (file: string): string | undefined => dirs.map((d) => path.join(d, file)).find((f) => existsSync(f));
  const set = (file: string, value: string, required: boolean): void => {
    const f = inDir(file);
    if (f) write(f, value);
    else if (required) throw new Error(`the job cgroup has no ${file}`);
  };
  if (version === 2) {
    set('cpu.max', `${quotaUs} ${PERIOD_US}`, true);
    set('memory.max', String(limits.memoryMaxBytes), true);
    set('memory.swap.max', '0', false);
    set('pids.max', String(limits.pidsMax), false);
  } else {
    set('cpu.cfs_period_us', String(PERIOD_US), true);
    set('cpu.cfs_quota_us', String(quotaUs), true);
    set('memory.limit_in_bytes', String(limits.memoryMaxBytes), true);
    // With swap accounting: no swap beyond the limit either (must come after limit_in_bytes).
    set('memory.memsw.limit_in_bytes', String(limits.memoryMaxBytes), false);
    set('pids.max', String(limits.pidsMax), false);
  }
}

function pidsIn(dirs: readonly string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const line of read(path.join(d, 'cgroup.procs')).split('\n')) if (line) pids.add(Number(line));
    } catch {
      // removed already
    }
  }
  return [...pids];
}

function makeJob(version: 1 | 2, name: string, dirs: string[], forget: () => void): JobCgroup {
  let removing: Promise<void> | undefined;
  const kill = (): void => {
    const killFile = path.join(dirs[0]!, 'cgroup.kill');
    if (version === 2 && existsSync(killFile)) {
      try {
        write(killFile, '1');
        return;
      } catch {
        // fall back to one by one
      }
    }
    for (const pid of pidsIn(dirs)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
  };
  return {
    name,
    procsFiles: dirs.map((d) => path.join(d, 'cgroup.procs')),
    kill,
    oomKilled() {
      const file = version === 2 ? 'memory.events' : 'memory.oom_control';
      for (const d of dirs) {
        try {
          const m = /^oom_kill (\d+)$/m.exec(read(path.join(d, file)));
          if (m && Number(m[1]) > 0) return true;
        } catch {
          // not this hierarchy
        }
      }
      return false;
    },
    remove() {
      return (removing ??= (async () => {
        for (let attempt = 0; ; attempt++) {
          kill();
          let left = 0;
          for (const d of dirs) {
            try {
              if (existsSync(d)) rmdirSync(d);
            } catch {
              left++;
            }
          }
          if (left === 0 || attempt >= 50) break;
          // Killed processes take a moment to leave the cgroup.
          await new Promise((r) => setTimeout(r, 20));
        }
        forget();
      })());
    },
  };
}
