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
 * @param among for a message that goes to some sessions only: the member among them of a group
 *   the match gave to another member (one per group still gets it [MQTT-4.8.2-3])
 * @returns `deliveries`, or a new array without the refused groups
 */
export function gateShares<S>(
  deliveries: readonly Delivery<S>[],
  message: BrokerMessage,
  gate: ShareGate,
  among?: (share: string, sessions: ReadonlySet<unknown>) => Delivery<S> | undefined,
): readonly Delivery<S>[] {
  const n = deliveries.length;
  if (n === 0) return deliveries;
  const sessions = gate.sessionsOnly?.(message);
  if (sessions !== undefined) {
    const sharesOnly = gate.sharesOnly?.(message) === true;
    const out: Delivery<S>[] = [];
    for (const d of deliveries) {
      if (d.share === undefined) {
        if (!sharesOnly && sessions.has(d.subscriber)) out.push(d);
      } else if (gate(message, d.share)) {
        const member = sessions.has(d.subscriber) ? d : among?.(d.share, sessions);
        if (member !== undefined) out.push(member);
      }
    }
    return out;
  }
  if (gate.sharesOnly?.(message) === true) {
    return deliveries.filter((d) => d.share !== undefined && gate(message, d.share));
  }
  if (deliveries[n - 1]!.share === undefined) return deliveries;
  return deliveries.filter((d) => d.share === undefined || gate(message, d.share));
}
