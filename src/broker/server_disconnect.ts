/**
 * The DISCONNECT the broker sends a 5.0 client before it closes the connection (§3.14): the
 * reason code the core closed with, and a Reason String where the client allows and it fits.
 *
 * @module
 */

import { PacketType, REASON_CODE_PACKETS } from "../packet/constants.ts";
import type { DisconnectPacket } from "../packet/types.ts";
import {
  type ClientReceiveLimits,
  type ProblemInformation,
  withProblemInformation,
} from "./problem_information.ts";

/**
 * Builds the broker's DISCONNECT. It never carries a Session Expiry Interval [MQTT-3.14.2-2]; a
 * Reason String or User Properties only within the client's Maximum Packet Size
 * [MQTT-3.14.2-3] [MQTT-3.14.2-4].
 *
 * @param reasonCode the close's reason code (`ClientLink.close(reason, code)`): one of the
 *   DISCONNECT Reason Codes [MQTT-3.14.2-1]
 * @param info an optional diagnostic, and the Server Reference of a redirect (always sent)
 * @param client the client's limits from its CONNECT
 * @returns the packet
 * @throws {RangeError} when the code is not a DISCONNECT reason code (0x00 is "normal
 *   disconnection"; 0x04 is the client's alone)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serverDisconnect } from "./server_disconnect.ts";
 *
 * assert.deepEqual(serverDisconnect(0x8e, { reasonString: "taken over" }, {}), {
 *   type: 14,
 *   reasonCode: 0x8e,
 *   properties: { reasonString: "taken over" },
 * });
 * ```
 */
export function serverDisconnect(
  reasonCode: number,
  info: ProblemInformation & { serverReference?: string } = {},
  client: ClientReceiveLimits = {},
): DisconnectPacket {
  // 0x04 "Disconnect with Will Message" is for a client to send.
  if (!REASON_CODE_PACKETS[reasonCode]?.includes(PacketType.DISCONNECT) || reasonCode === 0x04) {
    throw new RangeError(
      `Cannot build DISCONNECT: 0x${
        reasonCode.toString(16)
      } is not a server DISCONNECT reason code`,
    );
  }
  const packet: DisconnectPacket = { type: PacketType.DISCONNECT, reasonCode };
  if (info.serverReference !== undefined) {
    packet.properties = { serverReference: info.serverReference };
  }
  return withProblemInformation(packet, info, client);
}
