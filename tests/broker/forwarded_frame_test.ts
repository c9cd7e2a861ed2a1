/**
 * Broker: a PUBLISH forwarded as received (its bytes copied, not re-encoded) still goes out with
 * this delivery's flags and packet id, over TCP: RETAIN cleared on a live forward, DUP cleared,
 * the subscriber's own packet id; the received packet id and flags never leak.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

test("forwarded frame: a 3.1.1 QoS 1 PUBLISH with RETAIN and DUP reaches a QoS 1 subscriber with RETAIN 0, DUP 0 and its own packet id [MQTT-3.3.1-9] [MQTT-3.3.1-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "f/#": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(
    publishPacket("f/1", "one", { qos: 1, packetId: 0x4242, retain: true, dup: true }),
  );
  await pub.send(publishPacket("f/2", "two", { qos: 1, packetId: 0x4243 }));
  const first = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual(
    [first.topic, text(first), first.qos, first.retain, first.dup, first.packetId],
    ["f/1", "one", 1, false, false, 1],
  );
  const second = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([second.topic, second.retain, second.dup, second.packetId], [
    "f/2",
    false,
    false,
    2,
  ]);
  await sub.send({ type: PacketType.PUBACK, packetId: 1 }, {
    type: PacketType.PUBACK,
    packetId: 2,
  });
  // The retained copy, to a new subscription, has RETAIN 1 [MQTT-3.3.1-8].
  await using late = await TestClient.connect(b.port, { clientId: "late" });
  await late.subscribe({ "f/1": 0 });
  const kept = await late.expect(PacketType.PUBLISH);
  assert.deepEqual([kept.topic, text(kept), kept.qos, kept.retain], ["f/1", "one", 0, true]);
});

test("forwarded frame: a 5.0 QoS 2 PUBLISH without properties reaches 5.0 and 3.1.1 subscribers with their own packet ids", async () => {
  await using b = await startBroker();
  await using sub5 = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "s5" });
  await subscribe5(sub5, [{ topic: "g/#", qos: 2 }]);
  await using sub4 = await TestClient.connect(b.port, { clientId: "s4" });
  await sub4.subscribe({ "g/#": 2 });
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
  await pub.send(publishPacket("g/x", "payload", { qos: 2, packetId: 900, dup: true }));
  assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 900);
  for (const c of [sub5, sub4]) {
    const got = await c.expect(PacketType.PUBLISH);
    assert.deepEqual(
      [got.topic, text(got), got.qos, got.dup, got.retain, got.packetId, got.properties],
      ["g/x", "payload", 2, false, false, 1, undefined],
    );
  }
});

test("forwarded frame: a message in another shape than received is written straight for the first subscriber and encoded for the next, the same PUBLISH for both [MQTT-3.8.4-8]", async () => {
  await using b = await startBroker();
  await using s1 = await TestClient.connect(b.port, { clientId: "s1" });
  await s1.subscribe({ "h/#": 0 });
  await using s2 = await TestClient.connect(b.port, { clientId: "s2" });
  await s2.subscribe({ "h/+": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("h/1", "down", { qos: 1, packetId: 77, dup: true }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 77);
  for (const c of [s1, s2]) {
    const got = await c.expect(PacketType.PUBLISH);
    assert.deepEqual(
      [got.topic, text(got), got.qos, got.dup, got.retain, got.packetId],
      ["h/1", "down", 0, false, false, undefined],
    );
  }
});

test("forwarded frame: a QoS 2 message delivered at QoS 1 is resent after a reconnect with DUP 1 and the same packet id [MQTT-3.3.1-1] [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { clientId: "keep", clean: false });
  await sub.subscribe({ "r/#": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("r/1", "again", { qos: 2, packetId: 5 }));
  assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 5);
  const first = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([first.qos, first.dup, first.packetId], [1, false, 1]);
  await sub.close();
  await using back = await TestClient.connect(b.port, { clientId: "keep", clean: false });
  const again = await back.expect(PacketType.PUBLISH);
  assert.deepEqual(
    [again.topic, text(again), again.qos, again.dup, again.packetId],
    ["r/1", "again", 1, true, 1],
  );
  await back.send({ type: PacketType.PUBACK, packetId: 1 });
});
