/**
 * The MQTT packet codec for MQTT 3.1 (level 3), 3.1.1 (level 4) and 5.0 (level 5): the packet
 * model, spec tables, a pure one-shot decoder, a streaming decoder, an encoder, and the framing
 * function {@linkcode packetLength} for transports that cut a byte stream into packets.
 *
 * @example Round trip
 * ```ts
 * import { decodePacket, encodePacket, PacketType, type SubscribePacket } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const packet: SubscribePacket = {
 *   type: PacketType.SUBSCRIBE,
 *   packetId: 1,
 *   subscriptions: [{ topic: "a/#", qos: 1 }],
 * };
 * const bytes = encodePacket(packet, 4);
 * assert.deepEqual(decodePacket(bytes, { protocolVersion: 4 })?.packet, packet);
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./constants.ts";
export * from "./packet_error.ts";
export * from "./decode.ts";
export * from "./decoder.ts";
export * from "./decoder_stream.ts";
export * from "./packet_length.ts";
export * from "./encode.ts";
export { reasonText } from "./_reason_text.ts";
