/**
 * Broker, area 17: hostile clients against the state limits. Each test has an attacker and a
 * well-behaved client beside it: the attacker is refused at the limit before the broker spends
 * memory on it, and the bystander keeps working with its connection open.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TestCore } from "../_helpers/core.ts";
import { refusalsByName } from "../../src/broker/limits.ts";
import { resolveBrokerConfig } from "../../src/config/mod.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { FakeLink, testCore } from "../_helpers/core.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** A topic of `levels` levels. */
function deep(levels: number, prefix = "deep"): string {
  return prefix + "/x".repeat(levels - 1);
}

/** A bystander subscribed to `canary/#` at QoS 1. */
async function canary(b: TestBroker, clientId = "canary"): Promise<TestClient> {
  const c = await TestClient.connect(b.port, { clientId });
  const suback = await c.subscribe({ "canary/#": 1 });
  assert.deepEqual(suback.reasonCodes, [1]);
  return c;
}

/** The bystander publishes at QoS 1, gets its PUBACK and its own message back, and a PINGRESP. */
async function assertServes(c: TestClient, payload: string, packetId = 7): Promise<void> {
  await c.send(publishPacket("canary/t", payload, { qos: 1, packetId }));
  const packets = [await c.receive(), await c.receive()];
  const puback = packets.find((p) => p.type === PacketType.PUBACK);
  const publish = packets.find((p) => p.type === PacketType.PUBLISH);
  assert.ok(puback !== undefined && publish !== undefined, "PUBACK and PUBLISH");
  assert.equal(text(publish as never), payload);
  if (publish!.type === PacketType.PUBLISH && publish!.qos === 1) {
    await c.send({ type: PacketType.PUBACK, packetId: publish!.packetId! });
  }
  await c.send({ type: PacketType.PINGREQ });
  await c.expect(PacketType.PINGRESP);
  assert.equal(c.socketEnded, false, "the bystander's connection is open");
}

test("17 limits: a PUBLISH topic over max_topic_levels (200) closes that connection only", async () => {
  await using b = await startBroker();
  await using good = await canary(b);
  await using attacker = await TestClient.connect(b.port, { clientId: "attacker" });
  // The attack was ~32,000 levels in a 64 KB topic, retained (22 MB of trie nodes each);
  // topics are now at most 16383 characters (95_long_topics_test.ts): 8,000 levels fit in that.
  await attacker.send(publishPacket(deep(8_000), "x", { retain: true }));
  await attacker.expectClosed();
  assert.deepEqual(userRetained(b.broker), [], "nothing of it retained");
  assert.equal(b.broker.stats.refusedTopicLevels, 1);
  assert.equal(refusalsByName(b.broker.stats)["topic-levels"], 1, "as $SYS and /metrics name it");
  assert.ok(b.log.has("more than 200 levels"), "the reason is logged");
  await assertServes(good, "after the deep topic");
});

test("17 limits: a topic of exactly max_topic_levels is accepted, one more level is not", async () => {
  await using b = await startBroker({ max_topic_levels: 5 });
  await using good = await canary(b);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket(deep(5), "five", { qos: 1, retain: true }));
  await pub.expect(PacketType.PUBACK);
  assert.deepEqual(userRetained(b.broker).map((m) => m.topic), [deep(5)]);
  // Empty levels count: "a/b/c/d/e/" has six.
  await pub.send(publishPacket("a/b/c/d/e/", "six", { qos: 1 }));
  await pub.expectClosed();
  await assertServes(good, "still here");
});

test("17 limits: a SUBSCRIBE filter over max_topic_levels gets 0x80 [MQTT-3.8.4-5], the rest are granted", async () => {
  await using b = await startBroker();
  await using good = await canary(b);
  await using attacker = await TestClient.connect(b.port, { clientId: "attacker" });
  // The second attack: filters of ~32,000 levels, 180 of which exhausted the heap (now
  // 8,000 levels, as many as 16383 characters hold).
  const filters: Record<string, 0 | 1> = { "ok/#": 1 };
  for (let i = 0; i < 20; i++) filters[deep(8_000, `f${i}`)] = 1;
  const suback = await attacker.subscribe(filters);
  assert.deepEqual(suback.reasonCodes, [1, ...Array(20).fill(0x80)]);
  assert.deepEqual(
    b.broker.subscriptions().filter((s) => s.clientId === "attacker").map((s) => s.topic),
    ["ok/#"],
  );
  assert.equal(b.broker.stats.refusedTopicLevels, 20);
  // A SUBSCRIBE is refused per filter, not by closing: the attacker's connection still works.
  await attacker.send({ type: PacketType.PINGREQ });
  await attacker.expect(PacketType.PINGRESP);
  // A deep filter that was never granted unsubscribes harmlessly [MQTT-3.10.4-5].
  await attacker.send({
    type: PacketType.UNSUBSCRIBE,
    packetId: 9,
    topics: [deep(8_000, "f0")],
  });
  assert.equal((await attacker.expect(PacketType.UNSUBACK)).packetId, 9);
  await assertServes(good, "unaffected");
});

test("17 limits: a will topic over max_topic_levels closes the connection without CONNACK", async () => {
  await using b = await startBroker({ max_topic_levels: 10 });
  await using good = await canary(b);
  await using attacker = await TestClient.open(b.port);
  await attacker.send({
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepAlive: 0,
    clientId: "attacker",
    will: { topic: deep(11), payload: new Uint8Array([1]), qos: 0, retain: true },
  });
  await attacker.expectClosed();
  assert.equal(b.broker.clients().some((s) => s.clientId === "attacker"), false);
  assert.deepEqual(userRetained(b.broker), []);
  await assertServes(good, "no will");
});

test("17 limits: max_subscriptions_per_client refuses new filters with 0x80; replacing one still works", async () => {
  await using b = await startBroker({ max_subscriptions_per_client: 3 });
  await using good = await canary(b); // one subscription of its own
  await using attacker = await TestClient.connect(b.port, { clientId: "attacker" });
  const first = await attacker.subscribe({ a: 0, b: 0, c: 0, d: 0, e: 0 });
  assert.deepEqual(first.reasonCodes, [0, 0, 0, 0x80, 0x80]);
  assert.equal(b.broker.stats.refusedSubscriptions, 2);
  // A subscription to a filter it has replaces it [MQTT-3.8.4-3]: no new state, so granted.
  const again = await attacker.subscribe({ a: 1 }, 2);
  assert.deepEqual(again.reasonCodes, [1]);
  // Unsubscribing frees a place.
  await attacker.send({ type: PacketType.UNSUBSCRIBE, packetId: 3, topics: ["b"] });
  await attacker.expect(PacketType.UNSUBACK);
  assert.deepEqual((await attacker.subscribe({ d: 0 }, 4)).reasonCodes, [0]);
  assert.deepEqual(
    b.broker.subscriptions().filter((s) => s.clientId === "attacker").map((s) => s.topic).sort(),
    ["a", "c", "d"],
  );
  // The cap is per client: the bystander subscribes on.
  assert.deepEqual((await good.subscribe({ "x/1": 0, "x/2": 0 }, 5)).reasonCodes, [0, 0]);
  await assertServes(good, "capped attacker, free bystander");
});

test("17 limits: max_sessions: abandoned sessions make room; with all connected, CONNACK 3 [MQTT-3.2.2-5]", async () => {
  await using b = await startBroker({ max_sessions: 3 });
  await using good = await canary(b);
  // The attacker leaves two persistent sessions behind, then tries to hold every place.
  for (const id of ["p1", "p2"]) {
    const persistent = await TestClient.connect(b.port, { clientId: id, clean: false });
    await persistent.disconnect();
    await waitFor(() => b.broker.clients().some((s) => s.clientId === id && !s.connected));
  }
  // A new session takes the place of the offline one that has waited longest.
  await using _a1 = await TestClient.connect(b.port, { clientId: "a1" });
  assert.deepEqual(b.broker.clients().map((s) => s.clientId).sort(), ["a1", "canary", "p2"]);
  assert.ok(b.log.has("Discarding the offline session of p1"));
  await using _a2 = await TestClient.connect(b.port, { clientId: "a2" });
  assert.deepEqual(b.broker.clients().map((s) => s.clientId).sort(), ["a1", "a2", "canary"]);
  assert.equal(b.broker.stats.refusedSessions, 0);
  // Every session connected: a new one is refused with server unavailable.
  await using a3 = await TestClient.open(b.port);
  const connack = await a3.handshake({ clientId: "a3" });
  assert.equal(connack.reasonCode, 3, "server unavailable");
  await a3.expectClosed();
  assert.equal(b.broker.stats.refusedSessions, 1);
  // The broker serves those it has: a takeover of an existing session is accepted.
  await using again = await TestClient.open(b.port);
  assert.equal((await again.handshake({ clientId: "a1" })).reasonCode, 0);
  await assertServes(good, "sessions capped");
});

test("17 limits: over max_memory new work is refused while existing sessions keep working", async () => {
  let used = 0;
  let samples = 0;
  const memoryProbe = () => {
    samples++;
    return used;
  };
  await using b = await startBroker({ max_memory: 64 * 1024 * 1024 }, { memoryProbe });
  await using good = await canary(b);
  const persistent = await TestClient.connect(b.port, { clientId: "p", clean: false });
  await persistent.subscribe({ "canary/#": 1 });
  await persistent.disconnect();
  await waitFor(() => b.broker.clients().some((s) => s.clientId === "p" && !s.connected));

  used = 65 * 1024 * 1024; // past the budget from the next sweep on
  const seen = samples;
  // Far below the limit the sweep samples every 5 s (memory_budget.ts).
  await waitFor(() => samples > seen, 15_000, "a memory sample");

  // A new session: CONNACK 3, server unavailable [MQTT-3.2.2-5].
  await using refused = await TestClient.open(b.port);
  assert.equal((await refused.handshake({ clientId: "new" })).reasonCode, 3);
  await refused.expectClosed();
  // A new subscription: 0x80; replacing one: granted.
  assert.deepEqual((await good.subscribe({ "more/#": 0, "canary/#": 1 }, 2)).reasonCodes, [
    0x80,
    1,
  ]);
  // A retained message is forwarded live but not stored; nothing is queued for p, offline.
  await good.send(publishPacket("canary/r", "kept?", { qos: 1, retain: true, packetId: 3 }));
  const got = [await good.receive(), await good.receive()];
  assert.ok(got.some((p) => p.type === PacketType.PUBLISH && text(p) === "kept?"));
  const publish = got.find((p) => p.type === PacketType.PUBLISH)!;
  if (publish.type === PacketType.PUBLISH) {
    await good.send({ type: PacketType.PUBACK, packetId: publish.packetId! });
  }
  assert.deepEqual(userRetained(b.broker), []);
  assert.equal(b.broker.clients().find((s) => s.clientId === "p")?.queued, 0);
  assert.ok(b.broker.stats.refusedMemory >= 3, `refusedMemory ${b.broker.stats.refusedMemory}`);
  assert.ok(b.broker.stats.dropped >= 1, "the message p would have queued is counted dropped");
  // The existing offline session resumes: not new work.
  await using back = await TestClient.open(b.port);
  const resumed = await back.handshake({ clientId: "p", clean: false });
  assert.equal(resumed.reasonCode, 0);
  assert.equal(resumed.sessionPresent, true);
  await assertServes(good, "over budget", 4);

  // Memory back under the budget: new clients are served again.
  used = 0;
  const later = samples;
  await waitFor(() => samples > later, 3000, "a memory sample");
  await using fresh = await TestClient.connect(b.port, { clientId: "new" });
  assert.deepEqual((await fresh.subscribe({ "more/#": 0 })).reasonCodes, [0]);
});

test("17 limits: Broker.publish refuses a topic over max_topic_levels with a TypeError", async () => {
  await using b = await startBroker({ max_topic_levels: 3 });
  assert.throws(() => b.broker.publish("a/b/c/d", "x"), TypeError);
  b.broker.publish("a/b/c", "x", { retain: true });
  assert.deepEqual(userRetained(b.broker).map((m) => m.topic), ["a/b/c"]);
});

/** A core driven directly, with the injected clock, expiring offline sessions after `expiry` s. */
function coreWithExpiry(expiry: number): TestCore {
  return testCore({ sessionExpiryInterval: expiry });
}

/** Connects a persistent session for `clientId` at `now` and leaves it offline. */
async function abandon(core: TestCore, clientId: string, now: number): Promise<void> {
  const link = new FakeLink();
  core.attach(link, now);
  await core.handle(link, connectPacket({ clientId, clean: false }), now);
  core.detach(link, now);
}

test("17 limits: abandoned persistent sessions expire after the default 3 days", async () => {
  const expiry = resolveBrokerConfig({}).sessionExpiryInterval!;
  assert.equal(expiry, 3 * 24 * 3600);
  const core = coreWithExpiry(expiry);
  const t0 = 1_000_000;
  // Three clients leave persistent sessions behind, an hour apart; one comes back.
  for (const [i, id] of ["a", "b", "c"].entries()) await abandon(core, id, t0 + i * 3600_000);
  const back = new FakeLink();
  core.attach(back, t0 + 3 * 3600_000);
  await core.handle(back, connectPacket({ clientId: "b", clean: false }), t0 + 3 * 3600_000);
  const ms = expiry * 1000;
  core.tick(t0 + ms - 1);
  assert.deepEqual([...core.sessions.keys()].sort(), ["a", "b", "c"]);
  core.tick(t0 + ms);
  assert.deepEqual([...core.sessions.keys()].sort(), ["b", "c"]);
  core.tick(t0 + 2 * 3600_000 + ms);
  assert.deepEqual([...core.sessions.keys()], ["b"], "the connected session stays");
});

test("17 limits: large QoS 1 messages flooding an offline session stop being queued near max_memory", async () => {
  const processMemory = () => {
    const m = Deno.memoryUsage();
    return m.heapUsed + m.external;
  };
  // The budget: what the process holds now plus 64 MiB. Memory is sampled every 16 MiB read, so
  // the queue cannot grow past it between two sweeps.
  await using b = await startBroker({
    max_memory: processMemory() + 64 * 1024 * 1024,
    max_packet_size: 4 * 1024 * 1024,
    max_queued_messages: 0,
  });
  await using good = await canary(b);
  const offline = await TestClient.connect(b.port, { clientId: "offline", clean: false });
  await offline.subscribe({ "flood/#": 1 });
  await offline.disconnect();
  await waitFor(() => b.broker.clients().some((s) => s.clientId === "offline" && !s.connected));
  await using attacker = await TestClient.connect(b.port, { clientId: "attacker" });
  const payload = new Uint8Array(2 * 1024 * 1024);
  const COUNT = 80; // 160 MiB
  for (let i = 0; i < COUNT; i++) {
    await attacker.send(publishPacket("flood/x", payload, { qos: 1, packetId: (i % 100) + 1 }));
    await attacker.expect(PacketType.PUBACK, 5000);
  }
  const session = b.broker.clients().find((s) => s.clientId === "offline")!;
  const held = session.inflight + session.queued;
  assert.ok(held < 50, `${held} of ${COUNT} 2 MiB messages held for the offline session`);
  assert.equal(b.broker.stats.dropped, COUNT - held);
  await assertServes(good, "after the flood");
});

test("17 limits: 5,000 sessions expiring at once are discarded over several sweeps", async () => {
  const core = coreWithExpiry(60);
  for (let i = 0; i < 5000; i++) await abandon(core, `s${i}`, 0);
  const left: number[] = [];
  for (let sweep = 0; sweep < 4; sweep++) {
    core.tick(60_000 + sweep * 500);
    left.push(core.sessions.size);
  }
  assert.deepEqual(left, [3000, 1000, 0, 0]);
});
