/**
 * Routing one message to one subscriber the MQTT 5.0 way: No Local, Retain As Published and the
 * Subscription Identifiers of the matching subscriptions (through `forwardOf`), and the client's
 * Maximum Packet Size (a PUBLISH larger than it is dropped, counted, and treated as delivered
 * [MQTT-3.1.2-25]). The core takes this path only while a 5.0 client is connected, and then only
 * for the deliveries that need one of these (`mixed_route.ts`); a delivery to a 3.1.1 subscriber
 * comes out as it would on the 3.1.1 path.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Delivery, SubscriptionOptions } from "../topic/mod.ts";
import { countDrop } from "./drop_counters.ts";
import { forwardOf, retainedForward } from "./forward.ts";
import type { BrokerMessage } from "./message.ts";
import type { DeliveryCounters, Session } from "./session.ts";
import type { LinkState } from "./link.ts";

/**
 * Delivers `message` on delivery `d`, with the options of the subscriptions that matched.
 *
 * @param d the delivery (subscriber, granted QoS, options, identifiers)
 * @param message the message as published
 * @param counters the broker's counters
 * @param now the clock, ms (for the Message Expiry Interval left)
 */
export function deliver5(
  d: Delivery<Session>,
  message: BrokerMessage,
  counters: DeliveryCounters,
  now: number,
): void {
  const out = forwarded5(d, message, counters, now);
  if (out !== undefined) d.subscriber.deliver(out.message, out.qos, counters, d.share);
}

/**
 * What delivery `d` sends of `message`: the message (or its copy with this delivery's RETAIN and
 * identifiers) and the QoS; undefined when No Local keeps it from the subscriber or it is over the
 * client's Maximum Packet Size (counted as dropped).
 *
 * @param d the delivery
 * @param message the message as published
 * @param counters the broker's counters
 * @param now the clock, ms
 * @returns the message to deliver and its QoS, or undefined
 */
export function forwarded5(
  d: Delivery<Session>,
  message: BrokerMessage,
  counters: DeliveryCounters,
  now: number,
): { message: BrokerMessage; qos: QoS } | undefined {
  const session = d.subscriber;
  const f = forwardOf(d, message, session.clientId === message.senderId);
  if (f === undefined) return undefined;
  const m = f.retain || f.subscriptionIdentifiers.length > 0
    ? message.forwarded(f.retain, f.subscriptionIdentifiers)
    : message;
  if (tooLarge(session, m, f.qos, now)) {
    countDrop(counters, "tooLarge");
    return undefined;
  }
  return { message: m, qos: f.qos };
}

/**
 * The copy of a retained message sent for a new subscription: RETAIN 1 [MQTT-3.3.1-9] and the
 * subscription's identifier [MQTT-3.3.4-3]; undefined when it is over the client's Maximum Packet
 * Size (counted as dropped).
 *
 * @param session the subscriber
 * @param options the subscription's options
 * @param message the retained message
 * @param counters the broker's counters
 * @param now the clock, ms
 * @returns the message to send and its QoS, or undefined
 */
export function retained5(
  session: Session,
  options: Readonly<SubscriptionOptions>,
  message: BrokerMessage,
  counters: DeliveryCounters,
  now: number,
): { message: BrokerMessage; qos: QoS } | undefined {
  const f = retainedForward(options, message);
  const m = f.subscriptionIdentifiers.length > 0
    ? message.forwarded(true, f.subscriptionIdentifiers)
    : message;
  if (tooLarge(session, m, f.qos, now)) {
    countDrop(counters, "tooLarge");
    return undefined;
  }
  return { message: m, qos: f.qos };
}

/** Whether the PUBLISH of `m` is over the Maximum Packet Size of the subscriber's connection. */
function tooLarge(session: Session, m: BrokerMessage, qos: QoS, now: number): boolean {
  return overMaximumPacketSize(session.link, m, qos, now);
}

/**
 * Whether the PUBLISH of `m` at `qos` would be larger than the Maximum Packet Size of a 5.0
 * connection [MQTT-3.1.2-24], counting the 3 bytes of a Topic Alias when the broker may give one
 * (the connection's last check, before it writes, is the same).
 *
 * @param link the subscriber's connection; undefined (offline) or 3.1.1: never
 * @param m the message, with this delivery's Subscription Identifiers
 * @param qos the delivery QoS
 * @param now the clock, ms (for the Message Expiry Interval left)
 * @returns true when the PUBLISH must not be sent
 */
export function overMaximumPacketSize(
  link: LinkState | undefined,
  m: BrokerMessage,
  qos: QoS,
  now: number,
): boolean {
  const v5 = link?.v5;
  const max = v5?.limits.maximumPacketSize;
  if (max === undefined) return false;
  const ids = m.subscriptionIdentifiers;
  const bytes = m.encoded5(qos, ids === undefined ? {} : { subscriptionIdentifiers: ids }, now)
    .bytes.length;
  return bytes + (v5!.outAliases ? 3 : 0) > max;
}
