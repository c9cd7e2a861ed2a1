/**
 * MQTTClient with `protocolVersion: 5` against scripted servers: PUBLISH properties, reason codes
 * on PUBACK/PUBREC/SUBACK/UNSUBACK, and the limits a CONNACK sets on what the client sends.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ClientError, MQTTClient, PublishError } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet, PublishPacket } from "../../src/packet/types.ts";
import { ScriptedServer } from "./_helpers.ts";
import { acceptV5, urlOf } from "./_v5.ts";

async function connected(server: ScriptedServer, connack?: Parameters<typeof acceptV5>[1]) {
  const client = new MQTTClient({ clientId: "pub5", config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server, connack);
  await connecting;
  return { client, c };
}

function asPublish(p: Packet | undefined): PublishPacket {
  if (p?.type !== PacketType.PUBLISH) throw new Error(`Expected PUBLISH, got ${p?.type}`);
  return p;
}

Deno.test("MQTTClient v5 sends PUBLISH properties; PUBACK 0x10 No matching subscribers is a success", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const publishing = client.publish("req/a", "x", {
    qos: 1,
    properties: {
      payloadFormatIndicator: 1,
      messageExpiryInterval: 30,
      contentType: "text/plain",
      responseTopic: "resp/a",
      correlationData: new Uint8Array([1, 2]),
      userProperties: [["k", "v"]],
    },
  });
  const p = asPublish(await c.next());
  assert.deepEqual(p.properties, {
    payloadFormatIndicator: 1,
    messageExpiryInterval: 30,
    contentType: "text/plain",
    responseTopic: "resp/a",
    correlationData: new Uint8Array([1, 2]),
    userProperties: [["k", "v"]],
  });
  await c.send({
    type: PacketType.PUBACK,
    packetId: p.packetId!,
    reasonCode: 0x10,
    properties: { userProperties: [["from", "server"]] },
  });
  await publishing;
});

Deno.test("MQTTClient v5 rejects publish with PublishError on PUBACK 0x87 and its reason string", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const publishing = client.publish("secret/a", "x", { qos: 1 });
  const p = asPublish(await c.next());
  await c.send({
    type: PacketType.PUBACK,
    packetId: p.packetId!,
    reasonCode: 0x87,
    properties: { reasonString: "no write access to secret/#" },
  });
  const error = await publishing.catch((e) => e);
  assert.ok(error instanceof PublishError);
  assert.equal(error.reasonCode, 0x87);
  assert.equal(error.reasonString, "no write access to secret/#");
  assert.match(error.message, /0x87 Not authorized/);
  // The connection stays up.
  assert.equal(client.connected, true);
  const pinging = client.ping();
  assert.equal((await c.next())?.type, PacketType.PINGREQ);
  await c.send({ type: PacketType.PINGRESP });
  await pinging;
});

Deno.test("MQTTClient v5 ends a QoS 2 flow on a PUBREC of 0x80 or more, without PUBREL [MQTT-4.3.3-4]", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const publishing = client.publish("q2/a", "x", { qos: 2 });
  const p = asPublish(await c.next());
  await c.send({ type: PacketType.PUBREC, packetId: p.packetId!, reasonCode: 0x97 });
  const error = await publishing.catch((e) => e);
  assert.ok(error instanceof PublishError);
  assert.equal(error.reasonCode, 0x97);
  // The next packet is the PINGREQ we ask for, not a PUBREL.
  const pinging = client.ping();
  assert.equal((await c.next())?.type, PacketType.PINGREQ);
  await c.send({ type: PacketType.PINGRESP });
  await pinging;
});

Deno.test("MQTTClient v5 QoS 2 publish with PUBREC 0x10 completes on PUBCOMP", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const publishing = client.publish("q2/b", "x", { qos: 2 });
  const p = asPublish(await c.next());
  await c.send({ type: PacketType.PUBREC, packetId: p.packetId!, reasonCode: 0x10 });
  const rel = await c.next();
  assert.equal(rel?.type, PacketType.PUBREL);
  await c.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
  await publishing;
});

Deno.test("MQTTClient v5 returns SUBACK and UNSUBACK reason codes per filter with the options sent", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const subscribing = client.subscribe([
    { topic: "a/+", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
    { topic: "secret/#", qos: 2 },
  ], { subscriptionIdentifier: 7, userProperties: [["who", "me"]] });
  const sub = await c.next();
  assert.equal(sub?.type, PacketType.SUBSCRIBE);
  if (sub?.type !== PacketType.SUBSCRIBE) return;
  assert.deepEqual(sub.subscriptions, [
    { topic: "a/+", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
    { topic: "secret/#", qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 },
  ]);
  assert.deepEqual(sub.properties, {
    subscriptionIdentifier: [7],
    userProperties: [["who", "me"]],
  });
  await c.send({ type: PacketType.SUBACK, packetId: sub.packetId, reasonCodes: [0x01, 0x87] });
  assert.deepEqual(await subscribing, [0x01, 0x87]);

  const unsubscribing = client.unsubscribe(["a/+", "never/subscribed"], {
    userProperties: [["why", "done"]],
  });
  const unsub = await c.next();
  if (unsub?.type !== PacketType.UNSUBSCRIBE) throw new Error("Expected UNSUBSCRIBE");
  assert.deepEqual(unsub.properties, { userProperties: [["why", "done"]] });
  await c.send({ type: PacketType.UNSUBACK, packetId: unsub.packetId, reasonCodes: [0x00, 0x11] });
  await unsubscribing;
});

Deno.test("MQTTClient v5 delivers message properties and subscription identifiers", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  await c.send({
    type: PacketType.PUBLISH,
    topic: "a/b",
    payload: new TextEncoder().encode("hi"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 3,
    properties: { subscriptionIdentifier: [7, 9], userProperties: [["u", "1"]] },
  });
  const m = await client.deliverMessage({ timeout: 5000 });
  assert.equal(m.topic, "a/b");
  assert.deepEqual(m.properties, { subscriptionIdentifier: [7, 9], userProperties: [["u", "1"]] });
  const ack = await c.next();
  assert.deepEqual(ack, { type: PacketType.PUBACK, packetId: 3 });
});

Deno.test("MQTTClient v5 never has more QoS 1/2 in flight than the server's Receive Maximum [MQTT-3.3.4-7]", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server, { receiveMaximum: 2 });
  await using _ = client;
  const done = [1, 2, 3, 4, 5].map((i) => client.publish(`rm/${i}`, "x", { qos: 1 }));
  const first = [asPublish(await c.next()), asPublish(await c.next())];
  assert.deepEqual(first.map((p) => p.topic), ["rm/1", "rm/2"]);
  // Nothing more comes until an acknowledgement: a ping answered proves the link is idle.
  const pinging = client.ping();
  assert.equal((await c.next())?.type, PacketType.PINGREQ);
  await c.send({ type: PacketType.PINGRESP });
  await pinging;
  const ack = (p: PublishPacket) => c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  // Each acknowledgement lets exactly one more in.
  await ack(first[0]!);
  const third = asPublish(await c.next());
  await ack(first[1]!);
  const fourth = asPublish(await c.next());
  await ack(third);
  const fifth = asPublish(await c.next());
  assert.deepEqual([third, fourth, fifth].map((p) => p.topic), ["rm/3", "rm/4", "rm/5"]);
  await ack(fourth);
  await ack(fifth);
  await Promise.all(done);
});

Deno.test("MQTTClient v5 does not send what the CONNACK forbids: QoS above Maximum QoS [MQTT-3.2.2-11], retain [MQTT-3.2.2-14], packets above Maximum Packet Size [MQTT-3.2.2-15]", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server, {
    maximumQoS: 1,
    retainAvailable: 0,
    maximumPacketSize: 64,
  });
  await using _ = client;
  const qos = await client.publish("a", "x", { qos: 2 }).catch((e) => e);
  assert.ok(qos instanceof PublishError);
  assert.equal(qos.reasonCode, 0x9b);
  const retain = await client.publish("a", "x", { qos: 0, retain: true }).catch((e) => e);
  assert.ok(retain instanceof PublishError);
  assert.equal(retain.reasonCode, 0x9a);
  const big = await client.publish("a", new Uint8Array(100), { qos: 1 }).catch((e) => e);
  assert.ok(big instanceof PublishError);
  assert.equal(big.reasonCode, 0x95);
  assert.match(big.message, /Maximum Packet Size 64/);
  // None of them reached the server; a message within the limits does.
  const ok = client.publish("a", "fits", { qos: 1 });
  const p = asPublish(await c.next());
  assert.equal(new TextDecoder().decode(p.payload), "fits");
  await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  await ok;
});

Deno.test("MQTTClient v5 publish checks its properties", async () => {
  await using server = new ScriptedServer();
  const { client } = await connected(server);
  await using _ = client;
  await assert.rejects(
    client.publish("a", "x", { properties: { responseTopic: "r/#" } }),
    TypeError,
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    client.publish("a", "x", { properties: { payloadFormatIndicator: 2 as any } }),
    RangeError,
  );
  await assert.rejects(client.subscribe(["a", 0] as never, {}), TypeError);
  await assert.rejects(
    client.subscribe([{ topic: "a" }], { subscriptionIdentifier: 0 }),
    RangeError,
  );
});

Deno.test("MQTTClient v5 does not send a SUBSCRIBE above the server's Maximum Packet Size [MQTT-3.2.2-15]", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server, { maximumPacketSize: 40 });
  await using _ = client;
  const error = await client.subscribe([{ topic: "x".repeat(60) }]).catch((e) => e);
  assert.ok(error instanceof ClientError);
  assert.match(error.message, /exceeds the server's Maximum Packet Size 40/);
  const subscribing = client.subscribe([{ topic: "short" }]);
  const p = await c.next();
  if (p?.type !== PacketType.SUBSCRIBE) throw new Error("Expected SUBSCRIBE");
  assert.deepEqual(p.subscriptions.map((s) => s.topic), ["short"]);
  await c.send({ type: PacketType.SUBACK, packetId: p.packetId, reasonCodes: [0] });
  assert.deepEqual(await subscribing, [0]);
});
