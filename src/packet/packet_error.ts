/**
 * The one error the packet decoder throws.
 *
 * @module
 */

import { PACKET_NAMES } from "./constants.ts";

/** Options for {@linkcode MqttPacketError}. */
export interface MqttPacketErrorOptions {
  /**
   * The MQTT 5.0 reason code that describes the problem: 0x81 Malformed Packet, 0x82 Protocol
   * Error, 0x95 Packet too large or 0x84 Unsupported Protocol Version.
   */
  reasonCode: number;
  /** Byte offset from the start of the packet where the problem was found. */
  offset: number;
  /** The packet type number from the fixed header, when it was read. */
  packetType?: number;
  /**
   * The protocol level byte a CONNECT carried, when it was read (set on 0x84 errors, so a broker
   * knows which CONNACK format to answer with).
   */
  protocolVersion?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * An MQTT packet could not be decoded: it is malformed, breaks a protocol rule, is too large, or
 * asks for an unsupported protocol version. The connection it came from must be closed (after a
 * CONNACK or DISCONNECT carrying {@linkcode MqttPacketError.reasonCode} where the protocol allows).
 *
 * @example Catching a decode error
 * ```ts
 * import { decodePacket, MqttPacketError } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * try {
 *   // PUBLISH with QoS 3 in the fixed header.
 *   decodePacket(new Uint8Array([0x36, 0x03, 0x00, 0x01, 0x61]), { protocolVersion: 4 });
 *   assert.fail("expected an error");
 * } catch (error) {
 *   assert.ok(error instanceof MqttPacketError);
 *   assert.equal(error.reasonCode, 0x81);
 * }
 * ```
 */
export class MqttPacketError extends Error {
  /** 0x81 Malformed Packet, 0x82 Protocol Error, 0x95 Packet too large, 0x84 Unsupported version. */
  readonly reasonCode: number;
  /** Byte offset from the start of the packet where the problem was found. */
  readonly offset: number;
  /** The packet type number from the fixed header, when it was read. */
  readonly packetType?: number;
  /** The protocol level byte a CONNECT carried, when it was read. */
  readonly protocolVersion?: number;

  /**
   * Creates a packet error.
   *
   * @param message What failed and why, in sentence case without a trailing period.
   * @param options Reason code, byte offset and context.
   */
  constructor(message: string, options: MqttPacketErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MqttPacketError";
    this.reasonCode = options.reasonCode;
    this.offset = options.offset;
    if (options.packetType !== undefined) this.packetType = options.packetType;
    if (options.protocolVersion !== undefined) this.protocolVersion = options.protocolVersion;
  }

  /** The packet type name (such as `"PUBLISH"`), or `undefined` when the type was not read. */
  get packetName(): string | undefined {
    return this.packetType === undefined ? undefined : PACKET_NAMES[this.packetType];
  }
}
