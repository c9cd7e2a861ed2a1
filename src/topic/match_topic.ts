/**
 * Matching one topic filter against one topic name, without regular expressions.
 *
 * @module
 */

const DOLLAR = 0x24; // "$"
const HASH = 0x23; // "#"
const PLUS = 0x2b; // "+"
const SLASH = 0x2f; // "/"

/**
 * Tells whether a topic name matches a topic filter, exactly as MQTT §4.7 defines it.
 *
 * `+` matches exactly one level, which may be empty; `#` matches its parent level and any number of
 * levels below (`sport/#` matches `sport`); levels are compared byte for byte with no
 * normalisation [MQTT-4.7.3-4]; a filter starting with a wildcard does not match a name starting
 * with `$` [MQTT-4.7.2-1]. It scans both strings once, in linear time, and allocates nothing (a
 * regular expression here was a ReDoS in aMQTT, GHSA-2hjf-7455-w946).
 *
 * The arguments are assumed valid (see `validateTopicFilter` and `validateTopicName`); a wildcard
 * that does not fill its level is compared as a literal character. A shared subscription filter
 * `$share/...` is compared literally too: match its inner filter instead.
 *
 * @param filter A valid topic filter.
 * @param name A valid topic name.
 * @returns true when `name` matches `filter`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchTopic } from "./match_topic.ts";
 *
 * assert.ok(matchTopic("sport/tennis/+", "sport/tennis/player1"));
 * assert.ok(matchTopic("sport/#", "sport"));
 * assert.ok(!matchTopic("#", "$SYS/broker/uptime"));
 * ```
 */
export function matchTopic(filter: string, name: string): boolean {
  const fl = filter.length;
  const nl = name.length;
  if (nl > 0 && name.charCodeAt(0) === DOLLAR) {
    // [MQTT-4.7.2-1]: "#", "+" and "+/..." never match "$SYS/..." and other "$" topics.
    const first = filter.charCodeAt(0);
    if (first === HASH || first === PLUS) return false;
  }
  let fi = 0;
  let ni = 0;
  // Each turn starts with fi and ni at the first character of a level.
  for (;;) {
    const fc = filter.charCodeAt(fi);
    const levelEnd = fi + 1 === fl || filter.charCodeAt(fi + 1) === SLASH;
    if (fc === HASH && fi + 1 === fl) return true; // "#" takes this level and all below.
    if (fc === PLUS && levelEnd) {
      while (ni < nl && name.charCodeAt(ni) !== SLASH) ni++;
      fi++;
    } else {
      while (fi < fl && ni < nl) {
        const c = filter.charCodeAt(fi);
        if (c === SLASH || c !== name.charCodeAt(ni)) break;
        fi++;
        ni++;
      }
      // Both must now stand at the end of their level.
      if (fi < fl && filter.charCodeAt(fi) !== SLASH) return false;
      if (ni < nl && name.charCodeAt(ni) !== SLASH) return false;
    }
    if (fi === fl) return ni === nl;
    if (ni === nl) {
      // The name has no more levels; the filter still has "/...": only "/#" matches, because
      // "#" includes the parent level.
      return fi + 2 === fl && filter.charCodeAt(fi + 1) === HASH;
    }
    fi++;
    ni++;
  }
}
