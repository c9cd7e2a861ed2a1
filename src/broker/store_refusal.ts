/**
 * What a connection does with a QoS 1/2 PUBLISH while the store cannot be written: the message
 * could not be stored, so it must not be acknowledged. A 5.0 client gets a PUBACK or PUBREC with
 * an error reason code and stays connected; a 3.1.1 client, whose acknowledgements carry no
 * reason code, is closed.
 *
 * @module
 */

import { PacketType, ReasonCode } from "../packet/constants.ts";
import type { Packet } from "../packet/types.ts";
import { StoreError } from "../store/store_error.ts";
import type { Link } from "./link.ts";
import { withProblemInformation } from "./problem_information.ts";

/** The Reason String of a refusal. */
export const STORE_REFUSAL_TEXT = "the broker cannot store messages now";

/**
 * The Reason String of a refusal of a message whose write the store refused for a subscriber's
 * session another cluster node writes now (`StoreError` kind `taken`): the store works, the
 * message sent again goes to where that session is now.
 */
export const TAKEN_REFUSAL_TEXT =
  "a subscriber's session moved to another node while the message was stored: send it again";

/**
 * Whether a failed commit is a refusal of its part for sessions other cluster nodes write now
 * (`StoreError` kind `taken`), not a store that cannot be written.
 *
 * @param error what the commit rejected with
 * @returns `true` for a `taken` refusal
 */
export function isTakenRefusal(error: unknown): boolean {
  return error instanceof StoreError && error.kind === "taken";
}

/**
 * Whether a packet is new work a failing store would have to take: a QoS 1 PUBLISH, or a QoS 2
 * PUBLISH whose packet id the session does not hold yet. A QoS 2 PUBLISH sent again for an id
 * the session holds was accepted before (it is answered with PUBREC and stores nothing new);
 * it is acknowledged with PUBREC until its PUBREL comes [MQTT-4.3.3-10], and refusing it would let
 * the client use the id for a new message while the broker still takes that id for a duplicate.
 *
 * @param packet a packet from the client
 * @param link the client's link
 * @returns `true` for a PUBLISH to refuse
 *
 * @example
 * ```ts
 * import { needsStore } from "./store_refusal.ts";
 * import { PacketType } from "../packet/constants.ts";
 * import type { Link } from "./link.ts";
 * import assert from "node:assert/strict";
 *
 * const link = { session: undefined } as unknown as Link;
 * const publish = (qos: 0 | 1 | 2) =>
 *   ({ type: PacketType.PUBLISH, topic: "t", payload: new Uint8Array(), qos, retain: false,
 *     dup: false, packetId: qos === 0 ? undefined : 1 }) as const;
 * assert.equal(needsStore(publish(0), link), false);
 * assert.equal(needsStore(publish(1), link), true);
 * assert.equal(needsStore(publish(2), link), true);
 * ```
 */
export function needsStore(packet: Packet, link: Link): boolean {
  if (packet.type !== PacketType.PUBLISH || packet.qos === 0) return false;
  if (packet.qos === 1) return true;
  return link.session?.inbound.has(packet.packetId!) !== true;
}

/**
 * The 5.0 acknowledgement that refuses a PUBLISH the store cannot take: PUBACK (QoS 1) or PUBREC
 * (QoS 2) with 0x80 Unspecified error, which both may carry [MQTT-3.4.2-1] [MQTT-3.5.2-1], and a
 * Reason String when the client accepts one. A reason code of 0x80 or more ends the exchange: the
 * broker holds no id for a refused QoS 2 message, and takes the next PUBLISH with that id as a new
 * message [MQTT-4.3.3-9]. 0x80 rather than 0x97 Quota exceeded: the same refusal covers every write
 * error, not only a full disk.
 *
 * @param packet the QoS 1/2 PUBLISH
 * @param link the client's link, at level 5
 * @param options `reasonString`: its Reason String (default {@linkcode STORE_REFUSAL_TEXT})
 * @returns the acknowledgement to send
 */
export function storeRefusal(
  packet: Pick<Packet & { type: typeof PacketType.PUBLISH }, "qos" | "packetId">,
  link: Link,
  options: { reasonString?: string } = {},
) {
  const ack = {
    type: packet.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
    packetId: packet.packetId!,
    reasonCode: ReasonCode.UNSPECIFIED_ERROR,
  } as const;
  const limits = link.v5?.limits;
  if (limits === undefined) return ack;
  return withProblemInformation(
    ack,
    { reasonString: options.reasonString ?? STORE_REFUSAL_TEXT },
    limits,
  );
}
