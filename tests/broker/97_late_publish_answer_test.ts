/**
 * Broker, area 97: an asynchronous `authorizePublish` answer that comes after its publisher's
 * connection closed, or was taken over by a new connection with the same Client Identifier
 * [MQTT-3.1.4-3], routes nothing: the PUBLISH was never acknowledged, and the turn that gives the
 * late answer (and releases the buffers of what it routed, `BrokerCore.releaseReceived`) leaves
 * the messages other publishers had routed meanwhile, and the closed client's Will Message
 * [MQTT-3.1.2-8], byte for byte as sent.
 *
 * Negative checks do not wait for silence: a marker published last on the subscriber's filter
 * arrives after everything routed before it (one connection's deliveries stay in order).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { BrokerPlugin, Decision } from "../../src/plugins/types.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { rng } from "../_helpers/rng.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";

/** `n` bytes from the seeded generator. */
function bytes(random: () => number, n: number): Uint8Array {
  return new Uint8Array(n).map(() => Math.floor(random() * 256));
}

/** A plugin whose publish answers wait for the test: each asked topic is kept with its resolver. */
function laterPlugin(): { plugin: BrokerPlugin; asked: Map<string, (d: Decision) => void> } {
  const asked = new Map<string, (d: Decision) => void>();
  const plugin: BrokerPlugin = {
    name: "later",
    authorizePublish: (_client, topic) =>
      // Wills and markers are let through at once: only the publishes under test wait.
      topic.startsWith("t/") ? new Promise<Decision>((resolve) => asked.set(topic, resolve)) : true,
  };
  return { plugin, asked };
}

/** Reads PUBLISHes (acknowledging QoS 1) until the one on `end`; returns those before it. */
async function untilMarker(c: TestClient, end: string): Promise<PublishPacket[]> {
  const got: PublishPacket[] = [];
  for (;;) {
    const p = await c.expect(PacketType.PUBLISH);
    if (p.qos === 1) await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    if (p.topic === end) return got;
    got.push(p);
  }
}

Deno.test("97 late publish answer: after the publisher closed, nothing is routed; the other publisher's message and the will keep their bytes [MQTT-3.1.2-8]", async () => {
  const random = rng(97);
  const { plugin, asked } = laterPlugin();
  await using b = await startBroker({}, { plugins: [plugin] });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "#": 1 });
  const willPayload = bytes(random, 3000);
  const a = await TestClient.connect(b.port, {
    clientId: "a",
    will: { topic: "w/a", payload: willPayload, qos: 1, retain: false },
  });
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  const fromA = bytes(random, 20_000);
  const fromC = bytes(random, 20_000);
  await a.send(publishPacket("t/a", fromA, { qos: 1, packetId: 1 }));
  await waitFor(() => asked.has("t/a"), 30_000, "a's question");
  await c.send(publishPacket("t/c", fromC, { qos: 1, packetId: 1 }));
  await waitFor(() => asked.has("t/c"), 30_000, "c's question");
  // C's answer first: its message is routed while A's still waits.
  asked.get("t/c")!(true);
  assert.equal((await c.expect(PacketType.PUBACK)).packetId, 1);
  // A goes away without DISCONNECT: its will goes out [MQTT-3.1.2-8]; then its answer comes.
  await a.close();
  await waitFor(() => b.broker.clients().every((s) => s.clientId !== "a"), 30_000, "a gone");
  asked.get("t/a")!(true);
  await c.send(publishPacket("end", "end", { qos: 1, packetId: 2 }));
  await c.expect(PacketType.PUBACK);
  const got = await untilMarker(sub, "end");
  assert.deepEqual(got.map((p) => p.topic), ["t/c", "w/a"]);
  assert.deepEqual(got[0]!.payload, fromC);
  assert.deepEqual(got[1]!.payload, willPayload);
  assert.ok(!sub.socketEnded && !c.socketEnded);
});

Deno.test("97 late publish answer: after a takeover [MQTT-3.1.4-3], nothing is routed for the old connection; the new one's message keeps its bytes", async () => {
  const random = rng(971);
  const { plugin, asked } = laterPlugin();
  await using b = await startBroker({}, { plugins: [plugin] });
  await using sub = await TestClient.connect(b.port, { clientId: "sub", protocolVersion: 5 });
  await sub.send({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "#", qos: 1 }],
  });
  await sub.expect(PacketType.SUBACK);
  const old = await TestClient.connect(b.port, { clientId: "b", clean: false });
  const first = bytes(random, 20_000);
  await old.send(publishPacket("t/old", first, { qos: 1, packetId: 1 }));
  await waitFor(() => asked.has("t/old"), 30_000, "the old connection's question");
  // Taken over while its PUBLISH waits: the old connection is closed [MQTT-3.1.4-3].
  await using taken = await TestClient.connect(b.port, { clientId: "b", clean: false });
  await old.expectClosed(30_000);
  const second = bytes(random, 5_000);
  await taken.send(publishPacket("t/new", second, { qos: 1, packetId: 1 }));
  await waitFor(() => asked.has("t/new"), 30_000, "the new connection's question");
  // The old connection's answer after the new one's PUBLISH was read, then the new one's.
  asked.get("t/old")!(true);
  asked.get("t/new")!(true);
  assert.equal((await taken.expect(PacketType.PUBACK)).packetId, 1);
  await taken.send(publishPacket("end", "end", { qos: 1, packetId: 2 }));
  await taken.expect(PacketType.PUBACK);
  const got = await untilMarker(sub, "end");
  assert.deepEqual(got.map((p) => p.topic), ["t/new"]);
  assert.deepEqual(got[0]!.payload, second);
  assert.ok(!sub.socketEnded && !taken.socketEnded);
});
