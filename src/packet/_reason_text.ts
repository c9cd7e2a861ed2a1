/**
 * The names of MQTT 5.0 reason codes (§2.4), for messages a person reads: "0x87 Not authorized"
 * rather than "0x87".
 *
 * @module
 */

import { PacketType, type PacketTypeNumber } from "./constants.ts";

const NAMES: Readonly<Record<number, string>> = {
  0x04: "Disconnect with Will Message",
  0x10: "No matching subscribers",
  0x11: "No subscription existed",
  0x18: "Continue authentication",
  0x19: "Re-authenticate",
  0x80: "Unspecified error",
  0x81: "Malformed Packet",
  0x82: "Protocol Error",
  0x83: "Implementation specific error",
  0x84: "Unsupported Protocol Version",
  0x85: "Client Identifier not valid",
  0x86: "Bad User Name or Password",
  0x87: "Not authorized",
  0x88: "Server unavailable",
  0x89: "Server busy",
  0x8a: "Banned",
  0x8b: "Server shutting down",
  0x8c: "Bad authentication method",
  0x8d: "Keep Alive timeout",
  0x8e: "Session taken over",
  0x8f: "Topic Filter invalid",
  0x90: "Topic Name invalid",
  0x91: "Packet Identifier in use",
  0x92: "Packet Identifier not found",
  0x93: "Receive Maximum exceeded",
  0x94: "Topic Alias invalid",
  0x95: "Packet too large",
  0x96: "Message rate too high",
  0x97: "Quota exceeded",
  0x98: "Administrative action",
  0x99: "Payload format invalid",
  0x9a: "Retain not supported",
  0x9b: "QoS not supported",
  0x9c: "Use another server",
  0x9d: "Server moved",
  0x9e: "Shared Subscriptions not supported",
  0x9f: "Connection rate exceeded",
  0xa0: "Maximum connect time",
  0xa1: "Subscription Identifiers not supported",
  0xa2: "Wildcard Subscriptions not supported",
};

/**
 * A reason code as a person reads it, e.g. `0x8E Session taken over`.
 *
 * @param code the reason code
 * @param packetType the packet that carried it (0x00, 0x01 and 0x02 mean different things in
 *   different packets)
 * @param reasonString the packet's reason string (MQTT 5.0), added in brackets when given
 * @returns the code in hex followed by its name
 *
 * @example
 * ```ts
 * import { PacketType, reasonText } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(reasonText(0x87), "0x87 Not authorized");
 * assert.equal(reasonText(0x01, PacketType.SUBACK), "0x01 Granted QoS 1");
 * assert.equal(reasonText(0x97, PacketType.PUBACK, "over quota"), "0x97 Quota exceeded (over quota)");
 * ```
 */
export function reasonText(
  code: number,
  packetType?: PacketTypeNumber,
  reasonString?: string,
): string {
  const hex = `0x${code.toString(16).padStart(2, "0").toUpperCase()}`;
  let name = NAMES[code];
  if (code === 0x00) {
    name = packetType === PacketType.DISCONNECT
      ? "Normal disconnection"
      : packetType === PacketType.SUBACK
      ? "Granted QoS 0"
      : "Success";
  } else if (code === 0x01 || code === 0x02) {
    name = `Granted QoS ${code}`;
  }
  const text = name === undefined ? hex : `${hex} ${name}`;
  return reasonString === undefined ? text : `${text} (${reasonString})`;
}
