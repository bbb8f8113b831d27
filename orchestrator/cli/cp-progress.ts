// The progress line `vmgmt cp` draws on a terminal: stage, bar, percent, bytes and rate, redrawn in place at
// most PROGRESS_INTERVAL_MS apart. Pure: text goes to the write function given, time comes in as numbers.
import { ProgressThrottle } from '../api/transfer-events.js';

/** `0 B`, `999 B`, `1.0 KiB`, `5.0 MiB`, `12.3 GiB` (binary units, one decimal). */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'] as const;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export interface ProgressLine {
  stage: string;
  bytes: number;
  totalBytes: number;
  /** Time since the stage started. */
  elapsedMs: number;
  /** Terminal width; the line is kept shorter than this. */
  columns: number;
}

const STAGE_WIDTH = 8;
const MIN_BAR = 10;
const MAX_BAR = 40;

/** `upload   [########............]  40%  2.0 MiB / 5.0 MiB  8.1 MiB/s` */
export function formatProgressLine(p: ProgressLine): string {
  const fraction = p.totalBytes === 0 ? 1 : Math.min(1, Math.max(0, p.bytes / p.totalBytes));
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const rate = p.elapsedMs > 0 ? `${formatSize(Math.round((p.bytes * 1000) / p.elapsedMs))}/s` : '-';
  const tail = `${percent}  ${formatSize(p.bytes)} / ${formatSize(p.totalBytes)}  ${rate}`;
  const stage = p.stage.padEnd(STAGE_WIDTH);
  const room = p.columns - 1 - stage.length - tail.length - 5;
  const barWidth = Math.min(MAX_BAR, room);
  if (barWidth < MIN_BAR) return `${stage}${tail}`.slice(0, Math.max(0, p.columns - 1));
  const filled = Math.floor(fraction * barWidth);
  return `${stage} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]  ${tail}`;
}

/** Draws one progress line in place (`\r`, line, erase to end of line), throttled per stage. */
export class ProgressRenderer {
  #stage: string | undefined;
  #stageStartMs = 0;
  #throttle = new ProgressThrottle();
  #drawn = false;

  constructor(
    private readonly write: (text: string) => void,
    private readonly columns: number,
  ) {}

  update(stage: string, bytes: number, totalBytes: number, nowMs: number, final = false): void {
    if (stage !== this.#stage) {
      this.#stage = stage;
      this.#stageStartMs = nowMs;
      this.#throttle = new ProgressThrottle();
    }
    if (!this.#throttle.take(nowMs, bytes, totalBytes, final)) return;
    const line = formatProgressLine({ stage, bytes, totalBytes, elapsedMs: nowMs - this.#stageStartMs, columns: this.columns });
    this.write(`\r${line}\x1b[K`);
    this.#drawn = true;
  }

  /** Ends the line, so what is written next starts on a fresh one. */
  finish(): void {
    if (this.#drawn) this.write('\n');
    this.#drawn = false;
  }
}
