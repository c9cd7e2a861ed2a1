/**
 * `BrokerCore.rewriteStore` with an injected clock and a MemoryStore, no socket: the writes of a
 * store outage are lost (dropped here), the store is written again from memory, and a core
 * restored from it carries on exactly as memory held it: windows with their ids and QoS 2 stage,
 * queues, inbound QoS 2 ids, subscriptions, retained messages; a session gone meanwhile is gone.
 * Changes journaled after the rewrite apply to it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import { MemoryStore } from "../../../src/store/memory_store.ts";
import type { StoreMutation } from "../../../src/store/mutation.ts";
import type { BrokerStore } from "../../../src/store/broker_store.ts";
import { SqliteStore } from "../../../src/store/sqlite_store.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket, publishPacket } from "../../_helpers/test_client.ts";
import { tempDir } from "../../_helpers/temp_dir.ts";

function journaled(store: Pick<BrokerStore, "apply">) {
  const pending: StoreMutation[] = [];
  const core = testCore({ maxInflight: 2 }, { journal: (m) => pending.push(m) });
  const flush = () => store.apply(pending.splice(0));
  const lose = () => pending.splice(0);
  return { core, pending, flush, lose };
}

Deno.test("core rewriteStore: after lost writes the store holds what memory holds, and later changes apply to it [MQTT-4.4.0-1] [MQTT-4.3.3-2]", async () => {
  await using store = new MemoryStore();
  const { core, pending, flush, lose } = journaled(store);
  // Stored before the outage: a session that is cleaned while writes fail.
  const gone = connect(core, connectPacket({ clientId: "gone", clean: false }));
  subscribe(core, gone, "t/#", 1);
  core.detach(gone, T0);
  flush();

  // While writes fail (every mutation lost from here to the rewrite):
  connect(core, connectPacket({ clientId: "gone", clean: true })); // clean start: session gone
  const sub = connect(core, connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "t/#", 2);
  const off = connect(core, connectPacket({ clientId: "o", clean: false }));
  subscribe(core, off, "u/#", 1);
  core.detach(off, T0);
  const pub = connect(core, connectPacket({ clientId: "p", clean: false }));
  core.handle(pub, publishPacket("t/1", "m1", { qos: 2, packetId: 1 }), T0);
  core.handle(pub, { type: PacketType.PUBREL, packetId: 1 }, T0);
  for (let i = 2; i <= 4; i++) {
    core.handle(pub, publishPacket(`t/${i}`, `m${i}`, { qos: 1, packetId: i }), T0);
  }
  core.handle(pub, publishPacket("u/1", "o1", { qos: 1, packetId: 5 }), T0);
  // A QoS 2 message whose PUBREL has not come: its id is held.
  core.handle(pub, publishPacket("t/5", "m5", { qos: 2, packetId: 9 }), T0);
  core.handle(pub, publishPacket("r/a", "kept", { retain: true }), T0);
  assert.deepEqual(sub.published.map((p) => [p.topic, p.packetId]), [["t/1", 1], ["t/2", 2]]);
  // The first delivery reaches its QoS 2 second stage.
  core.handle(sub, { type: PacketType.PUBREC, packetId: 1 }, T0);
  lose();

  core.core.rewriteStore();
  core.run();
  assert.equal(pending[0]?.type, "clear", "the rewrite starts from an empty store");
  flush();
  // After the rewrite: PUBCOMP for the first delivery deletes the entry the rewrite wrote.
  core.handle(sub, { type: PacketType.PUBCOMP, packetId: 1 }, T0);
  flush();

  const { core: next } = journaled(store);
  next.restore(await store.load(T0 + 1000), T0 + 1000);
  assert.deepEqual([...next.sessions.keys()].sort(), ["o", "p", "s"], "no session gone");
  assert.deepEqual(next.retained.get("r/a")?.topic, "r/a", "the retained message");
  const back = connect(next, connectPacket({ clientId: "s", clean: false }), T0 + 1000);
  // t/3 went out after the PUBCOMP, journaled after the rewrite.
  assert.deepEqual(
    back.published.map((p) => [p.topic, p.packetId, p.dup]),
    [["t/2", 2, true], ["t/3", 3, true]],
    "the window again with its ids and DUP; the completed delivery is not resent",
  );
  assert.equal(
    back.sent.some((x) => x.type === PacketType.PUBREL),
    false,
    "no PUBREL: the PUBCOMP after the rewrite deleted the entry the rewrite wrote",
  );
  next.handle(back, { type: PacketType.PUBACK, packetId: 2 }, T0 + 1000);
  assert.deepEqual(back.published.slice(2).map((p) => p.topic), ["t/4"], "then the queue");
  const o = connect(next, connectPacket({ clientId: "o", clean: false }), T0 + 1000);
  assert.deepEqual(o.published.map((p) => p.topic), ["u/1"], "the offline session's queue");
  // The held QoS 2 id: sent again, it is acknowledged and not routed again [MQTT-4.3.3-2].
  const p = connect(next, connectPacket({ clientId: "p", clean: false }), T0 + 1000);
  next.handle(p, publishPacket("t/5", "m5", { qos: 2, packetId: 9, dup: true }), T0 + 1000);
  assert.deepEqual(p.sent.at(-1), { type: PacketType.PUBREC, packetId: 9 });
  for (const id of [3, 4]) {
    const packetId = back.published.find((x) => x.topic === `t/${id}`)!.packetId;
    next.handle(back, { type: PacketType.PUBACK, packetId }, T0 + 1000);
  }
  assert.deepEqual(
    back.published.slice(3).map((x) => [x.topic, x.qos]),
    [["t/5", 2]],
    "the held message was queued once and is not delivered twice",
  );
  // Its id was released by PUBREL before the outage: a PUBLISH with id 1 is a new message.
  next.handle(p, publishPacket("t/6", "m6", { qos: 2, packetId: 1 }), T0 + 1000);
  assert.equal(next.sessions.get("p")!.inbound.has(1), true);
});

Deno.test("core rewriteStore into a SQLite file: a session ended and made again while writes failed (its deliveries numbered from 1 again) has its new queue after a restart, not the stored one [MQTT-3.1.2-5]", async () => {
  await using dir = await tempDir("amqtt-rewrite-");
  const path = `${dir.path}/state.db`;
  {
    await using store = SqliteStore.open(path, { sync: "normal" });
    const { core, pending, lose } = journaled(store);
    const c = connect(core, connectPacket({ clientId: "c", clean: false }));
    subscribe(core, c, "old/#", 1);
    core.detach(c, T0);
    const pub = connect(core, connectPacket({ clientId: "p", clean: true }));
    core.handle(pub, publishPacket("old/1", "o1", { qos: 1, packetId: 1 }), T0);
    core.handle(pub, publishPacket("old/2", "o2", { qos: 1, packetId: 2 }), T0);
    store.apply(pending.splice(0));
    await store.commit();

    // While writes fail: a clean session ends the stored one, a persistent one is made again.
    core.detach(connect(core, connectPacket({ clientId: "c", clean: true })), T0);
    const again = connect(core, connectPacket({ clientId: "c", clean: false }));
    subscribe(core, again, "new/#", 1);
    core.detach(again, T0);
    core.handle(pub, publishPacket("new/1", "n1", { qos: 1, packetId: 3 }), T0);
    core.handle(pub, publishPacket("old/3", "o3", { qos: 1, packetId: 4 }), T0);
    lose();

    core.core.rewriteStore();
    core.run();
    await store.rewrite(pending.splice(0));
  }
  await using reopened = SqliteStore.open(path);
  const { core: next } = journaled(reopened);
  next.restore(await reopened.load(T0 + 1000), T0 + 1000);
  const back = connect(next, connectPacket({ clientId: "c", clean: false }), T0 + 1000);
  assert.deepEqual(back.published.map((p) => p.topic), ["new/1"]);
});
