// Structured logs: one JSON object per line, `vm` on every line that concerns a VM. The daemon logs to
// stderr (the journal under systemd); each VM's lines also go to its own file for `vmgmt vm logs --source daemon`.
import { appendFileSync } from 'node:fs';
import type { CoreLogger, LogFields } from '../../device-backend/core/core-logger.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger extends CoreLogger {
  debug(message: string, fields?: LogFields): void;
  child(fields: LogFields, opts?: { file?: string }): Logger;
}

export interface LoggerOptions {
  write?: (line: string) => void;
  level?: LogLevel;
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}, files: string[] = []): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const min = RANK[opts.level ?? 'info'];
  const now = opts.now ?? (() => new Date());
  const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
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
