/**
 * What a cluster node watches of the shared deliveries it routes (`ClusterLink`): a QoS 1
 * message of another node's, delivered to a clean member of a shared group, stays recorded in
 * Redis until the member acknowledged it, so that a node rescuing this one's stream after its
 * death passes it on to another member (MQTT 5.0 on shared subscriptions: a message whose chosen
 * member's session ends before it acknowledged it SHOULD go to another member). When a member's
 * session ends here, what it held goes to another member here, still recorded, or with none left
 * here, to a member on another node (`shared_redelivery.ts`).
 *
 * @module
 */

import type { BrokerMessage } from "./message.ts";
import type { Session } from "./session.ts";

/** Told of the QoS 1 shared deliveries to clean sessions, as they begin and as they complete. */
export interface SharedWatch {
  /**
   * A QoS 1 delivery of `message` to the clean session `session` as a member of a shared group
   * began (queued or sent), in the call that routes the message.
   */
  held(session: Session, message: BrokerMessage): void;
  /** `session` acknowledged a QoS 1 delivery of `message` (PUBACK) [MQTT-4.3.2-2]. */
  acked(session: Session, message: BrokerMessage): void;
  /**
   * `from`'s session ended and `message`, which it held and had not finished, went to `to`,
   * another member of the group here: what `from`'s delivery kept recorded is now `to`'s.
   */
  handed(from: Session, to: Session, message: BrokerMessage): void;
  /**
   * `session` ended holding `message` for `share` (not acknowledged, or never sent) and no other
   * member of the group is left here: hands it to a member on another node.
   *
   * @returns whether it took it (false: no other node has members of the group)
   */
  passOn(session: Session, message: BrokerMessage, share: string): boolean;
}
