/**
 * Topic name validation: the topic a PUBLISH or a Will is sent to.
 *
 * @module
 */

import { scanTopic } from "./_scan.ts";

/**
 * Checks a topic name (the topic of a PUBLISH or a Will) against MQTT §4.7.
 *
 * A topic name is non-empty [MQTT-4.7.3-1], has no wildcard `+` or `#` (3.1.1 [MQTT-4.7.1-1],
 * 5.0 [MQTT-4.7.0-1]), no U+0000 [MQTT-4.7.3-2], no lone surrogate [MQTT-1.5.4-1], and is at
 * most `MAX_TOPIC_LENGTH` (16383) UTF-16 code units long: this implementation's limit, within
 * the 65535 UTF-8 bytes of [MQTT-4.7.3-3] (see topic_length.ts for why). Topics starting with `$` are valid names; whether
 * clients may publish to them is the broker's policy.
 *
 * @param name The topic name to check.
 * @returns undefined when the name is valid, else the reason in sentence case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateTopicName } from "./validate_topic_name.ts";
 *
 * assert.equal(validateTopicName("sport/tennis/player1"), undefined);
 * assert.equal(validateTopicName("sport/+"), 'Topic name contains wildcard "+"');
 * ```
 */
export function validateTopicName(name: string): string | undefined {
  if (name.length === 0) return "Topic name is empty"; // [MQTT-4.7.3-1]
  return scanTopic(name, "Topic name", false);
}
