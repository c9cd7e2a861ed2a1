/**
 * MQTT 5.0 Request Problem Information (§3.1.2.11.7): whether a packet the broker sends to a
 * client may carry a Reason String or User Properties.
 *
 * @module
 */

import { PacketType, type PacketTypeNumber } from "../packet/constants.ts";

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
