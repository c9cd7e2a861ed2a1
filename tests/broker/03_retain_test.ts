/**
 * Broker, area 03: retained messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Publishes a retained message at QoS 1 and waits for its PUBACK, so it is stored. */
async function retain(port: number, topic: string, payload: string, qos: 0 | 1 = 1) {
  await using pub = await TestClient.connect(port, { clientId: `pub-${topic}` });
  await pub.send(publishPacket(topic, payload, { qos, retain: true, packetId: 1 }));
  if (qos === 1) await pub.expect(PacketType.PUBACK);
  else {
    await pub.send({ type: PacketType.PINGREQ });
    await pub.expect(PacketType.PINGRESP);
  }
}

test("03 retain: a retained message is sent after SUBACK with RETAIN=1 [MQTT-3.3.1-6] [MQTT-3.3.1-8]", async () => {
  await using b = await startBroker();
  await retain(b.port, "r/temp", "21");
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.send({
    type: PacketType.SUBSCRIBE,
    packetId: 4,
    subscriptions: [{ topic: "r/temp", qos: 1 }],
  });
  await sub.expect(PacketType.SUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.topic, "r/temp");
  assert.equal(text(got), "21");
  assert.equal(got.retain, true);
  assert.equal(got.qos, 1);
});

test("03 retain: a QoS 0 retained message is stored too [MQTT-3.3.1-7]", async () => {
  await using b = await startBroker();
  await retain(b.port, "r/q0", "zero", 0);
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "r/q0": 2 });
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "zero");
  assert.equal(got.qos, 0);
  assert.equal(got.retain, true);
});

test("03 retain: live forwards of a retained PUBLISH carry RETAIN=0 [MQTT-3.3.1-9]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "r/live": 0 });
  await retain(b.port, "r/live", "now");
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "now");
  assert.equal(got.retain, false);
});

test("03 retain: a new retained message replaces the old one [MQTT-3.3.1-5]", async () => {
  await using b = await startBroker();
  await retain(b.port, "r/v", "1");
  await retain(b.port, "r/v", "2");
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "r/v": 0 });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "2");
  await sub.expectNothing(150);
  assert.equal(userRetained(b.broker).length, 1);
});

test("03 retain: an empty retained payload clears the topic [MQTT-3.3.1-10]", async () => {
  await using b = await startBroker();
  await retain(b.port, "r/gone", "x");
  assert.equal(userRetained(b.broker).length, 1);
  await using live = await TestClient.connect(b.port, { clientId: "live" });
  await live.subscribe({ "r/gone": 0 });
  assert.equal(text(await live.expect(PacketType.PUBLISH)), "x");
  await retain(b.port, "r/gone", "");
  // The empty message is still forwarded to current subscribers, as a normal message.
  const cleared = await live.expect(PacketType.PUBLISH);
  assert.equal(cleared.payload.length, 0);
  assert.equal(cleared.retain, false);
  assert.equal(userRetained(b.broker).length, 0);
  await using late = await TestClient.connect(b.port, { clientId: "late" });
  await late.subscribe({ "r/#": 0 });
  await late.expectNothing(200);
});

test("03 retain: a wildcard subscription gets every matching retained message", async () => {
  await using b = await startBroker();
  await retain(b.port, "house/kitchen/temp", "20");
  await retain(b.port, "house/hall/temp", "18");
  await retain(b.port, "house/hall/light", "on");
  await retain(b.port, "garden/temp", "9");
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "house/+/temp": 0 });
  const topics = [
    (await sub.expect(PacketType.PUBLISH)).topic,
    (await sub.expect(PacketType.PUBLISH)).topic,
  ].sort();
  assert.deepEqual(topics, ["house/hall/temp", "house/kitchen/temp"]);
  await sub.expectNothing(150);
});

test("03 retain: '#' does not send retained $-topics [MQTT-4.7.2-1]", async () => {
  await using b = await startBroker();
  await retain(b.port, "$app/state", "hidden");
  await retain(b.port, "app/state", "shown");
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "#": 0 });
  assert.equal((await sub.expect(PacketType.PUBLISH)).topic, "app/state");
  await sub.expectNothing(150);
  await using dollar = await TestClient.connect(b.port, { clientId: "dollar" });
  await dollar.subscribe({ "$app/#": 0 });
  assert.equal((await dollar.expect(PacketType.PUBLISH)).topic, "$app/state");
});

test("03 retain: retained delivery QoS is min(stored, granted) [MQTT-3.8.4-6]", async () => {
  await using b = await startBroker();
  await retain(b.port, "r/q", "one", 1);
  await using s0 = await TestClient.connect(b.port, { clientId: "s0" });
  await s0.subscribe({ "r/q": 0 });
  const got0 = await s0.expect(PacketType.PUBLISH);
  assert.equal(got0.qos, 0);
  await using s2 = await TestClient.connect(b.port, { clientId: "s2" });
  await s2.subscribe({ "r/q": 2 });
  const got2 = await s2.expect(PacketType.PUBLISH);
  assert.equal(got2.qos, 1);
  assert.ok(got2.packetId !== undefined && got2.packetId > 0);
  await s2.send({ type: PacketType.PUBACK, packetId: got2.packetId });
});

test("03 retain: re-subscribing resends the retained message [MQTT-3.8.4-3]", async () => {
  await using b = await startBroker();
  await retain(b.port, "r/again", "v");
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "r/again": 0 }, 1);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "v");
  await sub.subscribe({ "r/again": 0 }, 2);
  const again = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(again), "v");
  assert.equal(again.retain, true);
});

test("03 retain: a retained message published by the host is stored", async () => {
  await using b = await startBroker();
  b.broker.publish("host/state", "up", { retain: true, qos: 1 });
  assert.deepEqual(
    userRetained(b.broker).map((m) => [m.topic, new TextDecoder().decode(m.payload), m.qos]),
    [["host/state", "up", 1]],
  );
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "host/#": 1 });
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "up");
  assert.equal(got.retain, true);
});

test("03 retain: retained messages outlive their publisher's connection", async () => {
  await using b = await startBroker();
  {
    await using pub = await TestClient.connect(b.port, { clientId: "p" });
    await pub.send(publishPacket("r/keep", "k", { retain: true }));
    await pub.disconnect();
  }
  await waitFor(() => b.broker.clients().length === 0);
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "r/keep": 0 });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "k");
});

test("03 retain: a stored retained message keeps only its own bytes, not the read buffer", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  // Many small retained messages in one write: each must not pin the whole read chunk.
  const packets = [];
  for (let i = 0; i < 50; i++) packets.push(publishPacket(`r/m/${i}`, "v", { retain: true }));
  await pub.send(...packets);
  await waitFor(() => userRetained(b.broker).length === 50);
  for (const m of userRetained(b.broker)) {
    assert.equal(m.payload.byteLength, 1);
    assert.equal(
      m.payload.buffer.byteLength,
      1,
      `${m.topic} pins a ${m.payload.buffer.byteLength} B buffer`,
    );
  }
});

test("03 retain: retained messages sent on SUBSCRIBE pass the receive authorization like live ones", async () => {
  await using b = await startBroker({}, {
    plugins: [{
      name: "no_secrets",
      authorizeReceive: (client, topic) =>
        !(client.clientId === "guest" && topic.includes("secret")),
    }],
  });
  await retain(b.port, "r/acl/secret", "s3cr3t");
  await retain(b.port, "r/acl/public", "hello");
  await using guest = await TestClient.connect(b.port, { clientId: "guest" });
  await guest.subscribe({ "r/acl/#": 1 });
  const got = await guest.expect(PacketType.PUBLISH);
  assert.deepEqual([got.topic, text(got), got.retain], ["r/acl/public", "hello", true]);
  await guest.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await guest.expectNothing(150);
  // Others still get both.
  await using admin = await TestClient.connect(b.port, { clientId: "admin" });
  await admin.subscribe({ "r/acl/#": 0 });
  const topics = [
    (await admin.expect(PacketType.PUBLISH)).topic,
    (await admin.expect(PacketType.PUBLISH)).topic,
  ].sort();
  assert.deepEqual(topics, ["r/acl/public", "r/acl/secret"]);
});
