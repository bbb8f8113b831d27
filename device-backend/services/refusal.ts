// What a service throws to answer a request with a status: the status the guest gets and the reason for
// the host's log. Anything else a service throws is a bug of ours (the core answers INTERNAL_ERROR).
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
