// The NDJSON events of `POST /v1/vms/:name/files/push|pull` (one JSON object per line): the writer and the
// progress throttle. Their shape and the reader (decodeTransferEvent) are the API contract's
// (api-contract.ts). No I/O.
import type { TransferEvent } from './api-contract.js';

/** Progress events per stage are at most one per this interval, plus the final one. */
export const PROGRESS_INTERVAL_MS = 100;

/** One event as an NDJSON line. */
export function encodeTransferEvent(event: TransferEvent): string {
  return JSON.stringify(event) + '\n';
}

/**
 * Decides which progress updates of one stage to pass on: the first, then at most one per interval, and
 * always a final one (bytes === totalBytes) unless the same count was passed on last.
 */
export class ProgressThrottle {
  #lastAtMs = Number.NEGATIVE_INFINITY;
  #lastBytes = -1;

  constructor(readonly intervalMs: number = PROGRESS_INTERVAL_MS) {}

  /** True when this update should be shown or sent; `final` forces it (once per byte count). */
  take(nowMs: number, bytes: number, totalBytes: number, final = false): boolean {
    const isFinal = final || bytes >= totalBytes;
    if (isFinal ? bytes === this.#lastBytes : nowMs - this.#lastAtMs < this.intervalMs) return false;
    this.#lastAtMs = nowMs;
    this.#lastBytes = bytes;
    return true;
  }
}
