/**
 * When a session ends, the messages it held as a member of a shared group and had not started to
 * deliver go to another member of that group (MQTT 5.0 §4.8.2: a QoS 1 message SHOULD; a QoS 2
 * message whose delivery began MUST NOT [MQTT-4.8.2-5]); on a cluster node, to a member on
 * another node when none is left here (`SharedWatch.passOn`).
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { SubscriptionTree } from "../topic/mod.ts";
import type { SharedWatch } from "./_shared_watch.ts";
import type { DeliveryCounters, Session } from "./session.ts";

/** How {@linkcode redeliverShared} counts and where else it may send a message. */
export interface RedeliverOptions {
  /** Counters the deliveries update. */
  counters: DeliveryCounters;
  /**
   * On a cluster node: told of each message handed to a member here, and handing a message of a
   * group with no other member here to a member on another node. Unset, such a message goes
   * with the session, as on one broker.
   */
  watch?: SharedWatch | undefined;
}

/**
 * Hands a departing session's undelivered shared-group messages to other members. Call it after
 * the session left the tree (so that it is not picked again) and before its flow is cleared.
 *
 * @param session the session that ends
 * @param tree the subscription tree, the session's subscriptions already removed
 * @param options the counters, and where else a message may go
 * @returns how many messages went to another member
 */
export function redeliverShared(
  session: Session,
  tree: SubscriptionTree<Session>,
  options: RedeliverOptions,
): number {
  let n = 0;
  const orphans = session.takeSharedOrphans();
  // Indexed: every session that ends passes here, most with nothing to hand on.
  for (let i = 0; i < orphans.length; i++) {
    const { message, share } = orphans[i]!;
    const d = tree.shareMember(share);
    if (d === undefined) {
      // No member left here: to one on another cluster node, if any; else it goes with the
      // session.
      if (options.watch?.passOn(session, message, share) === true) n++;
      continue;
    }
    // At the new member's granted QoS [MQTT-4.8.2-3].
    const qos = (d.qos < message.qos ? d.qos : message.qos) as QoS;
    d.subscriber.deliver(message, qos, options.counters, share);
    options.watch?.handed(session, d.subscriber, message, share);
    n++;
  }
  return n;
}
