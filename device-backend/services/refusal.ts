// What a service throws to answer a request with a status: the status the guest gets and the reason for
// the host's log. Anything else a service throws is a bug of ours (the core answers INTERNAL_ERROR).
import { createHash } from 'node:crypto';
import { FILE_HASH_RESP_BYTES } from '../layout/wire-layout.js';
import type { VmgmtNative } from '../native/index.js';
import type { Decoded } from '../protocol/struct-codec.js';

export class Refusal {
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {}
}

/** The decoded value, or the decoder's refusal thrown. */
export function need<T>(d: Decoded<T>): T {
  if (!d.ok) throw new Refusal(d.status, d.reason);
  return d.value;
}

/** preads until `target` is full or the file ends; returns the bytes read. */
export function preadFully(native: VmgmtNative, fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.byteLength) {
    const n = native.pread(fd, target.subarray(done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

const HASH_CHUNK_BYTES = 1024 * 1024;

/**
 * FILE_HASH: the sha256 of a whole file, read in chunks between turns of the event loop. `fdNow` is asked
 * before each read (in the same synchronous step), so a handle closed meanwhile throws there.
 */
export async function sha256InTurns(native: VmgmtNative, fdNow: () => number): Promise<Uint8Array> {
  const digest = createHash('sha256');
  const chunk = new Uint8Array(HASH_CHUNK_BYTES);
  for (let at = 0; ; ) {
    const n = native.pread(fdNow(), chunk, at);
    if (n === 0) break;
    digest.update(chunk.subarray(0, n));
    at += n;
    await new Promise((r) => setImmediate(r));
  }
  const out = new Uint8Array(digest.digest());
  if (out.byteLength !== FILE_HASH_RESP_BYTES) throw new Error('sha256 digest is not 32 bytes');
  return out;
}
