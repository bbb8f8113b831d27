// Builds file-mode request payloads the way the C driver does, for tests of the host side. Pure.
import { FILE_HANDLE_REQ, FILE_IO_REQ, FILE_LIST_REQ, FILE_OPEN_REQ, FILE_PATH_REQ, MSG_TYPE } from '../layout/wire-layout.js';
import type { StructDef } from '../layout/struct-def.js';
import type { Message } from '../protocol/message-codec.js';

function build<F extends string>(def: StructDef<F>, values: Partial<Record<F, number | bigint>>): Uint8Array {
  const out = new Uint8Array(def.sizeBytes);
  const dv = new DataView(out.buffer);
  for (const f of def.fields) {
    const v = values[f.name as F];
    if (v === undefined) continue;
    if (f.type === 'u64') dv.setBigUint64(f.offset, BigInt(v), true);
    else if (f.type === 'u16') dv.setUint16(f.offset, Number(v), true);
    else dv.setUint32(f.offset, Number(v), true);
  }
  return out;
}

let nextId = 1;
const msg = (type: number, payload: Uint8Array): Message => ({ type, requestId: nextId++, status: 0, payload });

export const fileReq = {
  open: (pathOffset: number, pathLen: number, flags: number, sizeBytes = 0, mode = 0o644) =>
    msg(MSG_TYPE.FILE_OPEN, build(FILE_OPEN_REQ, { path_offset: pathOffset, path_len: pathLen, flags, mode, size: sizeBytes })),
  read: (handle: number, length: number, fileOffset: number, bufOffset: number) =>
    msg(MSG_TYPE.FILE_READ, build(FILE_IO_REQ, { handle, length, file_offset: fileOffset, buf_offset: bufOffset })),
  write: (handle: number, length: number, fileOffset: number, bufOffset: number) =>
    msg(MSG_TYPE.FILE_WRITE, build(FILE_IO_REQ, { handle, length, file_offset: fileOffset, buf_offset: bufOffset })),
  close: (handle: number, flags: number) => msg(MSG_TYPE.FILE_CLOSE, build(FILE_HANDLE_REQ, { handle, flags })),
  hash: (handle: number) => msg(MSG_TYPE.FILE_HASH, build(FILE_HANDLE_REQ, { handle })),
  stat: (pathOffset: number, pathLen: number) => msg(MSG_TYPE.FILE_STAT, build(FILE_PATH_REQ, { path_offset: pathOffset, path_len: pathLen })),
  mkdir: (pathOffset: number, pathLen: number, mode = 0o755) => msg(MSG_TYPE.FILE_MKDIR, build(FILE_PATH_REQ, { path_offset: pathOffset, path_len: pathLen, arg: mode })),
  remove: (pathOffset: number, pathLen: number, flags = 0) => msg(MSG_TYPE.FILE_REMOVE, build(FILE_PATH_REQ, { path_offset: pathOffset, path_len: pathLen, arg: flags })),
  list: (pathOffset: number, pathLen: number, bufOffset: number, bufLen: number, cookie = 0) =>
    msg(MSG_TYPE.FILE_LIST, build(FILE_LIST_REQ, { path_offset: pathOffset, path_len: pathLen, buf_offset: bufOffset, buf_len: bufLen, cookie })),
};
