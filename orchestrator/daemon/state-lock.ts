// One daemon per state directory (Node opens it close-on-exec, so QEMU never inherits it): an flock on <state-dir>/daemon.lock, held for the daemon's life (the
// kernel drops it when the process ends, however it ends), with the holder's pid in the file for the
// message a second daemon gives.
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { VmgmtNative } from '../../device-backend/native/index.js';
import { VmgmtError } from './vmgmt-error.js';

export interface StateLock {
  readonly path: string;
  release(): void;
}

export function lockStateDir(native: VmgmtNative, stateDir: string): StateLock {
  const lockPath = path.join(stateDir, 'daemon.lock');
  const fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT, 0o600);
  let held = false;
  try {
    held = native.flockExclusive(fd);
    if (!held) {
      const other = readFileSync(lockPath, 'utf8').trim();
      throw new VmgmtError(
        'INVALID_STATE',
        `another vmgmt daemon${/^\d+$/.test(other) ? ` (pid ${other})` : ''} is using the state directory ${stateDir}: stop it first (systemctl stop vmgmt), or give this one its own --state-dir`,
        { stateDir, ...(/^\d+$/.test(other) ? { pid: Number(other) } : {}) },
      );
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let released = false;
  return {
    path: lockPath,
    release: () => {
      if (released) return;
      released = true;
      try {
        ftruncateSync(fd, 0);
      } finally {
        closeSync(fd); // drops the flock
      }
    },
  };
}
