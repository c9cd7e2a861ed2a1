/**
 * Broker, area 31: MQTT 5.0 PUBLISH in and out (properties, aliases, expiry, flow control) and
 * the reason codes of the acknowledgements, byte by byte over TCP.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { Properties } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publish5, publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("31 v5 publish: response topic, correlation data, content type, format and user properties are forwarded unaltered [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "req/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  const properties: Properties = {
    payloadFormatIndicator: 1,
    contentType: "text/plain",
    responseTopic: "resp/p",
    correlationData: new Uint8Array([1, 2, 3]),
    userProperties: [["b", "2"], ["a", "1"], ["b", "3"]],
  };
  await pub.send(publish5("req/x", "hello", properties, { qos: 1 }));
  const ack = await pub.expect(PacketType.PUBACK);
  assert.equal(ack.reasonCode ?? 0, 0);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "hello");
  assert.equal(got.properties?.payloadFormatIndicator, 1);
  assert.equal(got.properties?.contentType, "text/plain");
  assert.equal(got.properties?.responseTopic, "resp/p");
  assert.deepEqual([...got.properties!.correlationData!], [1, 2, 3]);
  assert.deepEqual(got.properties?.userProperties, [["b", "2"], ["a", "1"], ["b", "3"]]);
});

test("31 v5 publish: a 3.1.1 subscriber gets a 5.0 publisher's message and the reverse", async () => {
  await using b = await startBroker();
  await using old = await TestClient.connect(b.port, { clientId: "old" });
  await old.subscribe({ "mix/5": 0 });
  await using sub5 = await TestClient.connect(b.port, { ...V5, clientId: "new" });
  await subscribe5(sub5, [{ topic: "mix/4", qos: 0 }]);
  await using pub5 = await TestClient.connect(b.port, { ...V5, clientId: "p5" });
  await pub5.send(publish5("mix/5", "from5", { userProperties: [["k", "v"]] }));
  assert.equal(text(await old.expect(PacketType.PUBLISH)), "from5");
  await old.send(publishPacket("mix/4", "from4"));
  const got = await sub5.expect(PacketType.PUBLISH);
  assert.equal(text(got), "from4");
  assert.equal(got.properties, undefined);
});

test("31 v5 publish: the forwarded Message Expiry Interval is what is left of it [MQTT-3.3.2-6]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publish5("exp/r", "kept", { messageExpiryInterval: 60 }, { retain: true }));
  await waitFor(() => b.broker.retainedMessages().some((m) => m.topic === "exp/r"));
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "exp/#", qos: 0 }]);
  const got = await sub.expect(PacketType.PUBLISH);
  const left = got.properties?.messageExpiryInterval;
  assert.ok(left !== undefined && left <= 60 && left >= 1, `interval left ${left}`);
});

test("31 v5 publish: a message that expired while queued is not delivered [MQTT-3.3.2-5]", async () => {
  await using b = await startBroker();
  const keep = { sessionExpiryInterval: 60 };
  {
    await using s = await TestClient.connect(b.port, {
      ...V5,
      clientId: "q",
      clean: false,
      properties: keep,
    });
    await subscribe5(s, [{ topic: "exp/q", qos: 1 }]);
  }
  await waitFor(() => b.broker.clients().find((x) => x.clientId === "q")?.connected === false);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publish5("exp/q", "short", { messageExpiryInterval: 1 }, { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await pub.send(
    publish5("exp/q", "long", { messageExpiryInterval: 600 }, { qos: 1, packetId: 2 }),
  );
  await pub.expect(PacketType.PUBACK);
  // The first message's second passes (a lower bound only: nothing here is timed).
  await new Promise((r) => setTimeout(r, 1100));
  await using again = await TestClient.connect(b.port, {
    ...V5,
    clientId: "q",
    clean: false,
    properties: keep,
  });
  const got = await again.expect(PacketType.PUBLISH);
  assert.equal(text(got), "long", "the expired message is skipped");
  await again.expectNothing(200);
  assert.equal(again.socketEnded, false);
});

test("31 v5 publish: inbound topic aliases resolve on this connection only [MQTT-3.3.2-12] [MQTT-3.3.2-7]", async () => {
  await using b = await startBroker({ topic_alias_maximum: 2 });
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "alias/#", qos: 0 }]);
  const pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  try {
    await pub.send(publish5("alias/one", "1", { topicAlias: 2 }));
    await pub.send(publish5("", "2", { topicAlias: 2 }));
    const first = await sub.expect(PacketType.PUBLISH);
    const second = await sub.expect(PacketType.PUBLISH);
    assert.equal(first.topic, "alias/one");
    assert.equal(second.topic, "alias/one");
    assert.equal(
      second.properties?.topicAlias,
      undefined,
      "the publisher's alias is not forwarded",
    );
  } finally {
    await pub.close();
  }
  // The same client's next connection starts with no mapping: the alias is unknown there.
  await using other = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await other.send(publish5("", "3", { topicAlias: 2 }));
  const seen = await other.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x82);
});

test("31 v5 publish: a topic alias above the maximum gets DISCONNECT 0x94 [MQTT-3.3.2-12] [MQTT-4.13.1-1]", async () => {
  await using b = await startBroker({ topic_alias_maximum: 2 });
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publish5("a", "x", { topicAlias: 3 }));
  const seen = await pub.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x94);
});

test("31 v5 publish: more unacknowledged QoS 2 PUBLISH than our Receive Maximum gets DISCONNECT 0x93", async () => {
  await using b = await startBroker({ receive_maximum: 1 });
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("rm", "1", { qos: 2, packetId: 1 }));
  await pub.expect(PacketType.PUBREC);
  await pub.send(publishPacket("rm", "2", { qos: 2, packetId: 2 }));
  const seen = await pub.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x93);
});

test("31 v5 publish: the client's Receive Maximum bounds the QoS 1 PUBLISH in flight [MQTT-3.3.4-9] [MQTT-4.9.0-2] [MQTT-4.9.0-3]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, {
    ...V5,
    clientId: "s",
    properties: { receiveMaximum: 1 },
  });
  await subscribe5(sub, [{ topic: "flow", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  for (let i = 1; i <= 3; i++) {
    await pub.send(publishPacket("flow", `m${i}`, { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
  const first = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(first), "m1");
  // Other packets are still answered while the quota is spent.
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  await sub.send({ type: PacketType.PUBACK, packetId: first.packetId! });
  const second = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(second), "m2");
});

test("31 v5 publish: a PUBLISH over the client's Maximum Packet Size is dropped and counted, later ones still arrive [MQTT-3.1.2-24] [MQTT-3.1.2-25]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, {
    ...V5,
    clientId: "s",
    properties: { maximumPacketSize: 64 },
  });
  await subscribe5(sub, [{ topic: "big", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("big", "x".repeat(200), { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await pub.send(publishPacket("big", "small", { qos: 1, packetId: 2 }));
  await pub.expect(PacketType.PUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "small");
  assert.equal(b.broker.stats.droppedBy.tooLarge, 1);
});

test("31 v5 publish: a refused PUBLISH gets PUBACK/PUBREC 0x87 with a reason string [MQTT-3.4.2-1] [MQTT-3.5.2-1]", async () => {
  const acl: BrokerPlugin = { name: "acl", authorizePublish: () => false };
  await using b = await startBroker({}, { plugins: [acl] });
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("no", "x", { qos: 1, packetId: 1 }));
  const puback = await pub.expect(PacketType.PUBACK);
  assert.equal(puback.reasonCode, 0x87);
  assert.match(puback.properties?.reasonString ?? "", /not authorized/);
  await pub.send(publishPacket("no", "x", { qos: 2, packetId: 2 }));
  const pubrec = await pub.expect(PacketType.PUBREC);
  assert.equal(pubrec.reasonCode, 0x87);
});

test("31 v5 publish: after a PUBREC of 0x80 or more the packet id is new again [MQTT-4.3.3-9]", async () => {
  let allow = false;
  const acl: BrokerPlugin = { name: "acl", authorizePublish: () => allow };
  await using b = await startBroker({}, { plugins: [acl] });
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "q2", qos: 2 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q2", "refused", { qos: 2, packetId: 5 }));
  assert.equal((await pub.expect(PacketType.PUBREC)).reasonCode, 0x87);
  allow = true;
  await pub.send(publishPacket("q2", "accepted", { qos: 2, packetId: 5 }));
  assert.equal((await pub.expect(PacketType.PUBREC)).reasonCode ?? 0, 0);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "accepted", "delivered, not taken for a duplicate");
});

test("31 v5 publish: Request Problem Information 0 keeps the reason string off a PUBACK [MQTT-3.1.2-29]", async () => {
  const acl: BrokerPlugin = { name: "acl", authorizePublish: () => false };
  await using b = await startBroker({}, { plugins: [acl] });
  await using pub = await TestClient.connect(b.port, {
    ...V5,
    clientId: "p",
    properties: { requestProblemInformation: 0 },
  });
  await pub.send(publishPacket("no", "x", { qos: 1, packetId: 1 }));
  const puback = await pub.expect(PacketType.PUBACK);
  assert.equal(puback.reasonCode, 0x87);
  assert.equal(puback.properties?.reasonString, undefined);
});

test("31 v5 subscribe: SUBACK carries 5.0 reason codes, UNSUBACK 0x00 or 0x11 per filter [MQTT-3.8.4-6] [MQTT-3.9.3-1] [MQTT-3.9.3-2] [MQTT-3.11.3-1] [MQTT-3.11.3-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
  const codes = await subscribe5(c, [
    { topic: "ok/1", qos: 1 },
    { topic: "bad/#/x", qos: 0 },
    { topic: "ok/2", qos: 2 },
  ]);
  assert.deepEqual(codes, [1, 0x8f, 2]);
  await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 2, topics: ["ok/1", "never"] });
  const unsuback = await c.expect(PacketType.UNSUBACK);
  assert.equal(unsuback.packetId, 2);
  assert.deepEqual(unsuback.reasonCodes, [0x00, 0x11]);
});

test("31 v5 subscribe: No Local keeps a client's own messages from it [MQTT-3.8.3-3]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
  await subscribe5(c, [{ topic: "nl", qos: 0, noLocal: true }]);
  await using other = await TestClient.connect(b.port, { ...V5, clientId: "o" });
  await c.send(publishPacket("nl", "mine"));
  await other.send(publishPacket("nl", "theirs"));
  const got = await c.expect(PacketType.PUBLISH);
  assert.equal(text(got), "theirs");
  await c.expectNothing(200);
  assert.equal(c.socketEnded, false);
});

test("31 v5 subscribe: Retain As Published keeps RETAIN, without it RETAIN is 0 [MQTT-3.3.1-12] [MQTT-3.3.1-13]", async () => {
  await using b = await startBroker();
  await using keep = await TestClient.connect(b.port, { ...V5, clientId: "k" });
  await subscribe5(keep, [{ topic: "rap", qos: 0, retainAsPublished: true }]);
  await using plain = await TestClient.connect(b.port, { ...V5, clientId: "n" });
  await subscribe5(plain, [{ topic: "rap", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("rap", "r", { retain: true }));
  assert.equal((await keep.expect(PacketType.PUBLISH)).retain, true);
  assert.equal((await plain.expect(PacketType.PUBLISH)).retain, false);
});

test("31 v5 subscribe: Retain Handling 1 sends retained messages only for a new subscription, 2 never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("rh", "kept", { retain: true }));
  await waitFor(() => b.broker.retainedMessages().some((m) => m.topic === "rh"));
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
  await subscribe5(c, [{ topic: "rh", qos: 0, retainHandling: 1 }]);
  const first = await c.expect(PacketType.PUBLISH);
  assert.equal(first.retain, true);
  await subscribe5(c, [{ topic: "rh", qos: 0, retainHandling: 1 }], { packetId: 2 });
  await subscribe5(c, [{ topic: "rh/#", qos: 0, retainHandling: 2 }], { packetId: 3 });
  await subscribe5(c, [{ topic: "+", qos: 0, retainHandling: 0 }], { packetId: 4 });
  const again = await c.expect(PacketType.PUBLISH);
  assert.equal(text(again), "kept", "Retain Handling 0 sends it");
  await c.expectNothing(200);
  assert.equal(c.socketEnded, false);
});

test("31 v5 subscribe: every matching Subscription Identifier goes with the message, retained ones too [MQTT-3.3.4-3] [MQTT-3.3.4-4]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("ids/a", "old", { retain: true }));
  await waitFor(() => b.broker.retainedMessages().some((m) => m.topic === "ids/a"));
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
  await subscribe5(c, [{ topic: "ids/+", qos: 0 }], { identifier: 7 });
  const retained = await c.expect(PacketType.PUBLISH);
  assert.deepEqual(retained.properties?.subscriptionIdentifier, [7]);
  await subscribe5(c, [{ topic: "ids/#", qos: 1, retainHandling: 2 }], {
    packetId: 2,
    identifier: 9,
  });
  await pub.send(publishPacket("ids/a", "new"));
  const live = await c.expect(PacketType.PUBLISH);
  assert.equal(text(live), "new");
  assert.deepEqual([...live.properties!.subscriptionIdentifier!].sort(), [7, 9]);
  await c.expectNothing(200);
  assert.equal(c.socketEnded, false, "one copy for overlapping subscriptions");
});

test("31 v5 subscribe: No Local on a shared subscription is a protocol error: DISCONNECT 0x82 [MQTT-3.8.3-4]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
  // Our encoder refuses to write it: the bytes by hand (options 0x04 = No Local, QoS 0).
  const filter = [...new TextEncoder().encode("$share/g/t")];
  const body = [0x00, 0x01, 0x00, 0x00, filter.length, ...filter, 0x04];
  await c.sendBytes([0x82, body.length, ...body]);
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x82);
  assert.ok(!seen.some((p) => p.type === PacketType.SUBACK), "no SUBACK");
});

test("31 v5 subscribe: with a receive-authorization plugin, No Local and Subscription Identifiers still apply [MQTT-3.8.3-3] [MQTT-3.3.4-3]", async () => {
  const receive: BrokerPlugin = { name: "receive", authorizeReceive: () => true };
  await using b = await startBroker({}, { plugins: [receive] });
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "c" });
  await subscribe5(c, [{ topic: "acl/#", qos: 1, noLocal: true }], { identifier: 3 });
  await using other = await TestClient.connect(b.port, { ...V5, clientId: "o" });
  await c.send(publishPacket("acl/x", "mine"));
  await other.send(publishPacket("acl/x", "theirs"));
  const got = await c.expect(PacketType.PUBLISH);
  assert.equal(text(got), "theirs");
  assert.deepEqual(got.properties?.subscriptionIdentifier, [3]);
  await c.expectNothing(200);
  assert.equal(c.socketEnded, false);
});

test("31 v5 publish: a PUBLISH no subscription matches gets PUBACK 0x10 No matching subscribers [MQTT-3.4.2-1]", async () => {
  await using b = await startBroker();
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("nobody/here", "x", { qos: 1, packetId: 1 }));
  const puback = await pub.expect(PacketType.PUBACK);
  assert.equal(puback.reasonCode, 0x10);
  assert.equal(puback.properties?.reasonString, undefined);
});

test("31 v5 publish: with outbound_topic_aliases the broker sends repeated topics as aliases within the client's maximum [MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-11]", async () => {
  await using b = await startBroker({ outbound_topic_aliases: true });
  await using sub = await TestClient.connect(b.port, {
    ...V5,
    clientId: "s",
    properties: { topicAliasMaximum: 1 },
  });
  await subscribe5(sub, [{ topic: "oa/#", qos: 0 }]);
  await using none = await TestClient.connect(b.port, { ...V5, clientId: "n" });
  await subscribe5(none, [{ topic: "oa/#", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  for (const topic of ["oa/a", "oa/a", "oa/b", "oa/a"]) await pub.send(publishPacket(topic, "x"));
  const got = [];
  for (let i = 0; i < 4; i++) got.push(await sub.expect(PacketType.PUBLISH));
  assert.deepEqual(
    got.map((p) => [p.topic, p.properties?.topicAlias]),
    [["oa/a", 1], ["", 1], ["oa/b", undefined], ["", 1]],
    "one alias at most: the second topic goes in full",
  );
  // A client that announced no Topic Alias Maximum gets none.
  for (let i = 0; i < 4; i++) {
    const p = await none.expect(PacketType.PUBLISH);
    assert.ok(p.topic.startsWith("oa/"));
    assert.equal(p.properties?.topicAlias, undefined);
  }
});

test("31 v5 publish: a PUBACK of 0x80 or more completes the delivery: no resend on reconnect [MQTT-4.4.0-2]", async () => {
  await using b = await startBroker();
  const keep = { ...V5, clientId: "s", clean: false, properties: { sessionExpiryInterval: 60 } };
  {
    await using sub = await TestClient.connect(b.port, keep);
    await subscribe5(sub, [{ topic: "nack", qos: 1 }]);
    await using pub = await TestClient.connect(b.port, { clientId: "p" });
    await pub.send(publishPacket("nack", "x", { qos: 1 }));
    const got = await sub.expect(PacketType.PUBLISH);
    await sub.send({ type: PacketType.PUBACK, packetId: got.packetId!, reasonCode: 0x80 });
    await sub.send({ type: PacketType.PINGREQ });
    await sub.expect(PacketType.PINGRESP);
  }
  await waitFor(() => b.broker.clients().find((x) => x.clientId === "s")?.connected === false);
  await using again = await TestClient.connect(b.port, keep);
  await again.expectNothing(300);
  assert.equal(again.socketEnded, false);
});

test("31 v5 shared: a member's PUBACK of 0x80 or more discards the message for every member [MQTT-4.8.2-6]", async () => {
  await using b = await startBroker();
  await using other = await TestClient.connect(b.port, { ...V5, clientId: "m2" });
  const first = await TestClient.connect(b.port, { ...V5, clientId: "m1" });
  try {
    await subscribe5(first, [{ topic: "$share/g/sh", qos: 1 }]);
    await subscribe5(other, [{ topic: "$share/g/sh", qos: 1 }]);
    await using pub = await TestClient.connect(b.port, { clientId: "p" });
    await pub.send(publishPacket("sh", "one", { qos: 1 }));
    // Round robin: m1 subscribed first and gets it.
    const got = await first.expect(PacketType.PUBLISH);
    assert.equal(text(got), "one");
    await first.send({ type: PacketType.PUBACK, packetId: got.packetId!, reasonCode: 0x80 });
    await first.send({ type: PacketType.PINGREQ });
    await first.expect(PacketType.PINGRESP);
  } finally {
    await first.close(); // its session ends (no Session Expiry Interval)
  }
  await waitFor(() => !b.broker.clients().some((x) => x.clientId === "m1"));
  await other.expectNothing(300);
  assert.equal(other.socketEnded, false);
});
