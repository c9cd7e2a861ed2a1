/**
 * Broker, area 45: Subscription Identifiers stored with a delivery. A 5.0 subscriber's QoS 1
 * delivery carries the identifiers of the subscriptions it matched [MQTT-3.3.4-3], also when it
 * is sent again after a broker restart, whether it was in flight or still queued.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const, properties: { sessionExpiryInterval: 3600 } };

/** Subscribes `sub` to `filter` at QoS 1 with a Subscription Identifier. */
async function subscribeWithId(sub: TestClient, filter: string, id: number): Promise<void> {
  await subscribe5(sub, [{
    topic: filter,
    qos: 1,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
  }], { identifier: id });
}

async function publishQos1(pub: TestClient, topic: string, payload: string, id: number) {
  await pub.send(publishPacket(topic, payload, { qos: 1, packetId: id }));
  const ack = await pub.expect(PacketType.PUBACK);
  assert.equal(ack.packetId, id);
}

test("45 restart: a QoS 1 delivery queued for an offline 5.0 session is sent after a restart with its Subscription Identifiers [MQTT-3.3.4-3]", async () => {
  await using dir = await tempDir("amqtt-sub-ids-");
  const path = `${dir.path}/state.db`;
  {
    await using b = await startBroker({}, { store: SqliteStore.open(path) });
    {
      await using sub = await TestClient.connect(b.port, { clientId: "sub5", clean: false, ...V5 });
      await subscribeWithId(sub, "ids/#", 42);
      await subscribeWithId(sub, "ids/+/x", 7);
    }
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publishQos1(pub, "ids/a/x", "queued", 1);
  }
  await using b = await startBroker({}, { store: SqliteStore.open(path) });
  await using sub = await TestClient.open(b.port, { protocolVersion: 5 });
  await sub.handshake({ clientId: "sub5", clean: false, ...V5 });
  const m = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual(
    [text(m), m.qos, [...(m.properties?.subscriptionIdentifier ?? [])].sort((a, b) => a - b)],
    ["queued", 1, [7, 42]],
  );
});

test("45 restart: a QoS 1 delivery in flight to a 5.0 subscriber is resent after a restart with DUP and its Subscription Identifier [MQTT-3.3.4-3]", async () => {
  await using dir = await tempDir("amqtt-sub-ids-");
  const path = `${dir.path}/state.db`;
  {
    await using b = await startBroker({}, { store: SqliteStore.open(path) });
    await using sub = await TestClient.connect(b.port, { clientId: "sub5", clean: false, ...V5 });
    await subscribeWithId(sub, "ids/#", 42);
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publishQos1(pub, "ids/1", "in flight", 1);
    const first = await sub.expect(PacketType.PUBLISH);
    assert.deepEqual(first.properties?.subscriptionIdentifier, [42]);
    // Not acknowledged: in flight when the broker stops.
  }
  await using b = await startBroker({}, { store: SqliteStore.open(path) });
  await using sub = await TestClient.open(b.port, { protocolVersion: 5 });
  await sub.handshake({ clientId: "sub5", clean: false, ...V5 });
  const again = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual(
    [text(again), again.dup, again.properties?.subscriptionIdentifier],
    ["in flight", true, [42]],
  );
});

test("45: a QoS 1 delivery queued for an offline 5.0 session carries its Subscription Identifier when it reconnects (no restart) [MQTT-3.3.4-3]", async () => {
  await using b = await startBroker({});
  {
    await using sub = await TestClient.connect(b.port, { clientId: "sub5", clean: false, ...V5 });
    await subscribeWithId(sub, "ids/#", 42);
  }
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await publishQos1(pub, "ids/q", "queued", 1);
  await using sub = await TestClient.open(b.port, { protocolVersion: 5 });
  await sub.handshake({ clientId: "sub5", clean: false, ...V5 });
  const m = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(m), m.properties?.subscriptionIdentifier], ["queued", [42]]);
});

test("45: a retained QoS 1 message queued for an offline 5.0 session with Retain As Published keeps RETAIN 1, also after a restart [MQTT-3.3.1-12]", async () => {
  await using dir = await tempDir("amqtt-sub-ids-");
  const path = `${dir.path}/state.db`;
  {
    await using b = await startBroker({}, { store: SqliteStore.open(path) });
    {
      await using sub = await TestClient.connect(b.port, { clientId: "sub5", clean: false, ...V5 });
      await subscribe5(sub, [{
        topic: "rap/#",
        qos: 1,
        noLocal: false,
        retainAsPublished: true,
        retainHandling: 2,
      }]);
    }
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await pub.send(publishPacket("rap/1", "kept", { qos: 1, packetId: 1, retain: true }));
    await pub.expect(PacketType.PUBACK);
  }
  await using b = await startBroker({}, { store: SqliteStore.open(path) });
  await using sub = await TestClient.open(b.port, { protocolVersion: 5 });
  await sub.handshake({ clientId: "sub5", clean: false, ...V5 });
  const m = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(m), m.retain], ["kept", true]);
});
