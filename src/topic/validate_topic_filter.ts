/**
 * Topic filter validation: the filters of SUBSCRIBE and UNSUBSCRIBE.
 *
 * @module
 */

import { scanTopic } from "./_scan.ts";
import { SHARED_PREFIX, sharedFilterProblem } from "./shared_filter.ts";

/**
 * Checks a topic filter (from SUBSCRIBE or UNSUBSCRIBE) against MQTT §4.7 and §4.8.2.
 *
 * A filter is non-empty [MQTT-4.7.3-1]; `#` stands alone in the last level (3.1.1
 * [MQTT-4.7.1-2], 5.0 [MQTT-4.7.1-1]); `+` stands alone in its level (3.1.1 [MQTT-4.7.1-3],
 * 5.0 [MQTT-4.7.1-2]); it has no U+0000 [MQTT-4.7.3-2], no lone surrogate [MQTT-1.5.4-1], and is
 * at most `MAX_TOPIC_LENGTH` (16383) UTF-16 code units long, `$share/{name}/` included: this
 * implementation's limit, within the 65535 UTF-8 bytes of [MQTT-4.7.3-3] (see topic_length.ts). A filter starting with `$share/` must also
 * be a well-formed shared subscription: a non-empty ShareName [MQTT-4.8.2-1] without `+` or `#`,
 * followed by `/` and a filter [MQTT-4.8.2-2]. This applies to every protocol version, as the
 * subscription tree treats `$share/` filters as shared whatever the version.
 *
 * @param filter The topic filter to check.
 * @returns undefined when the filter is valid, else the reason in sentence case.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateTopicFilter } from "./validate_topic_filter.ts";
 *
 * assert.equal(validateTopicFilter("sport/tennis/#"), undefined);
 * assert.equal(validateTopicFilter("sport/tennis#"), 'Topic filter has "#" not alone in its level');
 * ```
 */
export function validateTopicFilter(filter: string): string | undefined {
  if (filter.length === 0) return "Topic filter is empty"; // [MQTT-4.7.3-1]
  if (filter.startsWith(SHARED_PREFIX)) {
    const problem = sharedFilterProblem(filter);
    if (problem !== undefined) return problem;
  }
  return scanTopic(filter, "Topic filter", true);
}
