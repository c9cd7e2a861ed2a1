/**
 * Broker, area 95: topic names and filters past 16383 characters (`MAX_TOPIC_LENGTH`). V8 hashes
 * a longer string by its length alone, so such topics of one length share one bucket of every
 * Map keyed by topic (the retained store's, the levels of the trees): 1,000 retained messages on
 * distinct 20,006-character topics took 64 ms a PUBLISH, for every client (bench/RESULTS.md,
 * "retained-topic"). Each way in refuses them as the protocol level allows; the clients that did
 * nothing wrong are served on, and no map holds such a key afterwards.
 *
 * A negative check ("the long message did not arrive") is made by order: a marker published after
 * it comes first, and the bystander's connection is still open.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { MAX_TOPIC_LENGTH } from "../../src/topic/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publish5, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** The longest topic taken, and one character more. */
const longest = "t/" + "a".repeat(MAX_TOPIC_LENGTH - 2);
const tooLong = longest + "a";
/** Each level short, the whole too long: the retained store keys whole topics. */
const tooLongShortLevels = "ab/".repeat(5462);

/** The lengths of the retained topics outside `$SYS` (lengths: a failure prints no 16 K line). */
function retainedLengths(b: Awaited<ReturnType<typeof startBroker>>): number[] {
  return b.broker.retainedMessages().filter((m) => !m.topic.startsWith("$SYS/")).map((m) =>
    m.topic.length
  );
}

/** Nothing any map of the broker holds is longer than the limit. */
function noLongKey(b: Awaited<ReturnType<typeof startBroker>>): void {
  const keys = [
    ...b.broker.subscriptions().map((s) => s.topic),
    ...b.broker.retainedMessages().map((m) => m.topic),
  ];
  for (const k of keys) assert.ok(k.length <= MAX_TOPIC_LENGTH, `key of ${k.length} characters`);
}

/** Publishes a marker from `pub` and asserts it is the next message `bystander` reads. */
async function markerNext(pub: TestClient, bystander: TestClient, packetId: number) {
  await pub.send(publishPacket("marker", "after", { qos: 1, packetId }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, packetId);
  const p = await bystander.expect(PacketType.PUBLISH);
  assert.deepEqual([p.topic, text(p)], ["marker", "after"], "the long message never came");
  assert.equal(bystander.ended, false, "the bystander is still connected");
}

test("95 long topics: a 3.1.1 PUBLISH over 16383 characters closes its connection, the 16383-character one is served [MQTT-3.3.5-2]", async () => {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "#": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  // The longest topic taken is retained and delivered.
  await pub.send(publishPacket(longest, "ok", { qos: 1, retain: true, packetId: 1 }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
  assert.equal((await bystander.expect(PacketType.PUBLISH)).topic, longest);
  for (const [i, topic] of [tooLong, tooLongShortLevels].entries()) {
    await using bad = await TestClient.connect(b.port, { clientId: `bad${i}` });
    // 3.1.1 cannot refuse a PUBLISH: the connection is closed, nothing acknowledged.
    await bad.send(publishPacket(topic, "no", { qos: 1, retain: true, packetId: 1 }));
    await bad.expectClosed();
    await markerNext(pub, bystander, 10 + i);
  }
  assert.deepEqual(retainedLengths(b), [MAX_TOPIC_LENGTH]);
  assert.ok(b.log.has(`topic over ${MAX_TOPIC_LENGTH} characters`), "the refusal is logged");
  noLongKey(b);
});

test("95 long topics: a 5.0 PUBLISH over 16383 characters, with a Topic Alias, gets DISCONNECT 0x90 Topic Name invalid", async () => {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, {
    clientId: "bystander",
    protocolVersion: 5,
  });
  await bystander.subscribe({ "#": 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (const qos of [0, 1] as const) {
    await using bad = await TestClient.connect(b.port, { clientId: "bad", protocolVersion: 5 });
    await bad.send(publish5(tooLong, "no", { topicAlias: 1 }, { qos, packetId: 1 }));
    const [disconnect] = await bad.expectClosed(undefined, { allowPackets: true });
    assert.equal(disconnect?.type, PacketType.DISCONNECT);
    assert.equal(disconnect.type === PacketType.DISCONNECT && disconnect.reasonCode, 0x90);
    await markerNext(pub, bystander, 20 + qos);
  }
  noLongKey(b);
});

test("95 long topics: SUBSCRIBE filters over 16383 characters get 0x80 at 3.1.1 and 0x8F at 5.0, the others granted, the connection open [MQTT-3.8.4-5]", async () => {
  await using b = await startBroker();
  const longFilter = "f/" + "a".repeat(MAX_TOPIC_LENGTH - 4) + "/#";
  const shared = `$share/g/${"b".repeat(MAX_TOPIC_LENGTH - 9)}`;
  await using c4 = await TestClient.connect(b.port, { clientId: "c4" });
  const suback4 = await c4.subscribe({ [longFilter]: 1, [longFilter + "x"]: 1, [shared + "x"]: 1 });
  assert.deepEqual(suback4.reasonCodes, [1, 0x80, 0x80]);
  await using c5 = await TestClient.connect(b.port, { clientId: "c5", protocolVersion: 5 });
  const suback5 = await c5.subscribe({ [shared]: 0, [tooLongShortLevels]: 0 });
  assert.deepEqual(suback5.reasonCodes, [0, 0x8f]);
  // UNSUBSCRIBE: no subscription can have such a filter, 0x8F says so at 5.0.
  await c5.send({ type: PacketType.UNSUBSCRIBE, packetId: 2, topics: [tooLong, shared] });
  const unsuback = await c5.expect(PacketType.UNSUBACK);
  assert.deepEqual(unsuback.reasonCodes, [0x8f, 0]);
  // Both still served: a message to the granted long filter arrives.
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const topic = longFilter.slice(0, -1) + "z";
  await pub.send(publishPacket(topic, "hi", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  assert.equal((await c4.expect(PacketType.PUBLISH)).topic, topic);
  assert.equal(c4.ended || c5.ended, false);
  assert.deepEqual(b.broker.subscriptions().map((s) => s.topic.length), [longFilter.length]);
  noLongKey(b);
});

test("95 long topics: a will topic over 16383 characters is refused, CONNACK 0x90 at 5.0, closed without CONNACK at 3.1.1", async () => {
  await using b = await startBroker();
  const will = { topic: tooLong, payload: new Uint8Array([1]), qos: 1 as const, retain: true };
  {
    await using c = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await c.handshake({ clientId: "w5", protocolVersion: 5, will });
    assert.equal(connack.reasonCode, 0x90);
    await c.expectClosed();
  }
  {
    await using c = await TestClient.open(b.port);
    await c.send({
      type: PacketType.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "w4",
      will,
    });
    await c.expectClosed();
  }
  // The will topic at the limit is taken.
  await using ok = await TestClient.connect(b.port, {
    clientId: "w",
    will: { ...will, topic: longest },
  });
  assert.equal(ok.ended, false);
  assert.deepEqual(b.broker.clients().map((c) => c.clientId), ["w"]);
});

test("95 long topics: Broker.publish throws a TypeError naming the limit, with the topic cut", async () => {
  // Plugins' publish goes the same way (`#publishAny`).
  await using b = await startBroker();
  assert.throws(() => b.broker.publish(tooLong, "x"), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /longer than 16383 characters/);
    assert.ok(e.message.length < 300, "the topic is cut in the message");
    return true;
  });
  b.broker.publish(longest, "x", { retain: true });
  assert.deepEqual(retainedLengths(b), [MAX_TOPIC_LENGTH]);
});

test("95 long topics: MQTTClient refuses to publish, subscribe or send a will over 16383 characters, and stays connected", async () => {
  await using b = await startBroker();
  await using client = new MQTTClient();
  const url = `mqtt://127.0.0.1:${b.port}`;
  await assert.rejects(
    client.connect(url, { will: { topic: tooLong, payload: "w" } }),
    /will topic .* longer than 16383 characters/,
  );
  await client.connect(url, { protocolVersion: 5 });
  await assert.rejects(client.publish(tooLong, "x"), TypeError);
  await assert.rejects(client.subscribe([{ topic: tooLong, qos: 0 }]), TypeError);
  await assert.rejects(client.subscribe([{ topic: tooLongShortLevels + "/#", qos: 0 }]), TypeError);
  assert.deepEqual(await client.subscribe([{ topic: longest, qos: 1 }]), [1]);
  await client.publish(longest, "fits", { qos: 1 });
  assert.equal((await client.deliverMessage({ timeout: 10_000 })).topic, longest);
  noLongKey(b);
});
