// File-mode request payloads in, response payloads out. Pure: the payload is already a private copy.
import {
  DIRENT, FILE_HANDLE_REQ, FILE_INFO, FILE_IO_REQ, FILE_IO_RESP, FILE_LIST_REQ, FILE_LIST_RESP, FILE_OPEN_REQ,
  FILE_PATH_REQ,
} from '../../layout/wire-layout.js';
import { type Decoded, decodeStruct as decode } from '../../protocol/struct-codec.js';

export type { Decoded };


export interface PathRef { offset: number; length: number }
export interface OpenReq { path: PathRef; flags: number; mode: number; sizeBytes: number }
export interface PathReq { path: PathRef; arg: number }
export interface IoReq { handle: number; length: number; fileOffset: number; bufOffset: number }
export interface HandleReq { handle: number; flags: number }
export interface ListReq { path: PathRef; bufOffset: number; bufLength: number; cookie: number }


export const decodeOpen = (p: Uint8Array): Decoded<OpenReq> =>
  decode(FILE_OPEN_REQ, p, (g) => ({ path: { offset: g('path_offset'), length: g('path_len') }, flags: g('flags'), mode: g('mode'), sizeBytes: g('size') }));
export const decodePath = (p: Uint8Array): Decoded<PathReq> =>
  decode(FILE_PATH_REQ, p, (g) => ({ path: { offset: g('path_offset'), length: g('path_len') }, arg: g('arg') }));
export const decodeIo = (p: Uint8Array): Decoded<IoReq> =>
  decode(FILE_IO_REQ, p, (g) => ({ handle: g('handle'), length: g('length'), fileOffset: g('file_offset'), bufOffset: g('buf_offset') }));
export const decodeHandle = (p: Uint8Array): Decoded<HandleReq> => decode(FILE_HANDLE_REQ, p, (g) => ({ handle: g('handle'), flags: g('flags') }));
export const decodeList = (p: Uint8Array): Decoded<ListReq> =>
  decode(FILE_LIST_REQ, p, (g) => ({ path: { offset: g('path_offset'), length: g('path_len') }, bufOffset: g('buf_offset'), bufLength: g('buf_len'), cookie: g('cookie') }));

export interface FileInfo { handle: number; type: number; sizeBytes: number; mtimeNs: bigint; mode: number }

export function encodeInfo(info: FileInfo): Uint8Array {
  const out = new Uint8Array(FILE_INFO.sizeBytes);
  const dv = new DataView(out.buffer);
  const o = FILE_INFO.offsets;
  dv.setUint32(o.handle, info.handle, true);
  dv.setUint32(o.type, info.type, true);
  dv.setBigUint64(o.size, BigInt(info.sizeBytes), true);
  dv.setBigUint64(o.mtime_ns, info.mtimeNs, true);
  dv.setUint32(o.mode, info.mode, true);
  return out;
}

export function encodeIoResult(bytes: number): Uint8Array {
  const out = new Uint8Array(FILE_IO_RESP.sizeBytes);
  new DataView(out.buffer).setUint32(FILE_IO_RESP.offsets.bytes, bytes, true);
  return out;
}

export function encodeListResult(count: number, bytes: number, nextCookie: number): Uint8Array {
  const out = new Uint8Array(FILE_LIST_RESP.sizeBytes);
  const dv = new DataView(out.buffer);
  dv.setUint32(FILE_LIST_RESP.offsets.count, count, true);
  dv.setUint32(FILE_LIST_RESP.offsets.bytes, bytes, true);
  dv.setUint32(FILE_LIST_RESP.offsets.next_cookie, nextCookie, true);
  return out;
}

export interface DirEntryOut { name: string; type: number; sizeBytes: number; mtimeNs: bigint; mode: number }

const utf8 = new TextEncoder();

/** Bytes one entry takes in a FILE_LIST buffer: the vmgmt_dirent, the name's bytes, padding to 8. */
const recordBytes = (nameBytes: number): number => Math.ceil((DIRENT.sizeBytes + nameBytes) / 8) * 8;

export const direntBytes = (name: string): number => recordBytes(utf8.encode(name).byteLength);

/** How many of `names`, from index `from` on, fit into `capacity` bytes of entries (before anything is statted). */
export function namesThatFit(names: readonly string[], from: number, capacity: number): number {
  let used = 0;
  let at = from;
  for (; at < names.length; at++) {
    used += direntBytes(names[at]!);
    if (used > capacity) break;
  }
  return at - from;
}

/**
 * Packs as many entries as fit into `capacity` bytes: each a vmgmt_dirent, its name, padding to 8.
 * Returns the bytes and how many entries went in.
 */
export function packDirents(entries: readonly DirEntryOut[], capacity: number): { bytes: Uint8Array; count: number } {
  const chunks: Uint8Array[] = [];
  let used = 0;
  let count = 0;
  for (const e of entries) {
    const name = utf8.encode(e.name);
    const size = recordBytes(name.byteLength);
    if (used + size > capacity || name.byteLength > 0xffff) break;
    const rec = new Uint8Array(size);
    const dv = new DataView(rec.buffer);
    dv.setBigUint64(DIRENT.offsets.size, BigInt(e.sizeBytes), true);
    dv.setBigUint64(DIRENT.offsets.mtime_ns, e.mtimeNs, true);
    dv.setUint32(DIRENT.offsets.mode, e.mode, true);
    dv.setUint16(DIRENT.offsets.type, e.type, true);
    dv.setUint16(DIRENT.offsets.name_len, name.byteLength, true);
    rec.set(name, DIRENT.sizeBytes);
    chunks.push(rec);
    used += size;
    count++;
  }
  const bytes = new Uint8Array(used);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { bytes, count };
}
