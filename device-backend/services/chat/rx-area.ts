// The receive area of a chat channel: where the core writes messages too large for a ring slot, in the
// first half of the channel's data slice, after struct vmgmt_chat_rx. A byte ring of a power-of-two size
// with free-running u32 positions: host_head (core-written) and guest_tail (guest-written: the rx_end of
// the last delivery it copied out). A message never wraps: the rest of the area is skipped instead.
// Both positions live in guest memory, so a restarted core carries on from them. Pure arithmetic.
import { CHAT_LIMITS } from '../../layout/wire-layout.js';

export interface RxGeometry {
  /** Slice offset of the area's first byte. */
  readonly start: number;
  /** Bytes, a power of two (0: the slice is too small for a receive area). */
  readonly size: number;
}

/** The receive area of a slice of sliceBytes: [64, 64 + largest power of two <= sliceBytes/2 - 64). */
export function rxGeometry(sliceBytes: number): RxGeometry {
  const room = Math.floor(sliceBytes / 2) - CHAT_LIMITS.RX_CONTROL_BYTES;
  if (room < 1) return { start: CHAT_LIMITS.RX_CONTROL_BYTES, size: 0 };
  return { start: CHAT_LIMITS.RX_CONTROL_BYTES, size: 2 ** Math.floor(Math.log2(room)) };
}

/** Where the guest's own part of the slice starts (sends, replies, peer lists). */
export const guestAreaOffset = (sliceBytes: number): number => Math.floor(sliceBytes / 2);

export type RxAllocation =
  | { ok: true; offset: number; rxEnd: number }
  | { ok: false; kind: 'full'; usedBytes: number }
  | { ok: false; kind: 'too-large' | 'corrupt'; reason: string };

/** Room for lengthBytes after head, given the guest's tail. On ok the new head is rxEnd. */
export function allocateRx(g: RxGeometry, head: number, tail: number, lengthBytes: number): RxAllocation {
  if (lengthBytes > g.size) return { ok: false, kind: 'too-large', reason: `${lengthBytes} bytes do not fit a ${g.size}-byte receive area` };
  const used = (head - tail) >>> 0;
  if (used > g.size) return { ok: false, kind: 'corrupt', reason: `guest_tail ${tail} is not within ${g.size} bytes behind host_head ${head}` };
  const pos = head & (g.size - 1);
  const skip = pos + lengthBytes > g.size ? g.size - pos : 0;
  if (used + skip + lengthBytes > g.size) return { ok: false, kind: 'full', usedBytes: used };
  const offset = g.start + (skip ? 0 : pos);
  return { ok: true, offset, rxEnd: (head + skip + lengthBytes) >>> 0 };
}
