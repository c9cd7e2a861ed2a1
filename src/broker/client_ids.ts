/**
 * Where the broker's core gets the identifiers it assigns to clients that connect with an empty
 * one [MQTT-3.1.3-6]. Injected, like the clock, so that the core reads no clock of its own and a
 * test can predict the ids.
 *
 * @module
 */

/**
 * Proposes a client identifier for a client that sent an empty one. The core asks again while the
 * proposal is taken by a session (a client may have chosen an id of the same shape).
 *
 * @param now the clock of the CONNECT being handled, ms since epoch
 * @returns a non-empty identifier
 */
export type ClientIdSource = (now: number) => string;

/**
 * The default source: `auto-<time>-<counter>` in base 36, unique within one broker and unlikely
 * to repeat across restarts.
 *
 * @returns a new source with its own counter
 */
export function clientIdSource(): ClientIdSource {
  let counter = 0;
  return (now) => `auto-${now.toString(36)}-${(++counter).toString(36)}`;
}
