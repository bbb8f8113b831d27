// Structured logs: one JSON object per line, `vm` on every line that concerns a VM. The daemon logs to
// stderr (the journal under systemd); each VM's lines also go to its own file for `vmgmt vm logs --source daemon`.
import { appendFileSync } from 'node:fs';
import type { CoreLogger, LogFields } from '../../device-backend/core/core-logger.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger extends CoreLogger {
  debug(message: string, fields?: LogFields): void;
  child(fields: LogFields, opts?: { file?: string }): Logger;
}

export interface LoggerOptions {
  write?: (line: string) => void;
  /** The lowest level written; a function is asked on every line (the daemon's config may change it). */
  level?: LogLevel | (() => LogLevel);
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}, files: string[] = []): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const threshold = opts.level ?? 'info';
  const minRank = typeof threshold === 'function' ? () => RANK[threshold()] : () => RANK[threshold];
  const now = opts.now ?? (() => new Date());
  const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[level] < minRank()) return;
    const line = `${JSON.stringify({ time: now().toISOString(), level, msg, ...base, ...fields })}\n`;
    write(line);
    for (const f of files) {
      try {
        appendFileSync(f, line);
      } catch {
        // The VM's directory may be gone (vm rm); the main log still has the line.
      }
    }
  };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (fields, childOpts) => createLogger(opts, { ...base, ...fields }, childOpts?.file ? [...files, childOpts.file] : files),
  };
}
