/**
 * What a cluster node watches of the shared deliveries it routes (`ClusterLink`): a QoS 1
 * message of another node's, delivered to a clean member of a shared group, stays recorded in
 * Redis until the member acknowledged it, a QoS 2 one until it was taken for the delivery before
 * its first PUBLISH, so that a node rescuing this one's stream after its
 * death passes it on to another member (MQTT 5.0 on shared subscriptions: a message whose chosen
 * member's session ends before it acknowledged it SHOULD go to another member). When a member's
 * session ends here, what it held goes to another member here, still recorded, or with none left
 * here, to a member on another node (`shared_redelivery.ts`).
 *
 * @module
 */

import type { BrokerMessage } from "./message.ts";
import type { Session } from "./session.ts";

/**
 * Told of the QoS 1/2 shared deliveries to clean sessions, as they begin, as their first PUBLISH
 * is to be written, and as they complete.
 */
export interface SharedWatch {
  /**
   * A delivery at `qos` (1 or 2) of `message` to the clean session `session` as a member of the
   * shared group `share` began (queued or sent), in the call that routes the message.
   */
  held(session: Session, message: BrokerMessage, qos: 1 | 2, share: string): void;
  /**
   * `session` is to write its first PUBLISH of `message`, published at QoS 2, as a delivery for
   * the shared group `share` (`InflightEntry.share`): whether it may now. Not asked for a copy of
   * no group's (the session's own subscription besides): only a group's copy waits for its take.
   * `wait`: it waits (with the session's later PUBLISHes, in order) until the watch calls the
   * core's `writable`: a message of another node's stream is first taken for this delivery in
   * Redis, so that a rescue after this node's death passes it on only if it was never sent
   * [MQTT-4.8.2-5]. `drop`: the take was refused, another member has it: never written, it
   * leaves the window, and the session's later PUBLISHes go on.
   */
  mayWrite(session: Session, message: BrokerMessage, share: string): "write" | "wait" | "drop";
  /**
   * `session` acknowledged its QoS 1 delivery of `message` as a member of `share` (PUBACK)
   * [MQTT-4.3.2-2]; not told of the acknowledgement of a copy of its own subscription's.
   */
  acked(session: Session, message: BrokerMessage, share: string): void;
  /**
   * `from`'s session ended and `message`, which it held for `share` and had not finished, went
   * to `to`, another member of that group here: what `from`'s delivery kept recorded for that
   * group is now `to`'s (its other groups' copies go their own way).
   */
  handed(from: Session, to: Session, message: BrokerMessage, share: string): void;
  /**
   * `session` ended holding `message` for `share` (not acknowledged, or never sent) and no other
   * member of the group is left here: hands it to a member on another node.
   *
   * @returns whether it took it (false: no other node has members of the group)
   */
  passOn(session: Session, message: BrokerMessage, share: string): boolean;
}
