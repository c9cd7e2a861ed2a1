/**
 * Broker: publishers' read buffers are read into again once their PUBLISHes are routed. Here
 * several publishers pour messages of random sizes (some over a slab's share, some over a read)
 * at QoS 0 and 1, written in pieces of random sizes, while subscribers of every kind keep them:
 * one that acknowledges at 3.1.1, one at 5.0, one at QoS 0, 5.0 ones with a Subscription
 * Identifier at QoS 0 and at QoS 1 and with Retain As Published (each delivery a copy), one
 * whose session goes offline with messages in flight and queued, and the retained store. Every
 * payload says which message it is and what its bytes are, so a payload that changed after its
 * buffer was read into again is caught wherever it was kept.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";

const PUBLISHERS = 4;
const MESSAGES = 300;

/** The payload of message `n` of publisher `p`: `p:n:length:` then bytes made from p, n and j. */
function payloadOf(p: number, n: number, length: number): Uint8Array {
  const head = new TextEncoder().encode(`${p}:${n}:${length}:`);
  const out = new Uint8Array(head.length + length);
  out.set(head);
  for (let j = 0; j < length; j++) out[head.length + j] = (p * 7 + n * 13 + j) & 0xff;
  return out;
}

/** Checks a payload against what its head says; returns `p:n`. */
function check(payload: Uint8Array, where: string): string {
  const text = new TextDecoder().decode(payload.subarray(0, 24));
  const m = /^(\d+):(\d+):(\d+):/.exec(text);
  assert.ok(m !== null, `${where}: a payload without its head: ${JSON.stringify(text)}`);
  const expected = payloadOf(Number(m[1]), Number(m[2]), Number(m[3]));
  assert.deepEqual(payload, expected, `${where}: the payload of message ${m[1]}:${m[2]} changed`);
  return `${m[1]}:${m[2]}`;
}

/** The messages one publisher sends: its QoS 1 ones end with a marker `end/p`. */
function messages(p: number): { packets: Packet[]; qos1: string[]; lastRetained: string } {
  const random = rng(1000 + p);
  const packets: Packet[] = [];
  const qos1: string[] = [];
  let lastRetained = "";
  for (let n = 0; n < MESSAGES; n++) {
    const r = random();
    const length = r < 0.05 ? 2000 + Math.floor(random() * 3000) : Math.floor(random() * 400);
    const qos = random() < 0.5 ? 0 : 1;
    const retain = n % 37 === 5;
    if (retain) lastRetained = `${p}:${n}`;
    if (qos === 1) qos1.push(`${p}:${n}`);
    packets.push({
      ...publishPacket(retain ? `f/r${p}` : `f/${p}`, "", { qos, packetId: n + 1, retain }),
      payload: payloadOf(p, n, length),
    });
  }
  return { packets, qos1, lastRetained };
}

/**
 * Reads PUBLISHes until `done` says enough, checking each payload; acknowledges QoS 1 ones when
 * `ack`. Returns the ids seen.
 */
async function collect(
  client: TestClient,
  where: string,
  ack: boolean,
  done: (seen: Set<string>) => boolean,
): Promise<Set<string>> {
  const seen = new Set<string>();
  while (!done(seen)) {
    const packet = await client.receive(30_000);
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    if (p.topic.startsWith("end/")) {
      seen.add(p.topic);
    } else seen.add(check(p.payload, where));
    if (ack && p.qos === 1) await client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  return seen;
}

Deno.test("read buffer reuse: payloads stay intact under a flood of publishers wherever they are kept [MQTT-4.4.0-1] [MQTT-3.3.1-5]", async () => {
  await using b = await startBroker({ max_queued_messages: 0, max_inflight: 20 });
  const ends = Array.from({ length: PUBLISHERS }, (_, p) => `end/${p}`);
  const allEnds = (seen: Set<string>) => ends.every((e) => seen.has(e));
  await using a = await TestClient.connect(b.port, { clientId: "a" });
  await a.subscribe({ "f/#": 1, "end/#": 1 });
  await using v5 = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "v5" });
  await subscribe5(v5, [{ topic: "f/#", qos: 1 }, { topic: "end/#", qos: 1 }]);
  await using q0 = await TestClient.connect(b.port, { clientId: "q0" });
  await q0.subscribe({ "f/#": 0, "end/#": 1 });
  // 5.0 deliveries made from a copy of the message: at QoS 0 the read buffer is reused all the
  // same, at QoS 1 the copy in flight keeps it.
  await using id0 = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "id0" });
  await subscribe5(id0, [{ topic: "f/#", qos: 0 }, { topic: "end/#", qos: 1 }], { identifier: 3 });
  await using id1 = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "id1" });
  await subscribe5(id1, [{ topic: "f/#", qos: 1 }, { topic: "end/#", qos: 1 }], { identifier: 4 });
  await using rap = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "rap" });
  await subscribe5(rap, [{ topic: "f/#", qos: 1, retainAsPublished: true }, {
    topic: "end/#",
    qos: 1,
  }]);
  const away = await TestClient.connect(b.port, { clientId: "away", clean: false });
  await away.subscribe({ "f/#": 1 });

  const plans = Array.from({ length: PUBLISHERS }, (_, p) => messages(p));
  const collectors = [
    collect(a, "3.1.1 subscriber", true, allEnds),
    collect(v5, "5.0 subscriber", true, allEnds),
    collect(q0, "QoS 0 subscriber", true, allEnds),
    collect(id0, "5.0 subscriber with an identifier at QoS 0", true, allEnds),
    collect(id1, "5.0 subscriber with an identifier at QoS 1", true, allEnds),
    collect(rap, "5.0 subscriber with Retain As Published", true, allEnds),
  ];
  // The persistent session takes 20 messages (its window of 20 QoS 1 ones stays in flight,
  // unacknowledged), then goes away while the publishers go on.
  const awayDone = collect(away, "session before it went away", false, (s) => s.size >= 20)
    .then(async (seen) => {
      await away.close();
      return seen;
    });

  let awaySeen = new Set<string>();
  const publishers = await Promise.all(
    plans.map((_, p) => TestClient.connect(b.port, { clientId: `pub${p}` })),
  );
  try {
    await Promise.all(plans.map(async (plan, p) => {
      const random = rng(2000 + p);
      const bytes = new Uint8Array(plan.packets.flatMap((x) => [...encodePacket(x, 4)]));
      for (let at = 0; at < bytes.length;) {
        const n = 1 + Math.floor(random() * 1500);
        await publishers[p]!.sendBytes(bytes.subarray(at, at + n));
        at += n;
        if (random() < 0.2) await delay(1);
      }
      await publishers[p]!.send(publishPacket(`end/${p}`, "end", { qos: 1, packetId: 65000 }));
    }));
    const [seenA, seenV5, seenQ0, seenId0, seenId1, seenRap] = await Promise.all(collectors);
    awaySeen = await awayDone;
    // QoS 1 messages arrive, every one; QoS 0 ones may be dropped under back-pressure, but a
    // payload that arrived was checked.
    const acknowledging = [[seenA, "a"], [seenV5, "v5"], [seenId1, "id1"], [seenRap, "rap"]];
    for (const [seen, who] of acknowledging as [Set<string>, string][]) {
      for (const plan of plans) {
        for (const id of plan.qos1) assert.ok(seen.has(id), `${who} missed ${id}`);
      }
    }
    assert.ok(seenQ0.size > 0);
    assert.ok(seenId0.size > 0);
  } finally {
    for (const pub of publishers) await pub.close();
  }

  // The session comes back: what was in flight is sent again and what was queued follows.
  await using back = await TestClient.connect(b.port, { clientId: "away", clean: false });
  const expected = new Set(plans.flatMap((plan) => plan.qos1));
  for (const id of awaySeen) expected.delete(id);
  const missing = (seen: Set<string>) => [...expected].every((id) => seen.has(id));
  await collect(back, "session back", true, missing);

  // The retained store kept the last retained message of each publisher.
  await using late = await TestClient.connect(b.port, { clientId: "late" });
  await late.subscribe({ "f/+": 0 });
  const retained = await collect(late, "retained", false, (s) => s.size >= PUBLISHERS);
  assert.deepEqual([...retained].sort(), plans.map((plan) => plan.lastRetained).sort());
  assert.equal(awaySeen.size, 20);
});
