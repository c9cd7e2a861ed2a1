/**
 * A persistent session handed over to another cluster node (`evict` with `handOver`), with no
 * socket: nothing of its end is journaled, so the store the nodes share keeps it whole; a delayed
 * will is not published; and a second core restoring it from that store carries on where the
 * first left off.
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

/** A core whose journal goes into `store` at each `flush`. */
function journaled(store: MemoryStore) {
  const pending: StoreMutation[] = [];
  const core = testCore({ maxInflight: 2 }, { journal: (m) => pending.push(m) });
  const flush = () => store.apply(pending.splice(0));
  return { core, pending, flush };
}

const about = (m: StoreMutation) =>
  m.type === "putSession" ? m.session.clientId : "clientId" in m ? m.clientId : undefined;

Deno.test("core evict with handOver journals only its detach, not the session's end, publishes no delayed will, and another core restoring it from the store resends its window with DUP and sends its queue", async () => {
  await using store = new MemoryStore();
  const a = journaled(store);
  const watcher = connect(a.core, connectPacket({ clientId: "w" }));
  subscribe(a.core, watcher, "will/#", 0);
  const will = { topic: "will/c", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };
  const sub = connect(
    a.core,
    connectPacket({
      clientId: "c",
      clean: false,
      protocolVersion: 5,
      will: { ...will, properties: { willDelayInterval: 30 } },
      properties: { sessionExpiryInterval: 300 },
    }),
  );
  subscribe(a.core, sub, "t/#", 1);
  const pub = connect(a.core, connectPacket({ clientId: "p" }));
  for (let i = 1; i <= 4; i++) {
    a.core.handle(pub, publishPacket(`t/${i}`, `m${i}`, { qos: 1, packetId: i }), T0);
  }
  assert.deepEqual(sub.published.map((p) => p.packetId), [1, 2]);
  a.flush();

  assert.equal(a.core.core.evict("c", "session taken over by node b", T0 + 10, true), true);
  a.core.run();
  assert.deepEqual(sub.closed?.how, "takeOver");
  // Only the detach is journaled (gone offline now, will still waiting): no deletion, no will gone.
  const ofC = a.pending.filter((m) => about(m) === "c");
  assert.deepEqual(ofC.map((m) => m.type), ["putSession"], "nothing of c's end journaled");
  const put = ofC[0]!;
  assert.ok(put.type === "putSession" && put.session.offlineSince === T0 + 10);
  assert.ok(put.type === "putSession" && put.session.will !== undefined, "the will stays");
  a.flush();
  assert.equal(a.core.sessions.has("c"), false);
  // The will waits for the client, which continues elsewhere: not published here.
  a.core.tick(T0 + 60_000);
  a.core.run();
  assert.deepEqual(watcher.published, []);

  const b = journaled(store);
  b.core.restore(await store.load(T0 + 1000), T0 + 1000);
  const back = connect(
    b.core,
    connectPacket({
      clientId: "c",
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 300 },
    }),
    T0 + 1000,
  );
  const connack = back.sent[0]!;
  assert.equal(connack.type === PacketType.CONNACK && connack.sessionPresent, true);
  assert.deepEqual(back.published.map((p) => [p.topic, p.packetId, p.dup]), [
    ["t/1", 1, true],
    ["t/2", 2, true],
  ]);
  b.core.handle(back, { type: PacketType.PUBACK, packetId: 1 }, T0 + 1000);
  b.core.handle(back, { type: PacketType.PUBACK, packetId: 2 }, T0 + 1000);
  assert.deepEqual(back.published.slice(2).map((p) => [p.topic, p.dup]), [
    ["t/3", false],
    ["t/4", false],
  ]);
});

Deno.test("core evict without handOver journals the session's deletion", () => {
  const store = new MemoryStore();
  const a = journaled(store);
  const sub = connect(a.core, connectPacket({ clientId: "c", clean: false }));
  subscribe(a.core, sub, "t/#", 1);
  a.pending.length = 0;
  a.core.core.evict("c", "session taken over by node b", T0 + 10);
  a.core.run();
  assert.ok(a.pending.some((m) => m.type === "deleteSession" && m.clientId === "c"));
});
