/**
 * Broker, area 29: what a delivery carries when it is sent again after a crash or restart. A
 * crash is made in-process with {@linkcode CrashingStore}, a real SQLite store that, from the
 * moment of the "crash", takes no more writes: the file holds exactly what a SIGKILL at that
 * moment leaves. The broker is then stopped and started again on the file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { CrashingStore } from "../_helpers/crashing_store.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

async function publish(
  pub: TestClient,
  topic: string,
  payload: string,
  options: { qos: 1 | 2; packetId: number; retain?: boolean },
): Promise<void> {
  await pub.send(publishPacket(topic, payload, options));
  const ack = await pub.expect(options.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC);
  assert.equal(ack.packetId, options.packetId);
  if (options.qos === 1) return;
  await pub.send({ type: PacketType.PUBREL, packetId: options.packetId });
  await pub.expect(PacketType.PUBCOMP);
}

test("29 crash: a QoS 1 delivery sent from the queue whose sent mark was not committed comes again with DUP 1 [MQTT-3.3.1-1]", async () => {
  await using dir = await tempDir("amqtt-redelivery-");
  const path = `${dir.path}/state.db`;
  let first: number;
  {
    const store = new CrashingStore(path);
    // A window of one: the second and third messages wait in the queue.
    await using b = await startBroker({ max_inflight: 1 }, { store });
    await using sub = await TestClient.connect(b.port, { clientId: "sub", clean: false });
    await sub.subscribe({ "t/#": 2 });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publish(pub, "t/1", "m1", { qos: 1, packetId: 1 });
    await publish(pub, "t/2", "m2", { qos: 1, packetId: 2 });
    await publish(pub, "t/3", "m3", { qos: 2, packetId: 3 });
    const m1 = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([text(m1), m1.dup], ["m1", false]);
    first = m1.packetId!;
    // The crash: the PUBACK's deletion and the mark that m2 went out are never written.
    await store.crash();
    await sub.send({ type: PacketType.PUBACK, packetId: first });
    const m2 = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([text(m2), m2.qos, m2.dup], ["m2", 1, false], "QoS 1 waits for no commit");
    await sub.close();
  }
  let second: number;
  {
    await using b = await startBroker({ max_inflight: 1 }, { store: SqliteStore.open(path) });
    await using sub = await TestClient.open(b.port);
    assert.equal((await sub.handshake({ clientId: "sub", clean: false })).sessionPresent, true);
    const m1 = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual(
      [text(m1), m1.packetId, m1.dup],
      ["m1", first, true],
      "stored as sent: resent with its id and DUP [MQTT-4.4.0-1]",
    );
    await sub.send({ type: PacketType.PUBACK, packetId: m1.packetId! });
    const m2 = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([text(m2), m2.qos, m2.dup], ["m2", 1, true], "it may have gone out: DUP 1");
    second = m2.packetId!;
    await sub.disconnect();
  }
  // This time its sending was stored, with its new id.
  await using b = await startBroker({ max_inflight: 1 }, { store: SqliteStore.open(path) });
  await using sub = await TestClient.open(b.port);
  await sub.handshake({ clientId: "sub", clean: false });
  const m2 = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(m2), m2.packetId, m2.dup], ["m2", second, true]);
  await sub.send({ type: PacketType.PUBACK, packetId: m2.packetId! });
  // A QoS 2 PUBLISH goes out only once its mark is stored: a queued one was never sent.
  const m3 = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(m3), m3.qos, m3.dup], ["m3", 2, false]);
  await sub.send({ type: PacketType.PUBREC, packetId: m3.packetId! });
  await sub.expect(PacketType.PUBREL);
  await sub.send({ type: PacketType.PUBCOMP, packetId: m3.packetId! });
  await sub.expectNothing(100);
  assert.equal(sub.ended, false);
});

test("29 restart: a QoS 1 message queued while its session was offline goes out first with DUP 0, and its send is stored", async () => {
  await using dir = await tempDir("amqtt-redelivery-");
  const path = `${dir.path}/state.db`;
  {
    await using b = await startBroker({ max_inflight: 1 }, { store: SqliteStore.open(path) });
    const sub = await TestClient.connect(b.port, { clientId: "sub", clean: false });
    await sub.subscribe({ "t/#": 1 });
    await sub.disconnect();
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publish(pub, "t/1", "m1", { qos: 1, packetId: 1 });
  }
  let id: number;
  {
    // Restarted cleanly: nothing was sent, so no DUP.
    await using b = await startBroker({ max_inflight: 1 }, { store: SqliteStore.open(path) });
    await using sub = await TestClient.open(b.port);
    await sub.handshake({ clientId: "sub", clean: false });
    const m1 = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([text(m1), m1.dup], ["m1", false]);
    id = m1.packetId!;
    await sub.disconnect();
  }
  // Sent, not acknowledged, stopped again: now a resend, with the same id and DUP.
  await using b = await startBroker({ max_inflight: 1 }, { store: SqliteStore.open(path) });
  await using sub = await TestClient.open(b.port);
  await sub.handshake({ clientId: "sub", clean: false });
  const again = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(again), again.packetId, again.dup], ["m1", id, true]);
});

test("29 restart: a delivery in flight keeps its RETAIN flag and Subscription Identifiers [MQTT-3.3.1-8] [MQTT-3.3.1-12] [MQTT-3.3.4-3]", async () => {
  await using dir = await tempDir("amqtt-redelivery-");
  const path = `${dir.path}/state.db`;
  const v5 = { protocolVersion: 5 as const, properties: { sessionExpiryInterval: 3600 } };
  {
    await using b = await startBroker({}, { store: SqliteStore.open(path) });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publish(pub, "r/old", "retained", { qos: 1, packetId: 1, retain: true });
    // A retained message sent because of a new subscription carries RETAIN 1.
    await using sub = await TestClient.connect(b.port, { clientId: "sub", clean: false });
    await sub.subscribe({ "r/#": 1 });
    const old = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([text(old), old.retain], ["retained", true]);
    // An MQTT 5.0 subscription with Retain As Published and an identifier.
    await using sub5 = await TestClient.connect(b.port, { clientId: "sub5", clean: false, ...v5 });
    await subscribe5(sub5, [{
      topic: "live/#",
      qos: 1,
      noLocal: false,
      retainAsPublished: true,
      retainHandling: 2,
    }], { identifier: 42 });
    await sub.subscribe({ "live/#": 1 }, 2);
    await publish(pub, "live/1", "published retained", { qos: 1, packetId: 2, retain: true });
    const live = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual([text(live), live.retain], ["published retained", false], "[MQTT-3.3.1-9]");
    const live5 = await sub5.expect(PacketType.PUBLISH);
    assert.deepEqual([live5.retain, live5.properties?.subscriptionIdentifier], [true, [42]]);
    // None acknowledged: all three are in flight when the broker stops.
  }
  await using b = await startBroker({}, { store: SqliteStore.open(path) });
  await using sub = await TestClient.open(b.port);
  await sub.handshake({ clientId: "sub", clean: false });
  const old = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(old), old.retain, old.dup], ["retained", true, true]);
  const live = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(live), live.retain, live.dup], ["published retained", false, true]);
  await using sub5 = await TestClient.open(b.port, { protocolVersion: 5 });
  await sub5.handshake({ clientId: "sub5", clean: false, ...v5 });
  const live5 = await sub5.expect(PacketType.PUBLISH);
  assert.deepEqual(
    [text(live5), live5.retain, live5.dup, live5.properties?.subscriptionIdentifier],
    ["published retained", true, true, [42]],
  );
});

test("29 restart: a restored retained message keeps its expiry [MQTT-3.3.2-5], and $SYS clients/maximum is kept", async () => {
  await using dir = await tempDir("amqtt-redelivery-");
  const path = `${dir.path}/state.db`;
  {
    await using b = await startBroker({}, { store: SqliteStore.open(path) });
    await using pub = await TestClient.connect(b.port, {
      clientId: "pub",
      protocolVersion: 5,
    });
    await pub.send({
      ...publishPacket("r/exp", "short-lived", { qos: 1, packetId: 1, retain: true }),
      properties: { messageExpiryInterval: 1 },
    });
    await pub.expect(PacketType.PUBACK);
    await publish(pub, "r/keep", "kept", { qos: 1, packetId: 2, retain: true });
    await using _a = await TestClient.connect(b.port, { clientId: "a" });
    await using _b = await TestClient.connect(b.port, { clientId: "b" });
    assert.equal(b.broker.stats.clientsMaximum, 3);
  }
  await using b = await startBroker({}, { store: SqliteStore.open(path) });
  assert.equal(b.broker.stats.clientsMaximum, 3, "the peak survives the restart");
  // Past the deadline set when it was received, before the restart.
  await delay(1100);
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "r/#": 0 });
  const kept = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([kept.topic, text(kept)], ["r/keep", "kept"]);
  await sub.expectNothing(100);
  assert.equal(sub.ended, false);
});
