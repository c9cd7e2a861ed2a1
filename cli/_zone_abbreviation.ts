/**
 * The time zone abbreviation C's `strftime` prints for `%Z` (mosquitto_sub's `@Z`): glibc takes it
 * from the zone's TZif file (`TZ`, else `/etc/localtime`), so `IST` for Asia/Kolkata, `CEST` for
 * Europe/Berlin in summer, `+04` for Asia/Dubai, `UTC` when no zone is set. `Intl` names zones
 * differently (`GMT+5:30`), hence this reader of the same file. `TZ` that names no file is a POSIX
 * zone string (`EST5EDT`, `<+04>-4`), whose names are used as written.
 *
 * @module
 */

/** A zone's local time types and when they apply, from its TZif file (RFC 8536). */
interface Zone {
  /** Transition times, seconds since the epoch, ascending. */
  readonly times: number[];
  /** The local time type from each transition on. */
  readonly types: number[];
  /** Each local time type's abbreviation. */
  readonly names: string[];
  /** The POSIX TZ string of the footer, for times after the last transition ("" when none). */
  readonly footer: string;
}

const ZONES = new Map<string, Zone | undefined>();

/**
 * The abbreviation of the local time zone at `d`, as glibc's `strftime("%Z")` prints it.
 *
 * @param d the time
 * @param tz the `TZ` environment variable (undefined when unset)
 * @returns the abbreviation, `UTC` when the zone is UTC or its file is not a zone
 * @throws {Deno.errors.NotCapable} without permission to read the zone's file
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zoneAbbreviation } from "./_zone_abbreviation.ts";
 *
 * assert.equal(zoneAbbreviation(new Date(), ""), "UTC");
 * assert.equal(zoneAbbreviation(new Date(), "<+04>-4"), "+04");
 * ```
 */
export function zoneAbbreviation(d: Date, tz: string | undefined): string {
  // An empty TZ is UTC, as glibc.
  if (tz === "") return "UTC";
  const file = tz === undefined ? "/etc/localtime" : zoneFile(tz);
  let zone = file === undefined ? undefined : ZONES.get(file);
  if (file !== undefined && !ZONES.has(file)) {
    zone = readZone(file);
    ZONES.set(file, zone);
  }
  if (zone === undefined) {
    // Not a file: a POSIX TZ string; no TZ and no /etc/localtime: UTC.
    return tz === undefined ? "UTC" : posixName(tz, d) ?? "UTC";
  }
  const t = Math.floor(d.getTime() / 1000);
  const { times, types, names } = zone;
  if (times.length === 0 || t < times[0]!) return names[0] ?? "UTC";
  if (t >= times[times.length - 1]! && zone.footer !== "") {
    return posixName(zone.footer, d) ?? names[types[types.length - 1]!]!;
  }
  // The last transition at or before t.
  let lo = 0;
  let hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid]! <= t) lo = mid;
    else hi = mid - 1;
  }
  return names[types[lo]!] ?? "UTC";
}

/** The file glibc reads for a TZ value, or undefined when it names none. */
function zoneFile(tz: string): string | undefined {
  const name = tz.startsWith(":") ? tz.slice(1) : tz;
  if (name === "" || name.includes("..")) return undefined;
  if (name.startsWith("/")) return name;
  const dir = Deno.env.get("TZDIR") || "/usr/share/zoneinfo";
  return `${dir}/${name}`;
}

function readZone(file: string): Zone | undefined {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(file);
  } catch (error) {
    // Without read permission the zone is unknown, not absent: the caller falls back.
    if (error instanceof Deno.errors.NotCapable) throw error;
    return undefined;
  }
  try {
    return parseTzif(bytes);
  } catch {
    return undefined;
  }
}

/** Parses a TZif file: its 64-bit data when it has them (version 2 and later), else its 32-bit. */
function parseTzif(bytes: Uint8Array): Zone | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = (at: number) =>
    bytes[at] === 0x54 && bytes[at + 1] === 0x5a && bytes[at + 2] === 0x69 &&
    bytes[at + 3] === 0x66;
  if (bytes.length < 44 || !magic(0)) return undefined;
  const counts = (at: number) => {
    const c = (i: number) => view.getUint32(at + 20 + 4 * i);
    return {
      isut: c(0),
      isstd: c(1),
      leap: c(2),
      time: c(3),
      type: c(4),
      char: c(5),
    };
  };
  const v1 = counts(0);
  const v1Size = v1.time * 5 + v1.type * 6 + v1.char + v1.leap * 8 + v1.isstd + v1.isut;
  const wide = bytes[4] !== 0 && 44 + v1Size + 44 <= bytes.length && magic(44 + v1Size);
  const header = wide ? 44 + v1Size : 0;
  const n = counts(header);
  const timeSize = wide ? 8 : 4;
  let at = header + 44;
  const times: number[] = [];
  for (let i = 0; i < n.time; i++, at += timeSize) {
    times.push(wide ? Number(view.getBigInt64(at)) : view.getInt32(at));
  }
  const types: number[] = [];
  for (let i = 0; i < n.time; i++) types.push(bytes[at++]!);
  const nameAt: number[] = [];
  for (let i = 0; i < n.type; i++, at += 6) nameAt.push(bytes[at + 5]!);
  const chars = bytes.subarray(at, at + n.char);
  at += n.char + n.leap * (timeSize + 4) + n.isstd + n.isut;
  const names = nameAt.map((i) => {
    let end = i;
    while (end < chars.length && chars[end] !== 0) end++;
    return new TextDecoder().decode(chars.subarray(i, end));
  });
  let footer = "";
  if (wide && bytes[at] === 0x0a) {
    const end = bytes.indexOf(0x0a, at + 1);
    if (end > at) footer = new TextDecoder().decode(bytes.subarray(at + 1, end));
  }
  return { times, types, names, footer };
}

/**
 * The name a POSIX TZ string (`STD offset [DST [offset] [,rule]]`) gives at `d`: its daylight
 * name when the runtime's offset at `d` is not the standard one, else its standard name.
 */
function posixName(tz: string, d: Date): string | undefined {
  const spec = tz.startsWith(":") ? tz.slice(1) : tz;
  const match = /^(<[^>]*>|[A-Za-z]{3,})([-+]?\d{1,2}(?::\d{1,2}){0,2})?(<[^>]*>|[A-Za-z]{3,})?/
    .exec(spec);
  if (match === null) return undefined;
  const name = (s: string) => s.startsWith("<") ? s.slice(1, -1) : s;
  const std = name(match[1]!);
  if (match[3] === undefined || match[2] === undefined) return std;
  // POSIX offsets are west of Greenwich: "EST5" is UTC-5.
  const [h, m = "0", s = "0"] = match[2].replace(/^[-+]/, "").split(":");
  const west = (Number(h) * 3600 + Number(m) * 60 + Number(s)) *
    (match[2].startsWith("-") ? -1 : 1);
  return d.getTimezoneOffset() * 60 === west ? std : name(match[3]);
}
