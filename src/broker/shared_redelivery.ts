/**
 * When a session ends, the messages it held as a member of a shared group and had not started to
 * deliver go to another member of that group (MQTT 5.0 §4.8.2: a QoS 1 message SHOULD; a QoS 2
 * message whose delivery began MUST NOT [MQTT-4.8.2-5]).
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { SubscriptionTree } from "../topic/mod.ts";
import type { DeliveryCounters, Session } from "./session.ts";

/**
 * Hands a departing session's undelivered shared-group messages to other members. Call it after
 * the session left the tree (so that it is not picked again) and before its flow is cleared.
 *
 * @param session the session that ends
 * @param tree the subscription tree, the session's subscriptions already removed
 * @param counters counters the deliveries update
 * @returns how many messages went to another member
 */
export function redeliverShared(
  session: Session,
  tree: SubscriptionTree<Session>,
  counters: DeliveryCounters,
): number {
  let n = 0;
  const orphans = session.takeSharedOrphans();
  // Indexed: every session that ends passes here, most with nothing to hand on.
  for (let i = 0; i < orphans.length; i++) {
    const { message, share } = orphans[i]!;
    const d = tree.shareMember(share);
    // No member left: the message goes with the session.
    if (d === undefined) continue;
    // At the new member's granted QoS [MQTT-4.8.2-3].
    const qos = (d.qos < message.qos ? d.qos : message.qos) as QoS;
    d.subscriber.deliver(message, qos, counters, share);
    n++;
  }
  return n;
}
