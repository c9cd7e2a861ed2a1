/**
 * Internal: building and merging deliveries.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Delivery, SubscriptionOptions } from "./delivery.ts";

/**
 * The options of a plain subscription (QoS only), one frozen object per QoS shared by every such
 * subscription, with their one-element lists: each subscription would otherwise hold three small
 * objects of its own (about 110 bytes), for millions of subscriptions a real cost.
 */
export const PLAIN_OPTIONS: readonly Readonly<SubscriptionOptions>[] = [0, 1, 2].map((qos) =>
  Object.freeze({ qos: qos as QoS })
);
const PLAIN_LISTS = PLAIN_OPTIONS.map((options) => Object.freeze([options]));
const NO_IDENTIFIERS: readonly number[] = Object.freeze([]);

/**
 * Builds the delivery of a single subscription.
 *
 * @param subscriber The subscriber.
 * @param options The subscription's options.
 * @param group The ShareName when the subscription is shared.
 * @param share The whole filter `$share/{ShareName}/{filter}` when the subscription is shared.
 * @returns A delivery with that subscription alone.
 */
export function singleDelivery<S>(
  subscriber: S,
  options: Readonly<SubscriptionOptions>,
  group?: string,
  share?: string,
): Delivery<S> {
  return {
    subscriber,
    qos: options.qos,
    noLocal: options.noLocal === true,
    retainAsPublished: options.retainAsPublished === true,
    identifiers: options.identifier === undefined ? NO_IDENTIFIERS : [options.identifier],
    group,
    share,
    subscriptions: PLAIN_OPTIONS[options.qos] === options ? PLAIN_LISTS[options.qos]! : [options],
  };
}

/**
 * Merges one more matching subscription into a subscriber's delivery (overlapping subscriptions).
 *
 * @param delivery The delivery so far.
 * @param options The options of another subscription of the same subscriber that matched.
 * @returns A new delivery with the maximum QoS, the identifiers of both and No Local only if both
 *   set it.
 */
export function mergeDelivery<S>(
  delivery: Delivery<S>,
  options: Readonly<SubscriptionOptions>,
): Delivery<S> {
  const higher = options.qos > delivery.qos;
  const id = options.identifier;
  return {
    subscriber: delivery.subscriber,
    qos: higher ? options.qos : delivery.qos,
    noLocal: delivery.noLocal && options.noLocal === true,
    retainAsPublished: higher ? options.retainAsPublished === true : delivery.retainAsPublished,
    identifiers: id === undefined || delivery.identifiers.includes(id)
      ? delivery.identifiers
      : [...delivery.identifiers, id],
    group: delivery.group,
    share: delivery.share,
    subscriptions: [...delivery.subscriptions, options],
  };
}
