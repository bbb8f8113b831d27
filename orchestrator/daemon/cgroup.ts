// One cgroup per VM, so scheduling and accounting have a handle: cgroup v2 where the host has it with
// the cpu controller, else the v1 cpu/cpuacct hierarchies. A host without writable cgroups still runs
// VMs; the VM's status says why it has no cgroup.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface VmCgroup {
  readonly version: 1 | 2;
  readonly paths: readonly string[];
  addProcess(pid: number): void;
  remove(): void;
}

export type CgroupResult = { ok: true; cgroup: VmCgroup } | { ok: false; reason: string };

const ROOT = '/sys/fs/cgroup';

/**
 * parent: the daemon's own directory under the root, so several daemons on one machine keep their VMs apart
 * (config daemonId: vmgmt-<daemonId>; default vmgmt).
 */
export function createVmCgroup(vmName: string, root = ROOT, parent = 'vmgmt'): CgroupResult {
  try {
    if (existsSync(path.join(root, 'cgroup.controllers'))) {
      const controllers = readFileSync(path.join(root, 'cgroup.controllers'), 'utf8');
      const parentDir = path.join(root, parent);
      mkdirSync(parentDir, { recursive: true });
      if (/\bcpu\b/.test(controllers)) {
        try {
          writeFileSync(path.join(root, 'cgroup.subtree_control'), '+cpu');
          writeFileSync(path.join(parentDir, 'cgroup.subtree_control'), '+cpu');
        } catch {
          // Accounting still works without the cpu controller delegated.
        }
      }
      return { ok: true, cgroup: make(2, [path.join(parentDir, vmName)]) };
    }
    const v1 = ['cpu', 'cpuacct'].map((c) => path.join(root, c)).filter((p) => existsSync(p));
    if (v1.length === 0) return { ok: false, reason: `no cgroup v2 at ${root} and no v1 cpu hierarchy` };
    return { ok: true, cgroup: make(1, v1.map((p) => path.join(p, parent, vmName))) };
  } catch (err) {
    return { ok: false, reason: `cannot create cgroups under ${root}: ${(err as Error).message}` };
  }
}

function make(version: 1 | 2, paths: string[]): VmCgroup {
  for (const p of paths) mkdirSync(p, { recursive: true });
  return {
    version,
    paths,
    addProcess: (pid) => {
      for (const p of paths) writeFileSync(path.join(p, 'cgroup.procs'), String(pid));
    },
    remove: () => {
      for (const p of paths) {
        try {
          // The scheduler's vCPU sub-group (scheduler/cpu-control.ts), if the VM had one.
          if (existsSync(path.join(p, 'vcpus'))) rmdirSync(path.join(p, 'vcpus'));
        } catch {
          // Still has threads: the rmdir below fails too and says the same.
        }
        try {
          rmdirSync(p);
        } catch {
          // Still has processes, or already gone.
        }
      }
    },
  };
}
