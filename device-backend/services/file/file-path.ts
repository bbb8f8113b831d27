// Guest-supplied paths: decoded and checked before anything resolves them. Pure. Resolution itself is
// confined by openat2(RESOLVE_BENEATH) from the root fd; this only refuses what is malformed on its face.
import { MAX_PATH_BYTES, STATUS } from '../../layout/wire-layout.js';

export type PathResult = { ok: true; path: string } | { ok: false; status: number; reason: string };
export type SplitPath = { parent: string; name: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeGuestPath(bytes: Uint8Array): PathResult {
  if (bytes.byteLength === 0 || bytes.byteLength > MAX_PATH_BYTES) {
    return { ok: false, status: STATUS.BAD_PATH.code, reason: `path of ${bytes.byteLength} bytes (1..${MAX_PATH_BYTES})` };
  }
  if (bytes.includes(0)) return { ok: false, status: STATUS.BAD_PATH.code, reason: 'path contains a NUL byte' };
  let path: string;
  try {
    path = utf8.decode(bytes);
  } catch {
    return { ok: false, status: STATUS.BAD_PATH.code, reason: 'path is not UTF-8' };
  }
  if (path.startsWith('/')) return { ok: false, status: STATUS.PATH_ESCAPES.code, reason: `absolute path ${JSON.stringify(path)}` };
  return { ok: true, path };
}

/**
 * Splits a path into the directory to resolve (beneath the root) and the final component, which is
 * then used only relative to that directory's fd. The final component may not be '.' or '..'.
 */
export function splitGuestPath(path: string): { ok: true; split: SplitPath } | { ok: false; status: number; reason: string } {
  const trimmed = path.replace(/\/+$/, '');
  const at = trimmed.lastIndexOf('/');
  const name = trimmed.slice(at + 1);
  const parent = at < 0 ? '.' : trimmed.slice(0, at) || '.';
  if (name === '' || name === '.' || name === '..') {
    return { ok: false, status: name === '..' ? STATUS.PATH_ESCAPES.code : STATUS.BAD_PATH.code, reason: `path ${JSON.stringify(path)} does not name an entry` };
  }
  return { ok: true, split: { parent, name } };
}

export const TEMP_PREFIX = '.vmgmt-put-';

export const isTempName = (name: string): boolean => name.startsWith(TEMP_PREFIX);

/**
 * Why a name the guest wants to create is unsafe on the host, or undefined when it is not: control
 * characters (C0, DEL, C1), line and paragraph separators (U+2028, U+2029) and a leading '-' (taken as an
 * option by host tools). Pure.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.startsWith('-')) return `name ${JSON.stringify(name)} starts with '-'`;
  const bad = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u.exec(name);
  if (bad) return `name ${JSON.stringify(name)} has the control character U+${bad[0].codePointAt(0)!.toString(16).padStart(4, '0')}`;
  return undefined;
}
