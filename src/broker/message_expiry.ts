/**
 * MQTT 5.0 Message Expiry Interval (§3.3.2.3.3) as the broker keeps it: an absolute deadline set
 * when the message is received, and the interval left, recomputed each time a copy is forwarded.
 * Pure functions of a `now` the caller passes: the broker reads the clock, these do not.
 *
 * @module
 */

import type { Properties } from "../packet/types.ts";

/**
 * The deadline of a message received at `receivedAt`, from its Message Expiry Interval.
 *
 * @param properties the PUBLISH (or will) properties
 * @param receivedAt when the broker received it, ms since the epoch
 * @returns the deadline in ms since the epoch, or undefined when the message does not expire
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expiryDeadline } from "./message_expiry.ts";
 *
 * assert.equal(expiryDeadline({ messageExpiryInterval: 60 }, 1_000), 61_000);
 * assert.equal(expiryDeadline({}, 1_000), undefined);
 * ```
 */
export function expiryDeadline(
  properties: Properties | undefined,
  receivedAt: number,
): number | undefined {
  const interval = properties?.messageExpiryInterval;
  return interval === undefined ? undefined : receivedAt + interval * 1000;
}

/**
 * Whether a message is past its deadline: it is then not delivered to a subscriber it has not
 * started going to [MQTT-3.3.2-5], nor sent from the retained store.
 *
 * @param expiresAt the deadline (ms), or undefined for a message that does not expire
 * @param now the clock, ms
 * @returns true once `now` has reached the deadline
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isExpired } from "./message_expiry.ts";
 *
 * assert.equal(isExpired(5_000, 4_999), false);
 * assert.equal(isExpired(5_000, 5_000), true);
 * assert.equal(isExpired(undefined, 1e15), false);
 * ```
 */
export function isExpired(expiresAt: number | undefined, now: number): boolean {
  return expiresAt !== undefined && now >= expiresAt;
}

/**
 * The Message Expiry Interval a forwarded copy carries: the one received minus the time the
 * message waited in the broker [MQTT-3.3.2-6], in whole seconds rounded up, so that a copy that
 * still has time left never says 0.
 *
 * @param expiresAt the deadline (ms), or undefined for a message that does not expire
 * @param now the clock when the copy is sent, ms
 * @returns seconds left (at least 1), 0 when expired, or undefined when it does not expire (the
 *   copy carries no Message Expiry Interval)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { remainingExpiryInterval } from "./message_expiry.ts";
 *
 * // Received with 60 s at t = 0, forwarded 12.5 s later: 48 s left.
 * assert.equal(remainingExpiryInterval(60_000, 12_500), 48);
 * assert.equal(remainingExpiryInterval(60_000, 60_000), 0);
 * assert.equal(remainingExpiryInterval(undefined, 12_500), undefined);
 * ```
 */
export function remainingExpiryInterval(
  expiresAt: number | undefined,
  now: number,
): number | undefined {
  if (expiresAt === undefined) return undefined;
  if (now >= expiresAt) return 0;
  return Math.ceil((expiresAt - now) / 1000);
}
