import { describe, expect, it } from 'vitest';
import { STATUS } from '../../layout/wire-layout.js';
import { statusForErrno } from './errno-status.js';

describe('statusForErrno', () => {
  it.each([
    ['ENOENT', STATUS.NOT_FOUND.code],
    ['EXDEV', STATUS.PATH_ESCAPES.code],
    ['ENXIO', STATUS.NOT_REGULAR.code], // open(2) of a socket
    ['EIO', STATUS.IO_ERROR.code],
    ['ENOSPC', STATUS.HOST_NO_SPACE.code], // the host file system is full: the VM's quota is checked before writing
    ['EDQUOT', STATUS.HOST_NO_SPACE.code],
    [undefined, STATUS.IO_ERROR.code],
  ])('%s -> %i', (code, status) => {
    expect(statusForErrno(code)).toBe(status);
  });
});
