// Structured logs with pino: one JSON object per line (`time`, `level`, `msg`, and fields), `vm` on every
// line that concerns a VM. The daemon logs to stderr (the journal under systemd); each VM's lines also go
// to its own file for `vmgmt vm logs --source daemon`. Writes are asynchronous (pino's sonic-boom); flush()
// before the process exits on purpose.
import { openSync } from 'node:fs';
import pino from 'pino';

type DestinationStream = pino.DestinationStream;
type PinoLogger = pino.Logger;
import type { CoreLogger, LogFields } from '../../device-backend/core/core-logger.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger extends CoreLogger {
  debug(message: string, fields?: LogFields): void;
  /** Lines with these fields on every line; with `file`, also written to that file. */
  child(fields: LogFields, opts?: { file?: string }): Logger;
  /** Writes out what is buffered, synchronously (before process.exit). */
  flush(): void;
  /** Stops writing this logger's own file (a removed VM's); the parent goes on. */
  close(): void;
}

export interface LoggerOptions {
  /** Where lines go; default stderr. Each call gets one whole line, newline included. */
  write?: (line: string) => void;
  /** The lowest level written; a function is asked on every line (the daemon's config may change it). */
  level?: LogLevel | (() => LogLevel);
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

interface Sink {
  stream: DestinationStream;
  flush(): void;
  end(): void;
}

/** The file opened now (so flush() finds it open), written asynchronously; undefined if it cannot be opened. */
function fileSink(path: string): Sink | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch {
    return undefined; // the VM's directory is gone (vm rm): the main log still has every line
  }
  const dest = pino.destination({ fd, sync: false });
  dest.on('error', () => {});
  return {
    stream: dest,
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // not open yet, or its file is gone
      }
    },
    end: () => dest.end(),
  };
}

function mainSink(opts: LoggerOptions): Sink {
  if (opts.write) {
    const write = opts.write;
    return { stream: { write: (line: string) => write(line) }, flush: () => {}, end: () => {} };
  }
  const dest = pino.destination({ fd: 2, sync: false });
  return {
    stream: dest,
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // stderr not ready yet: nothing buffered
      }
    },
    end: () => {},
  };
}

function makePino(opts: LoggerOptions, streams: Sink[]): PinoLogger {
  const now = opts.now ?? (() => new Date());
  const stream = streams.length === 1 ? streams[0]!.stream : pino.multistream(streams.map((s) => ({ stream: s.stream, level: 'debug' as const })));
  return pino(
    {
      level: 'debug',
      base: null,
      // msg goes in the logged object, first, so a line reads `"msg":"…","vm":"…"` (pino would put it last).
      messageKey: 'message_unused',
      timestamp: () => `,"time":"${now().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return build(opts, mainSink(opts), undefined, false, {});
}

function build(opts: LoggerOptions, main: Sink, file: Sink | undefined, ownsFile: boolean, base: LogFields): Logger {
  const threshold = opts.level ?? 'info';
  const minRank = typeof threshold === 'function' ? () => RANK[threshold()] : () => RANK[threshold];
  const sinks = file ? [main, file] : [main];
  const p = makePino(opts, sinks);
  const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[level] < minRank()) return;
    p[level]({ msg, ...base, ...fields });
  };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    // A child with a file of its own writes through a pino of its own (main stream and file); one without
    // shares its parent's streams.
    child: (fields, childOpts) =>
      childOpts?.file ? build(opts, main, fileSink(childOpts.file), true, { ...base, ...fields }) : build(opts, main, file, false, { ...base, ...fields }),
    flush: () => {
      for (const s of sinks) s.flush();
    },
    close: () => {
      if (!ownsFile) return;
      file?.flush();
      file?.end();
    },
  };
}
