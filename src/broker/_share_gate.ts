/**
 * On a cluster node, a message's shared groups are served by the node chosen for each group
 * (`ClusterLink`): the other nodes leave their local members out of that message.
 *
 * @module
 */

import type { Delivery } from "../topic/delivery.ts";
import type { BrokerMessage } from "./message.ts";

/**
 * Whether this node delivers `message` to its members of the group `share`. With `sharesOnly`,
 * a message it answers true for goes to the groups the gate lets through and to no other
 * subscription (a message another node passed on for a group it had no member of left).
 */
export type ShareGate = ((message: BrokerMessage, share: string) => boolean) & {
  sharesOnly?: (message: BrokerMessage) => boolean;
  /**
   * The sessions a message goes to, when only some (a message another node had read for sessions
   * this node adopted from it): no other subscriber gets it.
   */
  sessionsOnly?: (message: BrokerMessage) => ReadonlySet<unknown> | undefined;
};

/**
 * Leaves out the shared deliveries the gate refuses. The match puts shared deliveries last, so
 * a message that matches no group costs one check and is returned as is.
 *
 * @param deliveries the match for the message's topic
 * @param message the message
 * @param gate the cluster's decision
 * @returns `deliveries`, or a new array without the refused groups
 */
export function gateShares<S>(
  deliveries: readonly Delivery<S>[],
  message: BrokerMessage,
  gate: ShareGate,
): readonly Delivery<S>[] {
  const n = deliveries.length;
  if (n === 0) return deliveries;
  const sessions = gate.sessionsOnly?.(message);
  if (sessions !== undefined) {
    const sharesOnly = gate.sharesOnly?.(message) === true;
    return deliveries.filter((d) =>
      sessions.has(d.subscriber) && (d.share === undefined ? !sharesOnly : gate(message, d.share))
    );
  }
  if (gate.sharesOnly?.(message) === true) {
    return deliveries.filter((d) => d.share !== undefined && gate(message, d.share));
  }
  if (deliveries[n - 1]!.share === undefined) return deliveries;
  return deliveries.filter((d) => d.share === undefined || gate(message, d.share));
}
