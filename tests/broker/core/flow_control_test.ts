/**
 * Flow control in the broker core, with no socket and an injected clock: a delivery that fills a
 * subscriber's queue to its high water pauses the publisher's reads, the subscriber's PUBACKs that
 * drain it to the low water resume them, and a pause lasts the timeout at most, after which the
 * queue drops (counted) until it drains.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet } from "../../../src/packet/mod.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import type { FakeLink, TestCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const FLOW = { highWater: 4, lowWater: 2, timeoutMs: 1000 };

function setup(flow = FLOW) {
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 8, flowControl: flow });
  const sub = connect(core, connectPacket({ clientId: "sub" }));
  subscribe(core, sub, "t/#", 1);
  const pub = connect(core, connectPacket({ clientId: "pub", keepAlive: 10 }));
  return { core, sub, pub };
}

let nextId = 1;
function publish(core: TestCore, pub: FakeLink, topic: string, now = T0): void {
  const packet: Packet = {
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([1]),
    qos: 1,
    retain: false,
    dup: false,
    packetId: nextId++,
  };
  core.handle(pub, packet, now);
}

function ackAll(core: TestCore, sub: FakeLink, now = T0): void {
  // Acknowledges what was published to it and not yet acknowledged, in order.
  for (const p of sub.published.splice(0)) {
    core.handle(sub, { type: PacketType.PUBACK, packetId: p.packetId }, now);
  }
}

Deno.test("core flow control: a delivery that fills a subscriber's queue to its high water pauses the publisher's reads, nothing is dropped", () => {
  const { core, sub, pub } = setup();
  // 2 in flight, then the queue: the 4th queued message reaches the high water.
  for (let i = 0; i < 5; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, false);
  publish(core, pub, "t/5");
  assert.equal(pub.readingPaused, true);
  assert.equal(pub.trace.filter((t) => t === "pause reads").length, 1);
  assert.equal(core.stats.publishersPaused, 1);
  assert.equal(core.stats.droppedBy.queueFull, 0);
  // Its PUBACK still went out: the message was taken; only the next packets wait.
  assert.equal(pub.sent.filter((p) => p.type === PacketType.PUBACK).length, 6);
  assert.equal(sub.readingPaused, false, "the subscriber is never paused");
});

Deno.test("core flow control: the subscriber's PUBACKs that drain its queue to the low water resume the publisher", () => {
  const { core, sub, pub } = setup();
  for (let i = 0; i < 6; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, true);
  // One PUBACK: one message moves from the queue into the window; 3 queued, above the low water.
  const first = sub.published.shift()!;
  core.handle(sub, { type: PacketType.PUBACK, packetId: first.packetId }, T0 + 1);
  assert.equal(pub.readingPaused, true);
  const second = sub.published.shift()!;
  core.handle(sub, { type: PacketType.PUBACK, packetId: second.packetId }, T0 + 1);
  assert.equal(pub.readingPaused, false);
  assert.deepEqual(pub.trace.filter((t) => t.endsWith("reads")), ["pause reads", "resume reads"]);
  ackAll(core, sub, T0 + 2);
  // Every message was delivered, in order; none dropped.
  assert.equal(core.stats.droppedBy.queueFull, 0);
  assert.equal(core.stats.pauseTimeouts, 0);
});

Deno.test("core flow control: a pause lasts the timeout at most, then the queue drops its oldest (counted) until it drains to the low water", () => {
  const { core, sub, pub } = setup();
  for (let i = 0; i < 6; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, true);
  core.tick(T0 + 999);
  assert.equal(pub.readingPaused, true, "paused until the timeout");
  core.tick(T0 + 1000);
  assert.equal(pub.readingPaused, false);
  assert.equal(core.stats.pauseTimeouts, 1);
  // The session is overflowing: the publisher is no longer paused for it; the queue drops.
  for (let i = 6; i < 20; i++) publish(core, pub, `t/${i}`, T0 + 1001);
  assert.equal(pub.readingPaused, false);
  assert.equal(core.stats.droppedBy.queueFull, 20 - 2 - 8);
  assert.equal(core.stats.publishersPaused, 1);
  // Drained to the low water, it pauses publishers again.
  ackAll(core, sub, T0 + 1002);
  ackAll(core, sub, T0 + 1002);
  ackAll(core, sub, T0 + 1002);
  ackAll(core, sub, T0 + 1002);
  assert.equal(core.sessions.get("sub")!.outbound.queuedCount, 0);
  for (let i = 20; i < 26; i++) publish(core, pub, `t/${i}`, T0 + 1003);
  assert.equal(pub.readingPaused, true);
  assert.equal(core.stats.publishersPaused, 2);
});

Deno.test("core flow control: a paused publisher's keepalive does not run out; it counts again after the resume [MQTT-3.1.2-24]", () => {
  const { core, pub } = setup({ highWater: 4, lowWater: 2, timeoutMs: 60_000 });
  for (let i = 0; i < 6; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, true);
  // keepalive 10 s: 15 s allowance. Paused for 40 s, swept each second: still open.
  for (let t = 1000; t <= 40_000; t += 1000) core.tick(T0 + t);
  assert.equal(pub.closed, undefined);
  core.tick(T0 + 60_000);
  assert.equal(pub.readingPaused, false);
  assert.equal(pub.closed, undefined);
  // Silent after the resume: closed once the allowance has passed.
  core.tick(T0 + 60_000 + 16_000);
  assert.equal((pub.closed as { code: number } | undefined)?.code, 0x8d);
});

Deno.test("core flow control: a subscriber going offline resumes the publishers it paused", () => {
  const { core, sub, pub } = setup();
  for (let i = 0; i < 6; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, true);
  core.detach(sub, T0 + 1);
  assert.equal(pub.readingPaused, false);
});

Deno.test("core flow control: a publisher subscribed to its own topic is not paused by its own queue", () => {
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 8, flowControl: FLOW });
  const self = connect(core, connectPacket({ clientId: "self" }));
  subscribe(core, self, "t/#", 1);
  for (let i = 0; i < 8; i++) publish(core, self, `t/${i}`);
  assert.equal(self.readingPaused, false);
  assert.equal(core.stats.publishersPaused, 0);
});

Deno.test("core flow control: two publishers feeding each other's full queues do not both wait", () => {
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 8, flowControl: FLOW });
  const a = connect(core, connectPacket({ clientId: "a" }));
  const b = connect(core, connectPacket({ clientId: "b" }));
  subscribe(core, a, "to-a", 1);
  subscribe(core, b, "to-b", 1);
  for (let i = 0; i < 6; i++) publish(core, a, "to-b");
  assert.equal(a.readingPaused, true);
  // a's PUBACKs wait while a is paused: filling a's queue does not pause b too.
  for (let i = 0; i < 6; i++) publish(core, b, "to-a");
  assert.equal(b.readingPaused, false);
});

Deno.test("core flow control: off without the option; the queue drops as before", () => {
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 8 });
  const sub = connect(core, connectPacket({ clientId: "sub" }));
  subscribe(core, sub, "t/#", 1);
  const pub = connect(core, connectPacket({ clientId: "pub" }));
  for (let i = 0; i < 12; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, false);
  assert.equal(core.stats.droppedBy.queueFull, 2);
});

Deno.test("core flow control: a publisher paused by two full queues is read again only when both have drained", () => {
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 8, flowControl: FLOW });
  const a = connect(core, connectPacket({ clientId: "a" }));
  const b = connect(core, connectPacket({ clientId: "b" }));
  subscribe(core, a, "t/#", 1);
  subscribe(core, b, "t/#", 1);
  const pub = connect(core, connectPacket({ clientId: "pub" }));
  for (let i = 0; i < 6; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, true);
  ackAll(core, a, T0 + 1);
  ackAll(core, a, T0 + 1);
  assert.equal(core.sessions.get("a")!.outbound.queuedCount, 0);
  assert.equal(pub.readingPaused, true, "b's queue is still full");
  ackAll(core, b, T0 + 2);
  ackAll(core, b, T0 + 2);
  assert.equal(pub.readingPaused, false);
  assert.equal(core.stats.droppedBy.queueFull, 0);
});

Deno.test("core flow control: a paused publisher that goes away is forgotten; the subscriber's queue pauses the next one", () => {
  const { core, sub, pub } = setup();
  for (let i = 0; i < 6; i++) publish(core, pub, `t/${i}`);
  assert.equal(pub.readingPaused, true);
  core.detach(pub, T0 + 1);
  assert.equal(core.core.flow!.pausedCount, 0);
  const next = connect(core, connectPacket({ clientId: "pub2" }), T0 + 2);
  publish(core, next, "t/6", T0 + 2);
  assert.equal(next.readingPaused, true);
  ackAll(core, sub, T0 + 3);
  assert.equal(next.readingPaused, true, "3 queued: above the low water");
  ackAll(core, sub, T0 + 3);
  assert.equal(next.readingPaused, false);
});
