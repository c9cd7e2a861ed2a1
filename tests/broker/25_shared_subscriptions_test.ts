/**
 * Broker, area 25: shared subscriptions `$share/{group}/{filter}` (MQTT 5.0 §4.8.2), served to
 * 3.1.1 clients as well: one member of a group gets each message, at its own granted QoS, and a
 * new shared subscription gets no retained messages.
 *
 * Negative checks do not wait for silence: every client also subscribes to `end`, and the broker
 * forwards to each connection in order, so once the `end` marker arrives everything routed before
 * it has arrived too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

let markers = 1000;

/**
 * Publishes `end`, the marker every client of these tests subscribes to, at QoS 1: it queues
 * behind the QoS 1 messages before it, where a QoS 0 one would overtake them.
 */
async function sendMarker(pub: TestClient): Promise<void> {
  await pub.send(publishPacket("end", "end", { qos: 1, packetId: ++markers }));
  await pub.expect(PacketType.PUBACK);
}

/** Connected clients (sessions of offline persistent clients are not counted). */
function connected(b: { broker: { clients(): { connected: boolean }[] } }): number {
  return b.broker.clients().filter((c) => c.connected).length;
}

/**
 * Reads PUBLISH packets until the `end` marker, acknowledging QoS 1 ones; asserts the connection
 * is still open.
 *
 * @returns the packets before the marker
 */
async function untilMarker(client: TestClient): Promise<PublishPacket[]> {
  const got: PublishPacket[] = [];
  for (;;) {
    const p = await client.expect(PacketType.PUBLISH);
    if (p.qos === 1) await client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    if (p.topic === "end") break;
    got.push(p);
  }
  assert.equal(client.ended, false, "the connection stays open");
  return got;
}

test("25 shared: each message goes to one member of the group, none twice, a plain subscriber gets all 5.0 [MQTT-4.8.2-2]", async () => {
  await using b = await startBroker();
  const members: TestClient[] = [];
  try {
    for (const id of ["m0", "m1", "m2"]) {
      const m = await TestClient.connect(b.port, { clientId: id });
      members.push(m);
      assert.deepEqual(
        (await m.subscribe({ "$share/workers/jobs/+": 1, "end": 1 })).reasonCodes,
        [1, 1],
      );
    }
    await using plain = await TestClient.connect(b.port, { clientId: "plain" });
    await plain.subscribe({ "jobs/#": 1, "end": 1 });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    for (let i = 0; i < 30; i++) {
      await pub.send(publishPacket(`jobs/${i % 4}`, `job ${i}`, { qos: 1, packetId: i + 1 }));
      await pub.expect(PacketType.PUBACK);
    }
    await sendMarker(pub);
    const shares = await Promise.all(members.map((m) => untilMarker(m)));
    // Round robin over connected members: ten each, every message once in the group.
    assert.deepEqual(shares.map((s) => s.length), [10, 10, 10]);
    const all = shares.flat().map(text).sort();
    assert.deepEqual(all, Array.from({ length: 30 }, (_, i) => `job ${i}`).sort());
    for (const share of shares) for (const p of share) assert.equal(p.qos, 1);
    assert.equal((await untilMarker(plain)).length, 30);
  } finally {
    for (const m of members) await m.close();
  }
});

test("25 shared: malformed share names are refused per filter, the connection stays open 5.0 [MQTT-4.8.2-1] 5.0 [MQTT-4.8.2-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  const suback = await c.subscribe({
    "$share//jobs": 1, // empty ShareName [MQTT-4.8.2-1]
    "$share/a+b/jobs": 1, // wildcard in the ShareName [MQTT-4.8.2-2]
    "$share/a#/jobs": 1,
    "$share/g": 1, // no "/" and filter after the ShareName [MQTT-4.8.2-2]
    "$share/g/": 1,
    "$share/g/jobs/#": 1,
    "end": 1,
  });
  assert.deepEqual(suback.reasonCodes, [0x80, 0x80, 0x80, 0x80, 0x80, 1, 1]);
  assert.deepEqual(
    b.broker.subscriptions().map((s) => s.topic).sort(),
    ["$share/g/jobs/#", "end"],
  );
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("jobs/1", "x"));
  await sendMarker(pub);
  assert.deepEqual((await untilMarker(c)).map((p) => p.topic), ["jobs/1"]);
});

test("25 shared: each group gets its own copy; the same ShareName on another filter is another group", async () => {
  await using b = await startBroker();
  await using a = await TestClient.connect(b.port, { clientId: "a" });
  await a.subscribe({ "$share/g1/sport/+": 0, "end": 1 });
  await using bb = await TestClient.connect(b.port, { clientId: "b" });
  await bb.subscribe({ "$share/g2/sport/+": 0, "end": 1 });
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  await c.subscribe({ "$share/g1/sport/#": 0, "end": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("sport/tennis", "t"));
  await sendMarker(pub);
  for (const client of [a, bb, c]) {
    assert.deepEqual((await untilMarker(client)).map(text), ["t"]);
  }
});

test("25 shared: a member gets the message at its own granted QoS 5.0 [MQTT-4.8.2-3]", async () => {
  await using b = await startBroker();
  await using q0 = await TestClient.connect(b.port, { clientId: "q0" });
  assert.deepEqual((await q0.subscribe({ "$share/g/t": 0, "end": 1 })).reasonCodes, [0, 1]);
  await using q1 = await TestClient.connect(b.port, { clientId: "q1" });
  assert.deepEqual((await q1.subscribe({ "$share/g/t": 1, "end": 1 })).reasonCodes, [1, 1]);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (let i = 1; i <= 4; i++) {
    await pub.send(publishPacket("t", `m${i}`, { qos: 2, packetId: i }));
    await pub.expect(PacketType.PUBREC);
    await pub.send({ type: PacketType.PUBREL, packetId: i });
    await pub.expect(PacketType.PUBCOMP);
  }
  await sendMarker(pub);
  const got0 = await untilMarker(q0);
  const got1 = await untilMarker(q1);
  assert.equal(got0.length + got1.length, 4);
  assert.equal(got0.length, 2);
  for (const p of got0) assert.equal(p.qos, 0);
  for (const p of got1) assert.equal(p.qos, 1);
});

test("25 shared: a new shared subscription gets no retained messages; a plain one beside it does", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("state/lamp", "on", { retain: true, qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await using shared = await TestClient.connect(b.port, { clientId: "shared" });
  await shared.subscribe({ "$share/g/state/+": 1, "end": 1 });
  await using plain = await TestClient.connect(b.port, { clientId: "plain" });
  await plain.subscribe({ "state/+": 1, "end": 1 });
  // Retained messages go out in slices after the SUBACK: wait for the plain one's, then the
  // shared subscription (whose SUBSCRIBE came first) would have had its own.
  const got = await plain.expect(PacketType.PUBLISH);
  assert.deepEqual([got.topic, text(got), got.retain], ["state/lamp", "on", true]);
  await plain.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await sendMarker(pub);
  assert.deepEqual(await untilMarker(shared), []);
  assert.deepEqual(await untilMarker(plain), []);
  // Live messages still reach the shared subscription.
  await pub.send(publishPacket("state/lamp", "off"));
  await sendMarker(pub);
  assert.deepEqual((await untilMarker(shared)).map(text), ["off"]);
});

test("25 shared: an offline member is passed over while another member is connected", async () => {
  await using b = await startBroker();
  const away = await TestClient.connect(b.port, { clientId: "away", clean: false });
  await away.subscribe({ "$share/g/t": 1, "end": 1 });
  await using here = await TestClient.connect(b.port, { clientId: "here" });
  await here.subscribe({ "$share/g/t": 1, "end": 1 });
  await away.close();
  await waitFor(() => connected(b) === 1, 10_000, "the member to go offline");
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (let i = 1; i <= 6; i++) {
    await pub.send(publishPacket("t", `m${i}`, { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
  await sendMarker(pub);
  assert.deepEqual((await untilMarker(here)).map(text), ["m1", "m2", "m3", "m4", "m5", "m6"]);
  // Nothing of the group was queued for the offline member: it comes back to the marker only,
  // then takes its turn again.
  await using back = await TestClient.connect(b.port, { clientId: "away", clean: false });
  assert.deepEqual((await untilMarker(back)).map(text), []);
  await pub.send(publishPacket("t", "m7", { qos: 1, packetId: 7 }));
  await pub.expect(PacketType.PUBACK);
  await pub.send(publishPacket("t", "m8", { qos: 1, packetId: 8 }));
  await pub.expect(PacketType.PUBACK);
  await sendMarker(pub);
  const mine = await untilMarker(back);
  const theirs = await untilMarker(here);
  assert.equal(mine.length, 1);
  assert.equal(theirs.length, 1);
  assert.deepEqual([...mine, ...theirs].map(text).sort(), ["m7", "m8"]);
});

test("25 shared: a QoS 2 delivery cut by a lost connection is completed with the same member 5.0 [MQTT-4.8.2-4]", async () => {
  await using b = await startBroker();
  const first = await TestClient.connect(b.port, { clientId: "first", clean: false });
  // "end" at QoS 0: the marker is not kept for it while it is offline.
  await first.subscribe({ "$share/g/t": 2, "end": 0 });
  await using other = await TestClient.connect(b.port, { clientId: "other" });
  await other.subscribe({ "$share/g/t": 2, "end": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("t", "once", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  await pub.expect(PacketType.PUBCOMP);
  // Round robin starts with the first member: it gets the message and leaves without PUBREC.
  const sent = await first.expect(PacketType.PUBLISH);
  assert.equal(text(sent), "once");
  assert.equal(sent.qos, 2);
  await first.close();
  await waitFor(() => connected(b) === 2, 10_000, "the member to go offline");
  await sendMarker(pub);
  assert.deepEqual(await untilMarker(other), [], "the other member does not get it");
  await using again = await TestClient.connect(b.port, { clientId: "first", clean: false });
  const resent = await again.expect(PacketType.PUBLISH);
  assert.deepEqual([text(resent), resent.qos, resent.dup, resent.packetId], [
    "once",
    2,
    true,
    sent.packetId,
  ]);
  await again.send({ type: PacketType.PUBREC, packetId: resent.packetId! });
  assert.equal((await again.expect(PacketType.PUBREL)).packetId, resent.packetId);
  await again.send({ type: PacketType.PUBCOMP, packetId: resent.packetId! });
});

test("25 shared: once a member's session has ended, its QoS 2 message goes to no other member 5.0 [MQTT-4.8.2-5]", async () => {
  await using b = await startBroker();
  // A clean session ends with its connection.
  const gone = await TestClient.connect(b.port, { clientId: "gone", clean: true });
  await gone.subscribe({ "$share/g/t": 2, "end": 1 });
  await using other = await TestClient.connect(b.port, { clientId: "other" });
  await other.subscribe({ "$share/g/t": 2, "end": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("t", "once", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  await pub.expect(PacketType.PUBCOMP);
  assert.equal(text(await gone.expect(PacketType.PUBLISH)), "once");
  await gone.close();
  await waitFor(() => connected(b) === 2, 10_000, "the session to end");
  await sendMarker(pub);
  assert.deepEqual(await untilMarker(other), []);
  // The group goes on with the member that is left.
  await pub.send(publishPacket("t", "next"));
  await sendMarker(pub);
  assert.deepEqual((await untilMarker(other)).map(text), ["next"]);
});

test("25 shared: a member that unsubscribes leaves the group", async () => {
  await using b = await startBroker();
  await using a = await TestClient.connect(b.port, { clientId: "a" });
  await a.subscribe({ "$share/g/t": 0, "end": 1 });
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  await c.subscribe({ "$share/g/t": 0, "end": 1 });
  await a.send({ type: PacketType.UNSUBSCRIBE, packetId: 2, topics: ["$share/g/t"] });
  await a.expect(PacketType.UNSUBACK);
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (let i = 0; i < 4; i++) await pub.send(publishPacket("t", `m${i}`));
  await sendMarker(pub);
  assert.deepEqual(await untilMarker(a), []);
  assert.deepEqual((await untilMarker(c)).map(text), ["m0", "m1", "m2", "m3"]);
});

test("25 shared: shared_subscription_strategy random gives each message to exactly one member", async () => {
  await using b = await startBroker({ shared_subscription_strategy: "random" });
  const members: TestClient[] = [];
  try {
    for (const id of ["r0", "r1", "r2"]) {
      const m = await TestClient.connect(b.port, { clientId: id });
      members.push(m);
      await m.subscribe({ "$share/g/t": 0, "end": 1 });
    }
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    for (let i = 0; i < 60; i++) await pub.send(publishPacket("t", `m${i}`));
    await sendMarker(pub);
    const shares = await Promise.all(members.map((m) => untilMarker(m)));
    const all = shares.flat().map(text).sort();
    assert.deepEqual(all, Array.from({ length: 60 }, (_, i) => `m${i}`).sort());
    // Each member drew some: all three missing none of 60 draws has a chance below 1e-10.
    for (const share of shares) assert.ok(share.length > 0);
  } finally {
    for (const m of members) await m.close();
  }
});

test("25 shared: QoS 1 messages a member had not had acknowledged go to another member when its session ends", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  await leaving.subscribe({ "$share/g/t": 1, "end": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  // The only member: it gets all three, one in flight and two queued behind its window.
  for (let i = 1; i <= 3; i++) {
    await pub.send(publishPacket("t", `m${i}`, { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
  assert.equal(text(await leaving.expect(PacketType.PUBLISH)), "m1");
  await using staying = await TestClient.connect(b.port, { clientId: "staying" });
  await staying.subscribe({ "$share/g/t": 1, "end": 1 });
  await leaving.close();
  const got = [];
  for (let i = 0; i < 3; i++) {
    const p = await staying.expect(PacketType.PUBLISH);
    await staying.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    got.push([text(p), p.qos]);
  }
  assert.deepEqual(got, [["m1", 1], ["m2", 1], ["m3", 1]]);
  await sendMarker(pub);
  assert.deepEqual(await untilMarker(staying), [], "each once");
});

test("25 shared: of a member's QoS 2 messages only those never sent go to another member 5.0 [MQTT-4.8.2-5]", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  const leaving = await TestClient.connect(b.port, { clientId: "leaving", clean: true });
  await leaving.subscribe({ "$share/g/t": 2, "end": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (let i = 1; i <= 2; i++) {
    await pub.send(publishPacket("t", `m${i}`, { qos: 2, packetId: i }));
    await pub.expect(PacketType.PUBREC);
    await pub.send({ type: PacketType.PUBREL, packetId: i });
    await pub.expect(PacketType.PUBCOMP);
  }
  // m1 is in flight (sent), m2 waits behind the window of 1.
  assert.equal(text(await leaving.expect(PacketType.PUBLISH)), "m1");
  await using staying = await TestClient.connect(b.port, { clientId: "staying" });
  await staying.subscribe({ "$share/g/t": 2, "end": 1 });
  await leaving.close();
  const p = await staying.expect(PacketType.PUBLISH);
  assert.deepEqual([text(p), p.qos], ["m2", 2]);
  await staying.send({ type: PacketType.PUBREC, packetId: p.packetId! });
  await staying.expect(PacketType.PUBREL);
  await staying.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
  await sendMarker(pub);
  assert.deepEqual(await untilMarker(staying), [], "m1 went to no other member");
});
