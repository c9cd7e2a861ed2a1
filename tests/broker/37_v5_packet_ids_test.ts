/**
 * Broker, area 37: QoS 2 packet identifiers the broker does not hold, and retained messages under
 * `retain_available: false`, checked byte by byte over TCP at level 5 (and at 3.1.1 where the
 * behaviour differs).
 *
 * - A PUBREL for an id the broker does not hold is answered with PUBCOMP 0x92 Packet Identifier
 *   not found (MQTT 5.0 §3.7.2.1), a PUBREC below 0x80 for an id not in flight with PUBREL 0x92
 *   (§3.6.2.1); a PUBREC of 0x80 or more ends the delivery without PUBREL (§4.3.3). At 3.1.1 the
 *   PUBCOMP has no reason code and a stray PUBREC is ignored, as before.
 * - A broker that announces Retain Available 0 (§3.2.2.3.5) serves no retained message to a new
 *   subscription, whatever it holds (a persistence store's, the host program's).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };
const KEPT = { ...V5, clean: false, properties: { sessionExpiryInterval: 3600 } };

/** A PUBREL (fixed header 0x62) with a two-byte packet id and no reason code: 0x00 at 5.0. */
const pubrelBytes = (id: number) => [0x62, 0x02, id >> 8, id & 0xff];
/** A PUBREC (0x50) with a packet id and, at 5.0, a reason code. */
const pubrecBytes = (id: number, code?: number) =>
  code === undefined ? [0x50, 0x02, id >> 8, id & 0xff] : [0x50, 0x03, id >> 8, id & 0xff, code];

/** Still connected: a PINGREQ gets its PINGRESP. */
async function stillOpen(c: TestClient): Promise<void> {
  await c.sendBytes([0xc0, 0x00]);
  await c.expect(PacketType.PINGRESP);
}

// ---------------------------------------------------------------------------------------------
// 0x92 Packet Identifier not found

test("37 v5 packet ids: a PUBREL for a packet id the broker does not hold gets PUBCOMP 0x92 Packet Identifier not found [MQTT-3.7.2-1] [MQTT-4.3.3-11]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  // Never published: PUBCOMP 77 with reason code 0x92 and no properties.
  await pub.sendBytes(pubrelBytes(77));
  assert.deepEqual(await pub.expect(PacketType.PUBCOMP), {
    type: PacketType.PUBCOMP,
    packetId: 77,
    reasonCode: 0x92,
  });
  // A held id is released with success; the same PUBREL again (our PUBCOMP lost, the client
  // retries) finds nothing to release: 0x92, "not an error during recovery".
  await pub.send(publishPacket("q/t", "m", { qos: 2, packetId: 5 }));
  assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 5);
  await pub.sendBytes(pubrelBytes(5));
  const done = await pub.expect(PacketType.PUBCOMP);
  assert.equal(done.packetId, 5);
  assert.equal(done.reasonCode ?? 0, 0);
  await pub.sendBytes(pubrelBytes(5));
  const again = await pub.expect(PacketType.PUBCOMP);
  assert.equal(again.packetId, 5);
  assert.equal(again.reasonCode, 0x92);
  await stillOpen(pub);
  await pub.disconnect();
});

test("37 v5 packet ids: an inbound QoS 2 id kept by a persistent session across a reconnection is released with PUBCOMP 0x00, then 0x92 [MQTT-3.7.2-1] [MQTT-4.3.3-11]", async () => {
  await using b = await startBroker();
  const first = await TestClient.connect(b.port, { ...KEPT, clientId: "p" });
  await first.send(publishPacket("q/t", "m", { qos: 2, packetId: 9 }));
  await first.expect(PacketType.PUBREC);
  await first.close();
  await waitFor(() => b.broker.clients().every((c) => !c.connected), undefined, "offline");
  await using again = await TestClient.open(b.port, V5);
  assert.equal((await again.handshake({ ...KEPT, clientId: "p" })).sessionPresent, true);
  await again.sendBytes(pubrelBytes(9));
  const released = await again.expect(PacketType.PUBCOMP);
  assert.equal(released.packetId, 9);
  assert.equal(released.reasonCode ?? 0, 0, "the session still held id 9");
  await again.sendBytes(pubrelBytes(9));
  assert.equal((await again.expect(PacketType.PUBCOMP)).reasonCode, 0x92);
  await again.disconnect();
});

test("37 v5 packet ids: a PUBREC for a packet id not in flight gets PUBREL 0x92 Packet Identifier not found [MQTT-3.6.2-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 2 }]);
  // Nothing was ever sent to it: PUBREL 42, reason code 0x92, no properties.
  await sub.sendBytes(pubrecBytes(42));
  assert.deepEqual(await sub.expect(PacketType.PUBREL), {
    type: PacketType.PUBREL,
    packetId: 42,
    reasonCode: 0x92,
  });
  // The client answers that PUBREL with PUBCOMP; the broker takes it as a stray ack.
  await sub.send({ type: PacketType.PUBCOMP, packetId: 42, reasonCode: 0x92 });
  // A complete delivery, then its PUBREC repeated: the id is no longer in flight.
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/t", "m", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.sendBytes(pubrelBytes(1));
  await pub.expect(PacketType.PUBCOMP);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 2);
  await sub.sendBytes(pubrecBytes(got.packetId!));
  const rel = await sub.expect(PacketType.PUBREL);
  assert.equal(rel.packetId, got.packetId);
  assert.equal(rel.reasonCode ?? 0, 0, "in flight: a plain PUBREL");
  await sub.send({ type: PacketType.PUBCOMP, packetId: got.packetId! });
  await sub.sendBytes(pubrecBytes(got.packetId!));
  const late = await sub.expect(PacketType.PUBREL);
  assert.equal(late.packetId, got.packetId);
  assert.equal(late.reasonCode, 0x92);
  await sub.send({ type: PacketType.PUBCOMP, packetId: got.packetId!, reasonCode: 0x92 });
  await stillOpen(sub);
  await sub.disconnect();
  await pub.disconnect();
});

test("37 v5 packet ids: a PUBREC of 0x80 or more gets no PUBREL, known id or not, and ends the delivery: no resend [MQTT-4.3.3-4] [MQTT-4.4.0-2]", async () => {
  await using b = await startBroker();
  const sub = await TestClient.connect(b.port, { ...KEPT, clientId: "s" });
  await subscribe5(sub, [{ topic: "q/t", qos: 2 }]);
  // Not in flight and failed: nothing to answer.
  await sub.sendBytes(pubrecBytes(43, 0x80));
  await sub.expectNothing(200);
  await stillOpen(sub);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/t", "refused", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.sendBytes(pubrelBytes(1));
  await pub.expect(PacketType.PUBCOMP);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 2);
  await sub.sendBytes(pubrecBytes(got.packetId!, 0x83));
  await sub.expectNothing(200);
  await stillOpen(sub);
  // The delivery is over: a reconnection resends neither the PUBLISH nor a PUBREL.
  await sub.close();
  await waitFor(() => b.broker.clients().every((c) => c.clientId !== "s" || !c.connected));
  await using back = await TestClient.open(b.port, V5);
  assert.equal((await back.handshake({ ...KEPT, clientId: "s" })).sessionPresent, true);
  await back.expectNothing(300);
  await stillOpen(back);
  await back.disconnect();
  await pub.disconnect();
});

test("37 packet ids at 3.1.1: a PUBREL for an unknown id gets a plain PUBCOMP, a stray PUBREC nothing [MQTT-4.3.3-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  await c.sendBytes(pubrelBytes(77));
  assert.deepEqual(await c.expect(PacketType.PUBCOMP), { type: PacketType.PUBCOMP, packetId: 77 });
  await c.sendBytes(pubrecBytes(42));
  await c.expectNothing(200);
  await stillOpen(c);
  await c.disconnect();
});

// ---------------------------------------------------------------------------------------------
// retain_available: false

test("37 v5 packet ids: with Retain Available 0 a SUBSCRIBE gets none of the retained messages the host program stored, at 5.0 and 3.1.1", async () => {
  await using b = await startBroker({ retain_available: false });
  b.broker.publish("r/host", "kept by the host program", { qos: 1, retain: true });
  assert.deepEqual(userRetained(b.broker).map((m) => m.topic), ["r/host"], "held, not served");
  await using sub = await TestClient.open(b.port, V5);
  const connack = await sub.handshake({ ...V5, clientId: "s" });
  assert.equal(connack.properties?.retainAvailable, 0);
  assert.deepEqual(await subscribe5(sub, [{ topic: "r/#", qos: 1 }]), [1]);
  await sub.expectNothing(300);
  await stillOpen(sub);
  await using old = await TestClient.connect(b.port, { clientId: "o" });
  assert.deepEqual((await old.subscribe({ "r/#": 1 })).reasonCodes, [1]);
  await old.expectNothing(300);
  await stillOpen(old);
  // Live messages still flow.
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("r/live", "now", { qos: 0 }));
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "now");
  assert.equal(text(await old.expect(PacketType.PUBLISH)), "now");
  await pub.disconnect();
  await old.disconnect();
  await sub.disconnect();
});

test("37 v5 packet ids: with Retain Available 0 the retained messages of a persistence store are kept but not served; retain_available true serves them again", async () => {
  await using dir = await tempDir("amqtt-v5ids-");
  const persistence = { persistence: { path: `${dir.path}/state.db` } };
  {
    await using b = await startBroker(persistence);
    await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
    await pub.send(publishPacket("r/1", "stored", { qos: 1, retain: true, packetId: 1 }));
    await pub.expect(PacketType.PUBACK);
    await pub.disconnect();
  }
  {
    await using b = await startBroker({ ...persistence, retain_available: false });
    assert.deepEqual(userRetained(b.broker).map((m) => m.topic), ["r/1"]);
    await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
    assert.deepEqual(await subscribe5(sub, [{ topic: "r/#", qos: 1, retainHandling: 0 }]), [1]);
    await sub.expectNothing(300);
    await stillOpen(sub);
    await sub.disconnect();
  }
  await using b = await startBroker(persistence);
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "r/#", qos: 1 }]);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "stored");
  assert.equal(got.retain, true);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await sub.disconnect();
});
