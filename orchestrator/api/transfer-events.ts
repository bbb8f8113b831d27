// The NDJSON events of `POST /v1/vms/:name/files/push|pull` (one JSON object per line), their schema for
// readers, and the progress throttle. No I/O.
import { z } from 'zod';

export const TRANSFER_STAGES = ['upload', 'guest'] as const;
export type TransferStage = (typeof TRANSFER_STAGES)[number];

export type TransferEvent =
  | { event: 'progress'; stage: TransferStage; bytes: number; totalBytes: number }
  /** push: the guest has the file. */
  | { event: 'done'; bytes: number }
  /** pull: the file is on the host; fetch it once from `download` (a path of this API). */
  | { event: 'ready'; bytes: number; download: string }
  | { event: 'error'; code: string; message: string; details: Record<string, unknown> };

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/** Progress events per stage are at most one per this interval, plus the final one. */
export const PROGRESS_INTERVAL_MS = 100;

const byteCount = z.number().int().min(0);

export const transferEventSchema = z.discriminatedUnion('event', [
  z.object({ event: z.literal('progress'), stage: z.enum(TRANSFER_STAGES), bytes: byteCount, totalBytes: byteCount }),
  z.object({ event: z.literal('done'), bytes: byteCount }),
  z.object({ event: z.literal('ready'), bytes: byteCount, download: z.string().startsWith('/v1/transfers/') }),
  z.object({ event: z.literal('error'), code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).default({}) }),
]);

/** One event as an NDJSON line. */
export function encodeTransferEvent(event: TransferEvent): string {
  return JSON.stringify(event) + '\n';
}

export type DecodedTransferEvent = { ok: true; event: TransferEvent } | { ok: false; line: string; reason: string };

/** One NDJSON line (without its newline) → an event, or why it is not one. */
export function decodeTransferEvent(line: string): DecodedTransferEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, line, reason: `not JSON: ${(err as Error).message}` };
  }
  const parsed = transferEventSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, line, reason: `not a transfer event: ${issue ? `${issue.path.join('.') || '(top level)'}: ${issue.message}` : 'invalid'}` };
  }
  return { ok: true, event: parsed.data as TransferEvent };
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
