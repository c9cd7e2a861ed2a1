/**
 * A small MQTT filter matcher for the topic ACL: does an ACL entry (a topic filter) cover a topic
 * name or a subscribed filter? Private to src/plugins; the broker's router has its own in
 * src/topic. No regular expressions, so no catastrophic backtracking (aMQTT's GHSA-2hjf-7455-w946).
 *
 * @module
 */

/**
 * Tells whether a string is a valid topic filter: non-empty [MQTT-4.7.3-1], `#` alone in the last
 * level [MQTT-4.7.1-2], `+` alone in its level [MQTT-4.7.1-3], no NUL [MQTT-4.7.3-2].
 *
 * @param filter The filter.
 * @returns True when valid.
 */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes("\u0000")) return false;
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level === "#") {
      if (i !== levels.length - 1) return false;
    } else if (level === "+") {
      continue;
    } else if (level.includes("#") || level.includes("+")) {
      return false;
    }
  }
  return true;
}

/**
 * Tells whether every topic name matched by `filter` is also matched by `entry`, both given as
 * levels (`"a/+/b".split("/")`). For a topic name (no wildcards) this is plain MQTT matching.
 *
 * Rules, level by level:
 * - entry `#` covers the rest of the filter, whatever it is, including the parent level (`a/#`
 *   matches `a` [MQTT-4.7.1-2]);
 * - entry `+` covers any single level of the filter except `#` (but an entry `+/#` covers a
 *   filter `#`, since a topic has at least one level);
 * - an entry literal covers only the same literal;
 * - a filter whose first level is a literal starting with `$` is not covered by an entry
 *   starting with a wildcard [MQTT-4.7.2-1]; both wildcards at the first level exclude `$` topics
 *   alike, so that case is covered.
 *
 * @param entry The ACL entry's levels (a valid filter).
 * @param filter The levels of a topic name or a valid filter.
 * @returns True when the entry covers the filter.
 */
export function filterCovers(entry: readonly string[], filter: readonly string[]): boolean {
  const first = filter[0];
  if (first.startsWith("$") && (entry[0] === "+" || entry[0] === "#")) return false;
  for (let i = 0; i < entry.length; i++) {
    const e = entry[i];
    if (e === "#") return true;
    if (i >= filter.length) return false;
    const f = filter[i];
    // A filter `#` matches every depth from here on, this level's parent included. Only an entry
    // `#` (handled above) covers that, or, at the first level where there is no parent to match,
    // an entry `+/#`.
    if (f === "#") return i === 0 && e === "+" && entry.length === 2 && entry[1] === "#";
    if (e === "+") continue;
    if (e !== f) return false;
  }
  return entry.length === filter.length;
}
