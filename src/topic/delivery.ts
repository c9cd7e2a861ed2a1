/**
 * What the subscription tree stores per subscription and what it returns per matched subscriber.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import { mergeDelivery, singleDelivery } from "./_merge.ts";

/** The options of one subscription, as granted by the broker. */
export interface SubscriptionOptions {
  /** The granted maximum QoS of messages sent on this subscription. */
  qos: QoS;
  /** MQTT 5.0 No Local: do not send the subscriber its own messages [MQTT-3.8.3-3]. */
  noLocal?: boolean;
  /** MQTT 5.0 Retain As Published: keep the RETAIN flag of forwarded messages. */
  retainAsPublished?: boolean;
  /** MQTT 5.0 Retain Handling: 0 send retained, 1 only on a new subscription, 2 never. */
  retainHandling?: 0 | 1 | 2;
  /** MQTT 5.0 Subscription Identifier, 1 to 268,435,455. */
  identifier?: number;
}

/**
 * One copy of a message for one subscriber, the result of matching a topic.
 *
 * For non-shared subscriptions there is one delivery per subscriber, merging all its matching
 * subscriptions (3.1.1 [MQTT-3.3.5-1], 5.0 [MQTT-3.3.4-2]). Each matching shared subscription
 * adds one delivery to one member of its group, which may be a second copy for that subscriber
 * (MQTT 5.0 §4.8.2).
 */
export interface Delivery<S> {
  /** The subscriber the message goes to. */
  readonly subscriber: S;
  /** The maximum granted QoS over the matching subscriptions. */
  readonly qos: QoS;
  /**
   * True when every matching subscription set No Local. When the publisher is the subscriber,
   * pass the delivery through `dropNoLocal` [MQTT-3.8.3-3].
   */
  readonly noLocal: boolean;
  /** Retain As Published of the subscription that gave the maximum QoS (the first such). */
  readonly retainAsPublished: boolean;
  /** Every Subscription Identifier of the matching subscriptions, once each [MQTT-3.3.4-3]. */
  readonly identifiers: readonly number[];
  /** The ShareName for a delivery on a shared subscription, else undefined. */
  readonly group: string | undefined;
  /**
   * The whole filter `$share/{ShareName}/{filter}` for a delivery on a shared subscription (what
   * names the group), else undefined.
   */
  readonly share: string | undefined;
  /** The options of every matching subscription, in match order. */
  readonly subscriptions: readonly Readonly<SubscriptionOptions>[];
}

/**
 * Returns the delivery as due to a subscriber that published the message itself: without its
 * No Local subscriptions [MQTT-3.8.3-3].
 *
 * @param delivery A delivery whose subscriber is the publisher of the message.
 * @returns The same delivery when none of its subscriptions set No Local, a recomputed one when
 *   some did, or undefined when all did (the message is not sent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropNoLocal } from "./delivery.ts";
 * import { SubscriptionTree } from "./subscription_tree.ts";
 *
 * const tree = new SubscriptionTree<string>();
 * tree.subscribe("chat/#", "alice", { qos: 2, noLocal: true });
 * tree.subscribe("chat/+", "alice", { qos: 0 });
 * const [delivery] = tree.match("chat/room1");
 * assert.equal(delivery.qos, 2); // for messages published by someone else
 * assert.equal(dropNoLocal(delivery)?.qos, 0); // for alice's own messages
 * ```
 */
export function dropNoLocal<S>(delivery: Delivery<S>): Delivery<S> | undefined {
  if (delivery.noLocal) return undefined;
  const subscriptions = delivery.subscriptions;
  if (!subscriptions.some((options) => options.noLocal === true)) return delivery;
  let result: Delivery<S> | undefined;
  for (const options of subscriptions) {
    if (options.noLocal === true) continue;
    result = result === undefined
      ? singleDelivery(delivery.subscriber, options, delivery.group, delivery.share)
      : mergeDelivery(result, options);
  }
  return result;
}
