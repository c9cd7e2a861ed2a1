/**
 * Broker, area 35: server-side normative statements of MQTT 5.0 that the other areas check at
 * 3.1.1 only, or not at all, checked at level 5 byte by byte over TCP: CONNECT validation, wills,
 * client identifiers and sessions, DUP and RETAIN, QoS 1 and 2 in both directions, subscription
 * replacement and several filters in one packet, unsubscribing, ordering, topic rules.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { Packet, PublishPacket } from "../../src/packet/mod.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };
const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const str = (s: string) => [s.length >> 8, s.length & 0xff, ...utf8(s)];

/** A level-5 session kept for an hour: what a reconnect with Clean Start 0 finds. */
const KEPT = { ...V5, clean: false, properties: { sessionExpiryInterval: 3600 } };

function session(b: TestBroker, clientId: string) {
  return b.broker.clients().find((s) => s.clientId === clientId);
}

/** Sends raw bytes on a fresh level-5 connection; returns what came back before the close. */
async function rawConnect(b: TestBroker, bytes: number[]): Promise<Packet[]> {
  await using c = await TestClient.open(b.port, V5);
  await c.sendBytes(bytes);
  return await c.expectClosed(10_000, { allowPackets: true });
}

// ---------------------------------------------------------------------------------------------
// CONNECT

test("35 v5 connect: a wrong protocol name at level 5 is not served: closed, no successful CONNACK [MQTT-3.1.2-1]", async () => {
  await using b = await startBroker();
  const body = [...str("MQTX"), 0x05, 0x02, 0x00, 0x00, 0x00, ...str("c")];
  const seen = await rawConnect(b, [0x10, body.length, ...body]);
  for (const p of seen) {
    assert.equal(p.type, PacketType.CONNACK);
    if (p.type === PacketType.CONNACK) assert.ok(p.reasonCode >= 0x80, `CONNACK ${p.reasonCode}`);
  }
  assert.equal(b.broker.stats.clientsConnected, 0);
});

test("35 v5 connect: the reserved CONNECT flag set is malformed: closed, no successful CONNACK [MQTT-3.1.2-3] [MQTT-3.1.4-1]", async () => {
  await using b = await startBroker();
  const body = [...str("MQTT"), 0x05, 0x03, 0x00, 0x00, 0x00, ...str("c")];
  const seen = await rawConnect(b, [0x10, body.length, ...body]);
  for (const p of seen) {
    assert.equal(p.type, PacketType.CONNACK);
    if (p.type === PacketType.CONNACK) assert.ok(p.reasonCode >= 0x80, `CONNACK ${p.reasonCode}`);
  }
});

test("35 v5 connect: a CONNECT with bytes after its last field is malformed: closed [MQTT-3.1.4-1]", async () => {
  await using b = await startBroker();
  const body = [...str("MQTT"), 0x05, 0x02, 0x00, 0x00, 0x00, ...str("c"), 0x00, 0x00];
  const seen = await rawConnect(b, [0x10, body.length, ...body]);
  assert.ok(
    seen.every((p) => p.type === PacketType.CONNACK && p.reasonCode >= 0x80),
    JSON.stringify(seen.map((p) => p.type)),
  );
});

test("35 v5 connect: a will without Will Retain is published non-retained when the client dies [MQTT-3.1.2-7] [MQTT-3.1.2-14]", async () => {
  await using b = await startBroker();
  await using watcher = await TestClient.connect(b.port, { ...V5, clientId: "w" });
  await subscribe5(watcher, [{ topic: "will/#", qos: 1 }]);
  const dying = await TestClient.connect(b.port, {
    ...V5,
    clientId: "d",
    will: { topic: "will/d", payload: utf8Bytes("gone"), qos: 1, retain: false },
  });
  await dying.close(); // no DISCONNECT
  const got = await watcher.expect(PacketType.PUBLISH);
  assert.equal(text(got), "gone");
  assert.equal(got.retain, false);
  await watcher.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  assert.equal(b.broker.retainedMessages().some((m) => m.topic === "will/d"), false);
  await watcher.disconnect();
});

function utf8Bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

test("35 v5 connect: a will with Will Retain is published retained when the client dies [MQTT-3.1.2-15]", async () => {
  await using b = await startBroker();
  const dying = await TestClient.connect(b.port, {
    ...V5,
    clientId: "d",
    will: { topic: "will/r", payload: utf8Bytes("kept"), qos: 0, retain: true },
  });
  await dying.close();
  await waitFor(
    () => b.broker.retainedMessages().some((m) => m.topic === "will/r"),
    10_000,
    "the retained will",
  );
  await using late = await TestClient.connect(b.port, { ...V5, clientId: "l" });
  await subscribe5(late, [{ topic: "will/r", qos: 0 }]);
  const got = await late.expect(PacketType.PUBLISH);
  assert.equal(text(got), "kept");
  assert.equal(got.retain, true);
  await late.disconnect();
});

test("35 v5 connect: without Request Response Information the CONNACK has no Response Information [MQTT-3.1.2-28]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "c" });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.responseInformation, undefined);
  await using c0 = await TestClient.open(b.port, V5);
  const connack0 = await c0.handshake({
    ...V5,
    clientId: "c0",
    properties: { requestResponseInformation: 0 },
  });
  assert.equal(connack0.properties?.responseInformation, undefined);
  await c.disconnect();
  await c0.disconnect();
});

test("35 v5 connect: a ClientID of 23 letters and digits is accepted [MQTT-3.1.3-5]", async () => {
  await using b = await startBroker();
  const id = "Abcdefghij0123456789XyZ";
  assert.equal(id.length, 23);
  await using c = await TestClient.connect(b.port, { ...V5, clientId: id });
  assert.ok(session(b, id)?.connected);
  await c.disconnect();
});

test("35 v5 connect: the ClientID names the session: the same id resumes it, another does not [MQTT-3.1.3-2] [MQTT-3.1.4-4]", async () => {
  await using b = await startBroker();
  const first = await TestClient.connect(b.port, { ...KEPT, clientId: "k" });
  await subscribe5(first, [{ topic: "k/t", qos: 1 }]);
  await first.disconnect();
  await using other = await TestClient.open(b.port, V5);
  const a = await other.handshake({ ...KEPT, clientId: "k2" });
  assert.equal(a.sessionPresent, false);
  await other.disconnect();
  await using again = await TestClient.open(b.port, V5);
  const c = await again.handshake({ ...KEPT, clientId: "k" });
  assert.equal(c.sessionPresent, true);
  assert.ok(b.broker.subscriptions().some((s) => s.clientId === "k" && s.topic === "k/t"));
  await again.disconnect();
  // Clean Start 1 with the same id starts a new session.
  await using fresh = await TestClient.open(b.port, V5);
  const f = await fresh.handshake({ ...V5, clientId: "k" });
  assert.equal(f.sessionPresent, false);
  assert.equal(b.broker.subscriptions().some((s) => s.clientId === "k"), false);
  await fresh.disconnect();
});

test("35 v5 connect: no DISCONNECT before the CONNACK: a bad packet right behind CONNECT gets CONNACK 0 first [MQTT-3.14.0-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  const body = [...str("MQTT"), 0x05, 0x02, 0x00, 0x00, 0x00, ...str("c")];
  // CONNECT, then a PUBLISH to "a/+" (a wildcard in a Topic Name) in the same write.
  await c.sendBytes([0x10, body.length, ...body, 0x30, 0x07, ...str("a/+"), 0x00, 0x78]);
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  assert.deepEqual(seen.map((p) => p.type), [PacketType.CONNACK, PacketType.DISCONNECT]);
  const connack = seen[0]!;
  assert.equal(connack.type === PacketType.CONNACK && connack.reasonCode, 0);
});

// ---------------------------------------------------------------------------------------------
// PUBLISH: DUP, RETAIN, topic, acknowledgements

test("35 v5 publish: a QoS 1 PUBLISH re-sent on reconnect has DUP 1, a QoS 0 one never [MQTT-3.3.1-1] [MQTT-3.3.1-2] [MQTT-3.3.1-3] [MQTT-4.3.1-1] [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { ...KEPT, clientId: "s" });
  await subscribe5(sub, [{ topic: "d/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("d/0", "zero", { qos: 0 }));
  await pub.send(publishPacket("d/1", "one", { qos: 1, packetId: 5 }));
  await pub.expect(PacketType.PUBACK);
  const q0 = await sub.expect(PacketType.PUBLISH);
  assert.equal(q0.qos, 0);
  assert.equal(q0.dup, false);
  const first = await sub.expect(PacketType.PUBLISH);
  assert.equal(first.qos, 1);
  assert.equal(first.dup, false, "first delivery");
  await sub.close(); // unacknowledged
  await waitFor(() => session(b, "s")?.connected === false, 10_000, "the subscriber offline");
  await using back = await TestClient.open(b.port, V5);
  const connack = await back.handshake({ ...KEPT, clientId: "s" });
  assert.equal(connack.sessionPresent, true);
  const again = await back.expect(PacketType.PUBLISH);
  assert.equal(text(again), "one");
  assert.equal(again.dup, true, "a re-delivery");
  assert.equal(again.packetId, first.packetId, "the same packet id");
  await back.send({ type: PacketType.PUBACK, packetId: again.packetId! });
  await back.expectNothing(50);
  await back.disconnect();
  await pub.disconnect();
});

test("35 v5 publish: RETAIN 0 neither stores nor replaces the retained message [MQTT-3.3.1-8]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("r/t", "kept", { qos: 1, retain: true, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await pub.send(publishPacket("r/t", "live", { qos: 1, packetId: 2 }));
  await pub.send(publishPacket("r/other", "live", { qos: 1, packetId: 3 }));
  await pub.expect(PacketType.PUBACK);
  await pub.expect(PacketType.PUBACK);
  const retained = b.broker.retainedMessages().filter((m) => m.topic.startsWith("r/"));
  assert.deepEqual(retained.map((m) => [m.topic, new TextDecoder().decode(m.payload)]), [
    ["r/t", "kept"],
  ]);
  await pub.disconnect();
});

test("35 v5 publish: the Topic Name sent is the published one, matching the subscription's filter [MQTT-3.3.2-1] [MQTT-3.3.2-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "a/+/c", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("a/b/c", "x"));
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.topic, "a/b/c");
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 publish: QoS 1 is answered by PUBACK and QoS 2 by PUBREC with the packet id [MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/t", "1", { qos: 1, packetId: 11 }));
  const ack = await pub.expect(PacketType.PUBACK);
  assert.equal(ack.packetId, 11);
  await pub.send(publishPacket("q/t", "2", { qos: 2, packetId: 12 }));
  const rec = await pub.expect(PacketType.PUBREC);
  assert.equal(rec.packetId, 12);
  assert.ok((rec.reasonCode ?? 0) < 0x80);
  await pub.send({ type: PacketType.PUBREL, packetId: 12 });
  assert.equal((await pub.expect(PacketType.PUBCOMP)).packetId, 12);
  await pub.disconnect();
});

test("35 v5 publish: after its PUBACK, a QoS 1 PUBLISH with the same packet id is a new message [MQTT-4.3.2-5]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  for (const payload of ["first", "second"]) {
    await pub.send(publishPacket("q/t", payload, { qos: 1, packetId: 3 }));
    await pub.expect(PacketType.PUBACK);
  }
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "first");
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "second");
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 publish: a QoS 2 PUBLISH repeated before PUBREL gets PUBREC and is not delivered again; after PUBCOMP it is new [MQTT-4.3.3-10] [MQTT-4.3.3-12]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/t", "once", { qos: 2, packetId: 4 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send(publishPacket("q/t", "once", { qos: 2, packetId: 4, dup: true }));
  assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 4);
  await pub.send({ type: PacketType.PUBREL, packetId: 4 });
  await pub.expect(PacketType.PUBCOMP);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "once");
  await sub.expectNothing(50);
  await pub.send(publishPacket("q/t", "new", { qos: 2, packetId: 4 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 4 });
  await pub.expect(PacketType.PUBCOMP);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "new");
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 deliver: QoS 1 deliveries carry unused packet ids, DUP 0, and stay in flight until PUBACK [MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.3.2-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  for (let i = 1; i <= 3; i++) {
    await pub.send(publishPacket("q/t", `m${i}`, { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
  const got: PublishPacket[] = [];
  for (let i = 0; i < 3; i++) got.push(await sub.expect(PacketType.PUBLISH));
  assert.equal(new Set(got.map((p) => p.packetId)).size, 3, "distinct packet ids");
  assert.ok(got.every((p) => p.qos === 1 && !p.dup));
  assert.equal(session(b, "s")?.inflight, 3);
  await sub.send(...got.map((p): Packet => ({ type: PacketType.PUBACK, packetId: p.packetId! })));
  await waitFor(() => session(b, "s")?.inflight === 0, 10_000, "the window to empty");
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 deliver: QoS 2 delivery: DUP 0, PUBREL for the PUBREC, held until PUBCOMP, never the PUBLISH again after PUBREL [MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.3.3-3] [MQTT-4.3.3-4] [MQTT-4.3.3-5] [MQTT-4.3.3-6]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { ...KEPT, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 2 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(
    publishPacket("q/t", "a", { qos: 2, packetId: 1 }),
    publishPacket("q/t", "b", { qos: 2, packetId: 2 }),
  );
  for (let i = 0; i < 2; i++) {
    await pub.expect(PacketType.PUBREC);
  }
  await pub.send({ type: PacketType.PUBREL, packetId: 1 }, {
    type: PacketType.PUBREL,
    packetId: 2,
  });
  await pub.expect(PacketType.PUBCOMP);
  await pub.expect(PacketType.PUBCOMP);
  const a = await sub.expect(PacketType.PUBLISH);
  const bb = await sub.expect(PacketType.PUBLISH);
  assert.notEqual(a.packetId, bb.packetId);
  assert.ok(a.qos === 2 && bb.qos === 2 && !a.dup && !bb.dup);
  await sub.send({ type: PacketType.PUBREC, packetId: a.packetId! });
  const rel = await sub.expect(PacketType.PUBREL);
  assert.equal(rel.packetId, a.packetId);
  assert.equal(session(b, "s")?.inflight, 2, "the PUBREL is still unacknowledged");
  await sub.close(); // PUBREL of a and PUBLISH of b both unacknowledged
  await waitFor(() => session(b, "s")?.connected === false, 10_000, "the subscriber offline");
  await using back = await TestClient.open(b.port, V5);
  await back.handshake({ ...KEPT, clientId: "s" });
  const resent: string[] = [];
  for (let i = 0; i < 2; i++) {
    const p = await back.receive();
    if (p.type === PacketType.PUBREL) {
      resent.push(`PUBREL ${p.packetId === a.packetId}`);
      await back.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
    } else if (p.type === PacketType.PUBLISH) {
      resent.push(`PUBLISH ${text(p)} dup ${p.dup}`);
      await back.send({ type: PacketType.PUBREC, packetId: p.packetId! });
      const r = await back.expect(PacketType.PUBREL);
      await back.send({ type: PacketType.PUBCOMP, packetId: r.packetId });
    } else assert.fail(`packet type ${p.type}`);
  }
  assert.deepEqual(resent, ["PUBREL true", "PUBLISH b dup true"]);
  await back.expectNothing(50);
  await waitFor(() => session(b, "s")?.inflight === 0, 10_000, "the window to empty");
  await back.disconnect();
  await pub.disconnect();
});

test("35 v5 deliver: a message goes to every client with a matching subscription, in the order published [MQTT-4.5.0-1] [MQTT-4.6.0-5] [MQTT-4.6.0-6] [MQTT-4.1.0-1]", async () => {
  await using b = await startBroker();
  await using s1 = await TestClient.connect(b.port, { ...V5, clientId: "s1" });
  await subscribe5(s1, [{ topic: "o/#", qos: 1 }]);
  await using s2 = await TestClient.connect(b.port, { ...V5, clientId: "s2" });
  await subscribe5(s2, [{ topic: "o/t", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(
    ...[1, 2, 3, 4, 5].map((i) => publishPacket("o/t", `m${i}`, { qos: 1, packetId: i })),
  );
  for (const s of [s1, s2]) {
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const p = await s.expect(PacketType.PUBLISH);
      got.push(text(p));
      await s.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    }
    assert.deepEqual(got, ["m1", "m2", "m3", "m4", "m5"]);
  }
  await s1.disconnect();
  await s2.disconnect();
  await pub.disconnect();
});

test("35 v5 deliver: overlapping subscriptions: the highest granted QoS is respected, each copy carries its own identifier [MQTT-3.3.4-2] [MQTT-3.3.4-5]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "x/#", qos: 0 }], { identifier: 1 });
  await subscribe5(sub, [{ topic: "x/t", qos: 2 }], { packetId: 2, identifier: 2 });
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("x/t", "m", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  await pub.expect(PacketType.PUBCOMP);
  const copies: PublishPacket[] = [];
  for (let p = await sub.poll(200); p !== undefined; p = await sub.poll(100)) {
    if (p.type === PacketType.PUBLISH) {
      copies.push(p);
      if (p.qos === 2) await sub.send({ type: PacketType.PUBREC, packetId: p.packetId! });
    } else if (p.type === PacketType.PUBREL) {
      await sub.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
    }
  }
  assert.ok(copies.length >= 1);
  assert.equal(Math.max(...copies.map((p) => p.qos)), 2, "the highest granted QoS");
  const ids = copies.flatMap((p) => p.properties?.subscriptionIdentifier ?? []);
  assert.deepEqual([...ids].sort(), [1, 2]);
  if (copies.length > 1) {
    for (const p of copies) assert.equal(p.properties?.subscriptionIdentifier?.length, 1);
  }
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 flow: with Receive Maximum reached, PINGRESP, SUBACK and UNSUBACK still go out [MQTT-3.3.4-10] [MQTT-4.9.0-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, {
    ...V5,
    clientId: "s",
    properties: { receiveMaximum: 1 },
  });
  await subscribe5(sub, [{ topic: "f/t", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(
    publishPacket("f/t", "1", { qos: 1, packetId: 1 }),
    publishPacket("f/t", "2", { qos: 1, packetId: 2 }),
  );
  await pub.expect(PacketType.PUBACK);
  await pub.expect(PacketType.PUBACK);
  const first = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(first), "1", "an initial send quota above 0");
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  await subscribe5(sub, [{ topic: "g/t", qos: 0 }], { packetId: 7 });
  await sub.send({ type: PacketType.UNSUBSCRIBE, packetId: 8, topics: ["g/t"] });
  await sub.expect(PacketType.UNSUBACK);
  await sub.send({ type: PacketType.PUBACK, packetId: first.packetId! });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "2");
  await sub.disconnect();
  await pub.disconnect();
});

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE and UNSUBSCRIBE

test("35 v5 subscribe: the same filter again replaces the subscription: one copy, at the new QoS [MQTT-3.8.4-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "r/t", qos: 2 }]);
  await subscribe5(sub, [{ topic: "r/t", qos: 0 }], { packetId: 2 });
  assert.equal(b.broker.subscriptions().filter((s) => s.clientId === "s").length, 1);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("r/t", "m", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 0);
  await sub.expectNothing(50);
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 subscribe: replacing a subscription with Retain Handling 0 sends the retained messages again [MQTT-3.8.4-4]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("r/t", "kept", { qos: 1, retain: true, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "r/t", qos: 0, retainHandling: 0 }]);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "kept");
  await subscribe5(sub, [{ topic: "r/t", qos: 0, retainHandling: 0 }], { packetId: 2 });
  const again = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(again), "kept");
  assert.equal(again.retain, true);
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 subscribe: several filters in one SUBSCRIBE get one SUBACK, a code per filter in order [MQTT-3.8.4-5] [MQTT-3.8.4-7] [MQTT-3.8.3-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  const codes = await subscribe5(sub, [
    { topic: "m/a", qos: 0 },
    { topic: "m/#/bad", qos: 1 },
    { topic: "m/ü", qos: 2 },
  ]);
  assert.equal(codes.length, 3);
  assert.deepEqual([codes[0], codes[2]], [0, 2]);
  assert.ok(codes[1]! >= 0x80, `code for an invalid filter: ${codes[1]}`);
  await sub.expectNothing(30);
  assert.deepEqual(
    b.broker.subscriptions().filter((s) => s.clientId === "s").map((s) => s.topic).sort(),
    ["m/a", "m/ü"],
  );
  await sub.disconnect();
});

test("35 v5 unsubscribe: several filters, compared exactly, one UNSUBACK; nothing more is delivered for them [MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-6] [MQTT-3.10.3-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "u/+", qos: 0 }, { topic: "v/#", qos: 0 }, {
    topic: "w/t",
    qos: 0,
  }]);
  await sub.send({ type: PacketType.UNSUBSCRIBE, packetId: 5, topics: ["u/+", "v/#", "u/x"] });
  const unsuback = await sub.expect(PacketType.UNSUBACK);
  assert.equal(unsuback.packetId, 5);
  assert.deepEqual(unsuback.reasonCodes, [0x00, 0x00, 0x11]);
  assert.deepEqual(
    b.broker.subscriptions().filter((s) => s.clientId === "s").map((s) => s.topic),
    ["w/t"],
  );
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("u/x", "1"), publishPacket("v/x", "2"), publishPacket("w/t", "3"));
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "3");
  await sub.expectNothing(50);
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 unsubscribe: a QoS 1 delivery already sent is completed after UNSUBSCRIBE [MQTT-3.10.4-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "u/t", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("u/t", "m", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  await sub.send({ type: PacketType.UNSUBSCRIBE, packetId: 2, topics: ["u/t"] });
  await sub.expect(PacketType.UNSUBACK);
  assert.equal(session(b, "s")?.inflight, 1);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await waitFor(() => session(b, "s")?.inflight === 0, 10_000, "the flow completed");
  await sub.disconnect();
  await pub.disconnect();
});

// ---------------------------------------------------------------------------------------------
// Topic rules

test("35 v5 topics: invalid wildcard filters get a failure code and the connection stays open [MQTT-4.7.1-1] [MQTT-4.7.1-2]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  const codes = await subscribe5(sub, [
    { topic: "a/#/b", qos: 0 },
    { topic: "a#", qos: 0 },
    { topic: "a/b+", qos: 0 },
    { topic: "+/a/#", qos: 0 },
  ]);
  assert.ok(codes.slice(0, 3).every((c) => c >= 0x80), JSON.stringify(codes));
  assert.equal(codes[3], 0);
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  await sub.disconnect();
});

test("35 v5 topics: filters starting with a wildcard do not match topics starting with $ [MQTT-4.7.2-1]", async () => {
  await using b = await startBroker();
  await using wild = await TestClient.connect(b.port, { ...V5, clientId: "w" });
  await subscribe5(wild, [{ topic: "#", qos: 0 }, { topic: "+/t", qos: 0 }]);
  await using dollar = await TestClient.connect(b.port, { ...V5, clientId: "d" });
  await subscribe5(dollar, [{ topic: "$x/#", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("$x/t", "dollar"), publishPacket("y/t", "plain"));
  const got = await dollar.poll(5_000);
  const plain: string[] = [];
  for (let p = await wild.poll(200); p !== undefined; p = await wild.poll(100)) {
    if (p.type === PacketType.PUBLISH) plain.push(p.topic);
  }
  assert.ok(!plain.some((t) => t.startsWith("$")), JSON.stringify(plain));
  assert.ok(plain.includes("y/t"));
  // A client may or may not be allowed to publish to $ topics; if it was, only "$x/#" got it.
  if (got !== undefined) assert.equal(got.type === PacketType.PUBLISH && got.topic, "$x/t");
  await wild.disconnect();
  await dollar.disconnect();
  await pub.disconnect();
});

test("35 v5 topics: matching does no normalisation: case, empty levels and a trailing / differ [MQTT-4.7.3-4]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "a/b", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(
    publishPacket("A/b", "1"),
    publishPacket("a//b", "2"),
    publishPacket("a/b/", "3"),
    publishPacket("/a/b", "4"),
    publishPacket("a/b", "5"),
  );
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "5");
  await sub.expectNothing(50);
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 topics: an empty Topic Name without a Topic Alias is a protocol error, and an empty filter fails [MQTT-4.7.3-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  const codes = await subscribe5(sub, [{ topic: "", qos: 0 }]);
  assert.ok(codes[0]! >= 0x80, `SUBACK ${codes[0]}`);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.sendBytes([0x30, 0x04, 0x00, 0x00, 0x00, 0x78]);
  const seen = await pub.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT);
  assert.ok(last?.type === PacketType.DISCONNECT && (last.reasonCode ?? 0) >= 0x80);
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  await sub.disconnect();
});

test("35 v5 auth: without an Authentication Method the broker sends no AUTH and none in CONNACK [MQTT-4.12.0-6]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "c" });
  assert.equal(connack.properties?.authenticationMethod, undefined);
  assert.equal(connack.properties?.authenticationData, undefined);
  await c.send({ type: PacketType.PINGREQ });
  await c.expect(PacketType.PINGRESP);
  await c.disconnect();
});

// ---------------------------------------------------------------------------------------------
// Reason strings and the client's Maximum Packet Size

const denyPublish: BrokerPlugin = {
  name: "deny",
  authorizePublish: () => false,
};

test("35 v5 problem information: PUBACK and PUBREC refusals drop the reason string that would not fit the client's Maximum Packet Size [MQTT-3.4.2-2] [MQTT-3.5.2-2]", async () => {
  await using b = await startBroker({}, { plugins: [denyPublish] });
  for (const maximumPacketSize of [undefined, 12]) {
    await using c = await TestClient.connect(b.port, {
      ...V5,
      clientId: `p${maximumPacketSize}`,
      properties: maximumPacketSize === undefined ? undefined : { maximumPacketSize },
    });
    const room = maximumPacketSize === undefined;
    await c.send(publishPacket("no", "x", { qos: 1, packetId: 1 }));
    const puback = await c.expect(PacketType.PUBACK);
    assert.equal(puback.reasonCode, 0x87);
    assert.equal(puback.properties?.reasonString !== undefined, room, "PUBACK reason string");
    await c.send(publishPacket("no", "x", { qos: 2, packetId: 2 }));
    const pubrec = await c.expect(PacketType.PUBREC);
    assert.equal(pubrec.reasonCode, 0x87);
    assert.equal(pubrec.properties?.reasonString !== undefined, room, "PUBREC reason string");
    await c.disconnect();
  }
});

test("35 v5 problem information: a server DISCONNECT drops the reason string that would not fit the client's Maximum Packet Size [MQTT-3.14.2-3]", async () => {
  await using b = await startBroker();
  await using old = await TestClient.connect(b.port, {
    ...V5,
    clientId: "to",
    properties: { maximumPacketSize: 8 },
  });
  await using fresh = await TestClient.connect(b.port, { ...V5, clientId: "to" });
  const seen = await old.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x8e);
  assert.equal(last?.type === PacketType.DISCONNECT && last.properties?.reasonString, undefined);
  await fresh.disconnect();
});

// ---------------------------------------------------------------------------------------------
// Malformed strings in PUBLISH, and the codes on PUBREL and PUBCOMP

/** A level-5 connection sends `bytes`; a DISCONNECT of 0x80 or more comes, then the close. */
async function expectDisconnect(b: TestBroker, bytes: number[]): Promise<number> {
  await using bystander = await TestClient.connect(b.port, { ...V5, clientId: "by" });
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "bad" });
  await c.sendBytes(bytes);
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT, "DISCONNECT before the close");
  const code = last?.type === PacketType.DISCONNECT ? last.reasonCode ?? 0 : 0;
  assert.ok(code >= 0x80, `reason code 0x${code.toString(16)}`);
  await bystander.send({ type: PacketType.PINGREQ });
  await bystander.expect(PacketType.PINGRESP);
  await bystander.disconnect();
  return code;
}

/** A QoS 0 PUBLISH to "a" with the given property bytes and payload "x". */
function publishWith(props: number[]): number[] {
  const body = [...str("a"), props.length, ...props, 0x78];
  return [0x30, body.length, ...body];
}

test("35 v5 publish: a Response Topic that is not UTF-8 is malformed [MQTT-3.3.2-13]", async () => {
  await using b = await startBroker();
  await expectDisconnect(b, publishWith([0x08, 0x00, 0x02, 0xc0, 0x80]));
});

test("35 v5 publish: a Response Topic with a wildcard is refused with DISCONNECT [MQTT-3.3.2-14]", async () => {
  await using b = await startBroker();
  await expectDisconnect(b, publishWith([0x08, ...str("r/+")]));
});

test("35 v5 publish: a Content Type that is not UTF-8 is malformed [MQTT-3.3.2-19]", async () => {
  await using b = await startBroker();
  await expectDisconnect(b, publishWith([0x03, 0x00, 0x03, 0xed, 0xa0, 0x80]));
});

test("35 v5 publish: a Topic Name with U+0000 is refused with DISCONNECT [MQTT-4.7.3-2]", async () => {
  await using b = await startBroker();
  const body = [0x00, 0x03, 0x61, 0x00, 0x62, 0x00, 0x78];
  await expectDisconnect(b, [0x30, body.length, ...body]);
});

test("35 v5 qos 2: the broker's PUBREL and PUBCOMP use their own reason codes [MQTT-3.6.2-1] [MQTT-3.7.2-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 2 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  // A PUBREL for an id the broker does not hold: PUBCOMP 0x00 or 0x92 (Packet Identifier not found).
  await pub.send({ type: PacketType.PUBREL, packetId: 77 });
  const unknown = await pub.expect(PacketType.PUBCOMP);
  assert.ok([0x00, 0x92].includes(unknown.reasonCode ?? 0), `PUBCOMP ${unknown.reasonCode}`);
  await pub.send(publishPacket("q/t", "m", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  assert.equal((await pub.expect(PacketType.PUBCOMP)).reasonCode ?? 0, 0);
  const got = await sub.expect(PacketType.PUBLISH);
  await sub.send({ type: PacketType.PUBREC, packetId: got.packetId! });
  const rel = await sub.expect(PacketType.PUBREL);
  assert.ok([0x00, 0x92].includes(rel.reasonCode ?? 0), `PUBREL ${rel.reasonCode}`);
  await sub.send({ type: PacketType.PUBCOMP, packetId: rel.packetId });
  await sub.disconnect();
  await pub.disconnect();
});

test("35 v5 qos 2: an inbound QoS 2 flow completes after its Message Expiry Interval has passed [MQTT-4.3.3-13]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send({
    ...publishPacket("q/t", "m", { qos: 2, packetId: 1 }),
    properties: { messageExpiryInterval: 1 },
  });
  await pub.expect(PacketType.PUBREC);
  await delay(1_200);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  const comp = await pub.expect(PacketType.PUBCOMP);
  assert.equal(comp.reasonCode ?? 0, 0);
  await pub.disconnect();
});

test("35 v5 qos 2: a QoS 2 PUBLISH already sent is re-sent on reconnect even after its Message Expiry Interval [MQTT-4.3.3-7]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { ...KEPT, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 2 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send({
    ...publishPacket("q/t", "m", { qos: 2, packetId: 1 }),
    properties: { messageExpiryInterval: 1 },
  });
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId: 1 });
  await pub.expect(PacketType.PUBCOMP);
  const first = await sub.expect(PacketType.PUBLISH);
  await sub.close(); // not acknowledged
  await delay(1_200);
  await using back = await TestClient.open(b.port, V5);
  await back.handshake({ ...KEPT, clientId: "s" });
  const again = await back.expect(PacketType.PUBLISH);
  assert.equal(again.packetId, first.packetId);
  assert.equal(again.dup, true);
  await back.send({ type: PacketType.PUBREC, packetId: again.packetId! });
  const rel = await back.expect(PacketType.PUBREL);
  await back.send({ type: PacketType.PUBCOMP, packetId: rel.packetId });
  await back.disconnect();
  await pub.disconnect();
});

test("35 v5 auth: a refused authentication gets a CONNACK of 0x80 or more, then the close [MQTT-4.12.0-4]", async () => {
  const refuse: BrokerPlugin = { name: "refuse", authenticate: () => false };
  await using b = await startBroker({}, { plugins: [refuse] });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "c", username: "u" });
  assert.ok(connack.reasonCode >= 0x80, `CONNACK 0x${connack.reasonCode.toString(16)}`);
  await c.expectClosed();
  assert.equal(b.broker.stats.clientsConnected, 0);
});

test("35 v5 problem information: a refusing CONNACK drops the reason string that would not fit the client's Maximum Packet Size [MQTT-3.2.2-19]", async () => {
  const refuse: BrokerPlugin = { name: "refuse", authenticate: () => false };
  await using b = await startBroker({}, { plugins: [refuse] });
  for (const maximumPacketSize of [undefined, 12]) {
    await using c = await TestClient.open(b.port, V5);
    const connack = await c.handshake({
      ...V5,
      clientId: `r${maximumPacketSize}`,
      properties: maximumPacketSize === undefined ? undefined : { maximumPacketSize },
    });
    assert.ok(connack.reasonCode >= 0x80, `refused: ${connack.reasonCode}`);
    const room = maximumPacketSize === undefined;
    assert.equal(connack.properties?.reasonString !== undefined, room, "CONNACK reason string");
    await c.expectClosed(10_000);
  }
});
