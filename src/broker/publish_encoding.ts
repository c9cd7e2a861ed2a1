/**
 * The encoded PUBLISH packets of one message, kept apart from the message's data: one encoding
 * per delivery QoS for MQTT 3.1 and 3.1.1 (their PUBLISH layouts are identical), with RETAIN and
 * DUP clear and a placeholder packet id. A connection copies the bytes and patches the three per
 * delivery ({@linkcode RETAIN_FLAG}, {@linkcode DUP_FLAG}, the id at `packetIdOffset`), so
 * fan-out to N subscribers, resends and retained sends share one encoding per QoS.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import { encodePacket, publishPacketIdOffset } from "../packet/mod.ts";

/** Bit of a PUBLISH's first byte set for RETAIN [MQTT-3.3.1-8]. */
export const RETAIN_FLAG = 0x01;
/** Bit of a PUBLISH's first byte set for DUP [MQTT-3.3.1-1]. */
export const DUP_FLAG = 0x08;

/** The cached encodings of one message. */
export class PublishEncoding {
  // Index: qos (0-2); entries are whole encoded PUBLISH packets, packet id 1 as a placeholder.
  #bytes: (Uint8Array | undefined)[] = [undefined, undefined, undefined];
  #idOffset = 0;

  /**
   * The encoded PUBLISH for a delivery at `qos`, cached.
   *
   * @param topic the message's topic
   * @param payload the message's payload
   * @param version the receiver's protocol level: 3 or 4 (the broker refuses level 5 today; a 5.0
   *   PUBLISH carries properties and will need an encoding of its own, not this 3.1.1 one)
   * @param qos the delivery QoS
   * @returns the shared bytes; callers copy them, never modify them
   */
  get(topic: string, payload: Uint8Array, version: ProtocolVersion, qos: QoS): Uint8Array {
    let bytes = this.#bytes[qos];
    if (bytes === undefined) {
      bytes = encodePacket({
        type: 3,
        topic,
        payload,
        qos,
        retain: false,
        dup: false,
        packetId: qos > 0 ? 1 : undefined,
      }, version === 5 ? 4 : version);
      if (qos > 0) this.#idOffset = publishPacketIdOffset(bytes);
      this.#bytes[qos] = bytes;
    }
    return bytes;
  }

  /** Offset of the packet id in the bytes of a QoS 1 or 2 encoding. */
  get packetIdOffset(): number {
    return this.#idOffset;
  }
}
