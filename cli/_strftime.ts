/**
 * C's `strftime` in the C locale, for the `@` time sequences of `amqtt_sub -F` (mosquitto_sub
 * hands `@X` to `strftime` as `%X`, in local time). A conversion glibc does not know is printed
 * as written (`%Q`), as glibc does.
 *
 * @module
 */

import { zoneAbbreviation } from "./_zone_abbreviation.ts";

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

function pad(n: number, width: number, fill = "0"): string {
  const negative = n < 0;
  const digits = String(Math.abs(n)).padStart(width, fill);
  return negative ? `-${digits}` : digits;
}

/** Day of the year, 0-based. */
function yearDay(d: Date): number {
  const start = new Date(d.getFullYear(), 0, 1);
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  return Math.round((day.getTime() - start.getTime()) / 86_400_000);
}

/** The ISO 8601 week-based year and week number (`%G`, `%V`). */
function isoWeek(d: Date): [number, number] {
  const day = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of this week
  const year = day.getUTCFullYear();
  const week = Math.ceil(((day.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return [year, week];
}

function utcOffset(d: Date): string {
  const offset = -d.getTimezoneOffset();
  return `${offset >= 0 ? "+" : "-"}${pad(Math.trunc(Math.abs(offset) / 60), 2)}${
    pad(Math.abs(offset) % 60, 2)
  }`;
}

/**
 * `%Z`: the zone's abbreviation as glibc prints it (from the zone's file); without permission to
 * read the environment or the file, the runtime's short name for the zone.
 */
function zoneName(d: Date): string {
  try {
    return zoneAbbreviation(d, Deno.env.get("TZ"));
  } catch {
    // Not allowed to read TZ or the zone file.
  }
  const part = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
    .formatToParts(d)
    .find((p) => p.type === "timeZoneName");
  return part?.value ?? "";
}

/**
 * One conversion of `strftime` (the character after `%`) for a local time.
 *
 * @param c the conversion character
 * @param d the time
 * @returns the text, or `%c` for a conversion it does not know
 *
 * @example
 * ```ts
 * import { strftime } from "./_strftime.ts";
 * import assert from "node:assert/strict";
 *
 * const d = new Date(2026, 0, 5, 7, 8, 9);
 * assert.equal(["Y", "m", "d", "H", "M", "S"].map((c) => strftime(c, d)).join(""), "20260105070809");
 * assert.equal(strftime("a", d), "Mon");
 * assert.equal(strftime("Q", d), "%Q");
 * ```
 */
export function strftime(c: string, d: Date): string {
  const hour12 = d.getHours() % 12 === 0 ? 12 : d.getHours() % 12;
  switch (c) {
    case "a":
      return DAYS[d.getDay()]!.slice(0, 3);
    case "A":
      return DAYS[d.getDay()]!;
    case "b":
    case "h":
      return MONTHS[d.getMonth()]!.slice(0, 3);
    case "B":
      return MONTHS[d.getMonth()]!;
    case "c":
      return `${strftime("a", d)} ${strftime("b", d)} ${strftime("e", d)} ${
        strftime("T", d)
      } ${d.getFullYear()}`;
    case "C":
      return pad(Math.floor(d.getFullYear() / 100), 2);
    case "d":
      return pad(d.getDate(), 2);
    case "D":
    case "x":
      return `${pad(d.getMonth() + 1, 2)}/${pad(d.getDate(), 2)}/${pad(d.getFullYear() % 100, 2)}`;
    case "e":
      return pad(d.getDate(), 2, " ");
    case "F":
      return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1, 2)}-${pad(d.getDate(), 2)}`;
    case "g":
      return pad(isoWeek(d)[0] % 100, 2);
    case "G":
      return String(isoWeek(d)[0]);
    case "H":
      return pad(d.getHours(), 2);
    case "I":
      return pad(hour12, 2);
    case "j":
      return pad(yearDay(d) + 1, 3);
    case "k":
      return pad(d.getHours(), 2, " ");
    case "l":
      return pad(hour12, 2, " ");
    case "m":
      return pad(d.getMonth() + 1, 2);
    case "M":
      return pad(d.getMinutes(), 2);
    case "n":
      return "\n";
    case "p":
      return d.getHours() < 12 ? "AM" : "PM";
    case "P":
      return d.getHours() < 12 ? "am" : "pm";
    case "r":
      return `${pad(hour12, 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)} ${
        strftime("p", d)
      }`;
    case "R":
      return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}`;
    case "s":
      return String(Math.floor(d.getTime() / 1000));
    case "S":
      return pad(d.getSeconds(), 2);
    case "t":
      return "\t";
    case "T":
    case "X":
      return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}`;
    case "u":
      return String(d.getDay() || 7);
    case "U":
      return pad(Math.floor((yearDay(d) + 7 - d.getDay()) / 7), 2);
    case "V":
      return pad(isoWeek(d)[1], 2);
    case "w":
      return String(d.getDay());
    case "W":
      return pad(Math.floor((yearDay(d) + 7 - ((d.getDay() + 6) % 7)) / 7), 2);
    case "y":
      return pad(d.getFullYear() % 100, 2);
    case "Y":
      return String(d.getFullYear());
    case "z":
      return utcOffset(d);
    case "Z":
      return zoneName(d);
    case "%":
      return "%";
    default:
      return `%${c}`;
  }
}
