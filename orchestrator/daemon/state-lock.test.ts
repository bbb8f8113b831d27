import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadNative } from '../../device-backend/native/index.js';
import { lockStateDir } from './state-lock.js';

describe('lockStateDir', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the directory for one owner, names it to the next, and lets go on release', () => {
    const first = lockStateDir(loadNative(), dir);
    expect(readFileSync(first.path, 'utf8')).toBe(`${process.pid}\n`);
    // A second open file description is refused even in the same process (flock is per open file).
    expect(() => lockStateDir(loadNative(), dir)).toThrow(expect.objectContaining({ code: 'INVALID_STATE', message: expect.stringContaining(`another vmgmt daemon (pid ${process.pid}) is using the state directory ${dir}`) }));
    first.release();
    const again = lockStateDir(loadNative(), dir);
    again.release();
  });

  it('a holder that died without releasing leaves the lock free (the kernel drops it)', () => {
    // flock(1) takes the lock in a process that exits at once.
    execFileSync('flock', ['-n', path.join(dir, 'daemon.lock'), 'true']);
    const lock = lockStateDir(loadNative(), dir);
    lock.release();
  });
});
