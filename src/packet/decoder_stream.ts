/**
 * A web stream that turns bytes into MQTT packets.
 *
 * @module
 */

import type { ProtocolVersion } from "./constants.ts";
import type { Packet } from "./types.ts";
import type { DecodeOptions } from "./decode.ts";
import { PacketDecoder } from "./decoder.ts";
import { MqttPacketError } from "./packet_error.ts";

/**
 * Transforms a byte stream (`Uint8Array` chunks of any size) into MQTT packets, with a
 * {@linkcode PacketDecoder} inside. A malformed packet errors the stream with
 * {@linkcode MqttPacketError}; so does an input that ends in the middle of a packet.
 *
 * Chunks written to it must not be reused afterwards: packets may hold views into them.
 *
 * @example Piping bytes through the decoder
 * ```ts
 * import { PacketDecoderStream, PacketType } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = ReadableStream.from([new Uint8Array([0xc0]), new Uint8Array([0x00, 0xc0, 0x00])]);
 * const packets = await Array.fromAsync(
 *   bytes.pipeThrough(new PacketDecoderStream({ protocolVersion: 4 })),
 * );
 * assert.deepEqual(packets, [{ type: PacketType.PINGREQ }, { type: PacketType.PINGREQ }]);
 * ```
 */
export class PacketDecoderStream extends TransformStream<Uint8Array, Packet> {
  #decoder: PacketDecoder;

  /**
   * Creates the stream.
   *
   * @param options Protocol level, maximum packet size and side, as for {@linkcode PacketDecoder}.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options?: DecodeOptions) {
    const decoder = new PacketDecoder(options);
    super({
      transform(chunk, controller) {
        decoder.push(chunk);
        let packet: Packet | undefined;
        while ((packet = decoder.next()) !== undefined) controller.enqueue(packet);
      },
      flush() {
        const left = decoder.bufferedBytes;
        if (left > 0) {
          throw new MqttPacketError(
            `Cannot decode packet: the stream ended inside a packet (${left} bytes left)`,
            { reasonCode: 0x81, offset: left },
          );
        }
      },
    });
    this.#decoder = decoder;
  }

  /** The protocol level in use (set by the first CONNECT when not given). */
  get protocolVersion(): ProtocolVersion | undefined {
    return this.#decoder.protocolVersion;
  }

  /** Sets the protocol level, as {@linkcode PacketDecoder.protocolVersion} does. */
  set protocolVersion(version: ProtocolVersion | undefined) {
    this.#decoder.protocolVersion = version;
  }
}
