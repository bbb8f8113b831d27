import { describe, expect, it } from 'vitest';
import { STATUS } from '../../layout/wire-layout.js';
import { statusForErrno } from './errno-status.js';

describe('statusForErrno', () => {
  it.each([
    ['ENOENT', STATUS.NOT_FOUND.code],
    ['EXDEV', STATUS.PATH_ESCAPES.code],
    ['ENXIO', STATUS.NOT_REGULAR.code], // open(2) of a socket
    ['EIO', STATUS.IO_ERROR.code],
    [undefined, STATUS.IO_ERROR.code],
  ])('%s -> %i', (code, status) => {
    expect(statusForErrno(code)).toBe(status);
  });
});
