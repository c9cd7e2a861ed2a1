// PublishEncoding at level 5: properties forwarded untouched, per-delivery fields, one encoding
// per delivery shape. Checked by decoding the bytes with the codec, and one golden vector.

import assert from "node:assert/strict";
import { forwardedProperties, PublishEncoding } from "../../src/broker/publish_encoding.ts";
import { BrokerMessage } from "../../src/broker/message.ts";
import {
  decodePacket,
  encodePacket,
  PacketType,
  type PublishPacket,
  publishPacketIdOffset,
} from "../../src/packet/mod.ts";
import type { Properties } from "../../src/packet/types.ts";

const payload = new TextEncoder().encode("hello");

function decode5(bytes: Uint8Array, packetIdOffset: number, packetId = 0x0102): PublishPacket {
  const copy = bytes.slice();
  if (packetIdOffset > 0) {
    copy[packetIdOffset] = packetId >> 8;
    copy[packetIdOffset + 1] = packetId & 0xff;
  }
  const result = decodePacket(copy, { protocolVersion: 5 });
  assert.ok(result !== undefined);
  assert.equal(result.length, copy.length);
  assert.equal(result.packet.type, PacketType.PUBLISH);
  return result.packet as PublishPacket;
}

const received: Properties = {
  payloadFormatIndicator: 1,
  messageExpiryInterval: 120,
  contentType: "text/plain",
  responseTopic: "replies/42",
  correlationData: new Uint8Array([9, 8, 7]),
  topicAlias: 5,
  userProperties: [["b", "2"], ["a", "1"], ["b", "3"]],
};

Deno.test("PublishEncoding.get5 (MQTT 5) forwards the message properties untouched [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]", () => {
  const e = new PublishEncoding().get5("t/1", payload, 1, received, { messageExpiryInterval: 100 });
  const p = decode5(e.bytes, e.packetIdOffset);
  assert.equal(p.topic, "t/1");
  assert.equal(p.packetId, 0x0102);
  assert.deepEqual(p.payload, payload);
  assert.deepEqual(p.properties, {
    payloadFormatIndicator: 1,
    messageExpiryInterval: 100,
    contentType: "text/plain",
    responseTopic: "replies/42",
    correlationData: new Uint8Array([9, 8, 7]),
    // In their order, a repeated name twice.
    userProperties: [["b", "2"], ["a", "1"], ["b", "3"]],
  });
});

Deno.test("PublishEncoding.get5 (MQTT 5) never forwards the publisher's Topic Alias [MQTT-3.3.2-7]", () => {
  const e = new PublishEncoding().get5("t", payload, 0, { topicAlias: 7 });
  const p = decode5(e.bytes, e.packetIdOffset);
  assert.equal(p.topic, "t");
  assert.equal(p.properties, undefined);
});

Deno.test("PublishEncoding.get5 (MQTT 5) carries the delivery's Subscription Identifiers [MQTT-3.3.4-3]", () => {
  const e = new PublishEncoding().get5("t", payload, 2, undefined, {
    subscriptionIdentifiers: [3, 268_435_455],
  });
  assert.deepEqual(decode5(e.bytes, e.packetIdOffset).properties, {
    subscriptionIdentifier: [3, 268_435_455],
  });
});

Deno.test("PublishEncoding.get5 (MQTT 5) sends an alias with an empty topic once mapped; the packet id stays patchable", () => {
  const enc = new PublishEncoding();
  const first = enc.get5("long/topic/name", payload, 1, undefined, { topicAlias: 1 });
  const p1 = decode5(first.bytes, first.packetIdOffset, 7);
  assert.deepEqual([p1.topic, p1.properties?.topicAlias, p1.packetId], ["long/topic/name", 1, 7]);
  const later = enc.get5("long/topic/name", payload, 1, undefined, {
    topicAlias: 1,
    omitTopic: true,
  });
  const p2 = decode5(later.bytes, later.packetIdOffset, 8);
  assert.deepEqual([p2.topic, p2.properties?.topicAlias, p2.packetId], ["", 1, 8]);
  assert.ok(later.bytes.length < first.bytes.length);
});

Deno.test("PublishEncoding.get5 (MQTT 5) refuses Topic Alias 0 [MQTT-3.3.2-8]", () => {
  assert.throws(
    () => new PublishEncoding().get5("t", payload, 0, undefined, { topicAlias: 0 }),
    RangeError,
  );
});

Deno.test("PublishEncoding.get5 encodes once per delivery shape", () => {
  const enc = new PublishEncoding();
  const a = enc.get5("t", payload, 1, received, { subscriptionIdentifiers: [1] });
  assert.equal(enc.get5("t", payload, 1, received, { subscriptionIdentifiers: [1] }), a);
  const b = enc.get5("t", payload, 1, received, { subscriptionIdentifiers: [2] });
  assert.notEqual(b, a);
  assert.notEqual(enc.get5("t", payload, 2, received, { subscriptionIdentifiers: [1] }), a);
  // A bounded number of shapes is kept: the oldest goes first.
  for (let id = 10; id < 30; id++) {
    enc.get5("t", payload, 1, received, { subscriptionIdentifiers: [id] });
  }
  assert.notEqual(enc.get5("t", payload, 1, received, { subscriptionIdentifiers: [1] }), a);
});

Deno.test("PublishEncoding.get5 golden bytes: QoS 1, one subscription identifier, a user property", () => {
  const e = new PublishEncoding().get5("a/b", new Uint8Array([0x68, 0x69]), 1, {
    userProperties: [["k", "v"]],
  }, { subscriptionIdentifiers: [300] });
  // deno-fmt-ignore
  const expected = [
    0x32, 0x14, // PUBLISH QoS 1, remaining length 20
    0x00, 0x03, 0x61, 0x2f, 0x62, // topic "a/b"
    0x00, 0x01, // packet id placeholder
    0x0a, // properties length 10
    0x0b, 0xac, 0x02, // subscription identifier 300
    0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76, // user property k=v
    0x68, 0x69, // payload "hi"
  ];
  assert.deepEqual([...e.bytes], expected);
  assert.equal(e.packetIdOffset, 7);
});

Deno.test("forwardedProperties is undefined when nothing is to be forwarded", () => {
  assert.equal(forwardedProperties(undefined, {}), undefined);
  assert.equal(forwardedProperties({ topicAlias: 2, userProperties: [] }, {}), undefined);
});

Deno.test("BrokerMessage.encoded5 (MQTT 5) carries the expiry interval left at the time of sending [MQTT-3.3.2-6]", () => {
  const m = new BrokerMessage("t", payload, {
    qos: 1,
    retain: false,
    properties: { messageExpiryInterval: 60, contentType: "c" },
    expiresAt: 160_000,
  });
  const at = (now: number) => {
    const e = m.encoded5(1, {}, now);
    return decode5(e.bytes, e.packetIdOffset).properties;
  };
  assert.deepEqual(at(100_000), { messageExpiryInterval: 60, contentType: "c" });
  assert.deepEqual(at(145_500), { messageExpiryInterval: 15, contentType: "c" });
  // No deadline: no Message Expiry Interval.
  const forever = new BrokerMessage("t", payload, { qos: 0, retain: false });
  const e = forever.encoded5(0, { subscriptionIdentifiers: [4] }, 0);
  assert.deepEqual(decode5(e.bytes, e.packetIdOffset).properties, { subscriptionIdentifier: [4] });
});

Deno.test("PublishEncoding writes a PUBLISH without properties as the encoder would, at each level and QoS, ASCII topic or not", () => {
  for (const topic of ["a/b", "ä/ü", "t".repeat(200)]) {
    for (const qos of [0, 1, 2] as const) {
      const big = new Uint8Array(300).fill(7);
      for (const body of [payload, big]) {
        const e = new PublishEncoding();
        const packet = {
          type: PacketType.PUBLISH,
          topic,
          payload: body,
          qos,
          retain: false,
          dup: false,
          packetId: qos > 0 ? 1 : undefined,
        } as const;
        assert.deepEqual(e.get(topic, body, 4, qos), encodePacket(packet, 4), `${topic} ${qos}`);
        const five = e.get5(topic, body, qos, undefined);
        assert.deepEqual(five.bytes, encodePacket(packet, 5), `${topic} ${qos} at 5`);
        assert.equal(five.packetIdOffset, qos > 0 ? publishPacketIdOffset(five.bytes) : 0);
      }
    }
  }
});
