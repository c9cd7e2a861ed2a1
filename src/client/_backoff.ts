/**
 * Reconnect delays: exponential back-off with jitter, capped.
 *
 * @module
 */

/**
 * The delay before reconnect attempt `attempt` (0-based): `min(max, 2 ** attempt)` seconds as in
 * aMQTT, scaled by a random factor in [0.5, 1) so clients cut off together do not return together.
 *
 * @param attempt how many attempts came before this one
 * @param maxSeconds the cap (aMQTT `reconnect_max_interval`)
 * @param random a source of numbers in [0, 1)
 * @returns milliseconds to wait
 */
export function reconnectDelay(
  attempt: number,
  maxSeconds: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(maxSeconds, 2 ** Math.min(attempt, 30));
  return Math.max(0, base * 1000 * (0.5 + random() / 2));
}
