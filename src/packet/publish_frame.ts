/**
 * The bytes a decoded PUBLISH came from, for forwarding them as they are. A decoder hands out the
 * payload as a view into the bytes it read (see `PacketDecoder`), right at the end of the packet:
 * the whole packet is the view's bytes and the header before them. This finds that header and
 * checks, byte by byte, that the packet is exactly what `encodePacket` would write for the same
 * topic, QoS, packet id and payload, with no properties (up to the DUP and RETAIN flags and the
 * packet id, which a sender patches anyway): a forwarded frame is never anything else than a
 * re-encoding would have been.
 *
 * @module
 */

import type { ProtocolVersion } from "./constants.ts";
import type { PublishPacket } from "./types.ts";

/**
 * The encoded form of `packet` as it was received, when its payload is still a view into the
 * received bytes and those bytes are in canonical form: the shortest remaining length, an ASCII
 * topic name (checked against the topic), and at level 5 no properties (an empty property list
 * of one byte). Otherwise undefined: encode the packet instead.
 *
 * The result is a view into the same bytes as the payload (no copy): it is valid as long as the
 * payload is.
 *
 * @param packet a decoded PUBLISH (its topic, payload, QoS and properties)
 * @param version the protocol level it was decoded at (3 and 4 share one PUBLISH layout)
 * @returns the whole PUBLISH packet's bytes, or undefined
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePacket, encodePacket, PacketType } from "./mod.ts";
 * import type { PublishPacket } from "./mod.ts";
 * import { publishFrame } from "./publish_frame.ts";
 *
 * const bytes = encodePacket({
 *   type: PacketType.PUBLISH, topic: "a/b", payload: new Uint8Array([1, 2]),
 *   qos: 1, retain: false, dup: false, packetId: 7,
 * }, 4);
 * const packet = decodePacket(bytes, { protocolVersion: 4 })!.packet as PublishPacket;
 * assert.deepEqual(publishFrame(packet, 4), bytes);
 * // A payload that is not a view into received bytes has no frame.
 * assert.equal(publishFrame({ ...packet, payload: new Uint8Array([1, 2]) }, 4), undefined);
 * ```
 */
export function publishFrame(
  packet: Readonly<Pick<PublishPacket, "topic" | "payload" | "qos" | "properties">>,
  version: ProtocolVersion,
): Uint8Array | undefined {
  if (version === 5 && packet.properties !== undefined) return undefined;
  const payload = packet.payload;
  const topic = packet.topic;
  const topicLength = topic.length;
  const idLength = packet.qos > 0 ? 2 : 0;
  const propertiesLength = version === 5 ? 1 : 0;
  const remaining = 2 + topicLength + idLength + propertiesLength + payload.length;
  const varint = remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x200000 ? 3 : 4;
  const header = 1 + varint + 2 + topicLength + idLength + propertiesLength;
  const start = payload.byteOffset - header;
  if (start < 0) return undefined;
  const frame = new Uint8Array(payload.buffer, start, header + payload.length);
  if (frame[0] >> 4 !== 3) return undefined;
  // The remaining length, in exactly `varint` bytes (the shortest form).
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i <= varint; i++) {
    const byte = frame[i]!;
    if ((byte & 0x80) !== 0 ? i === varint : i !== varint) return undefined;
    value += (byte & 0x7f) * multiplier;
    multiplier *= 128;
  }
  if (value !== remaining) return undefined;
  let at = 1 + varint;
  if (frame[at] !== topicLength >> 8 || frame[at + 1] !== (topicLength & 0xff)) return undefined;
  at += 2;
  for (let i = 0; i < topicLength; i++) {
    // ASCII only: one byte per UTF-16 code unit, equal to it.
    const code = topic.charCodeAt(i);
    if (code >= 0x80 || frame[at + i] !== code) return undefined;
  }
  at += topicLength + idLength;
  if (propertiesLength === 1 && frame[at] !== 0) return undefined;
  return frame;
}
