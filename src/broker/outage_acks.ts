/**
 * The acknowledgements a failed store write takes back from an MQTT 5.0 publisher. A QoS 1/2
 * PUBLISH is handled at once and its PUBACK/PUBREC queued behind the commit that stores it; when
 * that commit fails (the write that reveals an outage), the success acknowledgement must not go
 * out. At 5.0 the connection drops it from the held output and answers as during the outage
 * (`store_refusal.ts`) instead of closing the connection: the bytes are walked packet by packet
 * and the success PUBACK/PUBREC of the PUBLISHes named are left out.
 *
 * @module
 */

import { PacketType } from "../packet/constants.ts";
import { packetLength } from "../packet/packet_length.ts";

/** A QoS 1/2 PUBLISH that was new work, handled since the connection's previous write. */
export interface HeldAck {
  qos: 1 | 2;
  packetId: number;
}

/** First byte of a PUBACK and of a PUBREC (no flags). */
const PUBACK_BYTE = PacketType.PUBACK << 4;
const PUBREC_BYTE = PacketType.PUBREC << 4;

/**
 * Leaves out of `bytes` the success acknowledgements of `acks`: a PUBACK (QoS 1) or PUBREC
 * (QoS 2) with the packet id and no reason code, or one below 0x80 (0x10 No matching
 * subscribers is a success too).
 *
 * @param bytes whole packets, as a connection's output holds them
 * @param acks the PUBLISHes whose success acknowledgements to leave out
 * @returns the bytes without them (`bytes` itself when none was found), and the acks left out
 *
 * @example
 * ```ts
 * import { withoutAcks } from "./outage_acks.ts";
 * import assert from "node:assert/strict";
 *
 * // PUBACK 7, PINGRESP, PUBACK 8.
 * const bytes = new Uint8Array([0x40, 2, 0, 7, 0xd0, 0, 0x40, 2, 0, 8]);
 * const { bytes: out, dropped } = withoutAcks(bytes, [{ qos: 1, packetId: 8 }]);
 * assert.deepEqual([...out], [0x40, 2, 0, 7, 0xd0, 0]);
 * assert.deepEqual(dropped, [{ qos: 1, packetId: 8 }]);
 * ```
 */
export function withoutAcks(
  bytes: Uint8Array,
  acks: readonly HeldAck[],
): { bytes: Uint8Array; dropped: HeldAck[] } {
  const dropped: HeldAck[] = [];
  const keep: [number, number][] = [];
  let at = 0;
  while (at < bytes.length) {
    const length = packetLength(bytes, at);
    if (length === undefined || at + length > bytes.length) break;
    const ack = ackAt(bytes, at, length, acks, dropped);
    if (ack !== undefined) dropped.push(ack);
    else keep.push([at, at + length]);
    at += length;
  }
  if (dropped.length === 0) return { bytes, dropped };
  let size = bytes.length - at;
  for (const [from, to] of keep) size += to - from;
  const out = new Uint8Array(size);
  let n = 0;
  for (const [from, to] of keep) {
    out.set(bytes.subarray(from, to), n);
    n += to - from;
  }
  out.set(bytes.subarray(at), n);
  return { bytes: out, dropped };
}

/** The held ack that the packet at `at` is the success acknowledgement of, if any. */
function ackAt(
  bytes: Uint8Array,
  at: number,
  length: number,
  acks: readonly HeldAck[],
  dropped: readonly HeldAck[],
): HeldAck | undefined {
  const first = bytes[at];
  if ((first !== PUBACK_BYTE && first !== PUBREC_BYTE) || length < 4) return undefined;
  // After the remaining length: the packet id, then the reason code when there is one.
  let body = at + 1;
  while ((bytes[body++]! & 0x80) !== 0);
  const end = at + length;
  if (end - body < 2 || (end - body > 2 && bytes[body + 2]! >= 0x80)) return undefined;
  const packetId = (bytes[body]! << 8) | bytes[body + 1]!;
  const qos = first === PUBACK_BYTE ? 1 : 2;
  return acks.find((a) => a.qos === qos && a.packetId === packetId && !dropped.includes(a));
}
