/**
 * The QoS 1 and QoS 2 flow rules, once for both sides: what a received PUBLISH, PUBREL or
 * acknowledgement means and what answers it. The broker's sessions and the client's session both
 * call these over their own {@linkcode InboundQos2} and {@linkcode OutboundFlow} state; the caller
 * sends the replies and closes the connection on a violation. Sans-IO: no sockets, no timers.
 *
 * @module
 */

import { PacketType, ReasonCode } from "../packet/constants.ts";
import type { AckPacket } from "../packet/types.ts";
import type { InboundQos2 } from "./inbound.ts";
import type { OutboundFlow } from "./outbound.ts";

/** A QoS 1/2 PUBLISH received: whether it is new to deliver, and its acknowledgement. */
export interface ReceivedPublish {
  /** Deliver it (a QoS 2 resend before PUBREL is not delivered again). */
  readonly deliver: boolean;
  /** PUBACK for QoS 1, PUBREC for QoS 2, with the PUBLISH's packet id. */
  readonly reply: AckPacket;
}

/**
 * A QoS 1 or 2 PUBLISH received, to be acknowledged at once. QoS 1 is delivered on every receipt,
 * resends included (at least once) and answered with PUBACK [MQTT-4.3.2-2]; QoS 2 is delivered
 * the first time its packet id is seen until PUBREL releases it, and every receipt is answered with
 * PUBREC [MQTT-4.3.3-2].
 *
 * @param inbound the QoS 2 packet ids awaiting PUBREL
 * @param qos the PUBLISH's QoS
 * @param packetId its packet id
 * @returns whether to deliver it and the acknowledgement to send
 *
 * @example
 * ```ts
 * import { InboundQos2 } from "./inbound.ts";
 * import { receivePublish } from "./qos_flow.ts";
 * import assert from "node:assert/strict";
 *
 * const inbound = new InboundQos2();
 * assert.equal(receivePublish(inbound, 2, 7).deliver, true);
 * assert.equal(receivePublish(inbound, 2, 7).deliver, false); // resent before PUBREL
 * assert.deepEqual(receivePublish(inbound, 1, 8).reply, { type: 4, packetId: 8 }); // PUBACK
 * ```
 */
export function receivePublish(
  inbound: InboundQos2,
  qos: 1 | 2,
  packetId: number,
): ReceivedPublish {
  if (qos === 1) return { deliver: true, reply: { type: PacketType.PUBACK, packetId } };
  return { deliver: inbound.receive(packetId), reply: { type: PacketType.PUBREC, packetId } };
}

/**
 * A PUBREL received: the packet id is released, and PUBCOMP answers it even for an id not
 * awaiting PUBREL, since that means our PUBCOMP was lost and the peer retries [MQTT-4.3.3-2]
 * (5.0: [MQTT-4.3.3-11]). With `reasonCodes` (a level-5 peer), the PUBCOMP for an id not awaiting
 * PUBREL carries 0x92 Packet Identifier not found, one of the PUBCOMP Reason Codes of MQTT 5.0
 * §3.7.2.1 [MQTT-3.7.2-1] ("not an error during recovery"); without it, it is a plain PUBCOMP.
 *
 * @param inbound the QoS 2 packet ids awaiting PUBREL
 * @param packetId the PUBREL's packet id
 * @param reasonCodes whether the PUBCOMP may carry a reason code (MQTT 5.0)
 * @returns the PUBCOMP to send
 *
 * @example
 * ```ts
 * import { InboundQos2 } from "./inbound.ts";
 * import { receivePubrel } from "./qos_flow.ts";
 * import assert from "node:assert/strict";
 *
 * const inbound = new InboundQos2();
 * assert.deepEqual(receivePubrel(inbound, 3), { type: 7, packetId: 3 });
 * assert.deepEqual(receivePubrel(inbound, 3, true), { type: 7, packetId: 3, reasonCode: 0x92 });
 * ```
 */
export function receivePubrel(
  inbound: InboundQos2,
  packetId: number,
  reasonCodes = false,
): AckPacket {
  if (inbound.release(packetId) || !reasonCodes) return { type: PacketType.PUBCOMP, packetId };
  return {
    type: PacketType.PUBCOMP,
    packetId,
    reasonCode: ReasonCode.PACKET_IDENTIFIER_NOT_FOUND,
  };
}

/** What an acknowledgement of an outgoing QoS 1/2 message did. */
export type AckOutcome =
  /** The flow is complete: the window has room for the next message. */
  | { readonly kind: "complete" }
  /** A PUBREC: answer with this PUBREL [MQTT-4.3.3-1]; PUBCOMP completes the flow. */
  | { readonly kind: "pubrel"; readonly reply: AckPacket }
  /**
   * An acknowledgement of the wrong kind for the message in flight with its id (PUBREC or
   * PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREC): a protocol violation that closes
   * the connection [MQTT-4.8.0-1]. The flow stays as it was, to be resent on the next connection.
   */
  | { readonly kind: "violation"; readonly reason: string }
  /**
   * No message is in flight with that id (a duplicate or a stray ack): logged, and answered only
   * when `reply` is set (a level-5 PUBREC below 0x80: PUBREL 0x92 Packet Identifier not found).
   */
  | { readonly kind: "unknown"; readonly reason: string; readonly reply?: AckPacket };

const COMPLETE: AckOutcome = { kind: "complete" };

/**
 * An acknowledgement (PUBACK, PUBREC or PUBCOMP) of an outgoing message received.
 *
 * @param flow the outgoing window
 * @param kind which acknowledgement arrived
 * @param packetId its packet id
 * @param failed MQTT 5.0: a PUBREC with a reason code of 0x80 or more, which ends the flow
 * @param reasonCodes whether the reply may carry a reason code (MQTT 5.0): a PUBREC below 0x80 for
 *   an id not in flight is then answered with PUBREL 0x92 Packet Identifier not found
 * @returns what it did, with the PUBREL to send or the reason for the log
 *
 * @example
 * ```ts
 * import { OutboundFlow } from "./outbound.ts";
 * import { receiveAck } from "./qos_flow.ts";
 * import assert from "node:assert/strict";
 *
 * const flow = new OutboundFlow<string>();
 * const id = flow.offer("m", 1)!.packetId;
 * assert.equal(receiveAck(flow, "pubcomp", id).kind, "violation"); // QoS 1 takes PUBACK
 * assert.equal(receiveAck(flow, "puback", id).kind, "complete");
 * assert.equal(receiveAck(flow, "puback", id).kind, "unknown");
 * ```
 */
export function receiveAck<M>(
  flow: OutboundFlow<M>,
  kind: "puback" | "pubrec" | "pubcomp",
  packetId: number,
  failed = false,
  reasonCodes = false,
): AckOutcome {
  const entry = flow.get(packetId);
  const awaiting = entry === undefined
    ? ""
    : entry.qos === 1
    ? "PUBACK"
    : entry.state === "publish"
    ? "PUBREC"
    : "PUBCOMP";
  const qos = entry?.qos;
  switch (flow.acknowledge(packetId, kind, failed)) {
    case "complete":
      return COMPLETE;
    case "pubrel":
      return { kind: "pubrel", reply: { type: PacketType.PUBREL, packetId } };
    case "wrong_kind":
      return {
        kind: "violation",
        reason: `${kind.toUpperCase()} for packet id ${packetId}, a QoS ${qos} message ` +
          `awaiting ${awaiting} [MQTT-4.8.0-1]`,
      };
    case "unknown": {
      const reason = `${kind.toUpperCase()} for packet id ${packetId}: no message is in flight ` +
        "with that id";
      // MQTT 5.0 §3.6.2.1: 0x92 is the PUBREL Reason Code for an id the sender does not know
      // [MQTT-3.6.2-1]; the peer, which holds the id awaiting PUBREL, can release it and answer
      // PUBCOMP. A failed PUBREC (0x80 or more) already ended the flow on its side: no PUBREL
      // [MQTT-4.3.3-4].
      if (kind !== "pubrec" || failed || !reasonCodes) return { kind: "unknown", reason };
      const reply: AckPacket = {
        type: PacketType.PUBREL,
        packetId,
        reasonCode: ReasonCode.PACKET_IDENTIFIER_NOT_FOUND,
      };
      return { kind: "unknown", reason, reply };
    }
  }
}
