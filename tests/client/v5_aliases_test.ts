/**
 * MQTTClient with `protocolVersion: 5`: topic aliases both ways, and its own Receive Maximum,
 * against scripted servers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet, PublishPacket } from "../../src/packet/types.ts";
import { ScriptedServer } from "./_helpers.ts";
import { acceptV5, urlOf } from "./_v5.ts";

const encoder = new TextEncoder();

function publish(topic: string, properties: PublishPacket["properties"], packetId?: number) {
  const p: PublishPacket = {
    type: PacketType.PUBLISH,
    topic,
    payload: encoder.encode(topic),
    qos: packetId === undefined ? 0 : 2,
    retain: false,
    dup: false,
    properties,
  };
  if (packetId !== undefined) p.packetId = packetId;
  return p;
}

function disconnectCode(p: Packet | undefined): number | undefined {
  if (p?.type !== PacketType.DISCONNECT) throw new Error(`Expected DISCONNECT, got ${p?.type}`);
  return p.reasonCode;
}

Deno.test("MQTTClient v5 assigns topic aliases within the server's Topic Alias Maximum [MQTT-3.3.2-9]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    config: { auto_reconnect: true, reconnect_max_interval: 0.05 },
    topicAliases: true,
  });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server, { topicAliasMaximum: 1 });
  await connecting;
  for (const topic of ["a/b", "a/b", "c/d", "a/b"]) await client.publish(topic, "x", { qos: 0 });
  const seen: [string, number | undefined][] = [];
  for (let i = 0; i < 4; i++) {
    const p = await c.next();
    if (p?.type !== PacketType.PUBLISH) throw new Error("Expected PUBLISH");
    seen.push([p.topic, p.properties?.topicAlias]);
  }
  assert.deepEqual(seen, [
    ["a/b", 1], // sets up alias 1
    ["", 1], // the alias alone
    ["c/d", undefined], // no alias left: the name
    ["", 1],
  ]);
  // Aliases do not carry over to a new connection [MQTT-3.3.2-7].
  c.close();
  const [again] = await acceptV5(server, { topicAliasMaximum: 1 });
  await client.publish("a/b", "x", { qos: 0 });
  const p = await again.next();
  assert.equal(p?.type === PacketType.PUBLISH && p.topic, "a/b");
});

Deno.test("MQTTClient v5 sends no topic alias unless asked, nor when the server allows none", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server, { topicAliasMaximum: 10 });
  await connecting;
  await client.publish("a/b", "x", { qos: 0 });
  await client.publish("a/b", "x", { qos: 0 });
  for (let i = 0; i < 2; i++) {
    const p = await c.next();
    assert.equal(p?.type === PacketType.PUBLISH && p.topic, "a/b");
    assert.equal(p?.type === PacketType.PUBLISH && p.properties, undefined);
  }
});

Deno.test("MQTTClient v5 resolves inbound topic aliases before delivery [MQTT-3.3.2-10]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, topicAliasMaximum: 2 });
  const [c, connect] = await acceptV5(server);
  assert.equal(connect.properties?.topicAliasMaximum, 2);
  await connecting;
  await c.send(
    publish("x/1", { topicAlias: 2, userProperties: [["k", "v"]] }),
    publish("", { topicAlias: 2 }),
    publish("x/2", { topicAlias: 2 }), // remaps alias 2
    publish("", { topicAlias: 2 }),
  );
  const got = [];
  for (let i = 0; i < 4; i++) got.push(await client.deliverMessage({ timeout: 5000 }));
  assert.deepEqual(got.map((m) => m.topic), ["x/1", "x/1", "x/2", "x/2"]);
  // The alias is the connection's business; the application sees the other properties.
  assert.deepEqual(got[0]!.properties, { userProperties: [["k", "v"]] });
  assert.equal(got[1]!.properties, undefined);
});

Deno.test("MQTTClient v5 disconnects with 0x94 on a topic alias above its maximum [MQTT-3.1.2-26]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, topicAliasMaximum: 2 });
  const [c] = await acceptV5(server);
  await connecting;
  await c.send(publish("x/1", { topicAlias: 3 }));
  assert.equal(disconnectCode(await c.next()), 0x94);
  assert.equal(await c.next(), undefined); // and closes
  assert.equal(client.receiveQueueSize, 0);
});

Deno.test("MQTTClient v5 disconnects with 0x94 on any topic alias when it announced none", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  await c.send(publish("x/1", { topicAlias: 1 }));
  assert.equal(disconnectCode(await c.next()), 0x94);
});

Deno.test("MQTTClient v5 disconnects with 0x82 on an alias that was never mapped", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, topicAliasMaximum: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  await c.send(publish("", { topicAlias: 4 }));
  assert.equal(disconnectCode(await c.next()), 0x82);
});

Deno.test("MQTTClient v5 disconnects with 0x81 on a malformed packet from the server [MQTT-4.13.1-1]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  // PUBACK whose property length runs past the packet.
  await c.conn.write(new Uint8Array([0x40, 0x04, 0x00, 0x01, 0x00, 0x09]));
  const code = disconnectCode(await c.next());
  assert.ok(code === 0x81 || code === 0x82, `reason code 0x${code?.toString(16)}`);
  assert.equal(await c.next(), undefined);
});

Deno.test("MQTTClient v5 disconnects with 0x93 when the server exceeds its Receive Maximum [MQTT-3.3.4-9]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, receiveMaximum: 2 });
  const [c, connect] = await acceptV5(server);
  assert.equal(connect.properties?.receiveMaximum, 2);
  await connecting;
  // Two QoS 2 messages stay unacknowledged (no PUBREL): the limit is reached, not exceeded.
  await c.send(publish("q/1", undefined, 1), publish("q/2", undefined, 2));
  assert.equal((await c.next())?.type, PacketType.PUBREC);
  assert.equal((await c.next())?.type, PacketType.PUBREC);
  // A resend of one of them is no new message.
  await c.send({ ...publish("q/1", undefined, 1), dup: true });
  assert.equal((await c.next())?.type, PacketType.PUBREC);
  await c.send(publish("q/3", undefined, 3));
  assert.equal(disconnectCode(await c.next()), 0x93);
  assert.equal(await c.next(), undefined);
});

Deno.test("MQTTClient v5 Receive Maximum counts until PUBCOMP goes out", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, receiveMaximum: 1 });
  const [c] = await acceptV5(server);
  await connecting;
  for (let id = 1; id <= 3; id++) {
    await c.send(publish(`q/${id}`, undefined, id));
    assert.equal((await c.next())?.type, PacketType.PUBREC);
    await c.send({ type: PacketType.PUBREL, packetId: id });
    assert.equal((await c.next())?.type, PacketType.PUBCOMP);
  }
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await client.deliverMessage({ timeout: 5000 })).topic);
  assert.deepEqual(got, ["q/1", "q/2", "q/3"]);
  assert.equal(client.connected, true);
});
