/**
 * The subscription features a broker may turn off (`wildcard_subscription_available`,
 * `subscription_identifiers_available`, `shared_subscription_available`) applied to a SUBSCRIBE.
 * MQTT 5.0 announces them in CONNACK, and a SUBSCRIBE that uses one anyway is a Protocol Error
 * closed with DISCONNECT 0xA2, 0xA1 or 0x9E (§3.2.2.3.11 to §3.2.2.3.13). A 3.1/3.1.1 client
 * cannot be told: its filter gets the SUBACK failure code 0x80 instead, the others still apply.
 *
 * @module
 */

import { ReasonCode } from "../packet/constants.ts";
import type { SubscribePacket } from "../packet/types.ts";
import { parseSharedFilter } from "../topic/shared_filter.ts";

/** Which subscription features the broker serves; each is on unless set to false. */
export interface SubscribeFeatures {
  /** Filters with `+` or `#`. @default {true} */
  wildcardSubscriptionAvailable?: boolean;
  /** Subscription Identifiers on SUBSCRIBE. @default {true} */
  subscriptionIdentifiersAvailable?: boolean;
  /** `$share/{group}/{filter}` filters. @default {true} */
  sharedSubscriptionAvailable?: boolean;
}

/** What a feature the broker does not serve gets: the MQTT 5.0 code and a line for the log. */
export interface FeatureUse {
  /** 0xA2, 0xA1 or 0x9E. */
  readonly reasonCode: number;
  /** Why, for the log and the Reason String. */
  readonly reason: string;
}

/**
 * Whether one filter uses a feature the broker does not serve.
 *
 * @param filter a valid topic filter, as subscribed
 * @param features what the broker serves
 * @returns what it gets, or undefined when it is served
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unsupportedFilter } from "./subscribe_features.ts";
 *
 * assert.equal(unsupportedFilter("a/+", {}), undefined);
 * assert.equal(unsupportedFilter("a/+", { wildcardSubscriptionAvailable: false })?.reasonCode, 0xa2);
 * assert.equal(unsupportedFilter("$share/g/a", { sharedSubscriptionAvailable: false })?.reasonCode, 0x9e);
 * ```
 */
export function unsupportedFilter(
  filter: string,
  features: SubscribeFeatures,
): FeatureUse | undefined {
  const shared = parseSharedFilter(filter);
  if (shared !== undefined && features.sharedSubscriptionAvailable === false) {
    return {
      reasonCode: ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
      reason: `shared subscriptions are not available ("${filter.slice(0, 100)}")`,
    };
  }
  const inner = shared?.filter ?? filter;
  if (
    features.wildcardSubscriptionAvailable === false &&
    (inner.includes("+") || inner.includes("#"))
  ) {
    return {
      reasonCode: ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
      reason: `wildcard subscriptions are not available ("${filter.slice(0, 100)}")`,
    };
  }
  return undefined;
}

/**
 * Whether a 5.0 SUBSCRIBE uses a feature the broker does not serve: its Subscription Identifier,
 * or one of its filters.
 *
 * @param packet the SUBSCRIBE
 * @param features what the broker serves
 * @returns the DISCONNECT code and reason, or undefined when every part is served
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unsupportedSubscribe } from "./subscribe_features.ts";
 *
 * const packet = {
 *   type: 8 as const,
 *   packetId: 1,
 *   subscriptions: [{ topic: "a", qos: 0 as const }],
 *   properties: { subscriptionIdentifier: [5] },
 * };
 * assert.equal(unsupportedSubscribe(packet, {}), undefined);
 * assert.equal(
 *   unsupportedSubscribe(packet, { subscriptionIdentifiersAvailable: false })?.reasonCode,
 *   0xa1,
 * );
 * ```
 */
export function unsupportedSubscribe(
  packet: SubscribePacket,
  features: SubscribeFeatures,
): FeatureUse | undefined {
  if (
    features.subscriptionIdentifiersAvailable === false &&
    packet.properties?.subscriptionIdentifier !== undefined
  ) {
    return {
      reasonCode: ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
      reason: "subscription identifiers are not available",
    };
  }
  if (
    features.wildcardSubscriptionAvailable !== false &&
    features.sharedSubscriptionAvailable !== false
  ) {
    return undefined;
  }
  for (const sub of packet.subscriptions) {
    const use = unsupportedFilter(sub.topic, features);
    if (use !== undefined) return use;
  }
  return undefined;
}
