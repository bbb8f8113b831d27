import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostPathProblems } from './definition-paths.js';
import { vmDefinitionSchema } from './vm-definition.js';

describe('hostPathProblems', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-defpaths-'));
    writeFileSync(path.join(dir, 'vmlinuz'), 'k');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const def = (extra: object) => vmDefinitionSchema.parse({ name: 'a', ...extra });

  it('names each missing or wrong-kind path by its field', () => {
    expect(hostPathProblems(def({ files: { root: path.join(dir, 'nope') }, boot: { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'no-initrd') } }))).toEqual([
      { path: 'files.root', message: `${path.join(dir, 'nope')} does not exist on the host: create the directory first` },
      { path: 'boot.initrd', message: `${path.join(dir, 'no-initrd')} does not exist on the host` },
    ]);
    expect(hostPathProblems(def({ files: { root: path.join(dir, 'vmlinuz') }, boot: { disk: dir, format: 'raw' } }))).toEqual([
      { path: 'files.root', message: `${path.join(dir, 'vmlinuz')} is not a directory` },
      { path: 'boot.disk', message: `${dir} is not a regular file` },
    ]);
  });

  it('has nothing to say when everything is there, or nothing is named', () => {
    expect(hostPathProblems(def({ files: { root: dir }, boot: { kernel: path.join(dir, 'vmlinuz') } }))).toEqual([]);
    expect(hostPathProblems(def({}))).toEqual([]);
  });
});
