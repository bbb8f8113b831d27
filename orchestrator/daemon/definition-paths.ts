// What a VM definition names on the host must be there when the VM is created, not first found missing
// at start: the file root (a directory) and the boot files (kernel, initrd or disk).
import { statSync } from 'node:fs';
import type { FieldProblem } from '../api/field-problems.js';
import type { VmDefinition } from './vm-definition.js';

type Stat = (path: string) => { isFile(): boolean; isDirectory(): boolean } | undefined;

const nodeStat: Stat = (p) => {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
};

/** The problems with the host paths a definition names, field by field; [] when every one is there. */
export function hostPathProblems(def: VmDefinition, stat: Stat = nodeStat): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const needFile = (field: string, p: string | undefined): void => {
    if (p === undefined) return;
    const st = stat(p);
    if (!st) problems.push({ path: field, message: `${p} does not exist on the host` });
    else if (!st.isFile()) problems.push({ path: field, message: `${p} is not a regular file` });
  };
  if (def.files) {
    const st = stat(def.files.root);
    if (!st) problems.push({ path: 'files.root', message: `${def.files.root} does not exist on the host: create the directory first` });
    else if (!st.isDirectory()) problems.push({ path: 'files.root', message: `${def.files.root} is not a directory` });
  }
  const boot = def.boot;
  if (boot && 'disk' in boot) needFile('boot.disk', boot.disk);
  else if (boot) {
    needFile('boot.kernel', boot.kernel);
    needFile('boot.initrd', boot.initrd);
  }
  return problems;
}
