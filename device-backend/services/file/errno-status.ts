// Host errors to the status the guest gets. Pure.
import { STATUS } from '../../layout/wire-layout.js';

const BY_ERRNO: Readonly<Record<string, number>> = {
  ENOENT: STATUS.NOT_FOUND.code,
  EXDEV: STATUS.PATH_ESCAPES.code, // RESOLVE_BENEATH / RESOLVE_NO_XDEV refused the walk
  ELOOP: STATUS.PATH_ESCAPES.code, // a symlink where none may be followed, or a magic link
  ENOTDIR: STATUS.NOT_DIRECTORY.code,
  EEXIST: STATUS.EXISTS.code,
  ENOTEMPTY: STATUS.NOT_EMPTY.code,
  EISDIR: STATUS.IS_DIRECTORY.code,
  EACCES: STATUS.PERMISSION_DENIED.code,
  EPERM: STATUS.PERMISSION_DENIED.code,
  EROFS: STATUS.READ_ONLY.code,
  ENAMETOOLONG: STATUS.BAD_PATH.code,
  EINVAL: STATUS.BAD_PATH.code,
  // The host file system is full (or its own quota hit): not the VM's quota, which is checked before a write.
  EDQUOT: STATUS.HOST_NO_SPACE.code,
  ENOSPC: STATUS.HOST_NO_SPACE.code,
  EFBIG: STATUS.FILE_TOO_LARGE.code,
  ENXIO: STATUS.NOT_REGULAR.code, // opening a socket (or a fifo for writing with no reader, or a device with no driver)
};

export function statusForErrno(code: string | undefined): number {
  return (code === undefined ? undefined : BY_ERRNO[code]) ?? STATUS.IO_ERROR.code;
}
