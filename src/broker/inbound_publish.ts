/**
 * The checks the broker makes on a PUBLISH from an MQTT 5.0 client after the codec's (which
 * already refuses a Subscription Identifier [MQTT-3.3.4-6], an empty topic without alias and a
 * wildcard Response Topic): the topic behind a Topic Alias, the Maximum QoS and Retain Available
 * the broker announced, and a payload said to be UTF-8. Pure: the connection's aliases are passed
 * in, the verdict comes back.
 *
 * @module
 */

import { ReasonCode } from "../packet/constants.ts";
import type { PublishPacket } from "../packet/types.ts";
import type { InboundTopicAliases } from "../session/topic_aliases.ts";
import { type FeatureLimits, unsupportedFeature } from "./feature_limits.ts";

/** What the broker announced in CONNACK that limits a client's PUBLISH. */
export interface InboundPublishLimits extends FeatureLimits {
  /** Check that a payload with Payload Format Indicator 1 is UTF-8 (optional in the standard). */
  checkPayloadFormat?: boolean;
}

/**
 * Why an inbound PUBLISH is not handled: answer PUBACK/PUBREC with `reasonCode` when `disconnect`
 * is false (QoS 1 and 2 only), else close with DISCONNECT `reasonCode`.
 */
export interface InboundPublishRefusal {
  readonly reasonCode: number;
  readonly disconnect: boolean;
  readonly reason: string;
}

/**
 * The verdict on one inbound PUBLISH: the topic name to handle it under (its Topic Alias
 * resolved; the PUBLISH's own topic string when it has none, so that a PUBLISH without
 * properties costs no allocation), or why not.
 */
export type InboundPublishVerdict = string | InboundPublishRefusal;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function refuse(
  reasonCode: number,
  disconnect: boolean,
  reason: string,
): InboundPublishRefusal {
  return { reasonCode, disconnect, reason };
}

/**
 * Checks a PUBLISH from a 5.0 client and finds its topic name.
 *
 * @param packet the PUBLISH as decoded
 * @param aliases the Topic Alias mappings of this connection (made with the broker's Topic Alias
 *   Maximum, one per connection [MQTT-3.3.2-7])
 * @param limits what the broker announced in CONNACK
 * @returns the topic to route it under (a string), or what to answer
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkInboundPublish } from "./inbound_publish.ts";
 * import { InboundTopicAliases } from "../session/topic_aliases.ts";
 *
 * const aliases = new InboundTopicAliases(10, { peer: "Client" });
 * const publish = (topic: string, topicAlias?: number) => ({
 *   type: 3 as const, topic, payload: new Uint8Array(), qos: 0 as const, retain: false, dup: false,
 *   properties: topicAlias === undefined ? undefined : { topicAlias },
 * });
 * assert.equal(checkInboundPublish(publish("a/b", 1), aliases), "a/b");
 * assert.equal(checkInboundPublish(publish("", 1), aliases), "a/b");
 * assert.equal(checkInboundPublish(publish("c/d"), aliases), "c/d");
 * ```
 */
export function checkInboundPublish(
  packet: PublishPacket,
  aliases: InboundTopicAliases,
  limits: InboundPublishLimits = {},
): InboundPublishVerdict {
  const properties = packet.properties;
  let topic = packet.topic;
  const alias = properties?.topicAlias;
  if (alias !== undefined) {
    // [MQTT-3.3.2-12]: every alias from 1 to our Topic Alias Maximum is accepted; 0 or above it
    // is DISCONNECT 0x94 [MQTT-3.3.2-8], an alias not mapped yet a Protocol Error.
    const resolved = aliases.resolve(topic, alias);
    if (typeof resolved !== "string") return refuse(resolved.reasonCode, true, resolved.message);
    topic = resolved;
  }
  // A QoS above the Maximum QoS is DISCONNECT 0x9B (§3.2.2.3.4), RETAIN 1 when retain is not
  // available DISCONNECT 0x9A (§3.2.2.3.5).
  const unsupported = unsupportedFeature(packet, limits);
  if (unsupported !== undefined) {
    return refuse(unsupported.reasonCode, true, `PUBLISH refused: ${unsupported.reason}`);
  }
  if (limits.checkPayloadFormat && properties?.payloadFormatIndicator === 1) {
    try {
      utf8.decode(packet.payload);
    } catch {
      // MQTT 5.0 §3.3.2.3.2: PUBACK/PUBREC 0x99, or DISCONNECT 0x99 for QoS 0 (it has no ack).
      return refuse(
        ReasonCode.PAYLOAD_FORMAT_INVALID,
        packet.qos === 0,
        "Payload Format Indicator says UTF-8 and the payload is not",
      );
    }
  }
  return topic;
}
