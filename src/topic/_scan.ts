/**
 * Internal: the character scan shared by topic name and topic filter validation.
 *
 * @module
 */

import { exceedsTopicLength, MAX_TOPIC_LENGTH } from "./topic_length.ts";

const NUL = 0x00;
const HASH = 0x23; // "#"
const PLUS = 0x2b; // "+"
const SLASH = 0x2f; // "/"

/**
 * Scans `text` once for the rules shared by names and filters.
 *
 * Wildcards are rejected when `wildcards` is false; otherwise their placement is checked. The
 * caller has already rejected the empty string.
 *
 * @param text The topic name or filter, non-empty.
 * @param kind `"Topic name"` or `"Topic filter"`, the subject of the reason.
 * @param wildcards Whether `+` and `#` are allowed (filters) or not (names).
 * @returns undefined when valid, else the reason in sentence case.
 */
export function scanTopic(
  text: string,
  kind: string,
  wildcards: boolean,
): string | undefined {
  const length = text.length;
  // The broker's limit (see topic_length.ts). It also keeps every topic within the 65535 UTF-8
  // bytes a string may have [MQTT-4.7.3-3]: a UTF-16 code unit encodes to 3 bytes at most, and
  // 16383 × 3 = 49149.
  if (exceedsTopicLength(text)) return `${kind} is longer than ${MAX_TOPIC_LENGTH} characters`;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === NUL) return `${kind} contains the null character U+0000`; // [MQTT-4.7.3-2]
    if (c === PLUS || c === HASH) {
      const wildcard = c === PLUS ? "+" : "#";
      // 3.1.1 [MQTT-4.7.1-1], 5.0 [MQTT-4.7.0-1]: wildcards only in filters.
      if (!wildcards) return `${kind} contains wildcard "${wildcard}"`;
      const alone = (i === 0 || text.charCodeAt(i - 1) === SLASH) &&
        (i + 1 === length || text.charCodeAt(i + 1) === SLASH);
      // 3.1.1 [MQTT-4.7.1-2] / 5.0 [MQTT-4.7.1-1] for "#", 3.1.1 [MQTT-4.7.1-3] / 5.0
      // [MQTT-4.7.1-2] for "+": a wildcard occupies a whole level.
      if (!alone) return `${kind} has "${wildcard}" not alone in its level`;
      if (c === HASH && i + 1 !== length) return `${kind} has "#" before its last level`;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      // A well-formed pair is one code point of 4 UTF-8 bytes; a lone surrogate cannot be
      // encoded in UTF-8 at all [MQTT-1.5.4-1].
      const next = text.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) {
        return `${kind} contains a lone surrogate`;
      }
      i++;
    }
  }
  return undefined;
}
