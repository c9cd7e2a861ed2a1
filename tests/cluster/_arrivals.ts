/**
 * What the window tests check at their end: every QoS 1 message a publisher had acknowledged
 * reached the subscriber, and (where no shared group decides) the first arrivals came in the
 * order published.
 *
 * @module
 */

import assert from "node:assert/strict";

/** A received message as the tests record it: `topic payload`. */
export function arrival(m: { topic: string; payload: Uint8Array }): string {
  return `${m.topic} ${new TextDecoder().decode(m.payload)}`;
}

/**
 * Asserts that every message publisher `name` had acknowledged (payloads `0` to `acked[name] - 1`
 * on `base/name`) is among `seen`, and with `ordered`, that their first arrivals are in order.
 *
 * @param seen the arrivals, as {@linkcode arrival} writes them
 * @param base the topics' first level
 * @param acked per publisher, the PUBACKs it received
 * @param ordered whether the first arrivals must be in the order published
 */
export function assertArrivals(
  seen: readonly string[],
  base: string,
  acked: Record<string, number>,
  ordered: boolean,
): void {
  for (const [name, count] of Object.entries(acked)) {
    const topic = `${base}/${name} `;
    const first = [
      ...new Set(seen.filter((m) => m.startsWith(topic)).map((m) => m.slice(topic.length))),
    ].map(Number);
    const got = new Set(first);
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !got.has(i));
    assert.deepEqual(missing, [], `messages acknowledged on ${name} and never delivered`);
    if (ordered) {
      assert.deepEqual(
        first,
        [...first].sort((p, q) => p - q),
        "first arrivals in order",
      );
    }
  }
}
