/**
 * Broker, area 05: QoS 1 and QoS 2 flows both ways, QoS downgrade, the in-flight window.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { PublishPacket, QoS } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

test("05 qos: QoS 1 PUBLISH from a client gets PUBACK with its id [MQTT-4.3.2-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "p" });
  await c.send(publishPacket("q/1", "x", { qos: 1, packetId: 0xbeef }));
  assert.equal((await c.expect(PacketType.PUBACK)).packetId, 0xbeef);
});

test("05 qos: QoS 2 from a client: PUBREC, PUBREL, PUBCOMP [MQTT-4.3.3-2]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/2": 0 });
  await using c = await TestClient.connect(b.port, { clientId: "p" });
  await c.send(publishPacket("q/2", "x", { qos: 2, packetId: 77 }));
  assert.equal((await c.expect(PacketType.PUBREC)).packetId, 77);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "x");
  await c.send({ type: PacketType.PUBREL, packetId: 77 });
  assert.equal((await c.expect(PacketType.PUBCOMP)).packetId, 77);
});

test("05 qos: a DUP resend of a QoS 2 PUBLISH before PUBREL is not routed twice [MQTT-4.3.3-2]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/once": 0 });
  await using c = await TestClient.connect(b.port, { clientId: "p" });
  await c.send(publishPacket("q/once", "a", { qos: 2, packetId: 5 }));
  await c.expect(PacketType.PUBREC);
  await c.send(publishPacket("q/once", "a", { qos: 2, packetId: 5, dup: true }));
  assert.equal((await c.expect(PacketType.PUBREC)).packetId, 5);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "a");
  await sub.expectNothing(200);
  await c.send({ type: PacketType.PUBREL, packetId: 5 });
  await c.expect(PacketType.PUBCOMP);
  // Once released, the id starts a new message.
  await c.send(publishPacket("q/once", "b", { qos: 2, packetId: 5 }));
  await c.expect(PacketType.PUBREC);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "b");
});

test("05 qos: PUBREL for an unknown id is still answered with PUBCOMP", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "p" });
  await c.send({ type: PacketType.PUBREL, packetId: 999 });
  assert.equal((await c.expect(PacketType.PUBCOMP)).packetId, 999);
});

test("05 qos: QoS 1 to a subscriber: PUBLISH with a non-zero id, PUBACK ends it [MQTT-2.3.1-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/s1": 1 });
  b.broker.publish("q/s1", "m", { qos: 1 });
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 1);
  assert.equal(got.dup, false);
  assert.ok(got.packetId !== undefined && got.packetId > 0);
  assert.equal(b.broker.clients()[0].inflight, 1);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId });
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  assert.equal(b.broker.clients()[0].inflight, 0);
});

test("05 qos: QoS 2 to a subscriber: PUBLISH, PUBREC -> PUBREL, PUBCOMP [MQTT-4.3.3-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/s2": 2 });
  b.broker.publish("q/s2", "m", { qos: 2 });
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 2);
  const id = got.packetId!;
  await sub.send({ type: PacketType.PUBREC, packetId: id });
  assert.equal((await sub.expect(PacketType.PUBREL)).packetId, id);
  // A repeated PUBREC (our PUBREL lost) is answered with PUBREL again.
  await sub.send({ type: PacketType.PUBREC, packetId: id });
  assert.equal((await sub.expect(PacketType.PUBREL)).packetId, id);
  await sub.send({ type: PacketType.PUBCOMP, packetId: id });
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  assert.equal(b.broker.clients()[0].inflight, 0);
});

test("05 qos: delivered QoS is min(published, granted) for every pair [MQTT-3.8.4-6]", async () => {
  await using b = await startBroker();
  const levels: QoS[] = [0, 1, 2];
  const subs: TestClient[] = [];
  try {
    for (const g of levels) {
      const s = await TestClient.connect(b.port, { clientId: `g${g}` });
      subs.push(s);
      await s.subscribe({ "q/min": g });
    }
    await using pub = await TestClient.connect(b.port, { clientId: "p" });
    for (const p of levels) {
      await pub.send(publishPacket("q/min", `p${p}`, { qos: p, packetId: 10 + p }));
      if (p === 1) await pub.expect(PacketType.PUBACK);
      if (p === 2) {
        await pub.expect(PacketType.PUBREC);
        await pub.send({ type: PacketType.PUBREL, packetId: 12 });
        await pub.expect(PacketType.PUBCOMP);
      }
      for (const g of levels) {
        const got = await subs[g].expect(PacketType.PUBLISH);
        assert.equal(text(got), `p${p}`);
        assert.equal(got.qos, Math.min(p, g), `published ${p}, granted ${g}`);
        if (got.qos === 1) await subs[g].send({ type: PacketType.PUBACK, packetId: got.packetId! });
        if (got.qos === 2) {
          await subs[g].send({ type: PacketType.PUBREC, packetId: got.packetId! });
          await subs[g].expect(PacketType.PUBREL);
          await subs[g].send({ type: PacketType.PUBCOMP, packetId: got.packetId! });
        }
      }
    }
  } finally {
    for (const s of subs) await s.close();
  }
});

test("05 qos: in-flight ids are unique among unacknowledged messages [MQTT-2.3.1-2]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/ids": 2 });
  for (let i = 0; i < 10; i++) b.broker.publish("q/ids", String(i), { qos: (1 + (i % 2)) as QoS });
  const ids = new Set<number>();
  for (let i = 0; i < 10; i++) {
    const got = await sub.expect(PacketType.PUBLISH);
    assert.equal(text(got), String(i), "messages arrive in order");
    assert.ok(got.packetId! > 0);
    ids.add(got.packetId!);
  }
  assert.equal(ids.size, 10);
});

test("05 qos: max_inflight bounds unacknowledged deliveries; the rest queue in order", async () => {
  await using b = await startBroker({ max_inflight: 2 });
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/win": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  for (let i = 1; i <= 5; i++) {
    await pub.send(publishPacket("q/win", `m${i}`, { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
  const first = await sub.expect(PacketType.PUBLISH);
  const second = await sub.expect(PacketType.PUBLISH);
  assert.deepEqual([text(first), text(second)], ["m1", "m2"]);
  await sub.expectNothing(200);
  const summary = b.broker.clients().find((c) => c.clientId === "s")!;
  assert.equal(summary.inflight, 2);
  assert.equal(summary.queued, 3);
  await sub.send({ type: PacketType.PUBACK, packetId: first.packetId! });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "m3");
  await sub.expectNothing(150);
  await sub.send({ type: PacketType.PUBACK, packetId: second.packetId! });
  const fourth = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(fourth), "m4");
});

test("05 qos: the default in-flight window is 20", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/20": 1 });
  for (let i = 0; i < 25; i++) b.broker.publish("q/20", String(i), { qos: 1 });
  const got: PublishPacket[] = [];
  for (let i = 0; i < 20; i++) got.push(await sub.expect(PacketType.PUBLISH));
  await sub.expectNothing(200);
  await sub.send({ type: PacketType.PUBACK, packetId: got[0].packetId! });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "20");
});

test("05 qos: a QoS 2 window slot is freed only by PUBCOMP, not PUBREC", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  await using sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "q/w2": 2 });
  b.broker.publish("q/w2", "a", { qos: 2 });
  b.broker.publish("q/w2", "b", { qos: 2 });
  const a = await sub.expect(PacketType.PUBLISH);
  await sub.send({ type: PacketType.PUBREC, packetId: a.packetId! });
  await sub.expect(PacketType.PUBREL);
  await sub.expectNothing(150);
  await sub.send({ type: PacketType.PUBCOMP, packetId: a.packetId! });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "b");
});

test("05 qos: acks for unknown ids are ignored without closing", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "s" });
  await c.send(
    { type: PacketType.PUBACK, packetId: 41 },
    { type: PacketType.PUBREC, packetId: 42 },
    { type: PacketType.PUBCOMP, packetId: 43 },
  );
  await c.send({ type: PacketType.PINGREQ });
  await c.expect(PacketType.PINGRESP);
});

test("05 qos: reconnect resends unacked PUBLISH with DUP and the same ids, and PUBREL, in order [MQTT-4.4.0-1]", async () => {
  await using b = await startBroker();
  const first = await TestClient.connect(b.port, { clientId: "durable", clean: false });
  await first.subscribe({ "q/r/#": 2 });
  b.broker.publish("q/r/a", "a", { qos: 1 });
  b.broker.publish("q/r/b", "b", { qos: 2 });
  b.broker.publish("q/r/c", "c", { qos: 2 });
  b.broker.publish("q/r/d", "d", { qos: 1 });
  const a = await first.expect(PacketType.PUBLISH);
  const bb = await first.expect(PacketType.PUBLISH);
  const c = await first.expect(PacketType.PUBLISH);
  const d = await first.expect(PacketType.PUBLISH);
  // "b" moves on to PUBREL; "c" and "a" stay unacknowledged; "d" is acknowledged.
  await first.send({ type: PacketType.PUBREC, packetId: bb.packetId! });
  assert.equal((await first.expect(PacketType.PUBREL)).packetId, bb.packetId);
  await first.send({ type: PacketType.PUBACK, packetId: d.packetId! });
  await first.send({ type: PacketType.PINGREQ });
  await first.expect(PacketType.PINGRESP);
  await first.close();

  await using again = await TestClient.open(b.port);
  const connack = await again.handshake({ clientId: "durable", clean: false });
  assert.equal(connack.sessionPresent, true);
  const resent = [
    await again.receive(),
    await again.receive(),
    await again.receive(),
  ];
  assert.deepEqual(
    resent.map((p) =>
      p.type === PacketType.PUBLISH
        ? ["PUBLISH", p.packetId, p.dup, text(p), p.qos]
        : [p.type === PacketType.PUBREL ? "PUBREL" : p.type, "packetId" in p ? p.packetId : 0]
    ),
    [
      ["PUBLISH", a.packetId, true, "a", 1],
      ["PUBREL", bb.packetId],
      ["PUBLISH", c.packetId, true, "c", 2],
    ],
  );
  await again.expectNothing(150);
  // The flows complete on the new connection.
  await again.send({ type: PacketType.PUBACK, packetId: a.packetId! });
  await again.send({ type: PacketType.PUBCOMP, packetId: bb.packetId! });
  await again.send({ type: PacketType.PUBREC, packetId: c.packetId! });
  assert.equal((await again.expect(PacketType.PUBREL)).packetId, c.packetId);
  await again.send({ type: PacketType.PUBCOMP, packetId: c.packetId! });
  await again.send({ type: PacketType.PINGREQ });
  await again.expect(PacketType.PINGRESP);
  assert.equal(b.broker.clients().find((x) => x.clientId === "durable")?.inflight, 0);
});

test("05 qos: reconnect resends, then sends what queued behind the window", async () => {
  await using b = await startBroker({ max_inflight: 1 });
  const first = await TestClient.connect(b.port, { clientId: "durable", clean: false });
  await first.subscribe({ "q/rq": 1 });
  b.broker.publish("q/rq", "1", { qos: 1 });
  b.broker.publish("q/rq", "2", { qos: 1 });
  const one = await first.expect(PacketType.PUBLISH);
  await first.close();
  await using again = await TestClient.connect(b.port, { clientId: "durable", clean: false });
  const resent = await again.expect(PacketType.PUBLISH);
  assert.equal(resent.packetId, one.packetId);
  assert.equal(resent.dup, true);
  await again.expectNothing(100);
  await again.send({ type: PacketType.PUBACK, packetId: resent.packetId! });
  const two = await again.expect(PacketType.PUBLISH);
  assert.equal(text(two), "2");
  assert.equal(two.dup, false);
});
