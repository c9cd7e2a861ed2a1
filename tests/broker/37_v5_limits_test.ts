/**
 * Broker, area 37: the MQTT 5.0 limits a broker may announce, set by configuration
 * (`maximum_qos`, `retain_available`), checked byte by byte over TCP at level 5, and what a
 * 3.1.1 client gets under the same settings (Mosquitto's behaviour: the connection is closed).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/mod.ts";
import { startBroker, userRetained } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };
const bytes = (s: string) => new TextEncoder().encode(s);

function lastDisconnect(seen: Packet[]): number | undefined {
  const last = seen.at(-1);
  return last?.type === PacketType.DISCONNECT ? last.reasonCode : undefined;
}

// ---------------------------------------------------------------------------------------------
// maximum_qos

test("37 v5 limits: maximum_qos below 2 is announced as CONNACK Maximum QoS; the default announces none [MQTT-3.2.2-9]", async () => {
  for (const maximumQos of [0, 1] as const) {
    await using b = await startBroker({ maximum_qos: maximumQos });
    await using c = await TestClient.open(b.port, V5);
    const connack = await c.handshake({ ...V5, clientId: "c" });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.maximumQoS, maximumQos);
    await c.disconnect();
  }
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "c" });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.maximumQoS, undefined);
  await c.disconnect();
});

test("37 v5 limits: with Maximum QoS 1 a SUBSCRIBE at QoS 0, 1 and 2 is accepted, granted at most 1, and delivers at 1 [MQTT-3.2.2-10]", async () => {
  await using b = await startBroker({ maximum_qos: 1 });
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  const codes = await subscribe5(sub, [
    { topic: "q/0", qos: 0 },
    { topic: "q/1", qos: 1 },
    { topic: "q/2", qos: 2 },
  ]);
  assert.deepEqual(codes, [0, 1, 1]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/2", "m", { qos: 1, packetId: 7 }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 7);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.topic, "q/2");
  assert.equal(got.qos, 1);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await pub.disconnect();
  await sub.disconnect();
});

test("37 v5 limits: Maximum QoS 0 grants QoS 0 to every subscription request [MQTT-3.2.2-10]", async () => {
  await using b = await startBroker({ maximum_qos: 0 });
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  assert.deepEqual(
    await subscribe5(sub, [{ topic: "a", qos: 1 }, { topic: "b", qos: 2 }]),
    [0, 0],
  );
  await sub.disconnect();
});

test("37 v5 limits: a PUBLISH above the Maximum QoS gets DISCONNECT 0x9B and is not delivered", async () => {
  await using b = await startBroker({ maximum_qos: 1 });
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "t", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("t", "too high", { qos: 2, packetId: 3 }));
  const seen = await pub.expectClosed(10_000, { allowPackets: true });
  assert.equal(lastDisconnect(seen), 0x9b);
  assert.ok(seen.every((p) => p.type === PacketType.DISCONNECT), "no PUBREC before the close");
  // The subscriber got nothing and is still connected.
  await sub.expectNothing(200);
  await sub.disconnect();
});

test("37 v5 limits: a Will QoS above the Maximum QoS is refused with CONNACK 0x9B and the connection closed [MQTT-3.2.2-12]", async () => {
  await using b = await startBroker({ maximum_qos: 1 });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({
    ...V5,
    clientId: "w",
    will: { topic: "will/w", payload: bytes("x"), qos: 2, retain: false },
  });
  assert.equal(connack.reasonCode, 0x9b);
  assert.equal(connack.sessionPresent, false);
  await c.expectClosed();
  assert.equal(b.broker.clients().some((s) => s.clientId === "w"), false);
  // A will at the Maximum QoS is accepted.
  await using ok = await TestClient.open(b.port, V5);
  const accepted = await ok.handshake({
    ...V5,
    clientId: "w",
    will: { topic: "will/w", payload: bytes("x"), qos: 1, retain: false },
  });
  assert.equal(accepted.reasonCode, 0);
  await ok.disconnect();
});

// ---------------------------------------------------------------------------------------------
// retain_available

test("37 v5 limits: retain_available false is announced as CONNACK Retain Available 0; the default announces none", async () => {
  await using b = await startBroker({ retain_available: false });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "c" });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.retainAvailable, 0);
  await c.disconnect();
  await using d = await startBroker();
  await using e = await TestClient.open(d.port, V5);
  assert.equal(
    (await e.handshake({ ...V5, clientId: "e" })).properties?.retainAvailable,
    undefined,
  );
  await e.disconnect();
});

test("37 v5 limits: a Will with Will Retain 1 when retain is not available is refused with CONNACK 0x9A and closed [MQTT-3.2.2-13]", async () => {
  await using b = await startBroker({ retain_available: false });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({
    ...V5,
    clientId: "w",
    will: { topic: "will/w", payload: bytes("x"), qos: 0, retain: true },
  });
  assert.equal(connack.reasonCode, 0x9a);
  assert.equal(connack.sessionPresent, false);
  await c.expectClosed();
  // The same will without Will Retain is accepted.
  await using ok = await TestClient.open(b.port, V5);
  const accepted = await ok.handshake({
    ...V5,
    clientId: "w",
    will: { topic: "will/w", payload: bytes("x"), qos: 0, retain: false },
  });
  assert.equal(accepted.reasonCode, 0);
  await ok.disconnect();
});

test("37 v5 limits: a PUBLISH with RETAIN 1 when retain is not available gets DISCONNECT 0x9A and nothing is stored", async () => {
  await using b = await startBroker({ retain_available: false });
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("r", "kept?", { qos: 1, retain: true, packetId: 2 }));
  const seen = await pub.expectClosed(10_000, { allowPackets: true });
  assert.equal(lastDisconnect(seen), 0x9a);
  assert.equal(userRetained(b.broker).length, 0);
});

// ---------------------------------------------------------------------------------------------
// The same settings for a 3.1.1 client: no property can tell it, so, as Mosquitto does, what it
// may not do closes the connection (a will: no CONNACK), and subscriptions are granted at most
// the Maximum QoS.

test("37 limits at 3.1.1: a will above maximum_qos or retained without retain_available closes the connection without CONNACK", async () => {
  await using b = await startBroker({ maximum_qos: 1, retain_available: false });
  for (const will of [{ qos: 2 as const, retain: false }, { qos: 0 as const, retain: true }]) {
    await using c = await TestClient.open(b.port);
    await c.send({
      type: PacketType.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "w",
      will: { topic: "will/w", payload: bytes("x"), ...will },
    });
    assert.deepEqual(await c.expectClosed(), []);
  }
  assert.equal(b.broker.stats.clientsConnected, 0);
});

test("37 limits at 3.1.1: a PUBLISH above maximum_qos, or retained without retain_available, closes the connection; SUBSCRIBE is granted at most maximum_qos", async () => {
  await using b = await startBroker({ maximum_qos: 1, retain_available: false });
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  const suback = await sub.subscribe({ "t/#": 2 });
  assert.deepEqual(suback.reasonCodes, [1]);
  await using high = await TestClient.connect(b.port, { clientId: "h" });
  await high.send(publishPacket("t/q", "x", { qos: 2, packetId: 1 }));
  assert.deepEqual(await high.expectClosed(), []);
  await using kept = await TestClient.connect(b.port, { clientId: "k" });
  await kept.send(publishPacket("t/r", "x", { qos: 0, retain: true }));
  assert.deepEqual(await kept.expectClosed(), []);
  // The subscriber saw neither, and QoS 1 without RETAIN still flows.
  await using ok = await TestClient.connect(b.port, { clientId: "o" });
  await ok.send(publishPacket("t/ok", "fine", { qos: 1, packetId: 4 }));
  await ok.expect(PacketType.PUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.topic, "t/ok");
  assert.equal(got.qos, 1);
  assert.equal(userRetained(b.broker).length, 0);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await ok.disconnect();
  await sub.disconnect();
});

// ---------------------------------------------------------------------------------------------
// server_reference

test("37 v5 limits: with server_reference, a shutdown sends DISCONNECT 0x9C Use another server naming it; without, 0x8B", async () => {
  for (const reference of ["standby.example:1883", undefined]) {
    const b = await startBroker(reference === undefined ? {} : { server_reference: reference });
    try {
      await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
      await using old = await TestClient.connect(b.port, { clientId: "old" });
      const stopping = b.broker.shutdown();
      const seen = await c.expectClosed(10_000, { allowPackets: true });
      const last = seen.at(-1);
      assert.equal(last?.type, PacketType.DISCONNECT);
      if (last?.type !== PacketType.DISCONNECT) return;
      assert.equal(last.reasonCode, reference === undefined ? 0x8b : 0x9c);
      assert.equal(last.properties?.serverReference, reference);
      // A 3.1.1 client is closed as before, with nothing sent.
      assert.deepEqual(await old.expectClosed(), []);
      await stopping;
    } finally {
      await b.broker.shutdown();
    }
  }
});

test("37 v5 limits: with server_reference, a CONNECT refused for max_sessions gets CONNACK 0x9C naming it; 3.1.1 gets return code 3", async () => {
  await using b = await startBroker({ max_sessions: 1, server_reference: "standby.example:1883" });
  await using first = await TestClient.connect(b.port, { ...V5, clientId: "a" });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "b" });
  assert.equal(connack.reasonCode, 0x9c);
  assert.equal(connack.properties?.serverReference, "standby.example:1883");
  assert.match(connack.properties?.reasonString ?? "", /max_sessions/);
  await c.expectClosed();
  await using old = await TestClient.open(b.port);
  assert.equal((await old.handshake({ clientId: "c" })).reasonCode, 3);
  await old.expectClosed();
  await first.disconnect();
});

// ---------------------------------------------------------------------------------------------
// wildcard_subscription_available, subscription_identifiers_available, shared_subscription_available

const FEATURES_OFF = {
  wildcard_subscription_available: false,
  subscription_identifiers_available: false,
  shared_subscription_available: false,
};

test("37 v5 limits: subscription features turned off are announced in CONNACK (0); by default none is", async () => {
  await using b = await startBroker(FEATURES_OFF);
  await using c = await TestClient.open(b.port, V5);
  const p = (await c.handshake({ ...V5, clientId: "c" })).properties;
  assert.deepEqual(
    [
      p?.wildcardSubscriptionAvailable,
      p?.subscriptionIdentifiersAvailable,
      p?.sharedSubscriptionAvailable,
    ],
    [0, 0, 0],
  );
  await c.disconnect();
  await using d = await startBroker();
  await using e = await TestClient.open(d.port, V5);
  const q = (await e.handshake({ ...V5, clientId: "e" })).properties;
  assert.deepEqual(
    [
      q?.wildcardSubscriptionAvailable,
      q?.subscriptionIdentifiersAvailable,
      q?.sharedSubscriptionAvailable,
    ],
    [undefined, undefined, undefined],
  );
  await e.disconnect();
});

test("37 v5 limits: a SUBSCRIBE using a feature turned off gets DISCONNECT 0xA2, 0xA1 or 0x9E; a plain one is served", async () => {
  await using b = await startBroker(FEATURES_OFF);
  const cases: [Packet, number][] = [
    [{ type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "a/+", qos: 0 }] }, 0xa2],
    [{ type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "a/#", qos: 0 }] }, 0xa2],
    [{
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "a", qos: 0 }],
      properties: { subscriptionIdentifier: [3] },
    }, 0xa1],
    [
      { type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "$share/g/a", qos: 0 }] },
      0x9e,
    ],
  ];
  for (const [packet, code] of cases) {
    await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
    await c.send(packet);
    const seen = await c.expectClosed(10_000, { allowPackets: true });
    assert.equal(lastDisconnect(seen), code);
    assert.ok(seen.every((p) => p.type === PacketType.DISCONNECT), "no SUBACK");
  }
  await using ok = await TestClient.connect(b.port, { ...V5, clientId: "ok" });
  assert.deepEqual(await subscribe5(ok, [{ topic: "a/b", qos: 1 }]), [1]);
  await ok.disconnect();
});

test("37 limits at 3.1.1: a filter using a subscription feature turned off gets SUBACK 0x80, the others are granted", async () => {
  await using b = await startBroker(FEATURES_OFF);
  await using c = await TestClient.connect(b.port, { clientId: "old" });
  await c.send({
    type: PacketType.SUBSCRIBE,
    packetId: 4,
    subscriptions: [
      { topic: "a/+", qos: 1 },
      { topic: "a/b", qos: 1 },
      { topic: "$share/g/a", qos: 1 },
    ],
  });
  const suback = await c.expect(PacketType.SUBACK);
  assert.deepEqual(suback.reasonCodes, [0x80, 1, 0x80]);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("a/b", "x"));
  assert.equal((await c.expect(PacketType.PUBLISH)).topic, "a/b");
  await pub.disconnect();
  await c.disconnect();
});
