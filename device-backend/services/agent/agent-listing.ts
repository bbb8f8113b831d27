// The answer of an AGENT_LIST, decoded and checked on the host: the guest wrote it, so it is hostile. The
// bytes are vmgmt_dirent records (each padded to 8 bytes) with the full st_mode in `mode`. Every name is
// checked before it can become a host path: `/`, `.`, `..`, NUL, control characters, invalid UTF-8 and
// over-long names are refused, each with its own reason. Pure.
import { DIRENT, FILE_TYPE } from '../../layout/wire-layout.js';

export type GuestEntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'device' | 'other';

export interface GuestEntry {
  name: string;
  kind: GuestEntryKind;
  sizeBytes: number;
  /** Permission bits only (0..0o7777). */
  mode: number;
}

/** An entry the host will not take, with what to tell the user. */
export interface RefusedEntry {
  /** The name as sent, made printable (JSON-escaped). */
  shownName: string;
  reason: string;
}

export type DecodedListing =
  | { ok: true; entries: GuestEntry[]; refused: RefusedEntry[] }
  | { ok: false; reason: string };

/** Longest entry name the host takes (Linux NAME_MAX). */
export const MAX_ENTRY_NAME_BYTES = 255;

const S_IFMT = 0o170000;
const KIND_BY_IFMT: Readonly<Record<number, GuestEntryKind>> = {
  0o100000: 'file',
  0o040000: 'dir',
  0o120000: 'symlink',
  0o010000: 'fifo',
  0o140000: 'socket',
  0o020000: 'device',
  0o060000: 'device',
};

/** Why a guest-sent entry name cannot be a host file name, or undefined when it can. */
export function checkEntryName(raw: Uint8Array): string | undefined {
  if (raw.byteLength === 0) return 'the name is empty';
  if (raw.byteLength > MAX_ENTRY_NAME_BYTES) return `the name is ${raw.byteLength} bytes, longer than ${MAX_ENTRY_NAME_BYTES}`;
  if (raw.includes(0)) return 'the name contains a NUL byte';
  if (raw.includes(0x2f)) return "the name contains '/' (it would reach another directory)";
  if (raw.byteLength === 1 && raw[0] === 0x2e) return "the name is '.' (this directory)";
  if (raw.byteLength === 2 && raw[0] === 0x2e && raw[1] === 0x2e) return "the name is '..' (the parent directory)";
  if (raw.some((b) => b < 0x20 || b === 0x7f)) return 'the name contains a control character';
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return 'the name is not valid UTF-8';
  }
  return undefined;
}

/** A guest name shown in a message: JSON-escaped, bytes that are not UTF-8 as U+FFFD. */
export function showName(raw: Uint8Array): string {
  return JSON.stringify(new TextDecoder('utf-8').decode(raw));
}

/** Decodes the records of one listing. A record that runs past the end, or a bad type, fails the whole listing. */
export function decodeListing(bytes: Uint8Array): DecodedListing {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: GuestEntry[] = [];
  const refused: RefusedEntry[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < DIRENT.sizeBytes) return { ok: false, reason: `the listing ends inside a record at byte ${at}` };
    const size = dv.getBigUint64(at + DIRENT.offsets.size, true);
    const mode = dv.getUint32(at + DIRENT.offsets.mode, true);
    const type = dv.getUint16(at + DIRENT.offsets.type, true);
    const nameLen = dv.getUint16(at + DIRENT.offsets.name_len, true);
    const recordBytes = (DIRENT.sizeBytes + nameLen + 7) & ~7;
    if (bytes.byteLength - at < DIRENT.sizeBytes + nameLen) return { ok: false, reason: `the name of the record at byte ${at} runs past the end of the listing` };
    const raw = bytes.slice(at + DIRENT.sizeBytes, at + DIRENT.sizeBytes + nameLen);
    at += Math.min(recordBytes, bytes.byteLength - at);
    const why = checkEntryName(raw);
    if (why) {
      refused.push({ shownName: showName(raw), reason: why });
      continue;
    }
    const kind = entryKind(type, mode);
    if (kind === undefined) return { ok: false, reason: `the entry ${showName(raw)} has type ${type} and mode 0o${mode.toString(8)}, which do not agree` };
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: `the entry ${showName(raw)} claims ${size} bytes` };
    entries.push({ name: new TextDecoder().decode(raw), kind, sizeBytes: Number(size), mode: mode & 0o7777 });
  }
  return { ok: true, entries, refused };
}

/** The kind from the record's type and st_mode: they must agree (a regular-file type with fifo bits is refused). */
function entryKind(type: number, mode: number): GuestEntryKind | undefined {
  const byMode = KIND_BY_IFMT[mode & S_IFMT];
  switch (type) {
    case FILE_TYPE.FILE:
      return byMode === 'file' ? 'file' : undefined;
    case FILE_TYPE.DIR:
      return byMode === 'dir' ? 'dir' : undefined;
    case FILE_TYPE.SYMLINK:
      return byMode === 'symlink' ? 'symlink' : undefined;
    case FILE_TYPE.OTHER:
      return byMode === undefined ? 'other' : byMode === 'file' || byMode === 'dir' || byMode === 'symlink' ? undefined : byMode;
    default:
      return undefined;
  }
}

/** Encodes records as the agent does (tests, and the fake manager). */
export function encodeListing(records: ReadonlyArray<{ name: Uint8Array | string; type: number; mode: number; size?: number }>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const r of records) {
    const name = typeof r.name === 'string' ? new TextEncoder().encode(r.name) : r.name;
    const rec = new Uint8Array((DIRENT.sizeBytes + name.byteLength + 7) & ~7);
    const dv = new DataView(rec.buffer);
    dv.setBigUint64(DIRENT.offsets.size, BigInt(r.size ?? 0), true);
    dv.setUint32(DIRENT.offsets.mode, r.mode, true);
    dv.setUint16(DIRENT.offsets.type, r.type, true);
    dv.setUint16(DIRENT.offsets.name_len, name.byteLength, true);
    rec.set(name, DIRENT.sizeBytes);
    parts.push(rec);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
