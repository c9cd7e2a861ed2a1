/**
 * Broker, area 10: back-pressure. A subscriber that never reads must not stall the others nor
 * grow memory without bound: QoS 0 past `max_outbound_bytes` is dropped and counted, and a
 * connection that cannot drain within `drain_timeout` seconds is closed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const PAYLOAD = new Uint8Array(32 * 1024).fill(0x61);
const COUNT = 300; // ~10 MB: more than the kernel socket buffers of a peer that never reads

/** A subscriber that connects and subscribes, then never reads a byte. */
async function deafSubscriber(b: TestBroker, topic: string, qos: QoS): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  const connect = encodePacket(connectPacket({ clientId: "deaf" }), 4);
  const subscribe = encodePacket({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic, qos }],
  }, 4);
  await conn.write(connect);
  await conn.write(subscribe);
  await waitFor(
    () => b.broker.subscriptions().some((s) => s.clientId === "deaf"),
    2000,
    "the deaf subscriber's subscription",
  );
  return conn;
}

/**
 * Publishes COUNT QoS 1 messages from a client, in batches of 50 so that the reading subscriber's
 * own queue stays under `max_queued_messages`, and checks that a reading QoS 1 subscriber gets every
 * one, in order, acknowledging as it goes.
 */
async function floodAndReceiveAll(b: TestBroker, topic: string): Promise<void> {
  await using fast = await TestClient.connect(b.port, { clientId: "fast" });
  await fast.subscribe({ [topic]: 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (let batch = 0; batch < COUNT; batch += 50) {
    const sending = (async () => {
      for (let i = batch; i < batch + 50; i++) {
        const payload = PAYLOAD.slice();
        payload[0] = i & 0xff;
        await pub.send(publishPacket(topic, payload, { qos: 1, packetId: i + 1 }));
      }
    })();
    for (let i = batch; i < batch + 50; i++) {
      const got = await fast.expect(PacketType.PUBLISH, 3000);
      assert.equal(got.payload.length, PAYLOAD.length);
      assert.equal(got.payload[0], i & 0xff, "messages arrive in order, none missing");
      await fast.send({ type: PacketType.PUBACK, packetId: got.packetId! });
    }
    await sending;
    // Every PUBACK reaches the publisher too: a deaf subscriber does not block the publisher.
    for (let i = batch; i < batch + 50; i++) {
      assert.equal((await pub.expect(PacketType.PUBACK, 3000)).packetId, i + 1);
    }
  }
}

test("10 backpressure: a subscriber that never reads does not stall the others", async () => {
  await using b = await startBroker();
  const deaf = await deafSubscriber(b, "bp/all", 0);
  try {
    await floodAndReceiveAll(b, "bp/all");
  } finally {
    deaf.close();
  }
});

test("10 backpressure: a deaf QoS 1 subscriber does not stall the others either", async () => {
  await using b = await startBroker({ max_queued_messages: 100 });
  const deaf = await deafSubscriber(b, "bp/q1", 1);
  try {
    await floodAndReceiveAll(b, "bp/q1");
    // Its window is full and its queue is bounded, oldest dropped.
    const summary = b.broker.clients().find((c) => c.clientId === "deaf")!;
    assert.equal(summary.inflight, 20);
    assert.equal(summary.queued, 100);
    assert.equal(b.broker.stats.dropped, COUNT - 20 - 100);
  } finally {
    deaf.close();
  }
});

test("10 backpressure: QoS 0 past max_outbound_bytes is dropped and counted", async () => {
  await using b = await startBroker({ max_outbound_bytes: 64 * 1024 });
  const deaf = await deafSubscriber(b, "bp/drop", 0);
  try {
    await floodAndReceiveAll(b, "bp/drop");
    const dropped = b.broker.stats.dropped;
    assert.ok(dropped > 0, "nothing was dropped for the deaf subscriber");
    // Most of the ~10 MB could not be buffered for it: the bound holds.
    assert.ok(dropped > COUNT / 2, `only ${dropped} of ${COUNT} dropped`);
  } finally {
    deaf.close();
  }
});

test("10 backpressure: drain_timeout closes a connection that cannot drain", async () => {
  await using b = await startBroker({ drain_timeout: 1 });
  const gone: string[] = [];
  b.broker.on("clientDisconnected", (e) => gone.push(e.clientId));
  const deaf = await deafSubscriber(b, "bp/stuck", 0);
  try {
    await using fast = await TestClient.connect(b.port, { clientId: "fast" });
    await fast.subscribe({ "bp/other": 0 });
    for (let i = 0; i < COUNT; i++) b.broker.publish("bp/stuck", PAYLOAD);
    const start = Date.now();
    await waitFor(() => gone.includes("deaf"), 4000, "the stuck connection to be closed");
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 500, `closed after ${elapsed} ms, before the 1 s drain timeout`);
    assert.ok(b.log.has("not read"), "the reason is logged");
    // Everyone else is fine.
    b.broker.publish("bp/other", "still here");
    assert.equal(text(await fast.expect(PacketType.PUBLISH)), "still here");
    assert.deepEqual(gone, ["deaf"]);
  } finally {
    deaf.close();
  }
});

test("10 backpressure: a slow reader that keeps draining is not closed by drain_timeout", async () => {
  await using b = await startBroker({ drain_timeout: 1 });
  await using slow = await TestClient.connect(b.port, { clientId: "slow" });
  await slow.subscribe({ "bp/slow": 1 });
  // Each message is acknowledged after a pause; writes always complete.
  for (let i = 0; i < 8; i++) {
    b.broker.publish("bp/slow", String(i), { qos: 1 });
    const got = await slow.expect(PacketType.PUBLISH);
    assert.equal(text(got), String(i));
    await new Promise((r) => setTimeout(r, 250));
    await slow.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  }
  assert.equal(slow.ended, false);
});
