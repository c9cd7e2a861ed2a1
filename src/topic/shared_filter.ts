/**
 * Shared subscriptions (MQTT 5.0 §4.8.2): `$share/{ShareName}/{filter}`.
 *
 * @module
 */

/** The prefix that marks a shared subscription's topic filter [MQTT-4.8.2-1]. */
export const SHARED_PREFIX = "$share/";

/** A shared subscription's topic filter split into its share name and the filter proper. */
export interface SharedFilter {
  /** The ShareName: non-empty, without `/`, `+` or `#`. */
  group: string;
  /** The topic filter after the ShareName, which the topics are matched against. */
  filter: string;
}

/**
 * Returns why a filter that starts with `$share/` is not a well-formed shared subscription,
 * checking only the 4.8.2 rules (the inner filter's own rules are checked by
 * `validateTopicFilter`).
 *
 * @param filter A topic filter starting with `$share/`.
 * @returns undefined when well-formed, else the reason in sentence case.
 */
export function sharedFilterProblem(filter: string): string | undefined {
  const slash = filter.indexOf("/", SHARED_PREFIX.length);
  const end = slash === -1 ? filter.length : slash;
  // [MQTT-4.8.2-1]: the ShareName is at least one character long.
  if (end === SHARED_PREFIX.length) return "Shared subscription has an empty share name";
  for (let i = SHARED_PREFIX.length; i < end; i++) {
    const c = filter.charCodeAt(i);
    // [MQTT-4.8.2-2]: no "+" or "#" in the ShareName ("/" ends it by construction).
    if (c === 0x2b || c === 0x23) {
      return `Shared subscription share name contains "${c === 0x2b ? "+" : "#"}"`;
    }
  }
  // [MQTT-4.8.2-2]: the ShareName is followed by "/" and a topic filter.
  if (slash === -1 || slash + 1 === filter.length) {
    return "Shared subscription has no topic filter after its share name";
  }
  return undefined;
}

/**
 * Splits a shared subscription filter `$share/{ShareName}/{filter}` (MQTT 5.0 §4.8.2).
 *
 * Returns undefined both for filters that are not shared and for malformed shared filters (empty
 * ShareName [MQTT-4.8.2-1], `+` or `#` in it, or no `/` and filter after it [MQTT-4.8.2-2]); run
 * `validateTopicFilter` first to tell the two apart. The inner filter is not checked here.
 *
 * @param filter A topic filter as sent in SUBSCRIBE or UNSUBSCRIBE.
 * @returns The share name and inner filter, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSharedFilter } from "./shared_filter.ts";
 *
 * assert.deepEqual(parseSharedFilter("$share/consumer1/sport/tennis/+"), {
 *   group: "consumer1",
 *   filter: "sport/tennis/+",
 * });
 * assert.equal(parseSharedFilter("sport/tennis/+"), undefined);
 * ```
 */
export function parseSharedFilter(filter: string): SharedFilter | undefined {
  if (!filter.startsWith(SHARED_PREFIX) || sharedFilterProblem(filter) !== undefined) {
    return undefined;
  }
  const slash = filter.indexOf("/", SHARED_PREFIX.length);
  return { group: filter.slice(SHARED_PREFIX.length, slash), filter: filter.slice(slash + 1) };
}
