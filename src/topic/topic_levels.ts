/**
 * Counting the levels of a topic name or filter, for the broker's `max_topic_levels` limit.
 *
 * @module
 */

const SLASH = 0x2f; // "/"

/**
 * Tells whether a topic name or filter has more than `max` levels.
 *
 * Every level costs the broker a node in its subscription tree or retained store, so a limit on
 * levels bounds what one topic can make it hold (Mosquitto allows 200). A topic of length L has
 * at most L + 1 levels, so short topics are answered without a scan; a long one is scanned only up
 * to the first `/` past the limit.
 *
 * @param topic A topic name or filter (`$share/{name}/` counts as two levels).
 * @param max The most levels allowed; 0 allows any number.
 * @returns true when `topic` has more than `max` levels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exceedsTopicLevels } from "./topic_levels.ts";
 *
 * assert.equal(exceedsTopicLevels("a/b/c", 3), false);
 * assert.equal(exceedsTopicLevels("a/b/c/", 3), true); // four levels, the last one empty
 * assert.equal(exceedsTopicLevels("a/".repeat(1000), 0), false);
 * ```
 */
export function exceedsTopicLevels(topic: string, max: number): boolean {
  if (max <= 0 || topic.length < max) return false;
  let slashes = 0;
  for (let i = 0; i < topic.length; i++) {
    if (topic.charCodeAt(i) === SLASH && ++slashes >= max) return true;
  }
  return false;
}
