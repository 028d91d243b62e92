import { pino } from 'pino';

/** The logging methods lazy-content calls; a pino logger (or anything shaped like one) fits. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The default logger: pino to stdout, level from `LAZY_CONTENT_LOG_LEVEL` (default `info`). */
export function defaultLogger(): Logger {
  return pino({ name: 'lazy-content', level: process.env.LAZY_CONTENT_LOG_LEVEL ?? 'info' });
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
