/**
 * What one delivery of a message carries, from the subscription options that matched (MQTT 5.0
 * §3.8.3.1): the QoS, the RETAIN flag and the Subscription Identifiers, or nothing at all for No
 * Local; and whether a new subscription gets the retained messages (Retain Handling). Pure
 * functions the core calls per delivery and per SUBSCRIBE; a 3.1.1 subscription (QoS alone) gives
 * what 3.1.1 always did.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import { dropNoLocal, SHARED_PREFIX } from "../topic/mod.ts";
import type { Delivery, SubscriptionOptions } from "../topic/mod.ts";

/** The per-delivery fields of an outgoing PUBLISH. */
export interface Forward {
  /** The delivery QoS: the lower of the published and the granted QoS. */
  readonly qos: QoS;
  /** The RETAIN flag of the outgoing PUBLISH. */
  readonly retain: boolean;
  /** The Subscription Identifiers it carries (none for subscriptions without one). */
  readonly subscriptionIdentifiers: readonly number[];
}

/** The flags of the message being forwarded. */
export interface ForwardedMessage {
  /** The QoS it was published with. */
  readonly qos: QoS;
  /** The RETAIN flag it was published with. */
  readonly retain: boolean;
}

const NONE: readonly number[] = Object.freeze([]);

/**
 * What a live delivery carries (a message routed as it is published).
 *
 * @param delivery the subscriber's delivery, as the subscription tree matched it
 * @param message the published message
 * @param own whether the subscriber is the session that published the message
 * @returns the delivery's fields, or undefined when No Local leaves nothing to send
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { forwardOf } from "./forward.ts";
 * import { SubscriptionTree } from "../topic/mod.ts";
 *
 * const tree = new SubscriptionTree<string>();
 * tree.subscribe("a/+", "s", { qos: 1, identifier: 4, retainAsPublished: true });
 * tree.subscribe("a/#", "s", { qos: 2, identifier: 9, noLocal: true });
 * const [d] = tree.match("a/b");
 * const other = forwardOf(d, { qos: 2, retain: true }, false)!;
 * assert.equal(other.qos, 2);
 * assert.equal(other.retain, false); // Retain As Published of the QoS 2 subscription: off
 * assert.deepEqual([...other.subscriptionIdentifiers].sort(), [4, 9]);
 * // Its own message: only the subscription without No Local applies.
 * assert.deepEqual(forwardOf(d, { qos: 2, retain: true }, true), {
 *   qos: 1,
 *   retain: true,
 *   subscriptionIdentifiers: [4],
 * });
 * ```
 */
export function forwardOf<S>(
  delivery: Delivery<S>,
  message: ForwardedMessage,
  own: boolean,
): Forward | undefined {
  let d: Delivery<S> | undefined = delivery;
  // [MQTT-3.8.3-3]: No Local keeps a session's own messages from it; a shared subscription never
  // has No Local [MQTT-3.8.3-4], so this only ever applies to non-shared ones.
  if (own) d = dropNoLocal(delivery);
  if (d === undefined) return undefined;
  return {
    // [MQTT-3.8.4-8]: the lower of the published QoS and the granted QoS.
    qos: d.qos < message.qos ? d.qos : message.qos,
    // [MQTT-3.3.1-12]: Retain As Published 0 forwards RETAIN 0; [MQTT-3.3.1-13]: 1 keeps the
    // flag as published. (Of the subscription that gave the QoS, when several matched.)
    retain: d.retainAsPublished && message.retain,
    // [MQTT-3.3.4-3]: the identifiers of the matching subscriptions go with the message; one copy
    // for overlapping subscriptions carries them all [MQTT-3.3.4-4]; a shared group's copy is
    // its own delivery with its own subscription's identifier [MQTT-3.3.4-5].
    subscriptionIdentifiers: d.identifiers,
  };
}

/**
 * What a retained message sent because of a new subscription carries: RETAIN 1 whatever Retain
 * As Published says (MQTT 5.0 §3.8.3.1), and that one subscription's identifier.
 *
 * @param options the new subscription's options
 * @param message the retained message
 * @returns the delivery's fields
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retainedForward } from "./forward.ts";
 *
 * assert.deepEqual(retainedForward({ qos: 1, identifier: 7 }, { qos: 2, retain: true }), {
 *   qos: 1,
 *   retain: true,
 *   subscriptionIdentifiers: [7],
 * });
 * ```
 */
export function retainedForward(
  options: Readonly<SubscriptionOptions>,
  message: ForwardedMessage,
): Forward {
  return {
    qos: options.qos < message.qos ? options.qos : message.qos,
    retain: true,
    subscriptionIdentifiers: options.identifier === undefined ? NONE : [options.identifier],
  };
}

/**
 * Whether a SUBSCRIBE gets the retained messages matching its filter.
 *
 * @param filter the filter as subscribed, `$share/...` included
 * @param options the granted options
 * @param existed whether the session already had a subscription to this exact filter
 * @returns true when the matching retained messages are to be sent
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sendsRetained } from "./forward.ts";
 *
 * assert.equal(sendsRetained("a/#", { qos: 0 }, true), true);
 * assert.equal(sendsRetained("a/#", { qos: 0, retainHandling: 1 }, true), false);
 * assert.equal(sendsRetained("$share/g/a/#", { qos: 0 }, false), false);
 * ```
 */
export function sendsRetained(
  filter: string,
  options: Readonly<SubscriptionOptions>,
  existed: boolean,
): boolean {
  // A shared subscription gets no retained messages (MQTT 5.0 §4.8.2).
  if (filter.startsWith(SHARED_PREFIX)) return false;
  switch (options.retainHandling ?? 0) {
    case 0:
      // [MQTT-3.3.1-9], also when the subscription replaces one [MQTT-3.8.4-4].
      return true;
    case 1:
      // [MQTT-3.3.1-10]: only for a subscription that did not exist.
      return !existed;
    default:
      // [MQTT-3.3.1-11]: never.
      return false;
  }
}
