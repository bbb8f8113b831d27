// VM definitions and state on disk, each written atomically: <stateDir>/vms/<name>/{definition,state}.json.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-file.js';
import { type VmDefinition, vmDefinitionSchema } from './vm-definition.js';
import { VM_STATES } from './vm-manager-api.js';

export const vmRecordSchema = z.object({
  uuid: z.uuid(),
  status: z.object({ state: z.enum(VM_STATES), reason: z.string(), guestShutdown: z.boolean(), stopRequested: z.boolean() }),
  pid: z.number().int().positive().nullable(),
  pidStartTime: z.string().nullable(),
  accel: z.enum(['tcg', 'kvm']).nullable(),
  /** Why that accelerator (the KVM self-probe's answer); absent in records of older daemons. */
  accelReason: z.string().nullable().optional(),
  startedAt: z.string().nullable(),
  restarts: z.number().int().min(0),
  lastExit: z
    .object({
      exitCode: z.number().int().nullable(),
      signal: z.string().nullable(),
      at: z.string(),
      reason: z.string(),
      consoleTail: z.string().optional(),
      /** `vm stop`: by the power button, QEMU's quit, or a kill; stopNote says why it came to that. */
      stoppedBy: z.enum(['powerdown', 'quit', 'kill']).optional(),
      stopNote: z.string().optional(),
    })
    .nullable(),
  /** When the on-failure policy stopped restarting the VM (maxRestarts reached); null after a manual start. */
  restartGaveUpAt: z.string().nullable().optional(),
  deviceFds: z
    .object({ memFd: z.number().int().min(0), coreEventFds: z.array(z.number().int().min(0)), clientEventFds: z.array(z.number().int().min(0)) })
    .nullable(),
});
export type VmRecord = z.infer<typeof vmRecordSchema>;

export interface StoredVm {
  definition: VmDefinition;
  record: VmRecord;
}

export class StateStore {
  constructor(readonly stateDir: string) {
    mkdirSync(this.vmsDir, { recursive: true, mode: 0o700 });
  }

  get vmsDir(): string {
    return path.join(this.stateDir, 'vms');
  }

  vmDir(name: string): string {
    return path.join(this.vmsDir, name);
  }

  exists(name: string): boolean {
    return existsSync(path.join(this.vmDir(name), 'definition.json'));
  }

  saveDefinition(def: VmDefinition): void {
    mkdirSync(this.vmDir(def.name), { recursive: true, mode: 0o700 });
    writeFileAtomic(path.join(this.vmDir(def.name), 'definition.json'), `${JSON.stringify(def, null, 2)}\n`);
  }

  saveRecord(name: string, record: VmRecord): void {
    writeFileAtomic(path.join(this.vmDir(name), 'state.json'), `${JSON.stringify(record, null, 2)}\n`);
  }

  remove(name: string): void {
    rmSync(this.vmDir(name), { recursive: true, force: true });
  }

  /** Every stored VM; a VM whose files do not parse is reported, not dropped silently. */
  loadAll(): { vms: StoredVm[]; problems: { name: string; problem: string }[] } {
    const vms: StoredVm[] = [];
    const problems: { name: string; problem: string }[] = [];
    for (const name of readdirSync(this.vmsDir)) {
      try {
        const definition = vmDefinitionSchema.parse(JSON.parse(readFileSync(path.join(this.vmDir(name), 'definition.json'), 'utf8')));
        const record = vmRecordSchema.parse(JSON.parse(readFileSync(path.join(this.vmDir(name), 'state.json'), 'utf8')));
        vms.push({ definition, record });
      } catch (err) {
        problems.push({ name, problem: (err as Error).message });
      }
    }
    return { vms, problems };
  }
}
