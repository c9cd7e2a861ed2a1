/**
 * Internal: the broker's MQTT 5.0 limits, top-level keys of the broker configuration.
 *
 * @module
 */

import {
  type Entry,
  readBool,
  type ReadContext,
  readEnum,
  readNonEmptyString,
  readNumber,
} from "./_reader.ts";

/** How a shared subscription's group picks the member that gets a message. */
export type SharedSubscriptionStrategy = "round_robin" | "random";

/** The top-level keys this reader resolves. */
export const MQTT5_KEYS = [
  "receive_maximum",
  "topic_alias_maximum",
  "server_keep_alive",
  "shared_subscription_strategy",
  "outbound_topic_aliases",
  "maximum_qos",
  "retain_available",
  "server_reference",
  "wildcard_subscription_available",
  "subscription_identifiers_available",
  "shared_subscription_available",
] as const;

/** Default of `receive_maximum`: unacknowledged QoS 1/2 PUBLISH a client may have in flight. */
export const DEFAULT_RECEIVE_MAXIMUM = 1024;
/** Default of `topic_alias_maximum`: topic aliases a 5.0 client may set per connection. */
export const DEFAULT_TOPIC_ALIAS_MAXIMUM = 10;

const STRATEGIES: readonly SharedSubscriptionStrategy[] = ["round_robin", "random"];

/** The resolved MQTT 5.0 limits, as {@linkcode BrokerConfig} holds them. */
export interface Mqtt5Limits {
  receiveMaximum: number;
  topicAliasMaximum: number;
  serverKeepAlive: number | undefined;
  sharedSubscriptionStrategy: SharedSubscriptionStrategy;
  outboundTopicAliases: boolean;
  maximumQos: 0 | 1 | 2;
  retainAvailable: boolean;
  serverReference: string | undefined;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
}

/**
 * Reads the MQTT 5.0 limits from the top-level map, with their defaults.
 *
 * @param ctx the read context (errors with key paths and lines)
 * @param top the top-level keys
 * @returns the resolved limits
 */
export function readMqtt5Limits(ctx: ReadContext, top: Map<string, Entry>): Mqtt5Limits {
  const receive = top.get("receive_maximum");
  const alias = top.get("topic_alias_maximum");
  const keepAlive = top.get("server_keep_alive");
  const strategy = top.get("shared_subscription_strategy");
  const outAliases = top.get("outbound_topic_aliases");
  const maxQos = top.get("maximum_qos");
  const retain = top.get("retain_available");
  const reference = top.get("server_reference");
  // Features on unless set to false.
  const flag = (key: string) => {
    const entry = top.get(key);
    return entry === undefined ? true : readBool(ctx, entry);
  };
  return {
    // Receive Maximum 0 is a Protocol Error (MQTT 5.0 §3.2.2.3.3): 1 to 65535.
    receiveMaximum: receive === undefined
      ? DEFAULT_RECEIVE_MAXIMUM
      : readNumber(ctx, receive, { min: 1, max: 65535, integer: true }),
    topicAliasMaximum: alias === undefined
      ? DEFAULT_TOPIC_ALIAS_MAXIMUM
      : readNumber(ctx, alias, { min: 0, max: 65535, integer: true }),
    serverKeepAlive: keepAlive === undefined
      ? undefined
      : readNumber(ctx, keepAlive, { min: 0, max: 65535, integer: true, unit: "seconds" }),
    sharedSubscriptionStrategy: strategy === undefined
      ? "round_robin"
      : readEnum(ctx, strategy, STRATEGIES),
    outboundTopicAliases: outAliases === undefined ? false : readBool(ctx, outAliases),
    maximumQos: maxQos === undefined
      ? 2
      : readNumber(ctx, maxQos, { min: 0, max: 2, integer: true }) as 0 | 1 | 2,
    retainAvailable: retain === undefined ? true : readBool(ctx, retain),
    serverReference: reference === undefined ? undefined : readNonEmptyString(ctx, reference),
    wildcardSubscriptionAvailable: flag("wildcard_subscription_available"),
    subscriptionIdentifiersAvailable: flag("subscription_identifiers_available"),
    sharedSubscriptionAvailable: flag("shared_subscription_available"),
  };
}
