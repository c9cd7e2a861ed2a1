/**
 * How `amqtt_sub` prints a message, as mosquitto_sub does: the payload alone, `-v` the topic and
 * the payload, or `-F` a format string; a newline after each unless `-N`.
 *
 * @module
 */

import type { ApplicationMessage } from "./_deps.ts";

/** Options of {@linkcode formatMessage}. */
export interface FormatOptions {
  /** `-v`: the topic, a space, the payload (`(null)` for an empty one, as mosquitto_sub). */
  verbose?: boolean;
  /** `-F`: a mosquitto_sub format string; wins over `verbose`. */
  format?: string;
  /** Append `\n`. Default true; `-N` turns it off. */
  eol?: boolean;
  /** The clock for `%I`, `%U`, `%j` and `%J`. Default `new Date()`. */
  now?: () => Date;
}

const encoder = new TextEncoder();

/**
 * The bytes to print for one message.
 *
 * Format sequences (mosquitto_sub's): `%t` topic, `%p` payload, `%q` QoS, `%r` retain (0/1),
 * `%l` payload length, `%m` packet id, `%x`/`%X` payload in lower/upper case hex, `%I` ISO 8601
 * time, `%U` Unix time with nanoseconds, `%j` the message as JSON with the payload as a string,
 * `%J` the same with the payload inserted as JSON, `%%` a percent sign; `\n`, `\t`, `\\`, `\0`,
 * `\a`, `\e` escapes. Unknown sequences are printed as they are.
 *
 * @param message the message
 * @param options the output mode
 * @returns the bytes
 * @throws {TypeError} for `%J` when the payload is not JSON
 *
 * @example
 * ```ts
 * import { formatMessage } from "./_format.ts";
 * import assert from "node:assert/strict";
 *
 * const message = {
 *   topic: "a/b",
 *   payload: new TextEncoder().encode("hi"),
 *   qos: 1 as const,
 *   retain: false,
 *   dup: false,
 * };
 * const text = new TextDecoder().decode(formatMessage(message, { format: "%t %q %x" }));
 * assert.equal(text, "a/b 1 6869\n");
 * ```
 */
export function formatMessage(
  message: ApplicationMessage,
  options: FormatOptions = {},
): Uint8Array {
  const parts: Uint8Array[] = [];
  if (options.format !== undefined) {
    formatInto(parts, options.format, message, options.now ?? (() => new Date()));
  } else if (options.verbose === true) {
    parts.push(encoder.encode(`${message.topic} `));
    parts.push(message.payload.length === 0 ? encoder.encode("(null)") : message.payload);
  } else {
    parts.push(message.payload);
  }
  if (options.eol !== false) parts.push(NEWLINE);
  return concat(parts);
}

const NEWLINE = new Uint8Array([10]);
const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  "\\": "\\",
  "0": "\0",
  a: "\x07",
  e: "\x1b",
  r: "\r",
};

function formatInto(
  parts: Uint8Array[],
  format: string,
  m: ApplicationMessage,
  now: () => Date,
): void {
  let text = "";
  const flush = () => {
    if (text !== "") parts.push(encoder.encode(text));
    text = "";
  };
  for (let i = 0; i < format.length; i++) {
    const c = format[i];
    const next = format[i + 1];
    if (c === "\\" && next !== undefined && next in ESCAPES) {
      text += ESCAPES[next];
      i++;
    } else if (c === "%" && next !== undefined) {
      i++;
      switch (next) {
        case "%":
          text += "%";
          break;
        case "t":
          text += m.topic;
          break;
        case "p":
          flush();
          parts.push(m.payload);
          break;
        case "q":
          text += String(m.qos);
          break;
        case "r":
          text += m.retain ? "1" : "0";
          break;
        case "l":
          text += String(m.payload.length);
          break;
        case "m":
          text += String(m.packetId ?? 0);
          break;
        case "x":
          text += hex(m.payload);
          break;
        case "X":
          text += hex(m.payload).toUpperCase();
          break;
        case "I":
          text += isoTime(now());
          break;
        case "U":
          text += unixTime(now());
          break;
        case "j":
        case "J":
          text += json(m, now(), next === "J");
          break;
        default:
          text += c + next;
      }
    } else {
      text += c;
    }
  }
  flush();
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** `2016-08-10T09:47:38+0100`, local time, as mosquitto_sub's `%I`. */
function isoTime(d: Date): string {
  const p = (n: number) => String(Math.abs(n)).padStart(2, "0");
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:` +
    `${p(d.getMinutes())}:${p(d.getSeconds())}${sign}${p(Math.trunc(offset / 60))}${
      p(offset % 60)
    }`;
}

function unixTime(d: Date): string {
  const ms = d.getTime();
  return `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1_000_000).padStart(9, "0")}`;
}

function json(m: ApplicationMessage, now: Date, raw: boolean): string {
  const text = new TextDecoder().decode(m.payload);
  let payload: string;
  if (raw) {
    try {
      JSON.parse(text);
    } catch {
      throw new TypeError(`Cannot print %J: the payload on "${m.topic}" is not JSON`);
    }
    payload = text;
  } else {
    payload = JSON.stringify(text);
  }
  return `{"tst":${JSON.stringify(now.toISOString())},"topic":${JSON.stringify(m.topic)},` +
    `"qos":${m.qos},"retain":${m.retain ? 1 : 0},"payloadlen":${m.payload.length},` +
    `"payload":${payload}}`;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
