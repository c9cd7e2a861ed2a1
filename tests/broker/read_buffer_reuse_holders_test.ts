/**
 * Broker: a publisher's read buffer is read into again once its PUBLISHes are routed
 * (`BrokerCore.releaseReceived`). These tests look for holders of a payload that the first tests
 * (read_buffer_reuse_test.ts) do not cover: each keeps a first message somewhere, then floods the
 * same connection with messages of the same layout (same topic length, same payload length), each
 * in a read of its own, and checks that what was kept did not change.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { MQTTClient } from "../../client.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const decode = (b: Uint8Array) => new TextDecoder().decode(b);
/** A payload of `length` bytes that says which message it is. */
const payload = (tag: string, length = 40) => `${tag}-`.padEnd(length, tag.slice(-1));

/**
 * Publishes `payloads` on `topic` at `qos`, each in a read of its own: the acknowledgement (or a
 * PINGRESP at QoS 0) of each is awaited before the next is sent.
 */
async function publishEach(
  pub: TestClient,
  topic: string,
  qos: QoS,
  payloads: string[],
  options: { retainFirst?: boolean; version?: 4 | 5 } = {},
) {
  for (const [i, p] of payloads.entries()) {
    const packetId = 100 + i;
    await pub.send(
      publishPacket(topic, p, { qos, packetId, retain: options.retainFirst === true && i === 0 }),
    );
    if (qos === 1) assert.equal((await pub.expect(PacketType.PUBACK)).packetId, packetId);
    else if (qos === 2) {
      assert.equal((await pub.expect(PacketType.PUBREC)).packetId, packetId);
      await pub.send({ type: PacketType.PUBREL, packetId });
      assert.equal((await pub.expect(PacketType.PUBCOMP)).packetId, packetId);
    } else {
      await pub.send({ type: PacketType.PINGREQ });
      await pub.expect(PacketType.PINGRESP);
    }
  }
}

/** `n` payloads of `length` bytes tagged `tag`. */
const flood = (tag: string, n = 30, length = 40) =>
  Array.from({ length: n }, (_, i) => payload(`${tag}${i % 10}`, length));

test("read buffer reuse: a 5.0 publisher's QoS 1 message in flight to a 5.0 subscriber keeps its payload for the resend [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, {
    protocolVersion: 5,
    clientId: "s5",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  await subscribe5(sub, [{ topic: "v/1", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p5" });
  const first = payload("first");
  await publishEach(pub, "v/1", 1, [first]);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), first);
  await publishEach(pub, "v/2", 1, flood("x"));
  await sub.close();
  await using back = await TestClient.connect(b.port, {
    protocolVersion: 5,
    clientId: "s5",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  const resent = await back.expect(PacketType.PUBLISH);
  assert.deepEqual([text(resent), resent.dup], [first, true]);
});

test("read buffer reuse: a QoS 1 message queued behind a full window keeps its payload [MQTT-4.6.0-6]", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  await using sub = await TestClient.connect(b.port, { clientId: "w" });
  await sub.subscribe({ "w/1": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const kept = [payload("one"), payload("two"), payload("three")];
  await publishEach(pub, "w/1", 1, kept);
  const p1 = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(p1), kept[0]);
  // Two wait behind the window of one while the publisher's buffer takes other messages.
  await publishEach(pub, "w/2", 1, flood("x"));
  await sub.send({ type: PacketType.PUBACK, packetId: p1.packetId! });
  const p2 = await sub.expect(PacketType.PUBLISH);
  await sub.send({ type: PacketType.PUBACK, packetId: p2.packetId! });
  const p3 = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([p1, p2, p3].map(text), kept);
});

test("read buffer reuse: a QoS 1 message of a shared group keeps its payload when it goes to another member as its first ends [MQTT-4.8.2-3]", async () => {
  await using b = await startBroker();
  const m1 = await TestClient.connect(b.port, { clientId: "m1" });
  await m1.subscribe({ "$share/g/s/1": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const first = payload("first");
  await publishEach(pub, "s/1", 1, [first]);
  assert.equal(text(await m1.expect(PacketType.PUBLISH)), first);
  await publishEach(pub, "s/2", 1, flood("x"));
  await using m2 = await TestClient.connect(b.port, { clientId: "m2" });
  await m2.subscribe({ "$share/g/s/1": 1 });
  // m1's session ends with its connection: its unacknowledged message goes to m2.
  await m1.close();
  const again = await m2.expect(PacketType.PUBLISH);
  assert.equal(text(again), first);
});

for (const packets of [false, true]) {
  test(`read buffer reuse: payloads kept by plugins from message events stay intact${packets ? ", with packet events" : ""}`, async () => {
    const fromPackets: Uint8Array[] = [];
    const received: Uint8Array[] = [];
    const broadcast: Uint8Array[] = [];
    const plugin: BrokerPlugin = {
      name: "keeper",
      onBrokerMessageReceived: ({ message }) => void received.push(message.payload),
      onBrokerMessageBroadcast: ({ message }) => void broadcast.push(message.payload),
    };
    if (packets) {
      plugin.onMqttPacketReceived = ({ packet }) => {
        if (packet.type === PacketType.PUBLISH) fromPackets.push(packet.payload);
      };
    }
    await using b = await startBroker({}, { plugins: [plugin], packetEvents: packets });
    await using sub = await TestClient.connect(b.port, { clientId: "sub" });
    await sub.subscribe({ "e/1": 1 });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    const sent = flood("k", 12);
    await publishEach(pub, "e/1", 1, sent);
    for (const p of sent) assert.equal(text(await sub.expect(PacketType.PUBLISH)), p);
    await publishEach(pub, "e/2", 0, flood("x"));
    await waitFor(() => received.length >= 42 && broadcast.length >= 42);
    assert.deepEqual(received.slice(0, 12).map(decode), sent);
    assert.deepEqual(broadcast.slice(0, 12).map(decode), sent);
    if (packets) assert.deepEqual(fromPackets.slice(0, 12).map(decode), sent);
  });
}

test("read buffer reuse: an MQTTClient's received payloads stay intact while later messages arrive", async () => {
  await using b = await startBroker();
  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${b.port}`);
  await client.subscribe([{ topic: "c/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const sent = [...flood("a", 10), ...flood("b", 30)];
  await publishEach(pub, "c/1", 0, sent.slice(0, 10));
  const kept = [];
  for (let i = 0; i < 10; i++) kept.push(await client.deliverMessage({ timeout: 10_000 }));
  await publishEach(pub, "c/1", 1, sent.slice(10));
  for (let i = 10; i < sent.length; i++) {
    assert.equal(decode((await client.deliverMessage({ timeout: 10_000 })).payload), sent[i]);
  }
  assert.deepEqual(kept.map((m) => decode(m.payload)), sent.slice(0, 10));
});

for (const length of [200, 256, 257, 300, 5000, 70_000]) {
  test(`read buffer reuse: QoS 1 messages of ${length} bytes in flight, more than a slab holds, keep their payloads [MQTT-4.4.0-1]`, async () => {
    await using b = await startBroker();
    const sub = await TestClient.connect(b.port, { clientId: "big", clean: false });
    await sub.subscribe({ "b/1": 1 });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    const kept = flood("k", 12, length);
    await publishEach(pub, "b/1", 1, kept);
    for (const p of kept) assert.equal(text(await sub.expect(PacketType.PUBLISH)), p);
    await publishEach(pub, "b/2", 1, flood("x", 30, length));
    await sub.close();
    await using back = await TestClient.connect(b.port, { clientId: "big", clean: false });
    for (const p of kept) assert.equal(text(await back.expect(PacketType.PUBLISH)), p);
  });
}

test("read buffer reuse: a QoS 1 message in flight keeps its payload after its publisher sends a malformed packet [MQTT-4.8.0-1]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { clientId: "mal", clean: false });
  await sub.subscribe({ "m/1": 1 });
  await using other = await TestClient.connect(b.port, { clientId: "other" });
  await other.subscribe({ "m/2": 0 });
  const pub = await TestClient.connect(b.port, { clientId: "pub" });
  const first = payload("first");
  await publishEach(pub, "m/1", 1, [first]);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), first);
  await publishEach(pub, "m/2", 0, flood("x", 5));
  // A QoS 0 PUBLISH then a malformed one (QoS 3) in the same read: the first is routed.
  const good = encodePacket(publishPacket("m/2", payload("last"), { qos: 0 }), 4);
  const bad = encodePacket(publishPacket("m/2", payload("evil"), { qos: 0 }), 4);
  bad[0] = 0x36;
  await pub.sendBytes(new Uint8Array([...good, ...bad]));
  await pub.expectClosed();
  await pub.close();
  for (const p of [...flood("x", 5), payload("last")]) {
    assert.equal(text(await other.expect(PacketType.PUBLISH)), p);
  }
  await sub.close();
  await using back = await TestClient.connect(b.port, { clientId: "mal", clean: false });
  assert.equal(text(await back.expect(PacketType.PUBLISH)), first);
});

test("read buffer reuse: a 5.0 subscriber with an outbound topic alias gets the payload kept in flight on its resend [MQTT-3.3.2-17]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, {
    protocolVersion: 5,
    clientId: "al",
    clean: false,
    properties: { sessionExpiryInterval: 60, topicAliasMaximum: 5 },
  });
  await subscribe5(sub, [{ topic: "a/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const kept = flood("k", 5);
  await publishEach(pub, "a/1", 1, kept);
  for (const p of kept) assert.equal(text(await sub.expect(PacketType.PUBLISH)), p);
  await publishEach(pub, "a/2", 1, flood("x"));
  await sub.close();
  await using back = await TestClient.connect(b.port, {
    protocolVersion: 5,
    clientId: "al",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  for (const p of kept) assert.equal(text(await back.expect(PacketType.PUBLISH)), p);
});
