/**
 * One-shot decoding of a single MQTT packet from bytes.
 *
 * @module
 */

import type { ProtocolVersion } from "./constants.ts";
import type { Packet } from "./types.ts";
import { checkOptions, decodeSafely, Reader } from "./_decode.ts";

/** Options for {@linkcode decodePacket}, {@linkcode PacketDecoder} and the decoder stream. */
export interface DecodeOptions {
  /**
   * The protocol level of the connection. Leave it out before CONNECT: a CONNECT is decoded by its
   * own level. Other packets without a level are decoded as 3.1.1 (level 4), except on the server
   * side, where the first packet must be CONNECT [MQTT-3.1.0-1].
   */
  protocolVersion?: ProtocolVersion;
  /**
   * Largest packet accepted, in bytes (fixed header included). Checked from the remaining length
   * before the body is waited for; larger packets throw 0x95 Packet too large. Defaults to the
   * protocol maximum, 268,435,460.
   */
  maxPacketSize?: number;
  /**
   * Which end decodes: `"server"` refuses packets only servers send (CONNACK, SUBACK, UNSUBACK,
   * PINGRESP) and requires CONNECT first; `"client"` refuses packets only clients send. Left out,
   * every packet type is accepted.
   */
  side?: "server" | "client";
}

/** A decoded packet and how many bytes it took. */
export interface DecodeResult {
  /** The packet. */
  packet: Packet;
  /** Bytes consumed from the start of the input. */
  length: number;
}

/**
 * Decodes one MQTT packet from the start of `bytes`. Pure: no state is kept between calls (a
 * CONNECT does not change `options.protocolVersion`; use {@linkcode PacketDecoder} for a stream).
 *
 * PUBLISH payloads and other binary fields in the result are views into `bytes`, not copies.
 *
 * @param bytes The input; may hold a partial packet, one packet, or more (only the first is read).
 * @param options Protocol level, maximum packet size and side.
 * @returns The packet and its length in bytes, or `undefined` when `bytes` ends before the packet
 * does.
 * @throws {MqttPacketError} When the bytes are not a valid packet (whatever the bytes, nothing
 * else is thrown).
 * @throws {RangeError} When `options` are invalid (such as protocol version 6).
 *
 * @example Decoding a PINGREQ
 * ```ts
 * import { decodePacket, PacketType } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const result = decodePacket(new Uint8Array([0xc0, 0x00]), { protocolVersion: 4 });
 * assert.deepEqual(result, { packet: { type: PacketType.PINGREQ }, length: 2 });
 * assert.equal(decodePacket(new Uint8Array([0xc0]), { protocolVersion: 4 }), undefined);
 * ```
 */
export function decodePacket(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): DecodeResult | undefined {
  checkOptions(options);
  const r = new Reader(options);
  const packet = decodeSafely(r, bytes, 0, bytes.length);
  return packet === undefined ? undefined : { packet, length: r.length };
}
