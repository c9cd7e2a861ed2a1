/**
 * Broker, area 02: subscriptions, wildcards, SUBACK/UNSUBACK and routing at QoS 0.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BrokerMessage } from "../../src/broker/message.ts";
import { PacketDecoder, PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Reads PUBLISH packets until nothing arrives for `quietMs`; returns their topics. */
async function topicsReceived(client: TestClient, quietMs = 200): Promise<string[]> {
  const topics: string[] = [];
  for (;;) {
    const got = await client.poll(quietMs);
    if (got === undefined) return topics;
    assert.equal(got.type, PacketType.PUBLISH);
    if (got.type === PacketType.PUBLISH) topics.push(got.topic);
  }
}

test("02 subscribe: SUBACK carries the packet id and the granted QoS per filter [MQTT-3.8.4-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  const suback = await c.subscribe({ "a": 0, "b": 1, "c": 2 }, 0x1234);
  assert.equal(suback.packetId, 0x1234);
  assert.deepEqual(suback.reasonCodes, [0, 1, 2]);
});

test("02 subscribe: invalid filters get 0x80, the others are granted [MQTT-3.8.4-5]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  const suback = await c.subscribe({ "a/#/b": 1, "ok/+": 1, "a+": 0, "x#": 2, "fine/#": 2 });
  assert.deepEqual(suback.reasonCodes, [0x80, 1, 0x80, 0x80, 2]);
  assert.deepEqual(
    b.broker.subscriptions().map((s) => s.topic).sort(),
    ["fine/#", "ok/+"],
  );
  // The connection stays usable.
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("ok/1", "m"));
  assert.equal((await c.expect(PacketType.PUBLISH)).topic, "ok/1");
});

test("02 subscribe: '+' matches exactly one level, '#' the parent and all below [MQTT-4.7.1-2]", async () => {
  await using b = await startBroker();
  await using plus = await TestClient.connect(b.port, { clientId: "plus" });
  await plus.subscribe({ "sport/+/player": 0 });
  await using hash = await TestClient.connect(b.port, { clientId: "hash" });
  await hash.subscribe({ "sport/#": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const topics = [
    "sport",
    "sport/tennis/player",
    "sport//player",
    "sport/tennis/player/ranking",
    "sport/tennis",
    "sports/tennis/player",
  ];
  for (const t of topics) await pub.send(publishPacket(t, t));
  assert.deepEqual(await topicsReceived(plus), ["sport/tennis/player", "sport//player"]);
  assert.deepEqual(await topicsReceived(hash), [
    "sport",
    "sport/tennis/player",
    "sport//player",
    "sport/tennis/player/ranking",
    "sport/tennis",
  ]);
});

test("02 subscribe: '+' alone and '#' alone match every non-$ topic", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "all" });
  await c.subscribe({ "#": 0 });
  await using one = await TestClient.connect(b.port, { clientId: "one" });
  await one.subscribe({ "+": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("x", "1"), publishPacket("x/y", "2"), publishPacket("/", "3"));
  assert.deepEqual(await topicsReceived(c), ["x", "x/y", "/"]);
  assert.deepEqual(await topicsReceived(one), ["x"]);
});

test("02 subscribe: $-topics are not matched by a wildcard first level [MQTT-4.7.2-1]", async () => {
  await using b = await startBroker();
  await using wild = await TestClient.connect(b.port, { clientId: "wild" });
  await wild.subscribe({ "#": 0, "+/status": 0, "+/+": 0 });
  await using dollar = await TestClient.connect(b.port, { clientId: "dollar" });
  await dollar.subscribe({ "$app/#": 0, "$app/+": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("$app/status", "d"));
  await pub.send(publishPacket("app/status", "n"));
  assert.deepEqual(await topicsReceived(wild), ["app/status"]);
  // One copy for the two overlapping $app filters.
  assert.deepEqual(await topicsReceived(dollar), ["$app/status"]);
});

test("02 subscribe: clients cannot publish into $SYS", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "$SYS/broker/fake": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("$SYS/broker/fake", "x", { qos: 1, packetId: 3 }));
  // The flow completes (3.1.1 cannot refuse a PUBLISH) but nothing is routed.
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 3);
  await sub.expectNothing(200);
});

test("02 subscribe: overlapping subscriptions deliver one copy at the highest QoS [MQTT-3.3.5-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  await c.subscribe({ "a/#": 0, "a/+": 2, "a/b": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("a/b", "once", { qos: 2, packetId: 7 }));
  await pub.expect(PacketType.PUBREC);
  const got = await c.expect(PacketType.PUBLISH);
  assert.equal(text(got), "once");
  assert.equal(got.qos, 2);
  await c.expectNothing(200);
});

test("02 subscribe: a repeated filter replaces the subscription's QoS [MQTT-3.8.4-3]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  await c.subscribe({ "t": 2 }, 1);
  await c.subscribe({ "t": 0 }, 2);
  assert.deepEqual(b.broker.subscriptions(), [{ clientId: "s", topic: "t", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("t", "x", { qos: 1, packetId: 1 }));
  const got = await c.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 0);
  await c.expectNothing(150);
});

test("02 subscribe: the publisher receives its own message when subscribed", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "self" });
  await c.subscribe({ "me": 0 });
  await c.send(publishPacket("me", "echo"));
  assert.equal(text(await c.expect(PacketType.PUBLISH)), "echo");
});

test("02 subscribe: a QoS 0 PUBLISH reaches every matching subscriber with its payload intact", async () => {
  await using b = await startBroker();
  const subs: TestClient[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const s = await TestClient.connect(b.port, { clientId: `s${i}` });
      subs.push(s);
      await s.subscribe({ "fan/out": 0 });
    }
    await using pub = await TestClient.connect(b.port, { clientId: "p" });
    const payload = new Uint8Array(3000).map((_, i) => i & 0xff);
    await pub.send(publishPacket("fan/out", payload));
    for (const s of subs) {
      const got = await s.expect(PacketType.PUBLISH);
      assert.deepEqual(got.payload, payload);
      assert.equal(got.qos, 0);
      assert.equal(got.retain, false);
      assert.equal(got.dup, false);
    }
  } finally {
    for (const s of subs) await s.close();
  }
});

test("02 unsubscribe: UNSUBACK with the same id, and no more messages [MQTT-3.10.4-4]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  await c.subscribe({ "u/1": 0, "u/2": 0 });
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 0x0102, topics: ["u/1"] });
  const unsuback = await c.expect(PacketType.UNSUBACK);
  assert.equal(unsuback.packetId, 0x0102);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("u/1", "gone"), publishPacket("u/2", "kept"));
  assert.deepEqual(await topicsReceived(c), ["u/2"]);
  assert.deepEqual(b.broker.subscriptions().map((s) => s.topic), ["u/2"]);
});

test("02 unsubscribe: UNSUBACK even for filters never subscribed [MQTT-3.10.4-5]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 9, topics: ["never/was", "a/#"] });
  assert.equal((await c.expect(PacketType.UNSUBACK)).packetId, 9);
  await c.send({ type: PacketType.PINGREQ });
  await c.expect(PacketType.PINGRESP);
});

test("02 unsubscribe: filters are compared as strings, not matched [MQTT-3.10.4-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  await c.subscribe({ "w/+": 0 });
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 2, topics: ["w/x", "w/#"] });
  await c.expect(PacketType.UNSUBACK);
  assert.deepEqual(b.broker.subscriptions().map((s) => s.topic), ["w/+"]);
});

test("02 ping: PINGREQ gets PINGRESP [MQTT-3.12.4-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "p" });
  for (let i = 0; i < 3; i++) {
    await c.sendBytes([0xc0, 0x00]);
    await c.expect(PacketType.PINGRESP);
  }
});

test("02 subscribe: subscription changes take effect for topics already published to", async () => {
  await using b = await startBroker();
  await using a = await TestClient.connect(b.port, { clientId: "a" });
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await a.subscribe({ "c/t": 0 }, 1);
  await pub.send(publishPacket("c/t", "1"));
  assert.equal(text(await a.expect(PacketType.PUBLISH)), "1");
  await a.send({ type: PacketType.UNSUBSCRIBE, packetId: 2, topics: ["c/t"] });
  await a.expect(PacketType.UNSUBACK);
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  await c.subscribe({ "c/+": 0 });
  await pub.send(publishPacket("c/t", "2"));
  assert.equal(text(await c.expect(PacketType.PUBLISH)), "2");
  await a.expectNothing(150);
  await a.subscribe({ "c/#": 1 }, 3);
  await pub.send(publishPacket("c/t", "3", { qos: 1, packetId: 9 }));
  const got = await a.expect(PacketType.PUBLISH);
  assert.deepEqual([text(got), got.qos], ["3", 1]);
  // A client that left is not delivered to any more, even for a topic matched before.
  await c.disconnect();
  await waitFor(() => b.broker.clients().every((x) => x.clientId !== "c"));
  await pub.send(publishPacket("c/t", "4"));
  assert.equal(text(await a.expect(PacketType.PUBLISH)), "4");
  assert.deepEqual(b.broker.subscriptions().map((s) => s.clientId), ["a"]);
});

test("02 fan-out: a message is encoded once per QoS and shared by every subscriber's write", () => {
  const message = new BrokerMessage("fan/t", new TextEncoder().encode("p"), {
    qos: 2,
    retain: false,
  });
  const q1 = message.encoded(4, 1);
  // The same bytes object for every subscriber, and for MQTT 3.1 (identical PUBLISH layout).
  assert.equal(message.encoded(4, 1), q1);
  assert.equal(message.encoded(3, 1), q1);
  assert.notEqual(message.encoded(4, 2), q1);
  // The packet id sits where the connection patches it per subscriber.
  const copy = q1.slice();
  copy[message.packetIdOffset(q1)] = 0x12;
  copy[message.packetIdOffset(q1) + 1] = 0x34;
  const decoder = new PacketDecoder({ protocolVersion: 4, side: "client" });
  decoder.push(copy);
  assert.deepEqual(decoder.next(), publishPacket("fan/t", "p", { qos: 1, packetId: 0x1234 }));
  const q0 = message.encoded(4, 0);
  decoder.push(q0);
  const plain = decoder.next();
  assert.ok(plain?.type === PacketType.PUBLISH);
  assert.deepEqual([plain.topic, text(plain), plain.qos, plain.packetId], [
    "fan/t",
    "p",
    0,
    undefined,
  ]);
});
