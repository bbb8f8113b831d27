// A channel's share of the data window, as the services see it: offsets the guest sends are relative to
// the slice and checked here, so a request can only make the core touch its own channel's buffers.
import { STATUS } from '../layout/wire-layout.js';
import type { GuestMemory } from './guest-memory.js';

export type SliceResult = { ok: true; bytes: Uint8Array } | { ok: false; status: number; reason: string };

export class DataSlice {
  constructor(
    private readonly mem: GuestMemory,
    readonly baseOffset: number,
    readonly sizeBytes: number,
  ) {}

  private check(offset: number, lengthBytes: number): string | undefined {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(lengthBytes) || offset < 0 || lengthBytes < 0 || offset + lengthBytes > this.sizeBytes) {
      return `range [${offset}, +${lengthBytes}) is outside the ${this.sizeBytes}-byte data slice`;
    }
    return undefined;
  }

  /** A private copy (for paths and other data the core makes decisions on). */
  copyOut(offset: number, lengthBytes: number): SliceResult {
    const bad = this.check(offset, lengthBytes);
    if (bad) return { ok: false, status: STATUS.BAD_BUFFER.code, reason: bad };
    return { ok: true, bytes: this.mem.copyOut(this.baseOffset + offset, lengthBytes) };
  }

  /** A live view for bulk file data straight into or out of guest memory (one copy). */
  view(offset: number, lengthBytes: number): SliceResult {
    const bad = this.check(offset, lengthBytes);
    if (bad) return { ok: false, status: STATUS.BAD_BUFFER.code, reason: bad };
    return { ok: true, bytes: this.mem.view(this.baseOffset + offset, lengthBytes) };
  }
}
