/**
 * Writing a PUBLISH without properties straight into a caller's buffer (a connection's output
 * buffer), for a message sent once: no packet object and no fresh `Uint8Array` as `encodePacket`
 * needs. The bytes are the same as `encodePacket` writes, with RETAIN and DUP clear and the given
 * packet id.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "./constants.ts";

/**
 * The size of the PUBLISH {@linkcode writePublish} writes, or -1 when it cannot write it: a
 * topic name that is not ASCII (its UTF-8 form takes an encoder), or an empty one.
 *
 * @param topic the topic name (checked by the caller: no wildcards)
 * @param payloadLength the payload's length in bytes
 * @param qos the QoS
 * @param version the protocol level (5: an empty property list)
 * @returns the packet's size in bytes, or -1
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePacket, PacketType } from "./mod.ts";
 * import { publishSize, writePublish } from "./publish_writer.ts";
 *
 * const payload = new Uint8Array([1, 2]);
 * const size = publishSize("a/b", payload.length, 1, 4);
 * const out = new Uint8Array(size + 3);
 * assert.equal(writePublish(out, 3, "a/b", payload, 1, 7, 4), 3 + size);
 * assert.deepEqual(out.subarray(3), encodePacket({
 *   type: PacketType.PUBLISH, topic: "a/b", payload, qos: 1, retain: false, dup: false, packetId: 7,
 * }, 4));
 * assert.equal(publishSize("é", 0, 0, 4), -1);
 * ```
 */
export function publishSize(
  topic: string,
  payloadLength: number,
  qos: QoS,
  version: ProtocolVersion,
): number {
  const n = topic.length;
  if (n === 0) return -1;
  for (let i = 0; i < n; i++) if (topic.charCodeAt(i) >= 0x80) return -1;
  const remaining = 2 + n + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payloadLength;
  if (remaining > 268_435_455) return -1;
  return 1 + varintLength(remaining) + remaining;
}

/**
 * Writes a PUBLISH (RETAIN and DUP clear, no properties) at `at` in `out`. Call
 * {@linkcode publishSize} first: it must not be -1, and `out` must have that many bytes from `at`.
 *
 * @param out the buffer
 * @param at where the packet starts
 * @param topic an ASCII topic name
 * @param payload the payload
 * @param qos the QoS
 * @param packetId the packet id (ignored for QoS 0)
 * @param version the protocol level
 * @returns the offset just past the packet
 */
export function writePublish(
  out: Uint8Array,
  at: number,
  topic: string,
  payload: Uint8Array,
  qos: QoS,
  packetId: number,
  version: ProtocolVersion,
): number {
  const n = topic.length;
  let remaining = 2 + n + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payload.length;
  let p = at;
  out[p++] = 0x30 | (qos << 1);
  do {
    let byte = remaining & 0x7f;
    remaining >>>= 7;
    if (remaining > 0) byte |= 0x80;
    out[p++] = byte;
  } while (remaining > 0);
  out[p++] = n >> 8;
  out[p++] = n & 0xff;
  for (let i = 0; i < n; i++) out[p++] = topic.charCodeAt(i);
  if (qos > 0) {
    out[p++] = packetId >> 8;
    out[p++] = packetId & 0xff;
  }
  if (version === 5) out[p++] = 0;
  out.set(payload, p);
  return p + payload.length;
}

function varintLength(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : 4;
}
