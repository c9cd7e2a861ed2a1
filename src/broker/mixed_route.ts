/**
 * Routing one message while MQTT 5.0 clients are connected. Most deliveries need nothing of
 * their own: a 3.1.1 subscriber, or a 5.0 subscription without identifiers, with RETAIN as the
 * message has it, no outbound topic alias and no expiry interval to rewrite. Those keep the
 * 3.1.1 path's costs: the QoS 0 ones are one `fanOut` action, each connection copying the one
 * encoding of its (protocol level, QoS) shape, and the QoS 1/2 ones share the message rather than
 * a copy per delivery. Only the others go through `deliver5` (No Local, Retain As Published,
 * Subscription Identifiers, Maximum Packet Size, one copy each).
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Delivery } from "../topic/mod.ts";
import type { ActionQueue } from "./actions.ts";
import { deliver5 } from "./deliver5.ts";
import type { BrokerMessage } from "./message.ts";
import type { DeliveryCounters, Session } from "./session.ts";

const NO_FIELDS = {};

// What the subscriptions of a match ask of their deliveries, worked out once per match result: the
// subscription tree caches its results per topic and replaces them when a subscription changes,
// except the deliveries of shared groups, refilled in the same array per message (SHARED: those
// matches are decided delivery by delivery).
const RETAIN_AS_PUBLISHED = 1;
const NO_LOCAL = 2;
const IDENTIFIERS = 4;
const SHARED = 8;

/**
 * Whether nothing of MQTT 5.0 applies to delivering `message` on `deliveries`: the message does
 * not expire, no subscription of the match has Subscription Identifiers or a shared group, none
 * has Retain As Published when the message has RETAIN [MQTT-3.3.1-13] or No Local when a client
 * published it [MQTT-3.8.3-3], and no connected 5.0 client has outbound topic aliases or a
 * Maximum Packet Size (`checkLinks` false). Then every delivery sends the message as published,
 * as to a 3.1.1 subscriber: the core routes it on the 3.1.1 path (one `fanOut` for QoS 0), and
 * each 5.0 connection forwards the PUBLISH as received when it came at level 5 without properties.
 *
 * @param deliveries the matched deliveries
 * @param message the message as published
 * @param checkLinks whether some connected 5.0 client has outbound topic aliases or a Maximum
 *   Packet Size (`Link5.plainDeliveries` false)
 * @param options the core's {@linkcode MatchOptions}
 * @returns true when no delivery needs `routeMixed`
 */
export function plainMatch(
  deliveries: readonly Delivery<Session>[],
  message: BrokerMessage,
  checkLinks: boolean,
  options: MatchOptions,
): boolean {
  if (checkLinks || message.expiresAt !== undefined) return false;
  return !needsEach(options.of(deliveries), message);
}

/**
 * Delivers `message` on each of `deliveries` while 5.0 clients are connected and something of
 * 5.0 applies (see {@linkcode plainMatch}): the plain QoS 0 ones as one fan-out, the other plain
 * ones straight to their session, the rest through `deliver5`.
 *
 * @param deliveries the matched deliveries
 * @param message the message as published
 * @param actions the core's action queue
 * @param counters the broker's counters
 * @param now the clock, ms
 * @param options the core's {@linkcode MatchOptions}
 */
export function routeMixed(
  deliveries: readonly Delivery<Session>[],
  message: BrokerMessage,
  actions: ActionQueue,
  counters: DeliveryCounters,
  now: number,
  options: MatchOptions,
): void {
  if (message.expiresAt !== undefined || needsEach(options.of(deliveries), message)) {
    routeEach(deliveries, message, actions, counters, now);
    return;
  }
  // No subscription option, identifier or expiry applies to this message: a delivery is plain
  // unless its connection is a 5.0 one with outbound topic aliases or a Maximum Packet Size the
  // message may exceed (what `isPlain` checks besides).
  for (let i = 0; i < deliveries.length; i++) {
    const d = deliveries[i]!;
    // Delivered at min(published, granted) [MQTT-3.8.4-8].
    const qos = (d.qos < message.qos ? d.qos : message.qos) as QoS;
    const link = d.subscriber.link;
    if (link === undefined) {
      // QoS 0 to an offline session: nothing to send.
      if (qos !== 0) d.subscriber.deliver(message, qos, counters, d.share);
      continue;
    }
    const v5 = link.v5;
    if (v5 !== undefined && !v5.plainDeliveries && !isPlain(d, message, qos, now)) {
      deliver5(d, message, counters, now);
    } else if (qos === 0) {
      actions.addFanOut(link);
    } else {
      d.subscriber.deliver(message, qos, counters, d.share);
    }
  }
  actions.fanOutAdded(message);
}

/**
 * What the subscriptions of each match ask of their deliveries, worked out once per match result
 * and kept by the broker's core: the last match is found again without a WeakMap lookup (a
 * steady stream to one topic).
 */
export class MatchOptions {
  #byMatch = new WeakMap<readonly Delivery<Session>[], number>();
  #last: readonly Delivery<Session>[] | undefined;
  #lastOptions = 0;

  /**
   * The options of a match: RETAIN_AS_PUBLISHED | NO_LOCAL | IDENTIFIERS | SHARED.
   *
   * @param deliveries a match result of the subscription tree
   * @returns what any of its deliveries has
   */
  of(deliveries: readonly Delivery<Session>[]): number {
    if (deliveries === this.#last) return this.#lastOptions;
    let options = this.#byMatch.get(deliveries);
    if (options === undefined) {
      options = optionsOf(deliveries);
      this.#byMatch.set(deliveries, options);
    }
    this.#last = deliveries;
    this.#lastOptions = options;
    return options;
  }
}

/** Whether the options of a match make some delivery of `message` differ from the message. */
function needsEach(options: number, message: BrokerMessage): boolean {
  return (options & (IDENTIFIERS | SHARED)) !== 0 ||
    ((options & RETAIN_AS_PUBLISHED) !== 0 && message.retain) ||
    ((options & NO_LOCAL) !== 0 && message.senderId !== undefined);
}

/** `routeMixed` deciding delivery by delivery. */
function routeEach(
  deliveries: readonly Delivery<Session>[],
  message: BrokerMessage,
  actions: ActionQueue,
  counters: DeliveryCounters,
  now: number,
): void {
  for (let i = 0; i < deliveries.length; i++) {
    const d = deliveries[i]!;
    // Delivered at min(published, granted) [MQTT-3.8.4-8].
    const qos = (d.qos < message.qos ? d.qos : message.qos) as QoS;
    const link = d.subscriber.link;
    // QoS 0 to an offline session: nothing to send, whatever its options.
    if (qos === 0 && link === undefined) continue;
    if (!isPlain(d, message, qos, now)) {
      deliver5(d, message, counters, now);
    } else if (qos === 0) {
      actions.addFanOut(link!);
    } else {
      d.subscriber.deliver(message, qos, counters, d.share);
    }
  }
  actions.fanOutAdded(message);
}

/** What any of `deliveries` has, as RETAIN_AS_PUBLISHED | NO_LOCAL | IDENTIFIERS | SHARED. */
function optionsOf(deliveries: readonly Delivery<Session>[]): number {
  let options = 0;
  for (let i = 0; i < deliveries.length; i++) {
    const d = deliveries[i]!;
    if (d.retainAsPublished) options |= RETAIN_AS_PUBLISHED;
    if (hasNoLocal(d)) options |= NO_LOCAL;
    if (d.identifiers.length > 0) options |= IDENTIFIERS;
    if (d.share !== undefined) options |= SHARED;
  }
  return options;
}

/**
 * Whether delivery `d` sends the message as published, with nothing of its own: what
 * `forwardOf` and `forwarded5` would give back is the message itself, and the subscriber's
 * connection encodes it as it encodes it for every other subscriber of its protocol level.
 *
 * @param d the delivery
 * @param message the message as published
 * @param qos the delivery QoS
 * @param now the clock, ms
 * @returns true when the delivery needs no copy, no check and no encoding of its own
 */
export function isPlain(
  d: Delivery<Session>,
  message: BrokerMessage,
  qos: QoS,
  now: number,
): boolean {
  const session = d.subscriber;
  // Retain As Published keeps a RETAIN the message was published with [MQTT-3.3.1-13].
  if (d.retainAsPublished && message.retain) return false;
  // No Local, for the subscriber's own message [MQTT-3.8.3-3].
  if (hasNoLocal(d) && session.clientId === message.senderId) return false;
  const link = session.link;
  const v5 = link?.v5;
  if (link !== undefined && v5 === undefined) {
    // A connected 3.1.1 subscriber: no identifiers, aliases or expiry in its PUBLISH. A QoS 1/2
    // delivery keeps its identifiers for a later 5.0 connection of the session.
    return qos === 0 || d.identifiers.length === 0;
  }
  // Subscription Identifiers go with the message [MQTT-3.3.4-3]: a copy carries them.
  if (d.identifiers.length > 0) return false;
  if (v5 === undefined) return true;
  // The outbound topic alias and the expiry interval left are written per delivery
  // [MQTT-3.3.2-6].
  if (v5.outAliases !== undefined || message.expiresAt !== undefined) return false;
  // Never a PUBLISH over the client's Maximum Packet Size [MQTT-3.1.2-24]: deliver5 drops and
  // counts it.
  const max = v5.limits.maximumPacketSize;
  return max === undefined || message.encoded5(qos, NO_FIELDS, now).bytes.length <= max;
}

function hasNoLocal(d: Delivery<Session>): boolean {
  if (d.noLocal) return true;
  const subscriptions = d.subscriptions;
  for (let i = 0; i < subscriptions.length; i++) {
    if (subscriptions[i]!.noLocal === true) return true;
  }
  return false;
}
