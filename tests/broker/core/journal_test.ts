/**
 * The core's journal and restore, with an injected clock and a MemoryStore, no socket: what a
 * persistent session does is journaled as store mutations, and a new core restored from the store
 * carries on (queued messages, in-flight windows, wills with their delay, expiry by the clock).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { QoS } from "../../../src/packet/mod.ts";
import { MemoryStore } from "../../../src/store/memory_store.ts";
import type { StoreMutation } from "../../../src/store/mutation.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket, publishPacket } from "../../_helpers/test_client.ts";

/** A core whose journal goes into `store`, one batch per call of `flush`. */
function journaled(store: MemoryStore, options: Parameters<typeof testCore>[0] = {}) {
  const pending: StoreMutation[] = [];
  const core = testCore(options, { journal: (m) => pending.push(m) });
  const flush = () => {
    store.apply(pending.splice(0));
  };
  return { core, pending, flush };
}

Deno.test("core journal: a clean session journals nothing, not even its QoS 1 traffic", () => {
  const store = new MemoryStore();
  const { core, pending } = journaled(store);
  const sub = connect(core, connectPacket({ clientId: "s" }));
  subscribe(core, sub, "t/#", 1);
  const pub = connect(core, connectPacket({ clientId: "p" }));
  core.handle(pub, publishPacket("t/a", "x", { qos: 1, packetId: 1 }), T0);
  // Only the broker-wide `$SYS` maximum of connected clients, which survives restarts.
  assert.deepEqual(pending.map((m) => m.type), ["setCounter", "setCounter"]);
});

Deno.test("core journal: a restored core resends in-flight messages with their ids and sends the queue", async () => {
  await using store = new MemoryStore();
  const { core, flush } = journaled(store, { maxInflight: 2 });
  const sub = connect(core, connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "t/#", 1);
  const pub = connect(core, connectPacket({ clientId: "p" }));
  for (let i = 1; i <= 4; i++) {
    core.handle(pub, publishPacket("t/a", `m${i}`, { qos: 1, packetId: i }), T0);
  }
  // Two went out (the window), two wait behind it.
  assert.deepEqual(sub.published.map((p) => p.packetId), [1, 2]);
  flush();

  const { core: next } = journaled(store, { maxInflight: 2 });
  next.restore(await store.load(T0 + 1000), T0 + 1000);
  const back = connect(next, connectPacket({ clientId: "s", clean: false }), T0 + 1000);
  assert.deepEqual(
    back.published.map((p) => [p.packetId, p.dup]),
    [[1, true], [2, true]],
    "the window again, with DUP [MQTT-4.4.0-1]",
  );
  next.handle(back, { type: PacketType.PUBACK, packetId: 1 }, T0 + 1000);
  next.handle(back, { type: PacketType.PUBACK, packetId: 2 }, T0 + 1000);
  assert.deepEqual(
    back.published.slice(2).map((p) => p.dup),
    [true, true],
    "then the queue: its session was online at the crash, so these QoS 1 messages may have gone " +
      "out with their marks uncommitted [MQTT-3.3.1-1]",
  );
});

Deno.test("core journal: the queue of a session that was offline when the broker stopped goes out without DUP", async () => {
  await using store = new MemoryStore();
  const { core, flush } = journaled(store, { maxInflight: 1 });
  const sub = connect(core, connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "t/#", 2);
  core.detach(sub, T0);
  const pub = connect(core, connectPacket({ clientId: "p" }));
  core.handle(pub, publishPacket("t/a", "one", { qos: 1, packetId: 1 }), T0);
  core.handle(pub, publishPacket("t/a", "two", { qos: 2, packetId: 2 }), T0);
  flush();

  const { core: next } = journaled(store, { maxInflight: 1 });
  next.restore(await store.load(T0 + 1000), T0 + 1000);
  const back = connect(next, connectPacket({ clientId: "s", clean: false }), T0 + 1000);
  next.handle(back, { type: PacketType.PUBACK, packetId: back.published[0]!.packetId! }, T0 + 1000);
  assert.deepEqual(back.published.map((p) => [p.qos, p.dup]), [[1, false], [2, false]]);
});

Deno.test("core journal: a will waiting for its delay is published at its time after a restore", async () => {
  await using store = new MemoryStore();
  const { core, flush } = journaled(store);
  const will = { topic: "will/c", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };
  const client = connect(core, connectPacket({ clientId: "c", clean: false, will }));
  core.sessions.get("c")!.willDelay = 30; // as an MQTT 5.0 Will Delay Interval sets it
  core.detach(client, T0);
  flush();

  const { core: next } = journaled(store);
  next.restore(await store.load(T0 + 10_000), T0 + 10_000);
  const watcher = connect(next, connectPacket({ clientId: "w" }), T0 + 10_000);
  subscribe(next, watcher, "will/#", 0);
  next.tick(T0 + 29_999);
  assert.equal(watcher.published.length, 0, "published before its delay");
  next.tick(T0 + 30_000);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
});

Deno.test("core journal: a session restored with an expiry is discarded at its time by the clock", async () => {
  await using store = new MemoryStore();
  const { core, flush } = journaled(store, { sessionExpiryInterval: 60 });
  const client = connect(core, connectPacket({ clientId: "c", clean: false }));
  subscribe(core, client, "t/#", 1);
  core.detach(client, T0);
  flush();

  const { core: next, pending } = journaled(store, { sessionExpiryInterval: 60 });
  next.restore(await store.load(T0 + 30_000), T0 + 30_000);
  next.tick(T0 + 59_999);
  assert.ok(next.sessions.has("c"));
  next.tick(T0 + 60_000);
  assert.equal(next.sessions.has("c"), false);
  assert.deepEqual(pending, [{ type: "deleteSession", clientId: "c" }], "its rows go with it");
});

Deno.test("core journal: a 5.0 session's subscription options and identifier survive a restore [MQTT-3.8.3-3]", async () => {
  await using store = new MemoryStore();
  const { core, flush } = journaled(store);
  const keep = { sessionExpiryInterval: 600 };
  const c = connect(
    core,
    connectPacket({ clientId: "c", protocolVersion: 5, clean: false, properties: keep }),
  );
  core.handle(c, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    properties: { subscriptionIdentifier: [7] },
    subscriptions: [{
      topic: "t/#",
      qos: 1,
      noLocal: true,
      retainAsPublished: true,
      retainHandling: 2,
    }],
  }, T0);
  core.detach(c, T0);
  flush();

  const { core: next } = journaled(store);
  next.restore(await store.load(T0 + 1000), T0 + 1000);
  const sub = next.sessions.get("c")!.subscriptions.get("t/#");
  assert.deepEqual(
    [sub?.qos, sub?.noLocal, sub?.retainAsPublished, sub?.retainHandling, sub?.identifier],
    [1, true, true, 2, 7],
  );
  // No Local holds after the restart: the client's own message does not come back to it.
  const back = connect(
    next,
    connectPacket({ clientId: "c", protocolVersion: 5, clean: false, properties: keep }),
    T0 + 1000,
  );
  next.handle(back, publishPacket("t/own", "x", { qos: 1, packetId: 5 }), T0 + 1000);
  const other = connect(next, connectPacket({ clientId: "o", protocolVersion: 5 }), T0 + 1000);
  next.handle(other, publishPacket("t/other", "y", { qos: 1, packetId: 6 }), T0 + 1000);
  assert.deepEqual(back.published.map((p) => p.topic), ["t/other"]);
});
