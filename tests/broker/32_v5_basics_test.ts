/**
 * Broker, area 32: the rules MQTT 5.0 shares with 3.1.1, checked for 5.0 clients byte by byte over
 * TCP: Clean Start, SUBACK/UNSUBACK identity, QoS downgrade, QoS 2 flow, retained messages, PING.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("32 v5 basics: Clean Start 1 discards the kept session, Session Present 0 [MQTT-3.1.2-4] [MQTT-3.2.2-2]", async () => {
  await using b = await startBroker();
  const keep = { ...V5, clientId: "cs", clean: false, properties: { sessionExpiryInterval: 60 } };
  {
    await using c = await TestClient.connect(b.port, keep);
    await c.send({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "cs", qos: 1 }],
    });
    await c.expect(PacketType.SUBACK);
  }
  await waitFor(() => b.broker.clients().find((x) => x.clientId === "cs")?.connected === false);
  await using again = await TestClient.open(b.port, V5);
  const connack = await again.handshake({ ...keep, clean: true });
  assert.equal(connack.sessionPresent, false);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("cs", "x"));
  await again.expectNothing(300);
  assert.equal(again.socketEnded, false, "the old subscription went with the old session");
});

test("32 v5 basics: CONNACK comes first and once; SUBACK and UNSUBACK carry the packet id [MQTT-3.2.0-1] [MQTT-3.2.0-2] [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "ids" });
  assert.equal(connack.reasonCode, 0);
  await c.send({
    type: PacketType.SUBSCRIBE,
    packetId: 41,
    subscriptions: [{ topic: "a", qos: 0 }],
  });
  const suback = await c.expect(PacketType.SUBACK);
  assert.equal(suback.packetId, 41);
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 42, topics: ["none"] });
  const unsuback = await c.expect(PacketType.UNSUBACK);
  assert.equal(unsuback.packetId, 42);
  await c.send({ type: PacketType.PINGREQ });
  await c.expect(PacketType.PINGRESP);
});

test("32 v5 basics: delivery at the lower of published and granted QoS; QoS 2 ends with PUBCOMP [MQTT-3.8.4-8] [MQTT-4.3.3-11] [MQTT-3.12.4-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await sub.send({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "q", qos: 1 }],
  });
  await sub.expect(PacketType.SUBACK);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q", "two", { qos: 2, packetId: 9 }));
  const pubrec = await pub.expect(PacketType.PUBREC);
  assert.equal(pubrec.packetId, 9);
  await pub.send({ type: PacketType.PUBREL, packetId: 9 });
  const pubcomp = await pub.expect(PacketType.PUBCOMP);
  assert.equal(pubcomp.packetId, 9);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 1);
  assert.equal(text(got), "two");
  await pub.send({ type: PacketType.PINGREQ });
  await pub.expect(PacketType.PINGRESP);
});

test("32 v5 basics: a retained message replaces the last, an empty one clears it and is still forwarded [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("r", "first", { retain: true }));
  await pub.send(publishPacket("r", "second", { retain: true }));
  await waitFor(() =>
    b.broker.retainedMessages().some((m) =>
      m.topic === "r" && new TextDecoder().decode(m.payload) === "second"
    )
  );
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await sub.send({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "r", qos: 0 }],
  });
  await sub.expect(PacketType.SUBACK);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "second");
  await pub.send(publishPacket("r", "", { retain: true }));
  const cleared = await sub.expect(PacketType.PUBLISH);
  assert.equal(cleared.payload.length, 0, "the empty message is forwarded");
  await waitFor(() => !b.broker.retainedMessages().some((m) => m.topic === "r"));
});
