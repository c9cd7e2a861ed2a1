/**
 * Broker 94: the broker's sockets share their spare large read buffers (`src/transport/socket.ts`):
 * a publisher whose socket drains after a burst gives its large buffer up, and the next large read
 * of any other connection reads into it. Several publishers (3.1.1 and 5.0) here push bursts of
 * large PUBLISHes (up to 30 KB, QoS 0, 1 and 2, some retained) at once, each waiting for its
 * acknowledgements between bursts, so that their buffers go back and forth between connections;
 * every payload kept past its routing (in flight and never queued behind a window, queued for offline persistent
 * sessions of both levels and written to a SQLite store, 5.0 copies with a Subscription
 * Identifier, retained) must arrive byte for byte as published, never with another client's bytes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { ProtocolVersion, QoS } from "../../src/packet/constants.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const PUBLISHERS = 4;
const BURSTS = 12;

/** The payload of message `n` of publisher `p`: `p:n:length:` then bytes made from p, n and j. */
function payloadOf(p: number, n: number, length: number): Uint8Array {
  const head = new TextEncoder().encode(`${p}:${n}:${length}:`);
  const out = new Uint8Array(head.length + length);
  out.set(head);
  for (let j = 0; j < length; j++) out[head.length + j] = (p * 59 + n * 13 + j * 7) & 0xff;
  return out;
}

/** Checks a payload byte for byte against what its head says; returns `p:n`. */
function check(payload: Uint8Array, where: string): string {
  const text = new TextDecoder().decode(payload.subarray(0, 24));
  const m = /^(\d+):(\d+):(\d+):/.exec(text);
  assert.ok(m !== null, `${where}: a payload without its head: ${JSON.stringify(text)}`);
  const expected = payloadOf(Number(m[1]), Number(m[2]), Number(m[3]));
  if (payload.length !== expected.length || payload.some((b, i) => b !== expected[i])) {
    assert.fail(`${where}: the payload of message ${m[1]}:${m[2]} changed`);
  }
  return `${m[1]}:${m[2]}`;
}

interface Plan {
  /** Bursts of packets, each written at once. */
  bursts: PublishPacket[][];
  /** Messages published at QoS 1 or 2. */
  acked: string[];
  /** Those of them published to `b/p/l`. */
  late: string[];
  /** The last retained message. */
  lastRetained: string;
}

/**
 * Publisher `p`'s bursts: 6–13 PUBLISHes each, mostly 500 B–6 KB (whole packets inside a large
 * read, viewing the read buffer), some up to 30 KB, random QoS, now and then RETAIN. The second
 * half goes to `b/p/l` (see `held` in {@linkcode run}).
 */
function plan(p: number): Plan {
  const random = rng(9400 + p);
  const bursts: PublishPacket[][] = [];
  const acked: string[] = [];
  const late: string[] = [];
  let lastRetained = "";
  let n = 0;
  for (let b = 0; b < BURSTS; b++) {
    const burst: PublishPacket[] = [];
    const size = 6 + Math.floor(random() * 8);
    for (let i = 0; i < size; i++, n++) {
      const length = random() < 0.8
        ? 500 + Math.floor(random() * 5500)
        : 6000 + Math.floor(random() * 24_000);
      const qos = Math.floor(random() * 3) as QoS;
      const retain = i === 0 && b % 3 === 1;
      const topic = retain ? `b/r${p}` : b >= BURSTS / 2 ? `b/${p}/l` : `b/${p}`;
      if (retain) lastRetained = `${p}:${n}`;
      if (qos > 0) acked.push(`${p}:${n}`);
      if (qos > 0 && topic.endsWith("/l")) late.push(`${p}:${n}`);
      burst.push({
        ...publishPacket(topic, "", { qos, retain, packetId: n + 1 }),
        payload: payloadOf(p, n, length),
      });
    }
    bursts.push(burst);
  }
  return { bursts, acked, late, lastRetained };
}

/** Writes each burst at once and waits for its acknowledgements (QoS 2 flows completed). */
async function publish(pub: TestClient, version: ProtocolVersion, p: number, plan: Plan) {
  const random = rng(9500 + p);
  for (const burst of plan.bursts) {
    const encoded = burst.map((x) => encodePacket(x, version));
    const bytes = new Uint8Array(encoded.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of encoded) {
      bytes.set(x, at);
      at += x.length;
    }
    await pub.sendBytes(bytes);
    let waiting = burst.filter((x) => x.qos > 0).length;
    while (waiting > 0) {
      const packet = await pub.receive(30_000);
      if (packet.type === PacketType.PUBREC) {
        await pub.send({ type: PacketType.PUBREL, packetId: packet.packetId });
      } else if (packet.type === PacketType.PUBACK || packet.type === PacketType.PUBCOMP) {
        waiting--;
      }
    }
    // The socket drains: its large buffer goes to the spares, for another publisher's next burst.
    await delay(Math.floor(random() * 3));
  }
  await pub.send(publishPacket(`end/${p}`, "end", { qos: 1, packetId: 65000 }));
  await pub.expect(PacketType.PUBACK, 30_000);
}

/**
 * Reads PUBLISHes until `done`, checking each payload and acknowledging QoS 1/2 flows unless
 * `ack` is false.
 */
async function collect(
  client: TestClient,
  where: string,
  done: (seen: Set<string>) => boolean,
  onPublish?: (p: PublishPacket) => void,
  ack = true,
): Promise<Set<string>> {
  const seen = new Set<string>();
  while (!done(seen)) {
    const packet: Packet = await client.receive(30_000);
    if (packet.type === PacketType.PUBREL) {
      await client.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
      continue;
    }
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    if (p.topic.startsWith("end/")) seen.add(p.topic);
    else {
      seen.add(check(p.payload, where));
      onPublish?.(p);
    }
    if (ack && p.qos > 0) {
      await client.send({
        type: p.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
        packetId: p.packetId!,
      });
    }
  }
  return seen;
}

/** The traffic and its checks, in memory or with a SQLite store (then across a restart too). */
async function run(stored: boolean): Promise<void> {
  await using dir = await tempDir("amqtt-94-");
  const path = `${dir.path}/state.db`;
  const options = () => stored ? { store: SqliteStore.open(path) } : {};
  const plans = Array.from({ length: PUBLISHERS }, (_, p) => plan(p));
  const ends = plans.map((_, p) => `end/${p}`);
  const allEnds = (seen: Set<string>) => ends.every((e) => seen.has(e));
  const expected = new Set(plans.flatMap((x) => x.acked));
  const allAcked = (seen: Set<string>) => [...expected].every((id) => seen.has(id));
  const late = plans.flatMap((x) => x.late);
  const allLate = (seen: Set<string>) => late.every((id) => seen.has(id));
  {
    await using b = await startBroker({ max_inflight: 1000 }, options());
    // Persistent sessions of both levels go offline before the bursts: their messages are queued
    // and written to the store while the publishers' buffers move between connections.
    const away4 = await TestClient.connect(b.port, { clientId: "away4", clean: false });
    await away4.subscribe({ "b/#": 2 });
    await away4.disconnect();
    const away5 = await TestClient.connect(b.port, {
      protocolVersion: 5,
      clientId: "away5",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await subscribe5(away5, [{ topic: "b/#", qos: 1 }]);
    await away5.disconnect();

    await using a = await TestClient.connect(b.port, { clientId: "a" });
    await a.subscribe({ "b/#": 2, "end/#": 1 });
    await using v5 = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "v5" });
    await subscribe5(v5, [{ topic: "b/#", qos: 2 }, { topic: "end/#", qos: 1 }], {
      identifier: 7,
    });
    // Persistent sessions of both levels that take 20 deliveries of the second half's bursts (when
    // reads are large and whole packets view the read buffer) and acknowledge none (the window of
    // 1,000 takes every message in flight, none queued behind it), stay connected until the
    // publishers are done, then lose their connection: what is in flight is sent again once they
    // are back, from payloads kept since the routing.
    const held = [
      await TestClient.connect(b.port, { clientId: "held4", clean: false }),
      await TestClient.connect(b.port, {
        protocolVersion: 5,
        clientId: "held5",
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      }),
    ];
    await held[0]!.subscribe({ "b/+/l": 1 });
    await subscribe5(held[1]!, [{ topic: "b/+/l", qos: 2 }]);
    let published!: () => void;
    const publishedAll = new Promise<void>((resolve) => published = resolve);
    const heldGone = held.map((client, i) =>
      collect(client, `held${i} before it went away`, (s) => s.size >= 20, undefined, false)
        .then(async (seen) => {
          // Connected until the publishers are done, their buffers read into again meanwhile.
          await publishedAll;
          assert.equal(client.socketEnded, false);
          await client.close();
          return seen;
        })
    );
    const identifiers: unknown[] = [];
    const collectors = [
      collect(a, "3.1.1 subscriber", allEnds),
      collect(v5, "5.0 subscriber with an identifier", allEnds, (p) => {
        identifiers.push(p.properties?.subscriptionIdentifier);
      }),
    ];
    const publishers = await Promise.all(plans.map((_, p) =>
      TestClient.connect(b.port, {
        clientId: `pub${p}`,
        protocolVersion: p % 2 === 0 ? 4 : 5,
      })
    ));
    try {
      await Promise.all(
        plans.map((x, p) => publish(publishers[p]!, p % 2 === 0 ? 4 : 5, p, x)),
      );
      published();
      const [seenA, seenV5] = await Promise.all(collectors);
      for (const [seen, who] of [[seenA, "a"], [seenV5, "v5"]] as const) {
        for (const id of expected) assert.ok(seen.has(id), `${who} missed ${id}`);
      }
      // Each 5.0 delivery is a copy that carries its Subscription Identifier [MQTT-3.3.4-3].
      assert.ok(identifiers.length > 0);
      assert.ok(identifiers.every((ids) => JSON.stringify(ids) === "[7]"));
    } finally {
      for (const pub of publishers) await pub.close();
    }
    // The held sessions come back: their deliveries in flight come again, then the queue, intact.
    assert.deepEqual((await Promise.all(heldGone)).map((seen) => seen.size), [20, 20]);
    await using held4 = await TestClient.connect(b.port, { clientId: "held4", clean: false });
    await collect(held4, "3.1.1 held session back", allLate);
    await using held5 = await TestClient.connect(b.port, {
      protocolVersion: 5,
      clientId: "held5",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await collect(held5, "5.0 held session back", allLate);
    // The 3.1.1 session comes back to this broker: its queue arrives whole and intact.
    await using back4 = await TestClient.connect(b.port, { clientId: "away4", clean: false });
    await collect(back4, "3.1.1 session back", allAcked);
    await back4.disconnect();
    if (!stored) {
      await using back5 = await TestClient.connect(b.port, {
        protocolVersion: 5,
        clientId: "away5",
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      await collect(back5, "5.0 session back", allAcked);
      await retainedIntact(b.port, plans);
      return;
    }
  }
  // The 5.0 session comes back after a restart: its queue, as stored, arrives intact.
  await using b = await startBroker({ max_inflight: 1000 }, options());
  await using back5 = await TestClient.connect(b.port, {
    protocolVersion: 5,
    clientId: "away5",
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  await collect(back5, "5.0 session back after a restart", allAcked);
  await retainedIntact(b.port, plans);
}

/** The retained store kept each publisher's last retained message, as published. */
async function retainedIntact(port: number, plans: Plan[]): Promise<void> {
  await using late = await TestClient.connect(port, { clientId: "late" });
  await late.subscribe({ "b/+": 0 });
  const retained = await collect(late, "retained", (s) => s.size >= PUBLISHERS);
  assert.deepEqual([...retained].sort(), plans.map((x) => x.lastRetained).sort());
  assert.equal(late.socketEnded, false);
}

for (const stored of [false, true]) {
  Deno.test(`94 shared spare read buffers: bursts of large PUBLISHes from several publishers arrive byte for byte, in flight and sent again, queued offline, copied at 5.0 and retained${stored ? ", with a SQLite store and across a restart" : ""} [MQTT-4.4.0-1] [MQTT-3.1.2-5] [MQTT-3.3.1-5]`, () =>
    run(stored));
}
