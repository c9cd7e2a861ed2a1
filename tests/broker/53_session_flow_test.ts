/**
 * Broker, area 53: a session makes its outgoing QoS 1/2 flow (the in-flight window and its queue)
 * and its incoming QoS 2 ids only when first used; what a CONNECT sets before that (the 5.0
 * Receive Maximum) still holds once they are made.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Publishes `count` QoS 1 messages `m1`… on `topic`, each acknowledged before the next. */
async function publishMany(port: number, topic: string, count: number): Promise<void> {
  await using pub = await TestClient.connect(port, { clientId: "p" });
  for (let i = 1; i <= count; i++) {
    await pub.send(publishPacket(topic, `m${i}`, { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
}

test("53 session flow: a Receive Maximum given at CONNECT bounds the window made at the first delivery; at 3.1.1 the broker's window is back [MQTT-3.3.4-9]", async () => {
  await using b = await startBroker({ max_inflight: 3 });
  {
    await using sub = await TestClient.connect(b.port, {
      protocolVersion: 5,
      clientId: "s",
      clean: false,
      properties: { receiveMaximum: 2, sessionExpiryInterval: 600 },
    });
    await subscribe5(sub, [{ topic: "flow", qos: 1 }]);
    await publishMany(b.port, "flow", 5);
    const got = [await sub.expect(PacketType.PUBLISH), await sub.expect(PacketType.PUBLISH)];
    assert.deepEqual(got.map(text), ["m1", "m2"]);
    // The window of 2 is full: the third waits for an acknowledgement, on an open connection.
    await sub.expectNothing(200);
    await sub.send({ type: PacketType.PUBACK, packetId: got[0]!.packetId! });
    assert.equal(text(await sub.expect(PacketType.PUBLISH)), "m3");
    await sub.disconnect();
  }
  // Back at 3.1.1 (no Receive Maximum): the broker's max_inflight of 3 applies again. m2 and m3
  // are resent first [MQTT-4.4.0-1], then one more fills the window.
  await using again = await TestClient.connect(b.port, { clientId: "s", clean: false });
  const resent = [
    await again.expect(PacketType.PUBLISH),
    await again.expect(PacketType.PUBLISH),
    await again.expect(PacketType.PUBLISH),
  ];
  assert.deepEqual(resent.map(text), ["m2", "m3", "m4"]);
  assert.deepEqual(resent.map((p) => p.dup), [true, true, false]);
  await again.expectNothing(200);
  await again.send({ type: PacketType.PUBACK, packetId: resent[0]!.packetId! });
  assert.equal(text(await again.expect(PacketType.PUBLISH)), "m5");
});

test("53 session flow: a session that only ever used QoS 0 takes QoS 1 and 2 later, with ids from 1 [MQTT-2.2.1-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "t/#": 2 });
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("t/0", "zero"));
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "zero");
  await pub.send(publishPacket("t/1", "one", { qos: 1, packetId: 7 }));
  await pub.expect(PacketType.PUBACK);
  const one = await sub.expect(PacketType.PUBLISH);
  assert.equal(one.qos, 1);
  assert.equal(one.packetId, 1);
  await sub.send({ type: PacketType.PUBACK, packetId: 1 });
  // A QoS 2 PUBLISH in: its id is held until PUBREL [MQTT-4.3.3-8] and a copy sent again
  // before PUBREL is not delivered twice.
  await pub.send(publishPacket("t/2", "two", { qos: 2, packetId: 9 }));
  assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 9);
  await pub.send(publishPacket("t/2", "two", { qos: 2, packetId: 9, dup: true }));
  assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 9);
  await pub.send({ type: PacketType.PUBREL, packetId: 9 });
  assert.equal((await pub.expect(PacketType.PUBCOMP)).packetId, 9);
  const two = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(two), "two");
  assert.equal(two.packetId, 2);
  await sub.send({ type: PacketType.PUBREC, packetId: 2 });
  assert.equal((await sub.expect(PacketType.PUBREL)).packetId, 2);
  await sub.send({ type: PacketType.PUBCOMP, packetId: 2 });
  await sub.expectNothing(200);
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
});

test("53 session flow: clients() counts in-flight and queued deliveries, 0 for a session that has none", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  await using idle = await TestClient.connect(b.port, { clientId: "idle" });
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ q: 1 });
  await publishMany(b.port, "q", 3);
  const first = await sub.expect(PacketType.PUBLISH);
  const counts = () =>
    Object.fromEntries(
      b.broker.clients().filter((c) => c.clientId !== "p").map((
        c,
      ) => [c.clientId, [c.inflight, c.queued]]),
    );
  assert.deepEqual(counts(), { idle: [0, 0], s: [1, 2] });
  await sub.send({ type: PacketType.PUBACK, packetId: first.packetId! });
  await sub.expect(PacketType.PUBLISH);
  assert.deepEqual(counts(), { idle: [0, 0], s: [1, 1] });
  await idle.send({ type: PacketType.PINGREQ });
  await idle.expect(PacketType.PINGRESP);
});
