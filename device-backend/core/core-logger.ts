export type LogFields = Record<string, unknown>;

/** The logging the core needs; the daemon passes one that adds the VM's name to every line. */
export interface CoreLogger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export const silentLogger: CoreLogger = { info: () => {}, warn: () => {}, error: () => {} };
