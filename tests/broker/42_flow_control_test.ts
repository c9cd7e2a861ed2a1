/**
 * Broker, area 42: flow control from subscribers' queues back to publishers' reads, over real
 * sockets. A publisher's burst (what a load generator sends after a stall) that would overflow a
 * subscriber's queue pauses the publisher's reads instead (its packets wait in TCP buffers), until
 * the subscriber's PUBACKs drain the queue; nothing is dropped. Other clients are served
 * meanwhile, and a subscriber that does not acknowledge holds a publisher for
 * `flow_control_timeout` at most: then its queue drops its oldest messages, counted.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { PublishPacket } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { Tool } from "../_helpers/peers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** A small window and queue, so that a burst of a few hundred messages would overflow it. */
const LIMITS = { max_inflight: 10, max_queued_messages: 100 };

/** `count` QoS 1 PUBLISHes with 64-byte payloads numbered from 0, as one buffer: one write. */
function burst(topic: string, count: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let length = 0;
  for (let i = 0; i < count; i++) {
    const payload = new TextEncoder().encode(String(i).padEnd(64, "."));
    const bytes = encodePacket(publishPacket(topic, payload, { qos: 1, packetId: i + 1 }), 4);
    parts.push(bytes);
    length += bytes.length;
  }
  const all = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** Reads `count` PUBACKs in order of their ids 1…count. */
async function expectPubacks(client: TestClient, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    assert.equal((await client.expect(PacketType.PUBACK)).packetId, i, "PUBACKs in order");
  }
}

/** Receives `count` messages numbered from `from`, in order, acknowledging each. */
async function receiveAndAck(client: TestClient, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const got = await client.expect(PacketType.PUBLISH);
    assert.equal(Number.parseInt(text(got)), i, "messages in order, none missing");
    await client.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  }
}

async function subscriber(b: TestBroker, clientId: string, topic: string): Promise<TestClient> {
  const client = await TestClient.connect(b.port, { clientId });
  await client.subscribe({ [topic]: 1 });
  return client;
}

test("42 flow control: a publisher's burst past a subscriber's queue is paced by mosquitto_sub's PUBACKs, nothing dropped", async () => {
  await using b = await startBroker({ ...LIMITS, flow_control_timeout: 600 });
  const count = 3000;
  await using sub = new Tool("mosquitto_sub", [
    ...["-h", "127.0.0.1", "-p", String(b.port), "-i", "msub", "-q", "1"],
    ...["-t", "fc/burst", "-C", String(count)],
  ], 120_000);
  await waitFor(
    () => b.broker.subscriptions().some((s) => s.clientId === "msub"),
    10_000,
    "mosquitto_sub's subscription",
  );
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  // One write: 3000 messages are in the broker's socket at once, 30 times the queue.
  await pub.sendBytes(burst("fc/burst", count));
  await expectPubacks(pub, count);
  const out = await sub.result();
  assert.equal(out.code, 0, out.stderr);
  const lines = out.stdout.trimEnd().split("\n");
  assert.equal(lines.length, count);
  lines.forEach((line, i) => assert.equal(Number.parseInt(line), i, "in order, none missing"));
  const stats = b.broker.stats;
  assert.equal(stats.droppedBy.queueFull, 0);
  assert.ok(stats.publishersPaused > 0, "the publisher was paused at least once");
  assert.equal(stats.pauseTimeouts, 0);
});

test("42 flow control: while a publisher is paused other clients are served; it resumes when the subscriber acknowledges", async () => {
  await using b = await startBroker({ ...LIMITS, flow_control_timeout: 600 });
  await using slow = await subscriber(b, "slow", "fc/slow");
  await using other = await subscriber(b, "other", "fc/other");
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await using pub2 = await TestClient.connect(b.port, { clientId: "pub2" });
  const count = 400;
  await pub.sendBytes(burst("fc/slow", count));
  // 10 in flight and 50 queued (the high water: half of max_queued_messages) pause the publisher.
  await waitFor(() => b.broker.stats.publishersPaused === 1, 10_000, "the pause");
  const paused = b.broker.clients().find((c) => c.clientId === "pub");
  assert.equal(paused?.connected, true, "the paused publisher is still connected");
  assert.equal(pub.socketEnded, false);
  // Another publisher and subscriber are served meanwhile, QoS 1 both ways.
  await pub2.send(
    publishPacket("fc/other", new TextEncoder().encode("0"), { qos: 1, packetId: 7 }),
  );
  assert.equal((await pub2.expect(PacketType.PUBACK)).packetId, 7);
  const got: PublishPacket = await other.expect(PacketType.PUBLISH);
  assert.equal(text(got), "0");
  await other.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await pub2.send({ type: PacketType.PINGREQ });
  await pub2.expect(PacketType.PINGRESP);
  // The slow subscriber acknowledges: the publisher is read again, every message arrives.
  await receiveAndAck(slow, 0, count);
  await expectPubacks(pub, count);
  assert.equal(b.broker.stats.droppedBy.queueFull, 0);
  assert.equal(b.broker.stats.pauseTimeouts, 0);
});

test("42 flow control: a subscriber that does not acknowledge holds the publisher for flow_control_timeout at most; then its queue drops, counted", async () => {
  await using b = await startBroker({ ...LIMITS, flow_control_timeout: 0.2 });
  await using deaf = await subscriber(b, "deaf", "fc/deaf");
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  const count = 400;
  await pub.sendBytes(burst("fc/deaf", count));
  // Paused, then resumed by the timeout: every PUBLISH is acknowledged to the publisher.
  await expectPubacks(pub, count);
  const stats = b.broker.stats;
  assert.equal(stats.publishersPaused, 1);
  assert.equal(stats.pauseTimeouts, 1);
  // 10 in the window, 100 queued: the rest was dropped as the oldest queued, and counted.
  assert.equal(stats.droppedBy.queueFull, count - 10 - 100);
  // The deaf subscriber got its window and is still connected.
  for (let i = 0; i < 10; i++) {
    assert.equal(Number.parseInt(text(await deaf.expect(PacketType.PUBLISH))), i);
  }
  assert.equal(deaf.socketEnded, false);
});
