// A CoreLogger that lets through at most `linesPerWindow` lines of each message per window and counts the
// rest, so a guest writing garbage as fast as it can does not become megabytes of daemon log (each line is
// also a synchronous append on the event loop every VM shares). The next line of a message after a window
// with drops carries how many were dropped; the core's counters keep the exact totals. Errors always pass.
// Pure: time comes from nowMs.
import type { CoreLogger, LogFields } from './core-logger.js';

export interface RateLimitOptions {
  linesPerWindow: number;
  windowMs: number;
  nowMs: () => number;
}

export const DEFAULT_CORE_LOG_LIMIT = { linesPerWindow: 20, windowMs: 10_000 } as const;

interface MessageWindow {
  startMs: number;
  lines: number;
  dropped: number;
}

export function rateLimitedLogger(log: CoreLogger, opts: RateLimitOptions): CoreLogger {
  // Keyed by message text: the core's messages are fixed strings (what varies is in the fields), so this
  // stays as small as the set of messages.
  const windows = new Map<string, MessageWindow>();
  const gate =
    (level: 'info' | 'warn') =>
    (message: string, fields?: LogFields): void => {
      const now = opts.nowMs();
      let w = windows.get(message);
      let extra: LogFields = {};
      if (!w || now - w.startMs >= opts.windowMs) {
        if (w && w.dropped > 0) extra = { droppedBefore: w.dropped };
        w = { startMs: now, lines: 0, dropped: 0 };
        windows.set(message, w);
      }
      if (w.lines >= opts.linesPerWindow) {
        w.dropped++;
        return;
      }
      w.lines++;
      if (w.lines === opts.linesPerWindow) extra = { ...extra, rateLimited: `more lines like this within ${opts.windowMs} ms are counted, not logged` };
      log[level](message, { ...fields, ...extra });
    };
  return { info: gate('info'), warn: gate('warn'), error: (message, fields) => log.error(message, fields) };
}
