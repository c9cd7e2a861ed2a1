/**
 * Broker, area 92: a member of a shared group that also subscribes to the topic itself holds two
 * copies of a message, the group's and its own subscription's. When its session ends, only a
 * group copy it had not finished goes to another member (MQTT 5.0 §4.8.2): one it acknowledged
 * was delivered once in the group, whatever its own subscription's copy still waits for.
 *
 * Negative checks do not wait for silence: every client subscribes to `end`, published at QoS 1
 * after the messages, and the broker forwards to each connection in order.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Reads PUBLISH packets until `end`, acknowledging QoS 1 ones; the connection stays open. */
async function untilEnd(client: TestClient): Promise<PublishPacket[]> {
  const got: PublishPacket[] = [];
  for (;;) {
    const p = await client.expect(PacketType.PUBLISH);
    if (p.qos === 1) await client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    if (p.topic === "end") break;
    got.push(p);
  }
  assert.equal(client.ended, false, "the connection stays open");
  return got;
}

/** Publishes `end` at QoS 1 from `pub`. */
async function sendEnd(pub: TestClient): Promise<void> {
  await pub.send(publishPacket("end", "end", { qos: 1, packetId: 99 }));
  await pub.expect(PacketType.PUBACK);
}

test("92 shared: a QoS 2 message whose group copy a member completed goes to no other member when its session ends with its own subscription's copy unacknowledged 5.0 [MQTT-4.8.2-5]", async () => {
  await using b = await startBroker();
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  // Its own subscription at QoS 1: a copy in flight whose delivery began, yet no QoS 2 flow.
  assert.deepEqual((await leaving.subscribe({ "t": 1, "$share/g/t": 2 })).reasonCodes, [1, 2]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("t", "once", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  await pub.expect(PacketType.PUBCOMP);
  // The own subscription's copy first, then the group's.
  const own = await leaving.expect(PacketType.PUBLISH);
  const group = await leaving.expect(PacketType.PUBLISH);
  assert.deepEqual([text(own), own.qos, text(group), group.qos], ["once", 1, "once", 2]);
  // The group's copy delivered to the end [MQTT-4.3.3-1]; the own copy never acknowledged.
  await leaving.send({ type: PacketType.PUBREC, packetId: group.packetId! });
  assert.equal((await leaving.expect(PacketType.PUBREL)).packetId, group.packetId);
  await leaving.send({ type: PacketType.PUBCOMP, packetId: group.packetId! });
  await using staying = await TestClient.connect(b.port, { clientId: "staying" });
  assert.deepEqual((await staying.subscribe({ "$share/g/t": 2, "end": 1 })).reasonCodes, [2, 1]);
  await leaving.close();
  await sendEnd(pub);
  // Before, the session's record of its group messages outlived the group copy's flow: the
  // pending own copy made the message an orphan, and it went to a second member of the group.
  assert.deepEqual(await untilEnd(staying), [], "delivered once in the group");
});

test("92 shared: a QoS 1 message whose group copy a member acknowledged goes to no other member when its session ends with its own subscription's copy unacknowledged", async () => {
  await using b = await startBroker();
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  assert.deepEqual((await leaving.subscribe({ "t": 1, "$share/g/t": 1 })).reasonCodes, [1, 1]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("t", "acked", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const own = await leaving.expect(PacketType.PUBLISH);
  const group = await leaving.expect(PacketType.PUBLISH);
  assert.deepEqual([text(own), text(group)], ["acked", "acked"]);
  // Only the group's copy acknowledged [MQTT-4.3.2-1] (the second: plain subscribers first).
  await leaving.send({ type: PacketType.PUBACK, packetId: group.packetId! });
  await using staying = await TestClient.connect(b.port, { clientId: "staying" });
  assert.deepEqual((await staying.subscribe({ "$share/g/t": 1, "end": 1 })).reasonCodes, [1, 1]);
  await leaving.close();
  await sendEnd(pub);
  assert.deepEqual(await untilEnd(staying), [], "acknowledged in the group once");
});

test("92 shared: a member's group copy still unacknowledged beside its acknowledged own copy goes to another member when its session ends", async () => {
  await using b = await startBroker();
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  assert.deepEqual((await leaving.subscribe({ "t": 1, "$share/g/t": 1 })).reasonCodes, [1, 1]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("t", "unfinished", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const own = await leaving.expect(PacketType.PUBLISH);
  await leaving.expect(PacketType.PUBLISH);
  await leaving.send({ type: PacketType.PUBACK, packetId: own.packetId! });
  await using staying = await TestClient.connect(b.port, { clientId: "staying" });
  assert.deepEqual((await staying.subscribe({ "$share/g/t": 1, "end": 1 })).reasonCodes, [1, 1]);
  await leaving.close();
  await sendEnd(pub);
  // MQTT 5.0 §4.8.2: a message the chosen member did not acknowledge SHOULD go to another.
  assert.deepEqual((await untilEnd(staying)).map((p) => [text(p), p.qos]), [["unfinished", 1]]);
});
