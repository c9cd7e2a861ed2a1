/**
 * Broker: one message fanned out to 3.1.1 and 5.0 subscribers at once, over TCP. The deliveries
 * that share one encoding (3.1.1 subscribers; 5.0 ones with nothing of their own) and those
 * delivered one by one (Subscription Identifiers, Retain As Published) each get the right PUBLISH:
 * properties forwarded to 5.0 only, identifiers only where subscribed with one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { Properties } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publish5, publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

const FORWARDED: Properties = {
  contentType: "text/plain",
  responseTopic: "reply/here",
  userProperties: [["k", "v"], ["k", "w"]],
};

test("mixed fan-out: 3.1.1 and 5.0 subscribers of one QoS 0 message each get their own protocol's PUBLISH [MQTT-3.3.2-17] [MQTT-3.3.4-3] [MQTT-3.3.1-12] [MQTT-3.3.1-13]", async () => {
  await using b = await startBroker();
  await using old = await TestClient.connect(b.port, { clientId: "old" });
  await old.subscribe({ "mix/#": 0 });
  await using plain = await TestClient.connect(b.port, { ...V5, clientId: "plain" });
  await subscribe5(plain, [{ topic: "mix/#", qos: 0 }]);
  await using plain2 = await TestClient.connect(b.port, { ...V5, clientId: "plain2" });
  await subscribe5(plain2, [{ topic: "mix/+", qos: 0 }]);
  await using ids = await TestClient.connect(b.port, { ...V5, clientId: "ids" });
  await subscribe5(ids, [{ topic: "mix/#", qos: 0 }], { identifier: 3 });
  await using rap = await TestClient.connect(b.port, { ...V5, clientId: "rap" });
  await subscribe5(rap, [{ topic: "mix/#", qos: 0, retainAsPublished: true, retainHandling: 2 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "pub" });

  await pub.send(
    publish5("mix/a", "first", FORWARDED, { retain: true }),
    publish5("mix/b", "second", {}),
  );

  const [o1, o2] = [await old.expect(PacketType.PUBLISH), await old.expect(PacketType.PUBLISH)];
  assert.deepEqual([o1.topic, text(o1), o1.retain, o1.qos], ["mix/a", "first", false, 0]);
  assert.equal(o1.properties, undefined, "no properties for 3.1.1");
  assert.deepEqual([o2.topic, text(o2), o2.retain], ["mix/b", "second", false]);

  for (const c of [plain, plain2]) {
    const p1 = await c.expect(PacketType.PUBLISH);
    assert.deepEqual([p1.topic, text(p1), p1.retain, p1.qos], ["mix/a", "first", false, 0]);
    assert.deepEqual(p1.properties, FORWARDED);
    const p2 = await c.expect(PacketType.PUBLISH);
    assert.deepEqual([p2.topic, text(p2)], ["mix/b", "second"]);
    assert.equal(p2.properties, undefined);
  }

  const i1 = await ids.expect(PacketType.PUBLISH);
  assert.deepEqual([i1.topic, text(i1), i1.retain], ["mix/a", "first", false]);
  assert.deepEqual(i1.properties, { ...FORWARDED, subscriptionIdentifier: [3] });
  const i2 = await ids.expect(PacketType.PUBLISH);
  assert.deepEqual(i2.properties, { subscriptionIdentifier: [3] });

  const r1 = await rap.expect(PacketType.PUBLISH);
  assert.deepEqual([r1.topic, r1.retain], ["mix/a", true], "Retain As Published");
  assert.deepEqual(r1.properties, FORWARDED);
  const r2 = await rap.expect(PacketType.PUBLISH);
  assert.deepEqual([r2.topic, r2.retain], ["mix/b", false]);
});

test("mixed fan-out: a 3.1.1 publisher's QoS 1 message reaches 3.1.1 and 5.0 subscribers at their granted QoS [MQTT-3.8.4-8]", async () => {
  await using b = await startBroker();
  await using old = await TestClient.connect(b.port, { clientId: "old" });
  await old.subscribe({ "q/#": 1 });
  await using new1 = await TestClient.connect(b.port, { ...V5, clientId: "new1" });
  await subscribe5(new1, [{ topic: "q/#", qos: 1 }]);
  await using new0 = await TestClient.connect(b.port, { ...V5, clientId: "new0" });
  await subscribe5(new0, [{ topic: "q/#", qos: 0 }]);
  await using ids = await TestClient.connect(b.port, { ...V5, clientId: "ids" });
  await subscribe5(ids, [{ topic: "q/#", qos: 1 }], { identifier: 11 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("q/1", "one", { qos: 1, packetId: 5 }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 5);

  const o = await old.expect(PacketType.PUBLISH);
  assert.deepEqual([o.topic, text(o), o.qos], ["q/1", "one", 1]);
  const n1 = await new1.expect(PacketType.PUBLISH);
  assert.deepEqual([n1.topic, text(n1), n1.qos, n1.properties], ["q/1", "one", 1, undefined]);
  const n0 = await new0.expect(PacketType.PUBLISH);
  assert.deepEqual([n0.topic, n0.qos, n0.packetId, n0.properties], [
    "q/1",
    0,
    undefined,
    undefined,
  ]);
  const i = await ids.expect(PacketType.PUBLISH);
  assert.deepEqual([i.qos, i.properties], [1, { subscriptionIdentifier: [11] }]);
  await old.send({ type: PacketType.PUBACK, packetId: o.packetId! });
  await new1.send({ type: PacketType.PUBACK, packetId: n1.packetId! });
  await ids.send({ type: PacketType.PUBACK, packetId: i.packetId! });
});
