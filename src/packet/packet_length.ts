/**
 * Framing: the length of an MQTT packet from its fixed header, for transports that cut a byte
 * stream into packets without decoding them.
 *
 * @module
 */

import { MAX_PACKET_SIZE } from "./constants.ts";
import { frameLength } from "./_frame.ts";

/** Options for {@linkcode packetLength}. */
export interface PacketLengthOptions {
  /**
   * Largest packet accepted, in bytes (fixed header included); a longer one throws 0x95 Packet
   * too large.
   *
   * @default {268435460} the protocol maximum
   */
  maxPacketSize?: number;
}

/**
 * The total length in bytes (fixed header included) of the MQTT packet that starts at `offset`,
 * read from its fixed header (§2.1.4): known as soon as the packet type byte and the remaining
 * length (1 to 4 bytes) have arrived, whether or not the rest of the packet has. The packet is
 * complete once `bytes.length - offset` reaches the result. Only the remaining length is checked;
 * the packet type and flags are left to the decoder.
 *
 * @param bytes The stream's bytes.
 * @param offset Where the packet starts in `bytes`.
 * @param options The maximum packet size.
 * @returns The packet's total length, or `undefined` while its fixed header is incomplete.
 * @throws {MqttPacketError} 0x81 Malformed Packet when the remaining length runs over 4 bytes
 * [MQTT-1.5.5-1], 0x95 Packet too large when the length exceeds `maxPacketSize`.
 * @throws {RangeError} When `offset` is not a non-negative integer or `maxPacketSize` is below 2.
 *
 * @example Cutting a stream into packets
 * ```ts
 * import { packetLength } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * // A PINGREQ, then a PUBLISH to "t" whose last payload byte has not arrived yet.
 * const bytes = new Uint8Array([0xc0, 0x00, 0x30, 0x05, 0x00, 0x01, 0x74, 0x68]);
 * assert.equal(packetLength(bytes, 0), 2);
 * assert.equal(packetLength(bytes, 2), 7); // 7 > bytes.length - 2: wait for one more byte
 * assert.equal(packetLength(bytes.subarray(0, 3), 2), undefined); // no remaining length yet
 * ```
 */
export function packetLength(
  bytes: Uint8Array,
  offset: number = 0,
  options?: PacketLengthOptions,
): number | undefined {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Cannot frame packet: offset ${offset} is not a non-negative integer`);
  }
  const max = options?.maxPacketSize ?? MAX_PACKET_SIZE;
  if (!(max >= 2)) {
    throw new RangeError(`Cannot frame packet: maxPacketSize ${max} is below 2 bytes`);
  }
  return frameLength(bytes, offset, bytes.length, max);
}
