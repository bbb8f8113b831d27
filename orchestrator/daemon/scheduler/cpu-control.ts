// Applies a VM's CPU weight and cap to its vCPU threads, with whatever the host offers (the first that
// works, decided once per daemon):
//   cgroup v2  <root>/vmgmt/NAME/cpu.weight (the VM against the other VMs), its vCPU threads moved into the
//              threaded child NAME/vcpus (cgroup.threads), whose cpu.max holds the cap;
//   cgroup v1  <root>/cpu/vmgmt/NAME/cpu.shares (weight x 1024/100), the vCPU threads moved into
//              NAME/vcpus (its tasks file takes thread ids), whose cpu.cfs_quota_us holds the cap;
//   otherwise  setpriority(2) of each vCPU thread (weight as a nice value; no cap).
// The VM's cgroup is the one cgroup.ts made at launch, so what was there before the scheduler's first write
// is the kernel's default; restore() writes the defaults back (the daemon stops, the policy is switched off,
// the VM stops), also after a daemon that was killed left boosted values behind.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import path from 'node:path';
import { weightToNice, weightToShares } from './cpu-policy.js';

export interface CpuControl {
  /** 'cgroup-v2 cpu.weight', 'cgroup-v1 cpu.shares' or 'setpriority'. */
  readonly mechanism: string;
  apply(vm: string, threads: readonly number[], weight: number, capPercent: number | null): void;
  /** Puts back what was there before the first apply (threads back in the VM's cgroup). */
  restore(vm: string): void;
}

const CFS_PERIOD_US = 100_000;
const ROOT = '/sys/fs/cgroup';

interface Saved {
  threads: number[];
  values: Map<string, string>;
}

const read = (file: string): string | undefined => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
};

abstract class CgroupControl implements CpuControl {
  abstract readonly mechanism: string;
  protected readonly saved = new Map<string, Saved>();

  constructor(
    protected readonly root: string,
    /** The daemon's cgroup directory (cgroup.ts): vmgmt, or vmgmt-<daemonId>. */
    protected readonly parent = 'vmgmt',
  ) {}

  protected abstract vmDir(vm: string): string;
  protected abstract weightFile(): { file: string; value: (weight: number) => string };
  protected abstract capFiles(capPercent: number | null): Array<[string, string]>;
  protected abstract threadsFile(): string;
  protected abstract prepareChild(vmDir: string, child: string): void;
  /** The kernel's value of a file this control writes, for a new cgroup. */
  protected abstract defaultOf(file: string): string;

  /** Writes a file of the VM's cgroup, remembering to write its default back. */
  protected write(vm: string, file: string, value: string): void {
    const s = this.saved.get(vm)!;
    if (!s.values.has(file)) s.values.set(file, this.defaultOf(path.basename(file)));
    if (read(file) !== value) writeFileSync(file, value);
  }

  apply(vm: string, threads: readonly number[], weight: number, capPercent: number | null): void {
    const dir = this.vmDir(vm);
    if (!existsSync(dir)) throw new Error(`the VM's cgroup ${dir} does not exist`);
    if (!this.saved.has(vm)) this.saved.set(vm, { threads: [], values: new Map() });
    const s = this.saved.get(vm)!;
    const child = path.join(dir, 'vcpus');
    if (!existsSync(child)) {
      mkdirSync(child);
      this.prepareChild(dir, child);
    }
    for (const tid of threads) {
      if (s.threads.includes(tid)) continue;
      writeFileSync(path.join(child, this.threadsFile()), String(tid));
      s.threads.push(tid);
    }
    const w = this.weightFile();
    this.write(vm, path.join(dir, w.file), w.value(weight));
    for (const [file, value] of this.capFiles(capPercent)) this.write(vm, path.join(child, file), value);
  }

  restore(vm: string): void {
    const s = this.saved.get(vm);
    if (!s) return;
    this.saved.delete(vm);
    const dir = this.vmDir(vm);
    for (const [file, value] of s.values) {
      try {
        writeFileSync(file, value);
      } catch {
        // The cgroup is gone with the VM.
      }
    }
    for (const tid of s.threads) {
      try {
        writeFileSync(path.join(dir, this.threadsFile()), String(tid));
      } catch {
        // The thread ended.
      }
    }
    try {
      rmdirSync(path.join(dir, 'vcpus'));
    } catch {
      // Gone already, or a thread we did not move is in it.
    }
  }
}

class CgroupV1Control extends CgroupControl {
  readonly mechanism = 'cgroup-v1 cpu.shares';
  protected vmDir(vm: string): string {
    return path.join(this.root, 'cpu', this.parent, vm);
  }
  protected weightFile() {
    return { file: 'cpu.shares', value: (w: number) => String(weightToShares(w)) };
  }
  protected capFiles(capPercent: number | null): Array<[string, string]> {
    return [
      ['cpu.cfs_period_us', String(CFS_PERIOD_US)],
      ['cpu.cfs_quota_us', capPercent === null ? '-1' : String(Math.round((capPercent * CFS_PERIOD_US) / 100))],
    ];
  }
  protected threadsFile(): string {
    return 'tasks';
  }
  protected prepareChild(): void {}
  protected defaultOf(file: string): string {
    return { 'cpu.shares': '1024', 'cpu.cfs_period_us': String(CFS_PERIOD_US), 'cpu.cfs_quota_us': '-1' }[file] ?? '';
  }
}

class CgroupV2Control extends CgroupControl {
  readonly mechanism = 'cgroup-v2 cpu.weight';
  protected vmDir(vm: string): string {
    return path.join(this.root, this.parent, vm);
  }
  protected weightFile() {
    return { file: 'cpu.weight', value: (w: number) => String(w) };
  }
  protected capFiles(capPercent: number | null): Array<[string, string]> {
    return [['cpu.max', capPercent === null ? `max ${CFS_PERIOD_US}` : `${Math.round((capPercent * CFS_PERIOD_US) / 100)} ${CFS_PERIOD_US}`]];
  }
  protected threadsFile(): string {
    return 'cgroup.threads';
  }
  protected defaultOf(file: string): string {
    return { 'cpu.weight': '100', 'cpu.max': `max ${CFS_PERIOD_US}` }[file] ?? '';
  }
  protected prepareChild(vmDir: string, child: string): void {
    writeFileSync(path.join(child, 'cgroup.type'), 'threaded');
    try {
      writeFileSync(path.join(vmDir, 'cgroup.subtree_control'), '+cpu');
    } catch {
      // Without the cpu controller in the child the cap does not apply; the weight (on the VM) still does.
    }
  }
}

class SetPriorityControl implements CpuControl {
  readonly mechanism = 'setpriority';
  private readonly threads = new Map<string, number[]>();
  apply(vm: string, threads: readonly number[], weight: number): void {
    this.threads.set(vm, [...threads]);
    for (const tid of threads) setPriority(tid, weightToNice(weight));
  }
  restore(vm: string): void {
    for (const tid of this.threads.get(vm) ?? []) {
      try {
        setPriority(tid, 0);
      } catch {
        // The thread ended.
      }
    }
    this.threads.delete(vm);
  }
}

/** The mechanism this host offers, as cgroup.ts chose the VMs' cgroups. */
export function hostCpuControl(root = ROOT, parent = 'vmgmt'): CpuControl {
  if (existsSync(path.join(root, 'cgroup.controllers'))) return new CgroupV2Control(root, parent);
  if (existsSync(path.join(root, 'cpu', 'cpu.shares'))) return new CgroupV1Control(root, parent);
  return new SetPriorityControl();
}

/** Falls back to setpriority for a VM whose cgroup cannot be written (no cgroup: see the VM's log). */
export class FallbackCpuControl implements CpuControl {
  private readonly using = new Map<string, CpuControl>();
  private readonly fallback = new SetPriorityControl();
  constructor(private readonly primary: CpuControl) {}
  get mechanism(): string {
    return this.primary.mechanism;
  }
  mechanismOf(vm: string): string {
    return (this.using.get(vm) ?? this.primary).mechanism;
  }
  apply(vm: string, threads: readonly number[], weight: number, capPercent: number | null): void {
    const current = this.using.get(vm);
    if (current) return current.apply(vm, threads, weight, capPercent);
    try {
      this.primary.apply(vm, threads, weight, capPercent);
      this.using.set(vm, this.primary);
    } catch {
      this.fallback.apply(vm, threads, weight);
      this.using.set(vm, this.fallback);
    }
  }
  restore(vm: string): void {
    this.using.get(vm)?.restore(vm);
    this.using.delete(vm);
  }
}
