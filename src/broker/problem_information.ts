/**
 * MQTT 5.0 problem information on the packets the broker sends: a Reason String and User
 * Properties go only where the client's Request Problem Information allows (§3.1.2.11.7) and
 * only when they keep the packet within the client's Maximum Packet Size (§3.1.2.11.4).
 *
 * @module
 */

import { PacketType, type PacketTypeNumber } from "../packet/constants.ts";
import { encodedLength } from "../packet/encode.ts";
import type { Packet, Properties, UserProperty } from "../packet/types.ts";

/** What a client said in CONNECT about the packets it takes. */
export interface ClientReceiveLimits {
  /** Its Request Problem Information; absent means 1. */
  requestProblemInformation?: number;
  /** Its Maximum Packet Size; absent means no limit beyond the protocol's. */
  maximumPacketSize?: number;
}

/** A diagnostic the broker would like to add to a packet. */
export interface ProblemInformation {
  /** A human-readable diagnostic. */
  reasonString?: string;
  /** Name/value pairs, in order. */
  userProperties?: UserProperty[];
}

/**
 * Whether a packet to the client may carry a Reason String or User Properties. With Request
 * Problem Information 0, only PUBLISH, CONNACK and DISCONNECT may [MQTT-3.1.2-29]; absent, it
 * is 1 and every packet may.
 *
 * @param type the type of the packet the broker is about to send
 * @param requestProblemInformation the client's CONNECT property, undefined when absent
 * @returns true when the Reason String and User Properties may be sent
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PacketType } from "../packet/constants.ts";
 * import { mayCarryProblemInformation } from "./problem_information.ts";
 *
 * assert.equal(mayCarryProblemInformation(PacketType.PUBACK, undefined), true);
 * assert.equal(mayCarryProblemInformation(PacketType.PUBACK, 0), false);
 * assert.equal(mayCarryProblemInformation(PacketType.DISCONNECT, 0), true);
 * ```
 */
export function mayCarryProblemInformation(
  type: PacketTypeNumber,
  requestProblemInformation: number | undefined,
): boolean {
  if (requestProblemInformation !== 0) return true;
  return type === PacketType.PUBLISH || type === PacketType.CONNACK ||
    type === PacketType.DISCONNECT;
}

/**
 * Adds a Reason String and User Properties to a level-5 packet where the client allows them
 * [MQTT-3.1.2-29], each only if the packet still fits the client's Maximum Packet Size (CONNACK
 * [MQTT-3.2.2-19] [MQTT-3.2.2-20], SUBACK [MQTT-3.9.2-1] [MQTT-3.9.2-2], DISCONNECT
 * [MQTT-3.14.2-3] [MQTT-3.14.2-4], AUTH [MQTT-3.15.2-2] [MQTT-3.15.2-3], the other acks alike).
 * The reason string is tried first.
 *
 * @param packet a packet with properties (CONNACK, an ack, SUBACK, UNSUBACK, DISCONNECT, AUTH)
 * @param info the diagnostic to add
 * @param client the client's limits from its CONNECT
 * @returns the packet with what fits added (a copy when anything was added)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PacketType } from "../packet/constants.ts";
 * import type { AckPacket } from "../packet/types.ts";
 * import { withProblemInformation } from "./problem_information.ts";
 *
 * const puback: AckPacket = { type: PacketType.PUBACK, packetId: 1, reasonCode: 0x87 };
 * const info = { reasonString: "not allowed to publish here" };
 * assert.equal(withProblemInformation(puback, info, {}).properties?.reasonString, info.reasonString);
 * assert.equal(withProblemInformation(puback, info, { requestProblemInformation: 0 }), puback);
 * assert.equal(withProblemInformation(puback, info, { maximumPacketSize: 10 }), puback);
 * ```
 */
export function withProblemInformation<P extends Packet & { properties?: Properties }>(
  packet: P,
  info: ProblemInformation,
  client: ClientReceiveLimits,
): P {
  if (!mayCarryProblemInformation(packet.type, client.requestProblemInformation)) return packet;
  let out = packet;
  const limit = client.maximumPacketSize;
  const fits = (candidate: P) => limit === undefined || encodedLength(candidate, 5) <= limit;
  if (info.reasonString !== undefined) {
    const candidate = {
      ...out,
      properties: { ...out.properties, reasonString: info.reasonString },
    };
    if (fits(candidate)) out = candidate;
  }
  if (info.userProperties !== undefined && info.userProperties.length > 0) {
    const properties = { ...out.properties, userProperties: info.userProperties };
    const candidate = { ...out, properties };
    if (fits(candidate)) out = candidate;
  }
  return out;
}
