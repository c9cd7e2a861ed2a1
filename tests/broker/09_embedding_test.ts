/**
 * Broker, area 09: the embedding API: host publishing, events, inspection, listeners, shutdown.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Broker } from "../../broker.ts";
import type { BrokerEventMap } from "../../broker.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { MemoryLogger, startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

test("09 embedding: broker.publish reaches matching subscribers at min(QoS, granted)", async () => {
  await using b = await startBroker();
  await using s1 = await TestClient.connect(b.port, { clientId: "s1" });
  await s1.subscribe({ "host/+": 1 });
  await using s0 = await TestClient.connect(b.port, { clientId: "s0" });
  await s0.subscribe({ "host/#": 0 });
  b.broker.publish("host/a", "text payload", { qos: 1 });
  b.broker.publish("host/b", new Uint8Array([1, 2, 3]));
  const a1 = await s1.expect(PacketType.PUBLISH);
  assert.deepEqual([a1.topic, text(a1), a1.qos, a1.retain], ["host/a", "text payload", 1, false]);
  await s1.send({ type: PacketType.PUBACK, packetId: a1.packetId! });
  const b1 = await s1.expect(PacketType.PUBLISH);
  assert.deepEqual([b1.topic, [...b1.payload], b1.qos], ["host/b", [1, 2, 3], 0]);
  assert.equal((await s0.expect(PacketType.PUBLISH)).qos, 0);
  assert.equal((await s0.expect(PacketType.PUBLISH)).topic, "host/b");
});

test("09 embedding: broker.publish refuses wildcard topics and QoS 3", async () => {
  await using b = await startBroker();
  assert.throws(() => b.broker.publish("a/+", "x"), TypeError);
  assert.throws(() => b.broker.publish("a/#", "x"), TypeError);
  assert.throws(() => b.broker.publish("", "x"), TypeError);
  assert.throws(() => b.broker.publish("a", "x", { qos: 3 as 0 }), RangeError);
});

test("09 embedding: clientConnected and clientDisconnected events", async () => {
  await using b = await startBroker();
  const events: string[] = [];
  b.broker.on("clientConnected", (e) => events.push(`+${e.clientId}:${e.client.username}`));
  b.broker.on("clientDisconnected", (e) => events.push(`-${e.clientId}`));
  const c = await TestClient.connect(b.port, { clientId: "ev", username: "alice" });
  assert.deepEqual(events, ["+ev:alice"]);
  await c.disconnect();
  await waitFor(() => events.length === 2, 2000, "clientDisconnected");
  assert.deepEqual(events, ["+ev:alice", "-ev"]);
});

test("09 embedding: subscribed and unsubscribed events", async () => {
  await using b = await startBroker();
  const events: unknown[] = [];
  b.broker.on("subscribed", (e) => events.push(["sub", e.clientId, e.topic, e.qos]));
  b.broker.on("unsubscribed", (e) => events.push(["unsub", e.clientId, e.topic]));
  await using c = await TestClient.connect(b.port, { clientId: "ev" });
  await c.subscribe({ "a/#": 2, "bad/#/x": 1 });
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 3, topics: ["a/#", "never"] });
  await c.expect(PacketType.UNSUBACK);
  assert.deepEqual(events, [["sub", "ev", "a/#", 2], ["unsub", "ev", "a/#"]]);
});

test("09 embedding: message event for each PUBLISH a client sends", async () => {
  await using b = await startBroker();
  const seen: BrokerEventMap["message"][] = [];
  b.broker.on("message", (e) => seen.push(e));
  await using c = await TestClient.connect(b.port, { clientId: "pub" });
  await c.send(publishPacket("m/1", "hello", { qos: 1, retain: true, packetId: 1 }));
  await c.expect(PacketType.PUBACK);
  assert.equal(seen.length, 1);
  assert.deepEqual(
    [seen[0].clientId, seen[0].topic, new TextDecoder().decode(seen[0].payload), seen[0].qos],
    ["pub", "m/1", "hello", 1],
  );
  assert.equal(seen[0].retain, true);
  // Host publishes do not come back as client messages.
  b.broker.publish("m/2", "host");
  assert.equal(seen.length, 1);
});

test("09 embedding: on() returns a function that removes the handler", async () => {
  await using b = await startBroker();
  let count = 0;
  const off = b.broker.on("clientConnected", () => count++);
  const first = await TestClient.connect(b.port, { clientId: "a" });
  off();
  const second = await TestClient.connect(b.port, { clientId: "b" });
  assert.equal(count, 1);
  await first.close();
  await second.close();
});

test("09 embedding: a throwing handler is logged and does not break the broker", async () => {
  await using b = await startBroker();
  b.broker.on("clientConnected", () => {
    throw new Error("handler boom");
  });
  await using c = await TestClient.connect(b.port, { clientId: "x" });
  await c.subscribe({ "t": 0 });
  assert.ok(b.log.has("handler boom"));
});

test("09 embedding: clients(), subscriptions() and retainedMessages() describe the state", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "insp", clean: false });
  await c.subscribe({ "i/a": 1, "i/+": 0 });
  b.broker.publish("i/r", "kept", { retain: true });
  const [summary] = b.broker.clients();
  assert.equal(summary.clientId, "insp");
  assert.equal(summary.connected, true);
  assert.equal(summary.cleanSession, false);
  assert.equal(summary.remoteAddress, `127.0.0.1:${c.localPort}`);
  assert.deepEqual(
    b.broker.subscriptions().sort((x, y) => x.topic.localeCompare(y.topic)),
    [{ clientId: "insp", topic: "i/+", qos: 0 }, { clientId: "insp", topic: "i/a", qos: 1 }],
  );
  const retained = userRetained(b.broker);
  assert.equal(retained.length, 1);
  assert.equal(retained[0].topic, "i/r");
  assert.equal(new TextDecoder().decode(retained[0].payload), "kept");
});

test("09 embedding: listeners expose the bound address; port 0 gets a real port", async () => {
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      second: { bind: "127.0.0.1:0", type: "tcp" },
    },
  });
  const ls = b.broker.listeners;
  assert.equal(ls.length, 2);
  assert.deepEqual(ls.map((l) => l.name).sort(), ["default", "second"]);
  for (const l of ls) {
    assert.equal(l.hostname, "127.0.0.1");
    assert.ok(l.port > 0);
    assert.equal(l.transport, "tcp");
  }
  assert.notEqual(ls[0].port, ls[1].port);
  // Both serve the same broker.
  await using sub = await TestClient.connect(ls[1].port, { clientId: "on-second" });
  await sub.subscribe({ "x": 0 });
  await using pub = await TestClient.connect(ls[0].port, { clientId: "on-first" });
  await pub.send(publishPacket("x", "across"));
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "across");
});

test("09 embedding: start() fails on a port in use and leaves nothing bound", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const broker = new Broker(
    { listeners: { default: { bind: "127.0.0.1:0" }, b: { bind: `127.0.0.1:${port}` } } },
    { logger: new MemoryLogger() },
  );
  await assert.rejects(() => broker.start(), Deno.errors.AddrInUse);
  await broker.shutdown();
});

test("09 embedding: shutdown closes connected clients and is idempotent", async () => {
  const b = await startBroker();
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      clients.push(await TestClient.connect(b.port, { clientId: `c${i}`, clean: i !== 0 }));
    }
    await clients[0].subscribe({ "t": 1 });
    await b.broker.shutdown();
    for (const c of clients) await c.expectClosed(1000);
    await b.broker.shutdown();
    await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port: b.port }));
    await assert.rejects(() => b.broker.start());
  } finally {
    for (const c of clients) await c.close();
    await b.broker.shutdown();
  }
});

test("09 embedding: shutdown does not wait for a client that never reads", async () => {
  const b = await startBroker();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  try {
    await conn.write(encodeConnectAndSubscribe("deaf", "flood"));
    await waitFor(() => b.broker.subscriptions().length === 1);
    const payload = new Uint8Array(64 * 1024);
    for (let i = 0; i < 200; i++) b.broker.publish("flood", payload);
    // The client's outbound buffer is full: the flood overflowed it.
    await waitFor(() => b.broker.stats.dropped > 0, 2000, "QoS 0 drops");
    // After its 1 s grace (shutdownGraceMs) the shutdown aborts the client; a shutdown that
    // waited for it to read would never end. The guard, 20 x the grace, only ends the test then:
    // it is no measure of speed, it tells "aborted by the shutdown" from "never".
    let guarded = false;
    const guard = setTimeout(() => {
      guarded = true;
      conn.close();
    }, 20_000);
    try {
      await b.broker.shutdown();
    } finally {
      clearTimeout(guard);
    }
    assert.equal(guarded, false, "the shutdown waited for the client that never reads");
    assert.ok(b.log.has("broker shutting down"));
  } finally {
    try {
      conn.close();
    } catch { /* closed by the guard */ }
  }
});

test("09 embedding: await using shuts the broker down at the end of the scope", async () => {
  let port = 0;
  {
    await using broker = new Broker(
      { listeners: { default: { bind: "127.0.0.1:0" } } },
      { logger: new MemoryLogger() },
    );
    await broker.start();
    port = broker.listeners[0].port;
    const c = await TestClient.connect(port, { clientId: "scoped" });
    await c.close();
  }
  await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
});

test("09 embedding: stats count clients and traffic", async () => {
  await using b = await startBroker();
  await using s = await TestClient.connect(b.port, { clientId: "s" });
  await s.subscribe({ "st": 0 });
  await using p = await TestClient.connect(b.port, { clientId: "p" });
  await p.send(publishPacket("st", "x"));
  await s.expect(PacketType.PUBLISH);
  const st = b.broker.stats;
  assert.equal(st.clientsConnected, 2);
  assert.ok(st.clientsMaximum >= 2);
  assert.ok(st.clientsTotal >= 2);
  assert.ok(st.publishReceived >= 1);
  assert.ok(st.publishSent >= 1);
  assert.ok(st.bytesReceived > 0 && st.bytesSent > 0);
  assert.ok(b.broker.startedAt > 0 && b.broker.startedAt <= Date.now());
});

function encodeConnectAndSubscribe(clientId: string, topic: string): Uint8Array {
  const body = [
    ...encodeConnect(clientId),
    0x82,
    5 + topic.length,
    0x00,
    0x01,
    0x00,
    topic.length,
    ...new TextEncoder().encode(topic),
    0x00,
  ];
  return new Uint8Array(body);
}

function encodeConnect(clientId: string): number[] {
  const id = [...new TextEncoder().encode(clientId)];
  const body = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x00, 0x00, id.length, ...id];
  return [0x10, body.length, ...body];
}

Deno.test("09 embedding: the configured event logger logs every message only with packetEvents", async () => {
  for (const packetEvents of [false, true]) {
    await using b = await startBroker({}, { packetEvents });
    const c = await TestClient.connect(b.port, { clientId: "logged" });
    await c.send(publishPacket("logged/topic", "x", { qos: 1, packetId: 1 }));
    await c.expect(PacketType.PUBACK);
    await c.disconnect();
    assert.equal(b.log.has("Event brokerClientConnected"), true, "connections are always logged");
    assert.equal(b.log.has("Event brokerMessageReceived"), packetEvents);
    assert.equal(b.log.has("Event brokerMessageBroadcast"), packetEvents);
  }
});
