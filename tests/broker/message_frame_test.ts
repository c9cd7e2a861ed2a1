/**
 * BrokerMessage with the PUBLISH it was received in: deliveries of the received shape copy those
 * bytes (no encoding), every other shape is encoded; a detached message no longer refers to them.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decodePacket,
  encodePacket,
  PacketType,
  type ProtocolVersion,
  type PublishPacket,
  publishPacketIdOffset,
  type QoS,
} from "../../src/packet/mod.ts";
import { BrokerMessage } from "../../src/broker/message.ts";

function publish(topic: string): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([5, 6, 7]),
    qos: 0,
    retain: false,
    dup: false,
  };
}

function received(
  version: ProtocolVersion,
  qos: QoS,
  extra: Partial<PublishPacket> = {},
): { bytes: Uint8Array; message: BrokerMessage } {
  const bytes = encodePacket({
    type: PacketType.PUBLISH,
    topic: "in/1",
    payload: new Uint8Array([5, 6, 7]),
    qos,
    retain: false,
    dup: false,
    packetId: qos > 0 ? 42 : undefined,
    ...extra,
  }, version);
  const packet = decodePacket(bytes, { protocolVersion: version })!.packet as PublishPacket;
  const message = new BrokerMessage(packet.topic, packet.payload, {
    qos: packet.qos,
    retain: packet.retain,
    properties: packet.properties,
    receivedAt: version === 5 ? 5 : 4,
  });
  return { bytes, message };
}

Deno.test("BrokerMessage.encoded gives the received 3.1.1 PUBLISH itself for its own QoS, an encoding for another", () => {
  const { bytes, message } = received(4, 1, { retain: true, dup: true });
  const same = message.encoded(4, 1);
  assert.equal(same.buffer, bytes.buffer, "the received bytes, not a copy");
  assert.deepEqual(same, bytes);
  assert.equal(message.packetIdOffset(same), same.length - 3 - 2);
  assert.equal(message.encoded(3, 1), same, "3.1 has the same PUBLISH layout");
  const lower = message.encoded(4, 0);
  assert.notEqual(lower.buffer, bytes.buffer);
  assert.equal(lower[0], 0x30);
  // A 5.0 subscriber's PUBLISH has a property list: encoded.
  assert.notEqual(message.encoded5(1, {}, 0).bytes.buffer, bytes.buffer);
});

Deno.test("BrokerMessage.encoded5 gives a received 5.0 PUBLISH without properties itself for a delivery with nothing of its own", () => {
  const { bytes, message } = received(5, 2);
  const plain = message.encoded5(2, {}, 0);
  assert.equal(plain.bytes.buffer, bytes.buffer);
  assert.equal(plain.packetIdOffset, bytes.length - 3 - 3);
  assert.equal(message.encoded5(2, {}, 0), plain, "found again without a new object");
  const ids = message.encoded5(2, { subscriptionIdentifiers: [3] }, 0);
  assert.notEqual(ids.bytes.buffer, bytes.buffer);
  assert.notEqual(message.encoded(4, 2).buffer, bytes.buffer, "3.1.1 has no property list");
});

Deno.test("BrokerMessage.encoded5 encodes a received 5.0 PUBLISH with properties", () => {
  const { bytes, message } = received(5, 0, { properties: { contentType: "c" } });
  assert.notEqual(message.encoded5(0, {}, 0).bytes.buffer, bytes.buffer);
});

Deno.test("BrokerMessage.detach lets go of the received bytes: later deliveries are encoded", () => {
  const { bytes, message } = received(4, 0);
  assert.equal(message.encoded(4, 0).buffer, bytes.buffer);
  message.detach();
  const after = message.encoded(4, 0);
  assert.notEqual(after.buffer, bytes.buffer);
  assert.deepEqual(after, bytes);
});

Deno.test("BrokerMessage.plain5 gives a received 5.0 PUBLISH without properties itself, with no object per message, and encodes every other shape", () => {
  const { bytes, message } = received(5, 1);
  const same = message.plain5(1);
  assert.equal(same.buffer, bytes.buffer, "the received bytes, not a copy");
  assert.deepEqual(same, bytes);
  assert.equal(publishPacketIdOffset(same), bytes.length - 3 - 3);
  assert.deepEqual(same, message.encoded5(1, {}, 0).bytes, "what encoded5 gives for the shape");
  // Another QoS: encoded once, the same bytes for every delivery.
  const lower = message.plain5(0);
  assert.notEqual(lower.buffer, bytes.buffer);
  assert.equal(message.plain5(0), lower);
  assert.deepEqual(lower, encodePacket({ ...publish("in/1"), qos: 0 }, 5));
  // With properties: encoded, the properties forwarded [MQTT-3.3.2-17].
  const props = received(5, 0, { properties: { userProperties: [["k", "v"]] } });
  const encoded = props.message.plain5(0);
  assert.notEqual(encoded.buffer, props.bytes.buffer);
  assert.deepEqual(encoded, props.bytes);
  // A received 3.1.1 PUBLISH has no property list: encoded at level 5.
  const old = received(4, 0);
  assert.notEqual(old.message.plain5(0).buffer, old.bytes.buffer);
});

Deno.test("BrokerMessage.plain5 refuses a message that expires: its expiry interval is written per delivery [MQTT-3.3.2-6]", () => {
  const message = new BrokerMessage("t", new Uint8Array([1]), {
    qos: 0,
    retain: false,
    expiresAt: 60_000,
  });
  assert.throws(() => message.plain5(0), RangeError);
});
