/**
 * Broker, area 18: hostile clients against the retained store. Retained messages are bounded in
 * count and bytes, and a subscription matching a huge number of them is served a slice at a
 * time, so that a bystander's packets are answered before the flood is over.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketDecoder, PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/mod.ts";
import { delay, startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Anonymous access without the `$SYS` plugin, whose retained version would count in the totals. */
const NO_SYS = { plugins: { "amqtt.plugins.authentication.AnonymousAuthPlugin": {} } };

/** Publishes a retained QoS 1 message and waits for its PUBACK. */
async function retain(c: TestClient, topic: string, payload: string, packetId = 1): Promise<void> {
  await c.send(publishPacket(topic, payload, { qos: 1, retain: true, packetId }));
  assert.equal((await c.expect(PacketType.PUBACK)).packetId, packetId);
}

function retainedTopics(b: { broker: Parameters<typeof userRetained>[0] }): string[] {
  return userRetained(b.broker).map((m) => m.topic).sort();
}

test("18 retained: max_retained_messages stores no new topic past the cap, still forwards it", async () => {
  await using b = await startBroker({ ...NO_SYS, max_retained_messages: 3 });
  await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "r/#": 0 });
  await using attacker = await TestClient.connect(b.port, { clientId: "attacker" });
  for (let i = 1; i <= 5; i++) await retain(attacker, `r/${i}`, `v${i}`, i);
  assert.deepEqual(retainedTopics(b), ["r/1", "r/2", "r/3"]);
  assert.equal(b.broker.stats.refusedRetained, 2);
  // Every message was routed to the current subscriber all the same.
  const live: string[] = [];
  for (let i = 0; i < 5; i++) live.push(text(await watcher.expect(PacketType.PUBLISH)));
  assert.deepEqual(live, ["v1", "v2", "v3", "v4", "v5"]);
  // Replacing a stored topic is not a new one [MQTT-3.3.1-5]; clearing one frees a place
  // [MQTT-3.3.1-10].
  await retain(attacker, "r/1", "v1b", 6);
  await retain(attacker, "r/2", "", 7);
  await retain(attacker, "r/4", "v4b", 8);
  assert.deepEqual(retainedTopics(b), ["r/1", "r/3", "r/4"]);
  assert.equal(userRetained(b.broker).find((m) => m.topic === "r/1")?.payload.length, 3);
  for (const want of ["v1b", "", "v4b"]) {
    assert.equal(text(await watcher.expect(PacketType.PUBLISH)), want);
  }
  await watcher.send({ type: PacketType.PINGREQ });
  await watcher.expect(PacketType.PINGRESP);
});

test("18 retained: max_retained_bytes bounds topics plus payloads; a refused update drops the stale value", async () => {
  await using b = await startBroker({ ...NO_SYS, max_retained_bytes: 100 });
  await using good = await TestClient.connect(b.port, { clientId: "good" });
  await using attacker = await TestClient.connect(b.port, { clientId: "attacker" });
  await retain(good, "g", "x".repeat(40)); // 41 bytes
  await retain(attacker, "a", "y".repeat(80), 2); // 81 more: refused
  assert.deepEqual(retainedTopics(b), ["g"]);
  assert.equal(b.broker.stats.refusedRetained, 1);
  await retain(attacker, "a", "y".repeat(50), 3); // 51: fits (92)
  assert.deepEqual(retainedTopics(b), ["a", "g"]);
  // Growing "a" past the bound is refused, and its older value is not kept as if current.
  await retain(attacker, "a", "y".repeat(70), 4);
  assert.deepEqual(retainedTopics(b), ["g"]);
  // The bytes were returned: the well-behaved client can store again.
  await retain(good, "g2", "z".repeat(50), 5);
  assert.deepEqual(retainedTopics(b), ["g", "g2"]);
  await good.send({ type: PacketType.PINGREQ });
  await good.expect(PacketType.PINGRESP);
});

test("18 retained: a '#' subscription over 100,000 retained messages does not hold up a bystander", async () => {
  const COUNT = 100_000;
  await using b = await startBroker();
  for (let i = 0; i < COUNT; i++) {
    b.broker.publish(`flood/${i % 100}/${i}`, "r", { retain: true });
  }
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await using hungry = await TestClient.connect(b.port, { clientId: "hungry" });
  const sentBefore = b.broker.stats.publishSent;
  assert.deepEqual((await hungry.subscribe({ "#": 0 })).reasonCodes, [0]);
  // The retained delivery has begun (SUBACK comes first [MQTT-3.3.1-6]). The bystander's QoS 1
  // PUBLISH and PINGREQ are answered while it is still going: when they arrive, the broker has
  // not yet sent every retained message. (Sent in one go, the broker would have written all
  // 100,000 before it read the bystander's packets.)
  await bystander.send(
    publishPacket("bystander/t", "hello", { qos: 1, packetId: 5 }),
    { type: PacketType.PINGREQ },
  );
  assert.equal((await bystander.expect(PacketType.PUBACK)).packetId, 5);
  await bystander.expect(PacketType.PINGRESP);
  const sentWhenServed = b.broker.stats.publishSent - sentBefore;
  assert.ok(
    sentWhenServed < COUNT,
    `the bystander was answered after ${sentWhenServed} of ${COUNT} retained messages`,
  );
  // And the flood completes: every retained message arrives, with RETAIN 1 [MQTT-3.3.1-8],
  // besides the bystander's live message.
  let retained = 0;
  let live = 0;
  while (retained < COUNT || live < 1) {
    const p: Packet = await hungry.receive(10_000);
    assert.equal(p.type, PacketType.PUBLISH);
    if (p.type !== PacketType.PUBLISH) break;
    if (p.retain) retained++;
    else live++;
  }
  assert.equal(retained, COUNT);
  assert.equal(live, 1);
  assert.equal(b.broker.stats.dropped, 0);
});

test("18 retained: a retained message replaced during the slices is sent once, the newer value", async () => {
  await using b = await startBroker();
  for (let i = 0; i < 20_000; i++) b.broker.publish(`s/${i}`, "old", { retain: true });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  // Once the SUBSCRIBE is handled, before the first slice: replace one topic, clear another.
  b.broker.on("subscribed", () =>
    queueMicrotask(() => {
      b.broker.publish("s/19999", "new", { retain: true });
      b.broker.publish("s/19998", "", { retain: true });
    }));
  await sub.subscribe({ "s/#": 0 });
  const values = new Map<string, string[]>();
  let count = 0;
  // 19,998 retained messages, the replaced and the cleared one skipped, plus two live forwards.
  while (count < 20_000) {
    const p = await sub.expect(PacketType.PUBLISH, 10_000);
    count++;
    values.set(p.topic, [...(values.get(p.topic) ?? []), text(p)]);
  }
  assert.deepEqual(values.get("s/19999"), ["new"]);
  assert.deepEqual(values.get("s/19998"), [""]);
  assert.deepEqual(values.get("s/0"), ["old"]);
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
});

test("18 retained: a '#' subscriber that leaves mid-flood stops its delivery; others are served", async () => {
  await using b = await startBroker();
  for (let i = 0; i < 50_000; i++) b.broker.publish(`q/${i}`, "r", { retain: true });
  const quitter = await TestClient.connect(b.port, { clientId: "quitter" });
  await quitter.subscribe({ "#": 0 });
  await quitter.close();
  await using next = await TestClient.connect(b.port, { clientId: "next" });
  await next.subscribe({ "q/1": 1 });
  const p = await next.expect(PacketType.PUBLISH);
  assert.equal(p.topic, "q/1");
  assert.equal(p.retain, true);
  assert.ok(
    b.broker.stats.publishSent < 50_000,
    `sent ${b.broker.stats.publishSent} of the quitter's 50,000`,
  );
});

test("18 retained: a QoS 1 '#' subscriber gets every retained message, paced by its acks, none dropped", async () => {
  const COUNT = 3000;
  await using b = await startBroker({ max_queued_messages: 50 });
  for (let i = 0; i < COUNT; i++) b.broker.publish(`q1/${i}`, `${i}`, { qos: 1, retain: true });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "q1/#": 1 });
  const seen = new Set<string>();
  while (seen.size < COUNT) {
    const p = await sub.expect(PacketType.PUBLISH, 5000);
    assert.equal(p.qos, 1);
    assert.equal(p.retain, true);
    seen.add(p.topic);
    await sub.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  // A window of 20 and a queue of 50 held them as they came: the rest waited in the store.
  assert.equal(b.broker.stats.dropped, 0);
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
});

test("18 retained: a '#' subscriber that does not read is not flooded: delivery waits, then completes", async () => {
  const COUNT = 50_000;
  await using b = await startBroker();
  const payload = "p".repeat(100); // ~5.7 MB in all: more than the sockets buffer
  for (let i = 0; i < COUNT; i++) b.broker.publish(`slow/${i}`, payload, { retain: true });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  try {
    await conn.write(encodePacket(connectPacket({ clientId: "slow" }), 4));
    await conn.write(encodePacket({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "slow/#", qos: 0 }],
    }, 4));
    // Not reading: the broker stops at about 1 MiB waiting on this connection, drops nothing.
    await waitFor(() => b.broker.stats.publishSent > 0);
    await delay(300);
    const sentWhileStalled = b.broker.stats.publishSent;
    assert.ok(sentWhileStalled < COUNT, `${sentWhileStalled} sent to a client not reading`);
    assert.equal(b.broker.stats.dropped, 0);
    // Reading now: every retained message arrives.
    const decoder = new PacketDecoder({ protocolVersion: 4, side: "client" });
    const buffer = new Uint8Array(65536);
    let publishes = 0;
    while (publishes < COUNT) {
      const n = await conn.read(buffer);
      assert.ok(n !== null, "the broker kept the connection open");
      decoder.push(buffer.slice(0, n));
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
        if (p.type === PacketType.PUBLISH) publishes++;
      }
    }
    assert.equal(publishes, COUNT);
    assert.equal(b.broker.stats.dropped, 0);
  } finally {
    conn.close();
  }
});
