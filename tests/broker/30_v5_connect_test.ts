/**
 * Broker, area 30: MQTT 5.0 CONNECT/CONNACK, session expiry and DISCONNECT, byte by byte over
 * TCP.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("30 v5 connect: a level-5 CONNECT gets CONNACK 0x00 with the broker's limits [MQTT-3.1.4-5] [MQTT-3.2.2-1]", async () => {
  await using b = await startBroker({ receive_maximum: 10, topic_alias_maximum: 4 });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "v5a" });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  assert.equal(connack.properties?.receiveMaximum, 10);
  assert.equal(connack.properties?.topicAliasMaximum, 4);
});

test("30 v5 connect: an empty client id gets one assigned and named in CONNACK [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  // 5.0 assigns an id whatever Clean Start says [MQTT-3.1.3-6].
  const connack = await c.handshake({ ...V5, clientId: "", clean: false });
  assert.equal(connack.reasonCode, 0);
  const id = connack.properties?.assignedClientIdentifier;
  assert.ok(id !== undefined && id.length > 0, "assigned client identifier");
  assert.ok(b.broker.clients().some((x) => x.clientId === id), "the session has that id");
});

test("30 v5 connect: a refused login gets its 5.0 reason code, then the connection closes [MQTT-3.1.4-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-3.2.2-8] [MQTT-4.13.2-1]", async () => {
  const deny: BrokerPlugin = { name: "deny", authenticate: () => false };
  await using b = await startBroker({}, { plugins: [deny] });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({
    ...V5,
    clientId: "x",
    username: "u",
    password: new TextEncoder().encode("p"),
  });
  assert.equal(connack.reasonCode, 0x86, "bad user name or password");
  assert.equal(connack.sessionPresent, false);
  await c.expectClosed();
});

test("30 v5 connect: Session Expiry Interval 0 ends the session with the connection [MQTT-3.1.2-6]", async () => {
  await using b = await startBroker();
  {
    await using c = await TestClient.connect(b.port, { ...V5, clientId: "s0", clean: false });
    await c.subscribe({ "t/0": 1 });
  }
  await waitFor(() => !b.broker.clients().some((x) => x.clientId === "s0"));
  await using again = await TestClient.open(b.port, V5);
  const connack = await again.handshake({ ...V5, clientId: "s0", clean: false });
  assert.equal(connack.sessionPresent, false, "no session kept");
});

test("30 v5 connect: a session with Session Expiry Interval is kept, Clean Start 0 resumes it [MQTT-3.1.2-5] [MQTT-3.1.2-23] [MQTT-3.2.2-3]", async () => {
  await using b = await startBroker();
  const props = { sessionExpiryInterval: 60 };
  {
    await using c = await TestClient.connect(b.port, {
      ...V5,
      clientId: "s60",
      clean: false,
      properties: props,
    });
    await c.subscribe({ "t/60": 1 });
  }
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await waitFor(() => b.broker.clients().find((x) => x.clientId === "s60")?.connected === false);
  await pub.send(publishPacket("t/60", "kept", { qos: 1 }));
  await pub.expect(PacketType.PUBACK);
  await using again = await TestClient.open(b.port, V5);
  const connack = await again.handshake({
    ...V5,
    clientId: "s60",
    clean: false,
    properties: props,
  });
  assert.equal(connack.sessionPresent, true);
  const msg = await again.expect(PacketType.PUBLISH);
  assert.equal(text(msg), "kept");
});

test("30 v5 connect: the broker's maximum caps the Session Expiry Interval and says so in CONNACK", async () => {
  await using b = await startBroker({ session_expiry_interval: 30 });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({
    ...V5,
    clientId: "cap",
    properties: { sessionExpiryInterval: 3600 },
  });
  assert.equal(connack.properties?.sessionExpiryInterval, 30);
});

test("30 v5 disconnect: DISCONNECT may not set a Session Expiry Interval after CONNECT set 0 (protocol error 0x82, 5.0 §3.14.2.2.2)", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "d0" });
  await c.send({ type: PacketType.DISCONNECT, properties: { sessionExpiryInterval: 60 } });
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const disconnect = seen.find((p) => p.type === PacketType.DISCONNECT);
  assert.ok(disconnect !== undefined, "the server sends DISCONNECT");
  assert.equal(disconnect.type === PacketType.DISCONNECT && disconnect.reasonCode, 0x82);
});

test("30 v5 disconnect: DISCONNECT setting Session Expiry Interval 0 ends a kept session (5.0 §3.14.2.2.2)", async () => {
  await using b = await startBroker();
  {
    await using c = await TestClient.connect(b.port, {
      ...V5,
      clientId: "d60",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await c.send({ type: PacketType.DISCONNECT, properties: { sessionExpiryInterval: 0 } });
    await c.expectClosed();
  }
  await waitFor(() => !b.broker.clients().some((x) => x.clientId === "d60"));
});

test("30 v5 disconnect: reason code 0x04 publishes the will [MQTT-3.1.2-8]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "ws" });
  await sub.subscribe({ "will/t": 0 });
  await using c = await TestClient.connect(b.port, {
    ...V5,
    clientId: "w4",
    will: {
      topic: "will/t",
      payload: new TextEncoder().encode("gone"),
      qos: 0,
      retain: false,
    },
  });
  await c.send({ type: PacketType.DISCONNECT, reasonCode: 0x04 });
  await c.expectClosed();
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "gone");
});

test("30 v5 disconnect: a plain DISCONNECT discards the will and gets no DISCONNECT back [MQTT-3.1.2-10] [MQTT-3.14.4-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "ws" });
  await sub.subscribe({ "will/t": 0 });
  await using c = await TestClient.connect(b.port, {
    ...V5,
    clientId: "w0",
    will: { topic: "will/t", payload: new TextEncoder().encode("x"), qos: 0, retain: false },
  });
  await c.send({ type: PacketType.DISCONNECT });
  await c.expectClosed();
  await sub.expectNothing(300);
  assert.equal(sub.socketEnded, false);
});

test("30 v5 server disconnect: a takeover sends DISCONNECT 0x8E to the old connection [MQTT-3.1.4-3]", async () => {
  await using b = await startBroker();
  await using old = await TestClient.connect(b.port, { ...V5, clientId: "to" });
  await using fresh = await TestClient.connect(b.port, { ...V5, clientId: "to" });
  const seen = await old.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x8e);
  assert.equal(
    last?.type === PacketType.DISCONNECT && last.properties?.reasonString,
    "session taken over",
  );
  assert.equal(fresh.socketEnded, false);
});

test("30 v5 server disconnect: a malformed packet gets DISCONNECT 0x81 before the close [MQTT-3.3.1-4] [MQTT-4.13.1-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "mal" });
  // PUBLISH QoS 3 is malformed.
  await c.sendBytes([0x36, 0x04, 0x00, 0x01, 0x74, 0x00]);
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT);
  assert.ok(last?.type === PacketType.DISCONNECT && (last.reasonCode ?? 0) >= 0x80);
});

test("30 v5 server disconnect: an administrator's kick sends DISCONNECT 0x98", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "kick" });
  assert.ok(b.broker.disconnect("kick"));
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x98);
});

test("30 v5 server disconnect: shutdown sends DISCONNECT 0x8B", async () => {
  const b = await startBroker();
  const c = await TestClient.connect(b.port, { ...V5, clientId: "bye" });
  try {
    const closed = c.expectClosed(10_000, { allowPackets: true });
    await b.broker.shutdown();
    const seen = await closed;
    const last = seen.at(-1);
    assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x8b);
  } finally {
    await c.close();
  }
});

test("30 v5 connect: an Authentication Method the broker does not offer gets CONNACK 0x8C and a close [MQTT-4.12.0-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({
    ...V5,
    clientId: "auth",
    properties: { authenticationMethod: "SCRAM-SHA-1" },
  });
  assert.equal(connack.reasonCode, 0x8c);
  assert.equal(connack.properties?.authenticationMethod, undefined);
  await c.expectClosed();
});

/** The last packet before the close must be a DISCONNECT with `code`. */
async function expectDisconnect(c: TestClient, code: number): Promise<void> {
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT, "the server sends DISCONNECT before closing");
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, code);
  // The server never sends a Session Expiry Interval on DISCONNECT [MQTT-3.14.2-2].
  assert.equal(
    last?.type === PacketType.DISCONNECT && last.properties?.sessionExpiryInterval,
    undefined,
  );
}

test("30 v5 server disconnect: keep alive passed 1.5 times sends DISCONNECT 0x8D, then nothing more and a close [MQTT-3.1.2-22] [MQTT-3.2.2-22] [MQTT-3.14.2-1] [MQTT-3.14.2-2] [MQTT-3.14.4-1] [MQTT-3.14.4-2]", async () => {
  await using b = await startBroker({ timeout_disconnect_delay: 0 });
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "ka", keepAlive: 1 });
  await expectDisconnect(c, 0x8d);
});

test("30 v5 server disconnect: a packet over max_packet_size sends DISCONNECT 0x95 [MQTT-4.13.1-1]", async () => {
  await using b = await startBroker({ max_packet_size: 512 });
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "big" });
  await c.send(publishPacket("t", "x".repeat(1000)));
  await expectDisconnect(c, 0x95);
});

test("30 v5 server disconnect: a second CONNECT sends DISCONNECT 0x82 [MQTT-3.1.0-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "twice" });
  await c.send({
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "twice",
  });
  await expectDisconnect(c, 0x82);
});

test("30 v5 will: a will waits for its Will Delay Interval and keeps its user properties in order [MQTT-3.1.2-8] [MQTT-3.1.3-10]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "ws" });
  await sub.send({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "will/d", qos: 0 }],
  });
  await sub.expect(PacketType.SUBACK);
  const c = await TestClient.connect(b.port, {
    ...V5,
    clientId: "wd",
    properties: { sessionExpiryInterval: 60 },
    will: {
      topic: "will/d",
      payload: new TextEncoder().encode("late"),
      qos: 0,
      retain: false,
      properties: { willDelayInterval: 1, userProperties: [["z", "1"], ["a", "2"]] },
    },
  });
  await c.close(); // no DISCONNECT
  // Not at once: the delay is a second.
  await sub.expectNothing(300);
  const will = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(will), "late");
  assert.deepEqual(will.properties?.userProperties, [["z", "1"], ["a", "2"]]);
});

test("30 v5 will: a client back before the Will Delay Interval passed cancels its will [MQTT-3.1.3-9]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "ws" });
  await sub.subscribe({ "will/c": 0 });
  const options = {
    ...V5,
    clientId: "wc",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
    will: {
      topic: "will/c",
      payload: new TextEncoder().encode("never"),
      qos: 0 as const,
      retain: false,
      properties: { willDelayInterval: 30 },
    },
  };
  const first = await TestClient.connect(b.port, options);
  await first.close();
  await waitFor(() => b.broker.clients().find((x) => x.clientId === "wc")?.connected === false);
  await using again = await TestClient.connect(b.port, { ...options, will: undefined });
  await sub.expectNothing(300);
  assert.equal(sub.socketEnded, false);
  assert.equal(again.socketEnded, false);
});

test("30 v5 connect: server_keep_alive replaces the client's keep alive and is announced in CONNACK", async () => {
  await using b = await startBroker({ server_keep_alive: 1, timeout_disconnect_delay: 0 });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "ska", keepAlive: 600 });
  assert.equal(connack.properties?.serverKeepAlive, 1);
  // Silent past 1.5 x 1 s (not 600 s): closed for keep alive.
  await expectDisconnect(c, 0x8d);
});

test("30 v5 connect: nothing sent after a refused CONNECT is processed [MQTT-3.1.4-6]", async () => {
  const deny: BrokerPlugin = { name: "deny", authenticate: (c) => c.clientId !== "refused" };
  await using b = await startBroker({}, { plugins: [deny] });
  await using sub = await TestClient.connect(b.port, { clientId: "watch" });
  await sub.subscribe({ "after/#": 0 });
  await using c = await TestClient.open(b.port, V5);
  // CONNECT and a PUBLISH in one write.
  const connect = encodePacket({
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "refused",
  }, 5);
  const publish = encodePacket(publishPacket("after/refusal", "no"), 5);
  await c.sendBytes(new Uint8Array([...connect, ...publish]));
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  assert.deepEqual(seen.map((p) => p.type), [PacketType.CONNACK]);
  await sub.expectNothing(300);
  assert.equal(sub.socketEnded, false);
});
