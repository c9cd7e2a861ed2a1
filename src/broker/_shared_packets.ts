/**
 * Packets the broker sends alike to every connection, each encoded once: the CONNACK of a
 * 3.1/3.1.1 login and PINGRESP. A connection with nothing else queued writes these bytes as
 * they are (`PacketChannel.sendShared`): its CONNACK needs no output buffer, no encoding and no
 * copy, and a connection that only logs in and pings never makes an output buffer at all. Only
 * over the broker's own transports, which never change or transfer what they write: a host's
 * (an `external` listener) gets a copy (`BrokerConnectionOptions.ownTransports`).
 *
 * @module
 */

import { ConnackReturnCode, PacketType } from "../packet/constants.ts";
import { encodePacket } from "../packet/encode.ts";
import type { ConnackPacket, Packet, PingPacket } from "../packet/types.ts";

/** The CONNACK of an accepted 3.1/3.1.1 login without a session present. */
export const CONNACK_NEW: ConnackPacket = Object.freeze({
  type: PacketType.CONNACK,
  sessionPresent: false,
  reasonCode: ConnackReturnCode.ACCEPTED,
});

/** The CONNACK of an accepted 3.1.1 login that resumes a session. */
export const CONNACK_PRESENT: ConnackPacket = Object.freeze({
  type: PacketType.CONNACK,
  sessionPresent: true,
  reasonCode: ConnackReturnCode.ACCEPTED,
});

/** PINGRESP, at every level. */
export const PINGRESP: PingPacket = Object.freeze({ type: PacketType.PINGRESP });

// Encoded at 3.1.1: the same bytes at 3.1 (CONNACK_PRESENT is not sent at 3.1, whose CONNACK has
// no session-present flag) and, for PINGRESP, at 5.0. Never written into: every buffer is exactly
// its packet's length, so a channel that appends to it copies it first.
const CONNACK_NEW_BYTES = encodePacket(CONNACK_NEW, 4);
const CONNACK_PRESENT_BYTES = encodePacket(CONNACK_PRESENT, 4);
const PINGRESP_BYTES = encodePacket(PINGRESP, 4);

/**
 * The shared encoding of `packet` when it is one of the packets above.
 *
 * @param packet a packet to send
 * @returns its bytes, which must not be changed, or `undefined` for any other packet
 */
export function sharedBytes(packet: Packet): Uint8Array | undefined {
  return packet === CONNACK_NEW
    ? CONNACK_NEW_BYTES
    : packet === CONNACK_PRESENT
    ? CONNACK_PRESENT_BYTES
    : packet === PINGRESP
    ? PINGRESP_BYTES
    : undefined;
}
