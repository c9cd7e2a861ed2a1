/**
 * How `amqtt_sub` prints a message, as mosquitto_sub does: the payload alone, `-v` the topic and
 * the payload, or `-F` a format string; a newline after each unless `-N`.
 *
 * @module
 */

import type { ApplicationMessage, Properties } from "./_deps.ts";
import { strftime } from "./_strftime.ts";
import { nanosecondOf, wallClock } from "./_wall_clock.ts";

/** Options of {@linkcode formatMessage}. */
export interface FormatOptions {
  /** `-v`: the topic, a space, the payload (`(null)` for an empty one, as mosquitto_sub). */
  verbose?: boolean;
  /** `-F`: a mosquitto_sub format string; wins over `verbose`. */
  format?: string;
  /** Append `\n`. Default true; `-N` turns it off. */
  eol?: boolean;
  /**
   * The clock for `%I`, `%U`, `%j`, `%J` and the `@` sequences. Default: the wall clock to the
   * nanosecond as far as the runtime tells it (`wallClock`); a plain `Date` has milliseconds.
   */
  now?: () => Date;
  /** `--pretty`: `%j` and `%J` print indented JSON, as mosquitto_sub. */
  pretty?: boolean;
}

const encoder = new TextEncoder();

/**
 * The bytes to print for one message.
 *
 * Format sequences (mosquitto_sub 2.0.11's): `%t` topic, `%p` payload, `%q` QoS, `%r` retain
 * (0/1), `%l` payload length, `%m` packet id, `%x`/`%X` payload in lower/upper case hex, `%I` ISO
 * 8601 time, `%U` Unix time with nanoseconds, `%j` the message as JSON (with its MQTT 5.0
 * properties), `%J` the same with the payload inserted as JSON, `%%` a percent sign; MQTT 5.0
 * properties: `%P` user properties (`name:value`, space-separated), `%C` content type, `%D`
 * correlation data, `%E` message expiry interval, `%F` payload format indicator, `%R` response
 * topic, `%S` the first subscription identifier, `%A` topic alias (empty: the client resolves
 * aliases); `\n`, `\t`, `\r`, `\v`, `\\`, `\0`, `\a`, `\e` escapes. Flags, field width and
 * precision as mosquitto_sub: `%-10t`, `%05l`, `%.3C`. Unknown sequences print nothing
 * ({@linkcode checkFormat} refuses them). Time, local, taken once per message: `@X` is C's
 * `strftime` `%X` (`@Y-@m-@d @H:@M:@S`, `@s` Unix seconds, `@z` UTC offset, `@a`, `@j`, …; one
 * it does not know prints as `%X`, as glibc), `@N` the nanoseconds of the second (9 digits), `@@`
 * an at sign.
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
    formatInto(parts, options.format, message, options);
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
  v: "\v",
};
/** The `%` sequences mosquitto_sub 2.0.11 knows. */
const SPECIFIERS = new Set("%ACDEFIjJlmPpqRrStUxX");

/** One `%` sequence: its flags, field width and precision, as mosquitto_sub reads them. */
interface Spec {
  char: string;
  /** `-`: left-aligned. */
  left: boolean;
  /** `0`: zero-padded (ignored with `-`). */
  pad: " " | "0";
  width: number;
  /** -1 when none. */
  precision: number;
}

/**
 * Reads the `%` sequence whose `%` is at `start`, as mosquitto_sub does.
 *
 * @returns the sequence (undefined when the format ends first) and the index of its last char
 */
function readSpec(format: string, start: number): [Spec | undefined, number] {
  const len = format.length;
  let i = start;
  if (i >= len - 1) return [undefined, i];
  i++;
  const spec: Spec = { char: "", left: false, pad: " ", width: 0, precision: -1 };
  if (format[i] === "-") {
    spec.left = true;
    if (i < len - 1) i++;
  }
  if (format[i] === "0") {
    spec.pad = "0";
    if (i < len - 1) i++;
  }
  while (i < len - 1 && isDigit(format[i]!)) spec.width = spec.width * 10 + Number(format[i++]);
  if (format[i] === "." && i < len - 1) {
    i++;
    spec.precision = 0;
    while (i < len - 1 && isDigit(format[i]!)) {
      spec.precision = spec.precision * 10 + Number(format[i++]);
    }
  }
  spec.char = format[i]!;
  return [spec, i];
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/**
 * Checks a `-F` format string as mosquitto_sub does before it connects.
 *
 * @param format the format string
 * @returns what is wrong, or undefined
 *
 * @example
 * ```ts
 * import { checkFormat } from "./_format.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(checkFormat("%t %P"), undefined);
 * assert.equal(checkFormat("%Z"), "Invalid format specifier 'Z'");
 * ```
 */
export function checkFormat(format: string): string | undefined {
  for (let i = 0; i < format.length; i++) {
    const c = format[i];
    if (c === "@") {
      // A time sequence: any character may follow (strftime decides), but one must.
      if (i === format.length - 1) return "Incomplete format specifier";
      i++;
    } else if (c === "%") {
      const [spec, end] = readSpec(format, i);
      if (spec === undefined) return "Incomplete format specifier";
      if (!SPECIFIERS.has(spec.char)) return `Invalid format specifier '${spec.char}'`;
      i = end;
    } else if (c === "\\") {
      const next = format[i + 1];
      if (next === undefined) return "Incomplete escape specifier";
      if (!(next in ESCAPES)) return `Invalid escape specifier '${next}'`;
      i++;
    }
  }
  return undefined;
}

function formatInto(
  parts: Uint8Array[],
  format: string,
  m: ApplicationMessage,
  options: FormatOptions,
): void {
  const clock = options.now ?? wallClock;
  // One time for the whole line, as mosquitto_sub reads the clock once per message.
  let at: Date | undefined;
  const now = () => at ??= clock();
  let text = "";
  const flush = () => {
    if (text !== "") parts.push(encoder.encode(text));
    text = "";
  };
  const bytes = (b: Uint8Array) => {
    flush();
    parts.push(b);
  };
  const p = m.properties ?? {};
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!;
    const next = format[i + 1];
    if (c === "\\" && next !== undefined && next in ESCAPES) {
      text += ESCAPES[next];
      i++;
      continue;
    }
    if (c === "@" && next !== undefined) {
      i++;
      if (next === "@") text += "@";
      else if (next === "N") text += String(nanosecondOf(now())).padStart(9, "0");
      else text += strftime(next, now());
      continue;
    }
    if (c !== "%") {
      text += c;
      continue;
    }
    const [spec, end] = readSpec(format, i);
    i = end;
    if (spec === undefined) continue;
    switch (spec.char) {
      case "%":
        text += "%";
        break;
      case "A":
        text += optionalInt(p.topicAlias, spec);
        break;
      case "C":
        text += p.contentType === undefined
          ? " ".repeat(spec.width)
          : padString(p.contentType, spec);
        break;
      case "D":
        if (p.correlationData !== undefined) bytes(p.correlationData);
        break;
      case "E":
        text += optionalInt(p.messageExpiryInterval, spec);
        break;
      case "F":
        text += optionalInt(p.payloadFormatIndicator, spec);
        break;
      case "I":
        text += padString(isoTime(now()), spec);
        break;
      case "j":
      case "J":
        text += json(m, now(), spec.char === "J", options.pretty === true);
        break;
      case "l":
        text += padInt(m.payload.length, spec);
        break;
      case "m":
        text += padInt(m.packetId ?? 0, spec);
        break;
      case "P":
        text += (p.userProperties ?? []).map(([k, v]) => `${k}:${v}`).join(" ");
        break;
      case "p":
        bytes(payloadField(m.payload, spec, 0));
        break;
      case "q":
        text += String(m.qos);
        break;
      case "R":
        if (p.responseTopic !== undefined) text += padString(p.responseTopic, spec);
        break;
      case "r":
        text += m.retain ? "1" : "0";
        break;
      case "S":
        // The first identifier only, as mosquitto_sub.
        text += optionalInt(p.subscriptionIdentifier?.[0], spec);
        break;
      case "t":
        text += padString(m.topic, spec);
        break;
      case "U":
        text += unixTime(now());
        break;
      case "x":
      case "X":
        bytes(payloadField(m.payload, spec, spec.char === "x" ? 1 : 2));
        break;
      default:
        // Unknown sequences print nothing (checkFormat refuses them before connecting).
    }
  }
  flush();
}

/** An integer as C's `%d` with the sequence's width and flags (as a C int, as mosquitto_sub). */
function padInt(value: number, spec: Spec): string {
  const digits = String(value | 0);
  if (digits.length >= spec.width) return digits;
  if (spec.left) return digits.padEnd(spec.width);
  if (spec.pad === "0") {
    const negative = digits.startsWith("-");
    const body = negative ? digits.slice(1) : digits;
    return (negative ? "-" : "") + body.padStart(spec.width - (negative ? 1 : 0), "0");
  }
  return digits.padStart(spec.width);
}

/** An integer property: its value, or `width` pad characters when the message has none. */
function optionalInt(value: number | undefined, spec: Spec): string {
  return value === undefined ? spec.pad.repeat(spec.width) : padInt(value, spec);
}

/** A string as C's `%s` with the sequence's width and precision. */
function padString(value: string, spec: Spec): string {
  const cut = spec.precision >= 0 ? value.slice(0, spec.precision) : value;
  return spec.left ? cut.padEnd(spec.width) : cut.padStart(spec.width);
}

/** The payload as mosquitto_sub's `%p`/`%x`/`%X` prints it: raw (0), hex (1) or upper hex (2). */
function payloadField(payload: Uint8Array, spec: Spec, mode: 0 | 1 | 2): Uint8Array {
  let shown = payload;
  let padlen: number;
  if (spec.width > 0) {
    // mosquitto_sub cuts the payload to the field width (for hex, to half of it).
    let n = Math.min(payload.length, spec.width);
    if (mode > 0) {
      n = Math.floor(n / 2);
      padlen = spec.width - n * 2;
    } else padlen = spec.width - n;
    shown = payload.subarray(0, n);
  } else padlen = 0;
  let body: Uint8Array = shown;
  if (mode > 0) {
    const h = hex(shown);
    body = encoder.encode(mode === 2 ? h.toUpperCase() : h);
  }
  const padding = encoder.encode((spec.left ? " " : spec.pad).repeat(Math.max(0, padlen)));
  return spec.left ? concat([body, padding]) : concat([padding, body]);
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** `2016-08-10T09:47:38+0100`, local time, as mosquitto_sub's `%I`. */
function isoTime(d: Date): string {
  return `${localTime(d)}${utcOffset(d)}`;
}

function localTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:` +
    `${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function utcOffset(d: Date): string {
  const offset = -d.getTimezoneOffset();
  const p = (n: number) => String(Math.abs(n)).padStart(2, "0");
  return `${offset >= 0 ? "+" : "-"}${p(Math.trunc(offset / 60))}${p(offset % 60)}`;
}

function unixTime(d: Date): string {
  return `${Math.floor(d.getTime() / 1000)}.${String(nanosecondOf(d)).padStart(9, "0")}`;
}

/**
 * mosquitto_sub's `%j`/`%J` (built with cJSON, as Debian's): time, topic, QoS, retain, length,
 * packet id (QoS 1/2), the MQTT 5.0 properties, then the payload: as a string (`%j`), or the
 * payload's own JSON (`%J`); `null` when empty.
 */
function json(m: ApplicationMessage, now: Date, raw: boolean, pretty: boolean): string {
  const micros = String(Math.floor(nanosecondOf(now) / 1000)).padStart(6, "0");
  const root: JsonObject = {
    entries: [
      ["tst", `${localTime(now)}.${micros}Z${utcOffset(now)}`],
      ["topic", m.topic],
      ["qos", m.qos],
      ["retain", m.retain ? 1 : 0],
      ["payloadlen", m.payload.length],
    ],
  };
  if (m.qos > 0) root.entries.push(["mid", m.packetId ?? 0]);
  if (m.properties !== undefined && Object.keys(m.properties).length > 0) {
    root.entries.push(["properties", jsonProperties(m.properties)]);
  }
  let payload: Json;
  if (m.payload.length === 0) payload = null;
  else if (raw) {
    try {
      payload = fromJs(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(m.payload)));
    } catch {
      throw new TypeError(`Message payload is not valid JSON on topic ${m.topic}`);
    }
  } else {
    // mosquitto_sub 2.0.11 hands the payload to cJSON as a C string: it ends at the first NUL.
    const nul = m.payload.indexOf(0);
    payload = new TextDecoder().decode(nul < 0 ? m.payload : m.payload.subarray(0, nul));
  }
  root.entries.push(["payload", payload]);
  return printJson(root, pretty ? 0 : -1);
}

/** The properties mosquitto_sub prints in `%j`, in the order they came. */
function jsonProperties(properties: Properties): JsonObject {
  const out: JsonObject = { entries: [] };
  for (const [key, value] of Object.entries(properties)) {
    switch (key) {
      case "payloadFormatIndicator":
      case "messageExpiryInterval":
      case "topicAlias":
        out.entries.push([kebab(key), value as number]);
        break;
      case "contentType":
      case "responseTopic":
        out.entries.push([kebab(key), value as string]);
        break;
      case "correlationData":
        out.entries.push([kebab(key), new TextDecoder().decode(value as Uint8Array)]);
        break;
      case "subscriptionIdentifier":
        for (const id of value as number[]) out.entries.push(["subscription-identifier", id]);
        break;
      case "userProperties":
        out.entries.push([
          "user-properties",
          { entries: (value as [string, string][]).map(([k, v]) => [k, v]) },
        ]);
        break;
    }
  }
  return out;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** JSON with ordered, possibly repeated keys (cJSON keeps both of two user properties "a"). */
type Json = string | number | boolean | null | Json[] | JsonObject;
interface JsonObject {
  entries: [string, Json][];
}

function fromJs(value: unknown): Json {
  if (Array.isArray(value)) return value.map(fromJs);
  if (value !== null && typeof value === "object") {
    return { entries: Object.entries(value).map(([k, v]) => [k, fromJs(v)]) };
  }
  return value as Json;
}

/** Prints as cJSON: compact (`depth` -1), or cJSON_Print's tab-indented form. */
function printJson(value: Json, depth: number): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const pretty = depth >= 0;
  if (Array.isArray(value)) {
    // cJSON counts an array as a level: objects in it are indented one deeper.
    return `[${value.map((v) => printJson(v, pretty ? depth + 1 : -1)).join(pretty ? ", " : ",")}]`;
  }
  if (!pretty) {
    return `{${
      value.entries.map(([k, v]) => `${JSON.stringify(k)}:${printJson(v, -1)}`).join(",")
    }}`;
  }
  const inner = "\t".repeat(depth + 1);
  const lines = value.entries.map(([k, v]) =>
    `${inner}${JSON.stringify(k)}:\t${printJson(v, depth + 1)}`
  );
  return `{\n${lines.join(",\n")}${lines.length > 0 ? "\n" : ""}${"\t".repeat(depth)}}`;
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
