/**
 * The encoded PUBLISH packets of one message, kept apart from the message's data: one encoding
 * per delivery QoS for MQTT 3.1 and 3.1.1 (their PUBLISH layouts are identical), with RETAIN and
 * DUP clear and a placeholder packet id. A connection copies the bytes and patches the three per
 * delivery ({@linkcode RETAIN_FLAG}, {@linkcode DUP_FLAG}, the id at `packetIdOffset`), so
 * fan-out to N subscribers, resends and retained sends share one encoding per QoS.
 *
 * MQTT 5.0 deliveries differ by more than the flags: their properties carry the Subscription
 * Identifiers of the matching subscriptions, the Message Expiry Interval left and a Topic Alias.
 * {@linkcode PublishEncoding.get5} encodes one per distinct shape (QoS and those fields) and keeps
 * the last few shapes, so a fan-out whose subscribers share a shape still encodes it once.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import { encodePacket, publishPacketIdOffset } from "../packet/mod.ts";
import type { Properties } from "../packet/types.ts";

/** The fields of a level-5 PUBLISH that differ per delivery. */
export interface Publish5Fields {
  /** The Subscription Identifiers of the matching subscriptions [MQTT-3.3.4-3]. */
  readonly subscriptionIdentifiers?: readonly number[];
  /**
   * The Message Expiry Interval left, in seconds [MQTT-3.3.2-6] (see `remainingExpiryInterval`);
   * undefined for a message that does not expire.
   */
  readonly messageExpiryInterval?: number;
  /** The Topic Alias this delivery uses, within the client's Topic Alias Maximum. */
  readonly topicAlias?: number;
  /** Send an empty topic name: the alias is already mapped on this connection. */
  readonly omitTopic?: boolean;
}

/** One encoded PUBLISH, with RETAIN and DUP clear and packet id 1 as a placeholder. */
export interface EncodedPublish {
  /** The shared bytes; callers copy them, never modify them. */
  readonly bytes: Uint8Array;
  /** Offset of the packet id in `bytes` for QoS > 0, else 0. */
  readonly packetIdOffset: number;
}

/** Level-5 shapes kept per message: enough for the distinct shapes of a usual fan-out. */
const SHAPES_KEPT = 8;

/**
 * The properties a forwarded copy carries: Payload Format Indicator [MQTT-3.3.2-4], Content Type
 * [MQTT-3.3.2-20], Response Topic [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16] and User
 * Properties in their order [MQTT-3.3.2-17] [MQTT-3.3.2-18] as received; the Message Expiry
 * Interval left, the Subscription Identifiers and Topic Alias of this delivery. The publisher's
 * own Topic Alias is never forwarded: aliases belong to one connection [MQTT-3.3.2-7].
 *
 * @param received the properties of the PUBLISH as the broker received it
 * @param fields this delivery's fields
 * @returns the properties, or undefined when there are none
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { forwardedProperties } from "./publish_encoding.ts";
 *
 * assert.deepEqual(
 *   forwardedProperties(
 *     { topicAlias: 3, messageExpiryInterval: 60, responseTopic: "r", userProperties: [["a", "1"]] },
 *     { messageExpiryInterval: 42, subscriptionIdentifiers: [7] },
 *   ),
 *   { messageExpiryInterval: 42, responseTopic: "r", subscriptionIdentifier: [7], userProperties: [["a", "1"]] },
 * );
 * ```
 */
export function forwardedProperties(
  received: Properties | undefined,
  fields: Publish5Fields,
): Properties | undefined {
  const out: Properties = {};
  let any = false;
  if (received?.payloadFormatIndicator !== undefined) {
    out.payloadFormatIndicator = received.payloadFormatIndicator;
    any = true;
  }
  if (fields.messageExpiryInterval !== undefined) {
    out.messageExpiryInterval = fields.messageExpiryInterval;
    any = true;
  }
  if (received?.contentType !== undefined) {
    out.contentType = received.contentType;
    any = true;
  }
  if (received?.responseTopic !== undefined) {
    out.responseTopic = received.responseTopic;
    any = true;
  }
  if (received?.correlationData !== undefined) {
    out.correlationData = received.correlationData;
    any = true;
  }
  const ids = fields.subscriptionIdentifiers;
  if (ids !== undefined && ids.length > 0) {
    out.subscriptionIdentifier = [...ids];
    any = true;
  }
  if (fields.topicAlias !== undefined) {
    out.topicAlias = fields.topicAlias;
    any = true;
  }
  if (received?.userProperties !== undefined && received.userProperties.length > 0) {
    out.userProperties = received.userProperties;
    any = true;
  }
  return any ? out : undefined;
}

function shapeKey(qos: QoS, fields: Publish5Fields): string {
  const ids = fields.subscriptionIdentifiers;
  return `${qos}|${ids === undefined ? "" : ids.join(",")}|${fields.messageExpiryInterval ?? ""}|${
    fields.topicAlias ?? ""
  }|${fields.omitTopic === true ? 1 : 0}`;
}

/** Bit of a PUBLISH's first byte set for RETAIN [MQTT-3.3.1-8]. */
export const RETAIN_FLAG = 0x01;
/** Bit of a PUBLISH's first byte set for DUP [MQTT-3.3.1-1]. */
export const DUP_FLAG = 0x08;

/** The cached encodings of one message. */
export class PublishEncoding {
  // Index: qos (0-2); entries are whole encoded PUBLISH packets, packet id 1 as a placeholder.
  #bytes: (Uint8Array | undefined)[] = [undefined, undefined, undefined];
  #idOffset = 0;
  /** Level-5 encodings of the plain shape (no identifiers, expiry or alias), by QoS. */
  #plain5: (EncodedPublish | undefined)[] | undefined;
  /** Level-5 encodings by shape, oldest first (a Map iterates in insertion order). */
  #shapes: Map<string, EncodedPublish> | undefined;

  /**
   * The encoded PUBLISH for a delivery at `qos`, cached.
   *
   * @param topic the message's topic
   * @param payload the message's payload
   * @param version the receiver's protocol level: 3 or 4 (level 5 has properties per delivery:
   *   {@linkcode get5})
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

  /**
   * The encoded level-5 PUBLISH of one delivery shape, cached: the message's properties as
   * {@linkcode forwardedProperties} passes them, with this delivery's fields.
   *
   * @param topic the message's topic
   * @param payload the message's payload
   * @param qos the delivery QoS
   * @param properties the properties of the PUBLISH as received
   * @param fields this delivery's Subscription Identifiers, expiry left and Topic Alias
   * @returns the shared bytes and where their packet id is
   * @throws {RangeError} when a field is out of range (a Topic Alias of 0, say [MQTT-3.3.2-8])
   */
  get5(
    topic: string,
    payload: Uint8Array,
    qos: QoS,
    properties: Properties | undefined,
    fields: Publish5Fields = {},
  ): EncodedPublish {
    // The shape most deliveries have (no identifiers, expiry or alias): kept apart, found
    // without building a key.
    const plain = (fields.subscriptionIdentifiers === undefined ||
      fields.subscriptionIdentifiers.length === 0) &&
      fields.messageExpiryInterval === undefined && fields.topicAlias === undefined &&
      fields.omitTopic !== true;
    if (plain) {
      return (this.#plain5 ??= [undefined, undefined, undefined])[qos] ??= encode5(
        topic,
        payload,
        qos,
        forwardedProperties(properties, {}),
      );
    }
    const shapes = this.#shapes ??= new Map();
    const key = shapeKey(qos, fields);
    const hit = shapes.get(key);
    if (hit !== undefined) return hit;
    if (
      fields.topicAlias !== undefined && !(fields.topicAlias >= 1 && fields.topicAlias <= 65535)
    ) {
      // [MQTT-3.3.2-8]: no Topic Alias 0; the codec would refuse 65536 and above too.
      throw new RangeError(
        `Cannot encode PUBLISH: Topic Alias ${fields.topicAlias} is not 1-65535`,
      );
    }
    const encoded = encode5(
      fields.omitTopic === true ? "" : topic,
      payload,
      qos,
      forwardedProperties(properties, fields),
    );
    if (shapes.size >= SHAPES_KEPT) shapes.delete(shapes.keys().next().value!);
    shapes.set(key, encoded);
    return encoded;
  }
}

function encode5(
  topic: string,
  payload: Uint8Array,
  qos: QoS,
  properties: Properties | undefined,
): EncodedPublish {
  const bytes = encodePacket({
    type: 3,
    topic,
    payload,
    qos,
    retain: false,
    dup: false,
    packetId: qos > 0 ? 1 : undefined,
    properties,
  }, 5);
  return { bytes, packetIdOffset: qos > 0 ? publishPacketIdOffset(bytes) : 0 };
}
