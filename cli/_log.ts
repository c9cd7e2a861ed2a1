/**
 * Log lines in aMQTT's format, `[2026-11-22 15:48:51,108] :: INFO - message`, written to stderr.
 *
 * @module
 */

import type { BrokerOptions } from "./_deps.ts";

/** The library's logger contract (`debug`, `info`, `warning`, `error`). */
export type Logger = NonNullable<BrokerOptions["logger"]>;

/** Options of {@linkcode createLogger}. */
export interface CreateLoggerOptions {
  /** Write DEBUG lines too; default INFO and above only. */
  debug?: boolean;
  /** Where finished lines go; default `console.error` (stderr). */
  write?: (line: string) => void;
  /** The clock; default `new Date()`. */
  now?: () => Date;
}

/**
 * Creates a logger writing aMQTT-style lines (local time, comma before the milliseconds, as
 * Python's `logging` prints them).
 *
 * @param options level, sink and clock
 * @returns the logger
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => console.error(line));
  const now = options.now ?? (() => new Date());
  const line = (level: string, msg: string) =>
    write(`[${formatLogTime(now())}] :: ${level} - ${msg}`);
  return {
    debug: options.debug === true ? (msg) => line("DEBUG", msg) : () => {},
    info: (msg) => line("INFO", msg),
    warning: (msg) => line("WARNING", msg),
    error: (msg) => line("ERROR", msg),
  };
}

/**
 * Formats a time as Python's `logging` `asctime`: `2026-11-22 15:48:51,108`, local time.
 *
 * @param date the time
 * @returns the formatted time
 */
export function formatLogTime(date: Date): string {
  const p = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())},` +
    p(date.getMilliseconds(), 3);
}
