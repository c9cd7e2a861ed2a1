/**
 * The reason codes of the broker's acknowledgements to an MQTT 5.0 client (SUBACK §3.9.3,
 * UNSUBACK §3.11.3, PUBACK §3.4.2.1, PUBREC §3.5.2.1), from what happened, named once: the core
 * says why, these give the number for the client's level.
 *
 * @module
 */

import { type ProtocolVersion, type QoS, ReasonCode } from "../packet/constants.ts";

/** Why a SUBSCRIBE's topic filter is not granted. */
export type SubscribeRefusal =
  /** Not a valid filter, or past `max_topic_levels`. */
  | "filter_invalid"
  /** A plugin (ACL) refused it. */
  | "not_authorized"
  /** `max_subscriptions_per_client` or the memory budget. */
  | "quota_exceeded"
  /** `$share/` while shared subscriptions are off. */
  | "shared_not_supported"
  /** A Subscription Identifier while they are off. */
  | "subscription_ids_not_supported"
  /** A wildcard while wildcard subscriptions are off. */
  | "wildcards_not_supported";

const SUBSCRIBE_CODES: Readonly<Record<SubscribeRefusal, number>> = {
  filter_invalid: ReasonCode.TOPIC_FILTER_INVALID,
  not_authorized: ReasonCode.NOT_AUTHORIZED,
  quota_exceeded: ReasonCode.QUOTA_EXCEEDED,
  shared_not_supported: ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
  subscription_ids_not_supported: ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
  wildcards_not_supported: ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
};

/** Every subscribe refusal, for tests. */
export const SUBSCRIBE_REFUSALS: readonly SubscribeRefusal[] = Object.keys(
  SUBSCRIBE_CODES,
) as SubscribeRefusal[];

/**
 * The SUBACK code of a refused filter: 0x80 for 3.1/3.1.1 (its only failure code), a Subscribe
 * Reason Code of 0x80 or more for 5.0 [MQTT-3.9.3-2].
 *
 * @param refusal why the filter is refused
 * @param protocolVersion the client's level
 * @returns the code for the filter's SUBACK slot
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { subscribeRefusalCode } from "./ack_codes.ts";
 *
 * assert.equal(subscribeRefusalCode("not_authorized", 4), 0x80);
 * assert.equal(subscribeRefusalCode("not_authorized", 5), 0x87);
 * ```
 */
export function subscribeRefusalCode(
  refusal: SubscribeRefusal,
  protocolVersion: ProtocolVersion,
): number {
  return protocolVersion === 5 ? SUBSCRIBE_CODES[refusal] : 0x80;
}

/**
 * The QoS granted for a requested one: at most the broker's Maximum QoS. A broker with a Maximum
 * QoS below 2 still accepts a SUBSCRIBE asking for more, and grants less [MQTT-3.2.2-10].
 *
 * @param requested the Requested QoS of the filter
 * @param maximumQoS the broker's Maximum QoS
 * @returns the granted QoS, the SUBACK code of a granted filter
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { grantedQos } from "./ack_codes.ts";
 *
 * assert.equal(grantedQos(2, 1), 1);
 * assert.equal(grantedQos(0, 1), 0);
 * ```
 */
export function grantedQos(requested: QoS, maximumQoS: QoS = 2): QoS {
  return requested < maximumQoS ? requested : maximumQoS;
}

/**
 * The UNSUBACK code of one filter at 5.0: Success when the session had that subscription, else
 * 0x11 No subscription existed [MQTT-3.11.3-2]. (3.1.1's UNSUBACK has no codes.)
 *
 * @param existed whether the subscription existed and was removed
 * @returns the code for the filter's UNSUBACK slot
 */
export function unsubscribeCode(existed: boolean): number {
  return existed ? ReasonCode.SUCCESS : ReasonCode.NO_SUBSCRIPTION_EXISTED;
}

/** What became of a PUBLISH the broker acknowledges. */
export type PublishOutcome =
  /** Accepted and routed to at least one subscriber. */
  | "delivered"
  /** Accepted; nobody subscribes to its topic. */
  | "no_subscribers"
  /** A plugin (ACL) refused it. */
  | "not_authorized"
  /** The topic name is not allowed (past `max_topic_levels`, say). */
  | "topic_name_invalid"
  /** A QoS 2 packet id the client is still using for another message. */
  | "packet_id_in_use"
  /** A quota is spent (the memory budget). */
  | "quota_exceeded"
  /** The Payload Format Indicator says UTF-8 and the payload is not. */
  | "payload_format_invalid";

const PUBLISH_CODES: Readonly<Record<PublishOutcome, number>> = {
  delivered: ReasonCode.SUCCESS,
  no_subscribers: ReasonCode.NO_MATCHING_SUBSCRIBERS,
  not_authorized: ReasonCode.NOT_AUTHORIZED,
  topic_name_invalid: ReasonCode.TOPIC_NAME_INVALID,
  packet_id_in_use: ReasonCode.PACKET_IDENTIFIER_IN_USE,
  quota_exceeded: ReasonCode.QUOTA_EXCEEDED,
  payload_format_invalid: ReasonCode.PAYLOAD_FORMAT_INVALID,
};

/** Every publish outcome, for tests. */
export const PUBLISH_OUTCOMES: readonly PublishOutcome[] = Object.keys(
  PUBLISH_CODES,
) as PublishOutcome[];

/**
 * The PUBACK or PUBREC reason code of a 5.0 client's PUBLISH [MQTT-3.4.2-1] [MQTT-3.5.2-1]:
 * 0x00 or 0x10 when accepted, 0x80 or more when refused (a refused QoS 2 message then ends its
 * flow there; the client does not send PUBREL).
 *
 * @param outcome what became of the PUBLISH
 * @returns the reason code
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { publishAckCode } from "./ack_codes.ts";
 *
 * assert.equal(publishAckCode("no_subscribers"), 0x10);
 * assert.equal(publishAckCode("not_authorized"), 0x87);
 * ```
 */
export function publishAckCode(outcome: PublishOutcome): number {
  return PUBLISH_CODES[outcome];
}
