/**
 * MQTT 5.0 PUBLISH packets forwarded as received: a 5.0 PUBLISH without properties (an empty
 * property list) reaches 5.0 subscribers whose delivery adds nothing byte for byte as it was sent,
 * up to the flags and packet id each delivery has; read off the subscriber's socket, not decoded.
 * Every delivery that needs something of its own still gets it in the same routing: Subscription
 * Identifiers, the expiry interval left, Retain As Published, No Local, a Maximum Packet Size, a
 * 3.1.1 subscriber, and a publisher's Topic Alias.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType, type QoS } from "../../src/packet/mod.ts";
import type { PublishPacket } from "../../src/packet/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { RawSubscriber } from "../_helpers/raw_subscriber.ts";
import { publish5, publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/**
 * What the subscriber must receive for a forwarded PUBLISH: the bytes sent, with this delivery's
 * QoS, DUP 0 and RETAIN 0 (a live forward [MQTT-3.3.1-9]) and the subscriber's packet id.
 */
function forwarded(sent: Uint8Array, qos: QoS, packetId?: number): Uint8Array {
  const out = sent.slice();
  out[0] = (PacketType.PUBLISH << 4) | (qos << 1);
  if (packetId !== undefined) {
    // Fixed header, remaining length (one byte here), topic length and topic, then the id.
    const at = 2 + 2 + ((out[2]! << 8) | out[3]!);
    out[at] = packetId >> 8;
    out[at + 1] = packetId & 0xff;
  }
  return out;
}

for (const qos of [0, 1, 2] as const) {
  test(`40 v5 received bytes: a 5.0 QoS ${qos} PUBLISH without properties reaches a 5.0 subscriber byte for byte, with its own flags and packet id [MQTT-3.3.1-9]`, async () => {
    await using b = await startBroker();
    await using sub = await RawSubscriber.open(b.port, "raw", { topic: "rb/#", qos });
    await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
    const packet = publishPacket("rb/1", "the same bytes", {
      qos,
      packetId: 0x1234,
      retain: true,
      dup: qos > 0,
    });
    const sent = encodePacket(packet, 5);
    // An empty property list: one byte, 0.
    assert.equal(sent[2 + 2 + 4 + (qos > 0 ? 2 : 0)], 0);
    await pub.sendBytes(sent);
    if (qos > 0) await pub.expect(qos === 1 ? PacketType.PUBACK : PacketType.PUBREC);
    assert.deepEqual(await sub.publishBytes(), forwarded(sent, qos, qos > 0 ? 1 : undefined));
  });
}

test("40 v5 received bytes: a 5.0 QoS 1 PUBLISH to a QoS 0 subscription is the QoS 0 PUBLISH an encoding gives [MQTT-3.8.4-8]", async () => {
  await using b = await startBroker();
  await using sub = await RawSubscriber.open(b.port, "raw", { topic: "rb/#", qos: 0 });
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
  await pub.send(publishPacket("rb/down", "lower", { qos: 1, packetId: 9 }));
  await pub.expect(PacketType.PUBACK);
  assert.deepEqual(await sub.publishBytes(), encodePacket(publishPacket("rb/down", "lower"), 5));
});

test("40 v5 received bytes: 5.0 deliveries that need something of their own get it while a plain one gets the bytes as sent [MQTT-3.3.4-3] [MQTT-3.3.1-12] [MQTT-3.1.2-24]", async () => {
  await using b = await startBroker();
  await using plain = await RawSubscriber.open(b.port, "plain", { topic: "mx/#", qos: 0 });
  // A Maximum Packet Size below the PUBLISH: never sent to it [MQTT-3.1.2-24].
  await using small = await RawSubscriber.open(
    b.port,
    "small",
    { topic: "mx/#", qos: 0 },
    { maximumPacketSize: 16 },
  );
  await using ids = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "ids" });
  await subscribe5(ids, [{ topic: "mx/+", qos: 0 }], { identifier: 42 });
  await using rap = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "rap" });
  await subscribe5(rap, [{ topic: "mx/#", qos: 0, retainAsPublished: true }]);
  await using old = await TestClient.connect(b.port, { clientId: "old" });
  await old.subscribe({ "mx/#": 0 });
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
  const sent = encodePacket(publishPacket("mx/1", "for everyone", { retain: true }), 5);
  await pub.sendBytes(sent);
  assert.deepEqual(await plain.publishBytes(), forwarded(sent, 0));
  // The Subscription Identifier of the matching subscription goes with the message
  // [MQTT-3.3.4-3].
  const withId = await ids.expect(PacketType.PUBLISH);
  assert.deepEqual([withId.topic, text(withId), withId.retain], ["mx/1", "for everyone", false]);
  assert.deepEqual(withId.properties?.subscriptionIdentifier, [42]);
  // Retain As Published keeps the RETAIN it was published with [MQTT-3.3.1-12].
  const kept = await rap.expect(PacketType.PUBLISH);
  assert.deepEqual([kept.topic, kept.retain, kept.properties], ["mx/1", true, undefined]);
  // A 3.1.1 subscriber gets a 3.1.1 PUBLISH (no property list).
  const down = await old.expect(PacketType.PUBLISH);
  assert.deepEqual([down.topic, text(down), down.retain], ["mx/1", "for everyone", false]);
  await small.expectNothing(200);
});

test("40 v5 received bytes: No Local keeps the publisher's own message from it while another 5.0 subscriber gets the bytes as sent [MQTT-3.8.3-3]", async () => {
  await using b = await startBroker();
  await using other = await RawSubscriber.open(b.port, "other", { topic: "nl/#", qos: 0 });
  await using self = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "self" });
  await subscribe5(self, [{ topic: "nl/#", qos: 0, noLocal: true }]);
  const sent = encodePacket(publishPacket("nl/1", "not to myself"), 5);
  await self.sendBytes(sent);
  assert.deepEqual(await other.publishBytes(), sent);
  await self.expectNothing(200);
});

test("40 v5 received bytes: a PUBLISH with a Message Expiry Interval goes out with the interval left, never as received [MQTT-3.3.2-6]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "s" });
  await subscribe5(sub, [{ topic: "ex/#", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
  await pub.send(publish5("ex/1", "expires", { messageExpiryInterval: 120 }));
  const got = await sub.expect(PacketType.PUBLISH);
  const left = got.properties?.messageExpiryInterval;
  assert.ok(left !== undefined && left <= 120 && left >= 100, `interval left ${left}`);
  assert.equal(text(got), "expires");
});

test("40 v5 received bytes: a PUBLISH with a Topic Alias reaches subscribers under its topic name, without the publisher's alias [MQTT-3.3.2-7] [MQTT-3.3.2-12]", async () => {
  await using b = await startBroker({ topic_alias_maximum: 4 });
  await using sub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "s" });
  await subscribe5(sub, [{ topic: "al/#", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
  await pub.send(publish5("al/1", "first", { topicAlias: 2 }));
  await pub.send(publish5("", "second", { topicAlias: 2 }));
  for (const payload of ["first", "second"]) {
    const got: PublishPacket = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([got.topic, text(got), got.properties], ["al/1", payload, undefined]);
  }
});

test("40 v5 received bytes: user properties are forwarded in order, as sent [MQTT-3.3.2-17] [MQTT-3.3.2-18]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "s" });
  await subscribe5(sub, [{ topic: "up/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
  const userProperties: [string, string][] = [["b", "2"], ["a", "1"], ["b", "3"]];
  await pub.send(publish5("up/1", "props", { userProperties }, { qos: 1, packetId: 5 }));
  await pub.expect(PacketType.PUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual(got.properties?.userProperties, userProperties);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
});
