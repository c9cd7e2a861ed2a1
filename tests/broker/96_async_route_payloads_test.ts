/**
 * Broker, area 96: messages routed by an asynchronous plugin answer keep their bytes. Since the
 * `memleft` change, the turn that routes a PUBLISH after an awaited `authorizePublish` ends with
 * `BrokerCore.releaseReceived`, which copies out (or lets go of) every view into the read buffer
 * the PUBLISH was decoded from. Several publishers (3.1.1 and 5.0, QoS 0/1/2, pipelined, some
 * payloads split across reads) have their answers given in a shuffled order, so that one's
 * answer routes its message between another's PUBLISHes being decoded and routed; some are
 * refused. Every subscriber kind then checks each payload byte for byte (and, at 5.0, the
 * Correlation Data and Subscription Identifiers): clean 3.1.1 and 5.0 ones, shared-group
 * members, offline persistent sessions resumed later (queued messages, SQLite store), a 5.0
 * session that keeps its deliveries in flight and gets them again after reconnecting
 * [MQTT-4.4.0-1], and a later subscriber's retained messages [MQTT-3.3.1-6].
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BrokerPlugin, Decision } from "../../src/plugins/types.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { rng } from "../_helpers/rng.ts";
import { tempDir } from "../_helpers/temp_dir.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { collect, messages, PER, publishAll, type Sent } from "./_async_payloads.ts";

const PUBLISHERS = [
  { id: "p0", v: 4 },
  { id: "p1", v: 4 },
  { id: "p2", v: 5 },
  { id: "p3", v: 5 },
] as const;

/**
 * The scenario of this file, with a SQLite store or none (without one, nothing copies a message
 * out for a store's record: only the release does).
 */
async function scenario(store: "sqlite" | "none", offline: boolean, seed: number): Promise<void> {
  const random = rng(seed);
  const pending: { topic: string; resolve: (d: Decision) => void }[] = [];
  const plugin: BrokerPlugin = {
    name: "later",
    authorizePublish: (_client, topic) =>
      new Promise<Decision>((resolve) => pending.push({ topic, resolve })),
  };
  await using dir = await tempDir("amqtt_96_");
  const config: Record<string, unknown> = {};
  if (store === "sqlite") config.persistence = { path: `${dir.path}/state.db`, sync: "normal" };
  await using b = await startBroker(config, { plugins: [plugin] });
  const lists = PUBLISHERS.map(({ id, v }) => messages(id, v, random));
  const sent = new Map<string, Sent>();
  for (const list of lists) for (const m of list) sent.set(m.key, m);
  const allowed = [...sent.values()].filter((m) => m.allowed);
  const kept = allowed.filter((m) => m.packet.qos > 0);

  // Offline persistent sessions, resumed after the storm: their messages are queued (copied out
  // as they are routed, which the messages kept in flight elsewhere then share).
  const session = { sessionExpiryInterval: 600 };
  if (offline) {
    const off3 = await TestClient.connect(b.port, { clientId: "off3", clean: false });
    await off3.subscribe({ "t/#": 1 });
    await off3.disconnect();
    const off5 = await TestClient.connect(b.port, {
      clientId: "off5",
      clean: false,
      protocolVersion: 5,
      properties: session,
    });
    await subscribe5(off5, [{ topic: "t/#", qos: 2 }], { identifier: 9 });
    await off5.disconnect();
  }

  await using s1 = await TestClient.connect(b.port, { clientId: "s1" });
  await s1.subscribe({ "t/#": 2 });
  await using s2 = await TestClient.connect(b.port, { clientId: "s2", protocolVersion: 5 });
  await subscribe5(s2, [{ topic: "t/#", qos: 2 }], { identifier: 7 });
  await using g1 = await TestClient.connect(b.port, { clientId: "g1", protocolVersion: 5 });
  await subscribe5(g1, [{ topic: "$share/g/t/#", qos: 1 }]);
  await using g2 = await TestClient.connect(b.port, { clientId: "g2", protocolVersion: 5 });
  await subscribe5(g2, [{ topic: "$share/g/t/#", qos: 1 }]);
  // Keeps its deliveries unacknowledged (in flight, the rest queued behind its window).
  const keeper = await TestClient.connect(b.port, {
    clientId: "keeper",
    clean: false,
    protocolVersion: 5,
    properties: session,
  });
  await subscribe5(keeper, [{ topic: "t/#", qos: 2 }], { identifier: 11 });

  const seen1 = new Set<string>();
  const seen2 = new Set<string>();
  const seenG = new Set<string>();
  const all = (seen: Set<string>) => () => allowed.every((m) => seen.has(m.key));
  const readers = [
    collect(s1, sent, { who: "s1", v: 4, seen: seen1, done: all(seen1) }),
    collect(s2, sent, { who: "s2", v: 5, identifier: 7, seen: seen2, done: all(seen2) }),
    collect(g1, sent, { who: "g1", v: 5, seen: seenG, done: all(seenG) }),
    collect(g2, sent, { who: "g2", v: 5, seen: seenG, done: all(seenG) }),
  ];
  const pubs: TestClient[] = [];
  for (const { id, v } of PUBLISHERS) {
    pubs.push(await TestClient.connect(b.port, { clientId: id, protocolVersion: v }));
  }
  let finished = 0;
  const publishing = Promise.all(
    pubs.map((pub, i) => publishAll(pub, lists[i]!, PUBLISHERS[i]!.id).then(() => finished++)),
  );
  // The answers, in a shuffled order: a few at a time, with turns between them.
  let answered = 0;
  while (finished < pubs.length) {
    if (pending.length === 0) {
      await delay(random() < 0.5 ? 0 : 1);
      continue;
    }
    const n = 1 + Math.floor(random() * Math.min(3, pending.length));
    for (let i = 0; i < n; i++) {
      const [ask] = pending.splice(Math.floor(random() * pending.length), 1);
      ask!.resolve(!ask!.topic.includes("/x/"));
      answered++;
    }
    if (random() < 0.3) await delay(0);
  }
  await publishing;
  assert.equal(answered, PUBLISHERS.length * (PER + 1));

  const orders = await Promise.all(readers);
  // Each publisher's messages in the order sent, at each non-shared subscriber: a publisher's next
  // PUBLISH waits behind its answer (the spec orders each topic only [MQTT-4.6.0-6]; a broker
  // alone keeps the order across them).
  for (const order of orders.slice(0, 2)) {
    for (const { id } of PUBLISHERS) {
      const own = order.filter((k) => k.startsWith(`${id}.`)).map((k) => Number(k.split(".")[1]));
      assert.deepEqual(own, [...own].sort((a, b) => a - b), `order of ${id}`);
      assert.equal(own.length, allowed.filter((m) => m.key.startsWith(`${id}.`)).length);
    }
  }
  // One member of the group got each message [MQTT-4.8.2-2].
  assert.equal(orders[2]!.length + orders[3]!.length, allowed.length);

  // The keeper's deliveries were in flight (or queued) while the buffers were let go of: sent
  // again after it reconnects, with the same bytes [MQTT-4.4.0-1].
  await keeper.close();
  await using again = await TestClient.connect(b.port, {
    clientId: "keeper",
    clean: false,
    protocolVersion: 5,
    properties: session,
  });
  const seenK = new Set<string>();
  await collect(again, sent, {
    who: "keeper",
    v: 5,
    identifier: 11,
    seen: seenK,
    done: () => kept.every((m) => seenK.has(m.key)),
  });

  // The offline sessions get what was queued for them, from memory and the SQLite store.
  const resumed: TestClient[] = [];
  if (offline) {
    const back3 = await TestClient.connect(b.port, { clientId: "off3", clean: false });
    resumed.push(back3);
    const seen3 = new Set<string>();
    await collect(back3, sent, {
      who: "off3",
      v: 4,
      seen: seen3,
      done: () => kept.every((m) => seen3.has(m.key)),
    });
    const back5 = await TestClient.connect(b.port, {
      clientId: "off5",
      clean: false,
      protocolVersion: 5,
      properties: session,
    });
    const seen5 = new Set<string>();
    await collect(back5, sent, {
      who: "off5",
      v: 5,
      identifier: 9,
      seen: seen5,
      done: () => kept.every((m) => seen5.has(m.key)),
    });
    resumed.push(back5);
  }

  // The retained message of each publisher's topic is its last one [MQTT-3.3.1-5].
  await using late = await TestClient.connect(b.port, { clientId: "late" });
  await late.subscribe({ "t/+/r": 0 });
  const seenR = new Set<string>();
  const order = await collect(late, sent, {
    who: "late",
    v: 4,
    seen: seenR,
    retained: true,
    done: () => seenR.size === PUBLISHERS.length,
  });
  for (const { id } of PUBLISHERS) {
    const last = allowed.filter((m) => m.key.startsWith(`${id}.`) && m.packet.retain).at(-1)!;
    assert.ok(order.includes(last.key), `retained of ${id}: ${order}`);
  }
  for (const c of [s1, s2, g1, g2, again, late, ...resumed, ...pubs]) {
    assert.ok(!c.socketEnded, "still connected");
  }
  for (const c of [...resumed, ...pubs]) await c.disconnect();
}

for (
  const [store, offline] of [["none", false], ["none", true], ["sqlite", true]] as const
) {
  Deno.test({
    name: `Broker keeps every payload routed by an asynchronous authorizePublish answer intact, ` +
      `answers shuffled across publishers, ${store} store, ` +
      `${offline ? "with" : "no"} offline sessions [MQTT-4.4.0-1] [MQTT-3.3.4-3] [MQTT-3.3.2-16]`,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: () => scenario(store, offline, 96),
  });
}
