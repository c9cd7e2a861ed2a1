/**
 * Broker: a publisher's read buffer is read into again once the PUBLISH it held is routed
 * (`BrokerCore.releaseReceived`), so every message that outlives the routing must have a payload
 * of its own by then. Each test publishes a message, then another of the same layout (the same
 * topic, a payload of the same length), which is read into the same bytes of the same buffer, and
 * checks that the first one is intact where it was kept: retained, queued for an offline session,
 * in flight at QoS 1 and 2 (resent after a reconnect), in flight to a 5.0 subscriber through a
 * copy with its Subscription Identifier, and handed to a host's `message` handler.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const FIRST = "first-payload-1";
const LATER = "LATER-PAYLOAD-2";

/**
 * Publishes FIRST, then LATER, on `topic` at `qos`, each in a read of its own (the first one's
 * acknowledgement, or a PINGRESP at QoS 0, is awaited before the next is sent).
 */
async function publishTwice(pub: TestClient, topic: string, qos: QoS, retain = false) {
  for (const [i, payload] of [FIRST, LATER].entries()) {
    await pub.send(
      publishPacket(topic, payload, { qos, packetId: 10 + i, retain: retain && i === 0 }),
    );
    if (qos === 1) assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 10 + i);
    else if (qos === 2) {
      assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 10 + i);
      await pub.send({ type: PacketType.PUBREL, packetId: 10 + i });
      assert.equal((await pub.expect(PacketType.PUBCOMP)).packetId, 10 + i);
    } else {
      await pub.send({ type: PacketType.PINGREQ });
      await pub.expect(PacketType.PINGRESP);
    }
  }
}

test("read buffer reuse: a retained message keeps its payload after later messages are read into the same buffer [MQTT-3.3.1-5]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("r/1", FIRST, { retain: true }));
  await pub.send({ type: PacketType.PINGREQ });
  await pub.expect(PacketType.PINGRESP);
  await publishTwice(pub, "r/1", 0);
  await pub.send(publishPacket("r/2", FIRST, { retain: true }));
  await publishTwice(pub, "r/2", 0);
  await using late = await TestClient.connect(b.port, { clientId: "late" });
  await late.subscribe({ "r/1": 0 });
  const kept = await late.expect(PacketType.PUBLISH);
  // The last retained on r/1 was FIRST (the LATER after it was not retained).
  assert.deepEqual([kept.topic, text(kept), kept.retain], ["r/1", FIRST, true]);
});

test("read buffer reuse: a QoS 1 message queued for an offline session keeps its payload [MQTT-3.1.2-5]", async () => {
  await using b = await startBroker();
  {
    await using sub = await TestClient.connect(b.port, { clientId: "q", clean: false });
    await sub.subscribe({ "q/1": 1 });
    await sub.disconnect();
  }
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishTwice(pub, "q/1", 1);
  await using back = await TestClient.connect(b.port, { clientId: "q", clean: false });
  const got = [await back.expect(PacketType.PUBLISH), await back.expect(PacketType.PUBLISH)];
  assert.deepEqual(got.map(text), [FIRST, LATER]);
});

for (const qos of [1, 2] as const) {
  test(`read buffer reuse: a QoS ${qos} message in flight keeps its payload for its resend after a reconnect [MQTT-4.4.0-1]`, async () => {
    await using b = await startBroker();
    const sub = await TestClient.connect(b.port, { clientId: "f", clean: false });
    await sub.subscribe({ "f/1": qos });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publishTwice(pub, "f/1", qos);
    // Delivered, never acknowledged: both stay in flight.
    const sent = [await sub.expect(PacketType.PUBLISH), await sub.expect(PacketType.PUBLISH)];
    assert.deepEqual(sent.map(text), [FIRST, LATER]);
    // More messages of the same layout through the same buffer meanwhile.
    await publishTwice(pub, "other", qos);
    await sub.close();
    await using back = await TestClient.connect(b.port, { clientId: "f", clean: false });
    const resent = [await back.expect(PacketType.PUBLISH), await back.expect(PacketType.PUBLISH)];
    assert.deepEqual(resent.map((p) => [text(p), p.dup, p.qos]), [[FIRST, true, qos], [
      LATER,
      true,
      qos,
    ]]);
  });
}

test("read buffer reuse: QoS 1 messages split across reads, gathered in the decoder's buffer, keep their payloads in flight [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { clientId: "g", clean: false });
  await sub.subscribe({ "g/1": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  // Eight PUBLISHes written in pieces that end inside a packet, each piece a read of its own
  // (mostly: a pause between them), so that the broker gathers them in its decoder's buffer, which
  // it fills, then compacts once the packets in it are released.
  const payloads = (fill: string) =>
    Array.from({ length: 8 }, (_, i) => `payload-${i}-${fill.repeat(60)}`);
  const sendSplit = async (topic: string, fill: string) => {
    const bytes = new Uint8Array(
      payloads(fill).flatMap((p, i) => [
        ...encodePacket(publishPacket(topic, p, { qos: 1, packetId: i + 1 }), 4),
      ]),
    );
    for (let at = 0; at < bytes.length; at += 50) {
      await pub.sendBytes(bytes.subarray(at, at + 50));
      await delay(2);
    }
    for (let i = 0; i < 8; i++) await pub.expect(PacketType.PUBACK);
  };
  await sendSplit("g/0", "w"); // no subscriber: fills the decoder's first buffer
  await sendSplit("g/1", "x");
  const sent = [];
  for (let i = 0; i < 8; i++) sent.push(text(await sub.expect(PacketType.PUBLISH)));
  assert.deepEqual(sent, payloads("x"));
  // More split messages of the same layout through the same buffers meanwhile.
  for (let round = 0; round < 4; round++) await sendSplit("g/0", "y");
  await sub.close();
  await using back = await TestClient.connect(b.port, { clientId: "g", clean: false });
  const resent = [];
  for (let i = 0; i < 8; i++) resent.push(text(await back.expect(PacketType.PUBLISH)));
  assert.deepEqual(resent, payloads("x"));
});

test("read buffer reuse: a QoS 1 message in flight to a 5.0 subscriber, through a copy with its Subscription Identifier, keeps its payload for a resend at another protocol level [MQTT-3.3.4-3] [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, {
    protocolVersion: 5,
    clientId: "s5",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  await subscribe5(sub, [{ topic: "i/1", qos: 1 }], { identifier: 7 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishTwice(pub, "i/1", 1);
  const sent = [await sub.expect(PacketType.PUBLISH), await sub.expect(PacketType.PUBLISH)];
  assert.deepEqual(sent.map((p) => [text(p), p.properties?.subscriptionIdentifier]), [
    [FIRST, [7]],
    [LATER, [7]],
  ]);
  await publishTwice(pub, "i/2", 1);
  await sub.close();
  // The session goes on at 3.1.1: its resends are encoded afresh, from the payloads kept.
  await using back = await TestClient.connect(b.port, { clientId: "s5", clean: false });
  const resent = [await back.expect(PacketType.PUBLISH), await back.expect(PacketType.PUBLISH)];
  assert.deepEqual(resent.map((p) => [text(p), p.dup]), [[FIRST, true], [LATER, true]]);
});

test("read buffer reuse: the payload a host's message handler keeps stays intact", async () => {
  await using b = await startBroker();
  const kept: Uint8Array[] = [];
  b.broker.on("message", (m) => void kept.push(m.payload));
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "h/1": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishTwice(pub, "h/1", 0);
  await publishTwice(pub, "h/1", 0);
  assert.deepEqual(kept.map((p) => new TextDecoder().decode(p)), [FIRST, LATER, FIRST, LATER]);
  for (const expected of [FIRST, LATER, FIRST, LATER]) {
    assert.equal(text(await sub.expect(PacketType.PUBLISH)), expected);
  }
});

for (const qos of [1, 2] as const) {
  test(`read buffer reuse: QoS ${qos} messages queued behind a connected subscriber's full window keep their payloads until sent [MQTT-4.6.0-6]`, async () => {
    await using b = await startBroker({ max_inflight: 1 });
    await using sub = await TestClient.connect(b.port, { clientId: "w" });
    await sub.subscribe({ "w/1": qos });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    // The first goes into the window; the next ones queue behind it, each read into the same
    // buffer as the one before, and more of the same layout follow on another topic.
    await publishTwice(pub, "w/1", qos);
    await publishTwice(pub, "w/1", qos);
    await publishTwice(pub, "other", qos);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await sub.expect(PacketType.PUBLISH);
      got.push(text(p));
      // Acknowledged one at a time: the next queued one goes out only then.
      if (qos === 1) await sub.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      else {
        await sub.send({ type: PacketType.PUBREC, packetId: p.packetId! });
        assert.equal((await sub.expect(PacketType.PUBREL)).packetId, p.packetId);
        await sub.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
      }
    }
    assert.deepEqual(got, [FIRST, LATER, FIRST, LATER]);
  });
}

test("read buffer reuse: messages queued behind a full window keep their payloads when the subscriber goes offline and comes back [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  const sub = await TestClient.connect(b.port, { clientId: "wo", clean: false });
  await sub.subscribe({ "wo/1": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishTwice(pub, "wo/1", 1);
  await publishTwice(pub, "wo/1", 1);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), FIRST);
  await sub.close();
  // Offline now, with three queued: more messages of the same layout through the same buffer.
  await publishTwice(pub, "other", 1);
  await publishTwice(pub, "other", 1);
  await using back = await TestClient.connect(b.port, { clientId: "wo", clean: false });
  const got: string[] = [];
  for (let i = 0; i < 4; i++) {
    const p = await back.expect(PacketType.PUBLISH);
    got.push(text(p));
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  assert.deepEqual(got, [FIRST, LATER, FIRST, LATER]);
});
