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
import { type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import type { BrokerPlugin, Decision } from "../../src/plugins/types.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { rng } from "../_helpers/rng.ts";
import { tempDir } from "../_helpers/temp_dir.ts";
import { publishPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";

/** A generous bound per packet on a loaded machine: a stuck broker still fails the test. */
const RECEIVE_MS = 60_000;
const POLL_MS = 200;
/** Messages per publisher (then a `done/` marker). */
const PER = 40;
const PUBLISHERS = [
  { id: "p0", v: 4 },
  { id: "p1", v: 4 },
  { id: "p2", v: 5 },
  { id: "p3", v: 5 },
] as const;

interface Sent {
  key: string;
  packet: PublishPacket;
  allowed: boolean;
  /** Sent by a 5.0 publisher: its Correlation Data goes to 5.0 subscribers [MQTT-3.3.2-16]. */
  correlation: Uint8Array | undefined;
}

/** Each publisher's messages: header `pid.seq;` then random bytes, some 20 KB (several reads). */
function messages(pid: string, v: 4 | 5, random: () => number): Sent[] {
  const out: Sent[] = [];
  for (let seq = 0; seq < PER; seq++) {
    const key = `${pid}.${seq}`;
    const header = new TextEncoder().encode(`${key};`);
    const size = seq % 9 === 0 ? 20_000 : 1 + Math.floor(random() * 1500);
    const payload = new Uint8Array(header.length + size);
    payload.set(header);
    for (let i = header.length; i < payload.length; i++) payload[i] = Math.floor(random() * 256);
    const retain = seq % 5 === 4;
    // Refused by the plugin: the topic has an `x` level (never a retained one here).
    const allowed = retain || seq % 7 !== 3;
    const topic = retain ? `t/${pid}/r` : allowed ? `t/${pid}/${seq}` : `t/${pid}/x/${seq}`;
    const qos = (seq % 3) as QoS;
    const packet = publishPacket(topic, payload, { qos, retain, packetId: seq + 1 });
    let correlation: Uint8Array | undefined;
    if (v === 5) {
      correlation = new Uint8Array(16).map(() => Math.floor(random() * 256));
      packet.properties = { correlationData: correlation, userProperties: [["k", key]] };
    }
    out.push({ key, packet, allowed, correlation });
  }
  return out;
}

/** The message a payload's header names; fails on bytes that are not any message's. */
function identify(sent: Map<string, Sent>, p: PublishPacket): Sent {
  const end = p.payload.indexOf(0x3b);
  const key = end < 0 ? "" : new TextDecoder().decode(p.payload.subarray(0, end));
  const m = sent.get(key);
  assert.ok(
    m !== undefined,
    `a payload of no message sent (${p.payload.length} bytes on ${p.topic})`,
  );
  return m;
}

/** Asserts a delivery's bytes are the message's, byte for byte. */
function checkDelivery(
  m: Sent,
  p: PublishPacket,
  who: string,
  v: 4 | 5,
  identifier: number | undefined,
): void {
  assert.ok(m.allowed, `${who} got ${m.key}, which the plugin refused`);
  assert.equal(p.topic, m.packet.topic, `${who}: topic of ${m.key}`);
  const want = m.packet.payload;
  assert.equal(p.payload.length, want.length, `${who}: length of ${m.key}`);
  for (let i = 0; i < want.length; i++) {
    if (p.payload[i] !== want[i]) assert.fail(`${who}: byte ${i} of ${m.key} differs`);
  }
  if (v === 5) {
    assert.deepEqual(
      p.properties?.correlationData,
      m.correlation,
      `${who}: correlation of ${m.key}`,
    );
    if (m.correlation !== undefined) {
      assert.deepEqual(p.properties?.userProperties, [["k", m.key]], `${who}: user property`);
    }
    assert.deepEqual(
      p.properties?.subscriptionIdentifier,
      identifier === undefined ? undefined : [identifier],
      `${who}: Subscription Identifier of ${m.key} [MQTT-3.3.4-3]`,
    );
  }
}

/**
 * Reads `c`'s packets, acknowledging QoS 1/2 deliveries (unless `ack` is false), until `done`
 * holds; every PUBLISH is checked against what was sent. Returns the keys seen, in order.
 */
async function collect(
  c: TestClient,
  sent: Map<string, Sent>,
  options: {
    who: string;
    v: 4 | 5;
    identifier?: number;
    seen: Set<string>;
    done: () => boolean;
    retained?: boolean;
  },
): Promise<string[]> {
  const order: string[] = [];
  // Polled in steps: a shared group's members stop together once the group has every message.
  let waited = 0;
  while (!options.done()) {
    const packet: Packet | undefined = await c.poll(POLL_MS);
    if (packet === undefined) {
      waited += POLL_MS;
      if (waited >= RECEIVE_MS) assert.fail(`${options.who}: no packet within ${RECEIVE_MS} ms`);
      continue;
    }
    waited = 0;
    if (packet.type === PacketType.PUBREL) {
      await c.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
      continue;
    }
    assert.equal(packet.type, PacketType.PUBLISH, `${options.who}: packet type ${packet.type}`);
    const p = packet as PublishPacket;
    const m = identify(sent, p);
    checkDelivery(m, p, options.who, options.v, options.identifier);
    // Live deliveries carry RETAIN 0 [MQTT-3.3.1-9] (no Retain As Published here).
    if (options.retained !== true) assert.equal(p.retain, false, `${options.who}: RETAIN`);
    options.seen.add(m.key);
    order.push(m.key);
    if (p.qos === 1) await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    else if (p.qos === 2) await c.send({ type: PacketType.PUBREC, packetId: p.packetId! });
  }
  return order;
}

/** Sends all of a publisher's PUBLISHes at once, answers PUBRECs, waits for the last ack. */
async function publishAll(pub: TestClient, list: Sent[], pid: string): Promise<void> {
  const done = publishPacket(`done/${pid}`, "done", { qos: 1, packetId: PER + 1 });
  await pub.send(...list.map((m) => m.packet), done);
  let acked = 0;
  const expected = list.filter((m) => m.packet.qos > 0).length + 1;
  while (acked < expected) {
    const packet = await pub.receive(RECEIVE_MS);
    if (packet.type === PacketType.PUBREC) {
      await pub.send({ type: PacketType.PUBREL, packetId: packet.packetId });
    } else if (packet.type === PacketType.PUBACK || packet.type === PacketType.PUBCOMP) acked++;
    else assert.fail(`${pid}: unexpected packet type ${packet.type}`);
  }
}

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
  // Each publisher's messages in the order sent, at each non-shared subscriber [MQTT-4.6.0-6].
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
