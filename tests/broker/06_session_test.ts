/**
 * Broker, area 06: persistent and clean sessions.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Connects, subscribes, and disconnects cleanly (DISCONNECT), leaving an offline session. */
async function leaveSession(port: number, clientId: string, filters: Record<string, 0 | 1 | 2>) {
  const c = await TestClient.connect(port, { clientId, clean: false });
  await c.subscribe(filters);
  await c.disconnect();
}

test("06 session: a new persistent session has session present 0 [MQTT-3.2.2-3]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "p", clean: false });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
});

test("06 session: reconnecting to a stored session gives session present 1 [MQTT-3.2.2-2]", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/x": 1 });
  await waitFor(
    () => b.broker.clients()[0]?.connected === false,
    2000,
    "the session to go offline",
  );
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "p", clean: false });
  assert.equal(connack.sessionPresent, true);
});

test("06 session: subscriptions survive a reconnect with clean session 0 [MQTT-3.1.2-4]", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/keep": 1 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  assert.deepEqual(b.broker.subscriptions(), [{ clientId: "p", topic: "s/keep", qos: 1 }]);
  await using c = await TestClient.connect(b.port, { clientId: "p", clean: false });
  b.broker.publish("s/keep", "still here", { qos: 0 });
  assert.equal(text(await c.expect(PacketType.PUBLISH)), "still here");
});

test("06 session: clean session 1 discards the stored session [MQTT-3.1.2-6]", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/drop": 1 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  b.broker.publish("s/drop", "queued", { qos: 1 });
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "p", clean: true });
  assert.equal(connack.sessionPresent, false, "session present must be 0 with clean session 1");
  assert.deepEqual(b.broker.subscriptions(), []);
  await c.expectNothing(200);
  b.broker.publish("s/drop", "after", { qos: 1 });
  await c.expectNothing(150);
});

test("06 session: a clean session ends with its connection [MQTT-3.1.2-6]", async () => {
  await using b = await startBroker();
  const c = await TestClient.connect(b.port, { clientId: "p", clean: true });
  await c.subscribe({ "s/t": 1 });
  await c.disconnect();
  await waitFor(() => b.broker.clients().length === 0, 2000, "the clean session to be discarded");
  await using again = await TestClient.open(b.port);
  const connack = await again.handshake({ clientId: "p", clean: false });
  assert.equal(connack.sessionPresent, false);
  assert.deepEqual(b.broker.subscriptions(), []);
});

test("06 session: QoS 1 and 2 messages are queued while offline and delivered on reconnect", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/q/#": 2 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("s/q/1", "one", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await pub.send(publishPacket("s/q/2", "two", { qos: 2, packetId: 2 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 2 });
  await pub.expect(PacketType.PUBCOMP);
  const offline = b.broker.clients().find((c) => c.clientId === "p")!;
  assert.equal(offline.inflight + offline.queued, 2);
  await using c = await TestClient.connect(b.port, { clientId: "p", clean: false });
  const m1 = await c.expect(PacketType.PUBLISH);
  const m2 = await c.expect(PacketType.PUBLISH);
  assert.deepEqual([text(m1), m1.qos, text(m2), m2.qos], ["one", 1, "two", 2]);
  // Never sent before: DUP stays 0 [MQTT-3.3.1-1].
  assert.equal(m1.dup, false);
  assert.equal(m2.dup, false);
});

test("06 session: QoS 0 messages are not queued for an offline session", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/zero": 0 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  b.broker.publish("s/zero", "lost", { qos: 0 });
  b.broker.publish("s/zero", "downgraded", { qos: 1 });
  await using c = await TestClient.connect(b.port, { clientId: "p", clean: false });
  await c.expectNothing(200);
});

test("06 session: the offline queue is bounded by max_queued_messages, oldest dropped and counted", async () => {
  await using b = await startBroker({ max_inflight: 1, max_queued_messages: 2 });
  await leaveSession(b.port, "p", { "s/bound": 1 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  const droppedBefore = b.broker.stats.dropped;
  for (let i = 1; i <= 5; i++) b.broker.publish("s/bound", `m${i}`, { qos: 1 });
  // m1 holds the window slot; m2 and m3 were pushed out of the 2-slot queue by m4 and m5.
  assert.equal(b.broker.stats.dropped - droppedBefore, 2);
  const offline = b.broker.clients().find((c) => c.clientId === "p")!;
  assert.deepEqual([offline.inflight, offline.queued], [1, 2]);
  await using c = await TestClient.connect(b.port, { clientId: "p", clean: false });
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const p = await c.expect(PacketType.PUBLISH);
    got.push(text(p));
    await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  assert.deepEqual(got, ["m1", "m4", "m5"]);
  await c.expectNothing(150);
});

test("06 session: an offline session shows in clients() as not connected", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/a": 1, "s/b": 2 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  const [summary] = b.broker.clients();
  assert.equal(summary.clientId, "p");
  assert.equal(summary.cleanSession, false);
  assert.equal(summary.remoteAddress, undefined);
  assert.deepEqual(
    summary.subscriptions.sort((x, y) => x.topic.localeCompare(y.topic)),
    [{ topic: "s/a", qos: 1 }, { topic: "s/b", qos: 2 }],
  );
});

test("06 session: session_expiry_interval discards an offline session after it elapses", async () => {
  await using b = await startBroker({ session_expiry_interval: 1 });
  await leaveSession(b.port, "p", { "s/e": 1 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  await waitFor(() => b.broker.clients().length === 0, 3000, "the session to expire");
  await using c = await TestClient.open(b.port);
  assert.equal((await c.handshake({ clientId: "p", clean: false })).sessionPresent, false);
});

test("06 session: inbound QoS 2 state survives a reconnect: no duplicate after resend [MQTT-4.3.3-2]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "s/x2": 0 });
  const pub = await TestClient.connect(b.port, { clientId: "pub", clean: false });
  await pub.send(publishPacket("s/x2", "once", { qos: 2, packetId: 9 }));
  await pub.expect(PacketType.PUBREC);
  await pub.close();
  await using again = await TestClient.connect(b.port, { clientId: "pub", clean: false });
  await again.send(publishPacket("s/x2", "once", { qos: 2, packetId: 9, dup: true }));
  assert.equal((await again.expect(PacketType.PUBREC)).packetId, 9);
  await again.send({ type: PacketType.PUBREL, packetId: 9 });
  assert.equal((await again.expect(PacketType.PUBCOMP)).packetId, 9);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "once");
  await sub.expectNothing(200);
});

test("06 session: MQTT 3.1 CONNACK never sets session present", async () => {
  await using b = await startBroker();
  const first = await TestClient.open(b.port, { protocolVersion: 3 });
  await first.handshake({ clientId: "old", clean: false, protocolVersion: 3 });
  await first.disconnect();
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  await using c = await TestClient.open(b.port, { protocolVersion: 3 });
  const connack = await c.handshake({ clientId: "old", clean: false, protocolVersion: 3 });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
});

test("06 session: takeover of a persistent session resends its in-flight messages on the new connection [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  await using first = await TestClient.connect(b.port, { clientId: "p", clean: false });
  await first.subscribe({ "s/take": 1 });
  b.broker.publish("s/take", "unacked", { qos: 1 });
  const original = await first.expect(PacketType.PUBLISH);
  await using second = await TestClient.open(b.port);
  const connack = await second.handshake({ clientId: "p", clean: false });
  assert.equal(connack.sessionPresent, true);
  const resent = await second.expect(PacketType.PUBLISH);
  assert.equal(resent.packetId, original.packetId);
  assert.equal(resent.dup, true);
  assert.equal(text(resent), "unacked");
  await first.expectClosed();
  // The subscription came along.
  b.broker.publish("s/take", "new", { qos: 1 });
  assert.equal(text(await second.expect(PacketType.PUBLISH)), "new");
});

test("06 session: unsubscribing in a persistent session is remembered", async () => {
  await using b = await startBroker();
  const c = await TestClient.connect(b.port, { clientId: "p", clean: false });
  await c.subscribe({ "s/u/1": 1, "s/u/2": 1 });
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 5, topics: ["s/u/1"] });
  await c.expect(PacketType.UNSUBACK);
  await c.disconnect();
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  b.broker.publish("s/u/1", "no", { qos: 1 });
  b.broker.publish("s/u/2", "yes", { qos: 1 });
  await using again = await TestClient.connect(b.port, { clientId: "p", clean: false });
  assert.equal(text(await again.expect(PacketType.PUBLISH)), "yes");
  await again.expectNothing(150);
});

test("06 session: a message never written to a closing connection is sent later with DUP 0 [MQTT-3.3.1-1]", async () => {
  await using b = await startBroker({ drain_timeout: 1 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  try {
    await conn.write(encodePacket(connectPacket({ clientId: "p", clean: false }), 4));
    await conn.write(encodePacket({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "s/big", qos: 0 }, { topic: "s/late", qos: 1 }],
    }, 4));
    await waitFor(() => b.broker.subscriptions().length === 2);
    // Fill its socket (it never reads), then it says goodbye: the close waits on the stuck write.
    const payload = new Uint8Array(64 * 1024);
    for (let i = 0; i < 200; i++) b.broker.publish("s/big", payload);
    await conn.write(new Uint8Array([0xe0, 0x00]));
    await waitFor(() => b.log.has("client disconnected"), 2000, "the DISCONNECT");
    b.broker.publish("s/late", "late", { qos: 1 });
    await waitFor(() => b.broker.clients()[0]?.connected === false, 3000, "the drain timeout");
  } finally {
    conn.close();
  }
  await using again = await TestClient.connect(b.port, { clientId: "p", clean: false });
  const got = await again.expect(PacketType.PUBLISH);
  assert.equal(text(got), "late");
  assert.equal(got.dup, false, "first transmission carries DUP 1");
});

test("06 session: a retained message published while offline arrives once, RETAIN 0, on reconnect [MQTT-3.3.1-9]", async () => {
  await using b = await startBroker();
  await leaveSession(b.port, "p", { "s/r": 1 });
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  b.broker.publish("s/r", "kept", { qos: 1, retain: true });
  await using c = await TestClient.connect(b.port, { clientId: "p", clean: false });
  const got = await c.expect(PacketType.PUBLISH);
  // The subscription existed when it was published: a live forward, not a retained replay.
  assert.deepEqual([text(got), got.retain, got.qos], ["kept", false, 1]);
  await c.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await c.expectNothing(200);
  // A new subscription to the same filter replays it as retained [MQTT-3.8.4-3].
  await c.subscribe({ "s/r": 1 }, 2);
  const again = await c.expect(PacketType.PUBLISH);
  assert.deepEqual([text(again), again.retain], ["kept", true]);
});

test("06 session: a client id is one session across listeners: takeover from another listener [MQTT-3.1.4-2]", async () => {
  await using b = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0" }, other: { bind: "127.0.0.1:0" } },
  });
  const [one, two] = b.broker.listeners.map((l) => l.port);
  await using first = await TestClient.connect(one, { clientId: "roamer", clean: false });
  await first.subscribe({ "s/roam": 1 });
  b.broker.publish("s/roam", "unacked", { qos: 1 });
  const original = await first.expect(PacketType.PUBLISH);
  await using second = await TestClient.open(two);
  assert.equal((await second.handshake({ clientId: "roamer", clean: false })).sessionPresent, true);
  await first.expectClosed();
  const resent = await second.expect(PacketType.PUBLISH);
  assert.deepEqual([resent.packetId, resent.dup], [original.packetId, true]);
  const summary = b.broker.clients().filter((c) => c.clientId === "roamer");
  assert.equal(summary.length, 1);
  assert.equal(summary[0].remoteAddress, `127.0.0.1:${second.localPort}`);
  assert.equal(b.broker.stats.clientsConnected, 1);
});
