/**
 * Broker, area 93: when a member's session ends, whether a QoS 2 message of a shared group goes
 * to another member is decided per copy (MQTT 5.0 §4.8.2): the group's copy never sent does,
 * whatever other copy of the same message the member had begun to receive — its own
 * subscription's, or another group's — and a group's copy whose delivery began does not
 * [MQTT-4.8.2-5].
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

/** Reads PUBLISH packets until `end`, completing QoS 1/2 ones; the connection stays open. */
async function untilEnd(client: TestClient): Promise<PublishPacket[]> {
  const got: PublishPacket[] = [];
  for (;;) {
    const p = await client.expect(PacketType.PUBLISH);
    if (p.qos === 1) await client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    if (p.qos === 2) {
      await client.send({ type: PacketType.PUBREC, packetId: p.packetId! });
      await client.expect(PacketType.PUBREL);
      await client.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
    }
    if (p.topic === "end") break;
    got.push(p);
  }
  assert.equal(client.ended, false, "the connection stays open");
  return got;
}

/** Publishes `payload` to `t` at QoS 2 from `pub`, to the end of its flow. */
async function publishQos2(pub: TestClient, payload: string): Promise<void> {
  await pub.send(publishPacket("t", payload, { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  await pub.expect(PacketType.PUBCOMP);
}

/** Publishes `end` at QoS 1 from `pub`. */
async function sendEnd(pub: TestClient): Promise<void> {
  await pub.send(publishPacket("end", "end", { qos: 1, packetId: 99 }));
  await pub.expect(PacketType.PUBACK);
}

test("93 shared: a group's QoS 2 copy never sent goes to another member when the session ends with its own subscription's copy of the message in flight", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  assert.deepEqual((await leaving.subscribe({ "t": 2, "$share/g/t": 2 })).reasonCodes, [2, 2]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishQos2(pub, "m");
  // The own subscription's copy in flight (plain subscribers first), never acknowledged; the
  // group's copy waits behind the window of 1, never sent.
  const own = await leaving.expect(PacketType.PUBLISH);
  assert.deepEqual([text(own), own.qos], ["m", 2]);
  await using staying = await TestClient.connect(b.port, { clientId: "staying" });
  assert.deepEqual((await staying.subscribe({ "$share/g/t": 2, "end": 1 })).reasonCodes, [2, 1]);
  await leaving.close();
  await sendEnd(pub);
  // Before, a QoS 2 copy begun of the message kept every copy of it from going on: the group
  // never delivered it.
  assert.deepEqual((await untilEnd(staying)).map((p) => [text(p), p.qos]), [["m", 2]]);
});

test("93 shared: of a member's two groups' QoS 2 copies of one message, only the one never sent goes to another member when its session ends [MQTT-4.8.2-5]", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  assert.deepEqual(
    (await leaving.subscribe({ "$share/g/t": 2, "$share/h/t": 2 })).reasonCodes,
    [2, 2],
  );
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishQos2(pub, "m");
  // One group's copy in flight, never acknowledged: its delivery began. The other group's waits
  // behind the window, never sent.
  assert.equal(text(await leaving.expect(PacketType.PUBLISH)), "m");
  await using gMate = await TestClient.connect(b.port, { clientId: "g-mate" });
  assert.deepEqual((await gMate.subscribe({ "$share/g/t": 2, "end": 1 })).reasonCodes, [2, 1]);
  await using hMate = await TestClient.connect(b.port, { clientId: "h-mate" });
  assert.deepEqual((await hMate.subscribe({ "$share/h/t": 2, "end": 1 })).reasonCodes, [2, 1]);
  await leaving.close();
  await sendEnd(pub);
  // Exactly one: the group whose copy never went out delivers it to its other member; the one
  // whose delivery began sends it to no other member. (Before: neither.)
  const got = [...await untilEnd(gMate), ...await untilEnd(hMate)];
  assert.deepEqual(got.map((p) => [text(p), p.qos]), [["m", 2]]);
});
