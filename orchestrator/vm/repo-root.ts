import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this code runs from, whether as TypeScript (vitest) or compiled into dist/. */
export function findRepoRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'guest-driver'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find the vmgmt checkout above ${from}`);
  }
}
