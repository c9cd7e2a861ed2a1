/**
 * Log lines on stderr: aMQTT's text format, `[2026-11-22 15:48:51,108] :: INFO - message`, or one
 * JSON object per line (`--log-format json`) with the time in ISO 8601 with its zone offset, the
 * level, an event name, the message, and what the broker knows of the client (id, user name,
 * listener, remote address, reason, topic). Passwords are never among them.
 *
 * @module
 */

import type { BrokerOptions, LogFields } from "./_deps.ts";

/** The library's logger contract (`debug`, `info`, `warning`, `error`). */
export type Logger = NonNullable<BrokerOptions["logger"]>;

/** Log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];
/** Log formats. */
export const LOG_FORMATS = ["text", "json"] as const;
/** A log format. */
export type LogFormat = typeof LOG_FORMATS[number];

/** Options of {@linkcode createLogger}. */
export interface CreateLoggerOptions {
  /** Write DEBUG lines too (same as `level: "debug"`); default INFO and above only. */
  debug?: boolean;
  /** The least severe level written; default `info` (`debug` with `debug: true`). */
  level?: LogLevel;
  /** `text` (aMQTT's format, the default) or `json` (one object per line). */
  format?: LogFormat;
  /** Where finished lines go; default stderr, one write per line. */
  write?: (line: string) => void;
  /** The clock; default `new Date()`. */
  now?: () => Date;
}

/** JSON keys of the structured fields, in the order they are written. */
const JSON_KEYS: [keyof LogFields, string][] = [
  ["clientId", "client_id"],
  ["username", "username"],
  ["listener", "listener"],
  ["remoteAddress", "remote_address"],
  ["reason", "reason"],
  ["topic", "topic"],
];

/**
 * Creates a logger writing aMQTT-style lines (local time, comma before the milliseconds, as
 * Python's `logging` prints them) or JSON lines.
 *
 * @param options level, format, sink and clock
 * @returns the logger
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const write = options.write ?? writeStderr;
  const now = options.now ?? (() => new Date());
  const min = LOG_LEVELS.indexOf(options.level ?? (options.debug === true ? "debug" : "info"));
  const line = options.format === "json"
    ? (level: string, msg: string, fields: LogFields | undefined) => {
      const out: Record<string, string> = {
        time: formatIsoTime(now()),
        level,
        event: fields?.event ?? "log",
        message: msg,
      };
      for (const [key, name] of JSON_KEYS) {
        const value = fields?.[key];
        if (value !== undefined) out[name] = value;
      }
      write(JSON.stringify(out));
    }
    : (level: string, msg: string) => write(`[${formatLogTime(now())}] :: ${level} - ${msg}`);
  const at = (level: LogLevel) =>
    LOG_LEVELS.indexOf(level) < min
      ? () => {}
      : (msg: string, fields?: LogFields) => line(level.toUpperCase(), msg, fields);
  return {
    debug: at("debug"),
    info: at("info"),
    warning: at("warning"),
    error: at("error"),
    // Lets the broker and its plugins skip building lines that would be discarded.
    enabled: (level) => LOG_LEVELS.indexOf(level) >= min,
  };
}

const encoder = new TextEncoder();

/**
 * Writes one line to stderr. A direct write costs less than half of `console.error` (measured at
 * about 9 against 20 µs a line into a pipe), and the broker may log a line per connection.
 */
function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  try {
    for (let done = 0; done < bytes.length;) {
      done += Deno.stderr.writeSync(done === 0 ? bytes : bytes.subarray(done));
    }
  } catch {
    // stderr closed: nowhere left to report to.
  }
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

/**
 * Formats a time in ISO 8601, local time with its offset: `2026-11-22T15:48:51.108+01:00`.
 *
 * @param date the time
 * @returns the formatted time
 */
export function formatIsoTime(date: Date): string {
  const p = (n: number, width = 2) => String(n).padStart(width, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}.` +
    `${p(date.getMilliseconds(), 3)}${sign}${p(Math.floor(abs / 60))}:${p(abs % 60)}`;
}
