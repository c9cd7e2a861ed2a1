/**
 * The longest topic name or filter the broker and client take, in UTF-16 code units.
 *
 * @module
 */

/**
 * The longest topic name or topic filter taken, in UTF-16 code units: the longest string V8
 * hashes by its characters. A longer string is hashed by its length alone, so every such topic of
 * one length would fall into one bucket of each Map keyed by topic (the retained store's, the
 * levels of the subscription and retained trees, a session's subscriptions) and each lookup would
 * compare it with all of them: 1,000 retained topics of 20,006 characters took 64 ms a PUBLISH,
 * for every client (bench/RESULTS.md, "retained-topic"). The limit is on the whole topic, which
 * bounds each of its levels too. MQTT allows 65535 bytes [MQTT-4.7.3-3]; a server may refuse a
 * topic it does not accept (5.0 reason code 0x90 Topic Name invalid, 0x8F Topic Filter invalid).
 * Client ids have the same limit for the same reason (`MAX_CLIENT_ID_LENGTH`).
 */
export const MAX_TOPIC_LENGTH = 16383;

/**
 * Tells whether a topic name or filter is longer than {@linkcode MAX_TOPIC_LENGTH}.
 *
 * @param topic A topic name or filter.
 * @returns true when `topic` has more than 16383 UTF-16 code units.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exceedsTopicLength } from "./topic_length.ts";
 *
 * assert.equal(exceedsTopicLength("a".repeat(16383)), false);
 * assert.equal(exceedsTopicLength("a".repeat(16384)), true);
 * ```
 */
export function exceedsTopicLength(topic: string): boolean {
  return topic.length > MAX_TOPIC_LENGTH;
}
