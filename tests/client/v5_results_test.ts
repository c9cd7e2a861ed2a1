/**
 * What MQTTClient's publish, subscribe and unsubscribe resolve with: in MQTT 5.0 the reason codes
 * of PUBACK/PUBREC, SUBACK and UNSUBACK with their reason strings and user properties; in MQTT
 * 3.1.1 what they resolved with before (publish `undefined`, every UNSUBACK filter 0x00).
 *
 * @module
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet, PublishPacket } from "../../src/packet/types.ts";
import { ScriptedServer } from "./_helpers.ts";
import { acceptV5, urlOf } from "./_v5.ts";

async function connected(server: ScriptedServer) {
  const client = new MQTTClient({ clientId: "results5", config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  return { client, c };
}

function asPublish(p: Packet | undefined): PublishPacket {
  if (p?.type !== PacketType.PUBLISH) throw new Error(`Expected PUBLISH, got ${p?.type}`);
  return p;
}

Deno.test("MQTTClient v5 publish resolves with the PUBACK reason code, reason string and user properties", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const publishing = client.publish("a/b", "x", { qos: 1 });
  const p = asPublish(await c.next());
  const properties = {
    reasonString: "nobody listens",
    userProperties: [["k", "v"]] as [
      string,
      string,
    ][],
  };
  await c.send({ type: PacketType.PUBACK, packetId: p.packetId!, reasonCode: 0x10, properties });
  assert.deepEqual(await publishing, { reasonCode: 0x10, properties });
  // QoS 0 has no acknowledgement, so no reason code.
  assert.equal(await client.publish("a/b", "y", { qos: 0 }), undefined);
  asPublish(await c.next());
});

Deno.test("MQTTClient v5 QoS 2 publish resolves on PUBCOMP with the PUBREC's reason code and properties", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const publishing = client.publish("q2/a", "x", { qos: 2 });
  const p = asPublish(await c.next());
  await c.send({
    type: PacketType.PUBREC,
    packetId: p.packetId!,
    reasonCode: 0x10,
    properties: { reasonString: "no subscribers" },
  });
  assert.equal((await c.next())?.type, PacketType.PUBREL);
  await c.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
  assert.deepEqual(await publishing, {
    reasonCode: 0x10,
    properties: { reasonString: "no subscribers" },
  });
});

Deno.test("MQTTClient v5 subscribe and unsubscribe resolve with the ack's reason codes and reason string", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const subscribing = client.subscribe([{ topic: "a/+", qos: 1 }, { topic: "secret/#" }]);
  const sub = await c.next();
  if (sub?.type !== PacketType.SUBSCRIBE) throw new Error("Expected SUBSCRIBE");
  await c.send({
    type: PacketType.SUBACK,
    packetId: sub.packetId,
    reasonCodes: [0x01, 0x87],
    properties: { reasonString: "secret/# is not yours", userProperties: [["acl", "deny"]] },
  });
  const granted = await subscribing;
  assert.deepEqual([...granted], [0x01, 0x87]);
  assert.deepEqual(granted.properties, {
    reasonString: "secret/# is not yours",
    userProperties: [["acl", "deny"]],
  });

  const unsubscribing = client.unsubscribe(["a/+", "never/subscribed"]);
  const unsub = await c.next();
  if (unsub?.type !== PacketType.UNSUBSCRIBE) throw new Error("Expected UNSUBSCRIBE");
  await c.send({
    type: PacketType.UNSUBACK,
    packetId: unsub.packetId,
    reasonCodes: [0x00, 0x11],
    properties: { reasonString: "one was not there" },
  });
  const codes = await unsubscribing;
  assert.deepEqual([...codes], [0x00, 0x11]);
  assert.equal(codes.properties?.reasonString, "one was not there");
});

Deno.test("MQTTClient v5 SUBACK without properties resolves with plain codes", async () => {
  await using server = new ScriptedServer();
  const { client, c } = await connected(server);
  await using _ = client;
  const subscribing = client.subscribe([{ topic: "a", qos: 2 }]);
  const sub = await c.next();
  if (sub?.type !== PacketType.SUBSCRIBE) throw new Error("Expected SUBSCRIBE");
  await c.send({ type: PacketType.SUBACK, packetId: sub.packetId, reasonCodes: [0x02] });
  const granted = await subscribing;
  assert.deepEqual(granted, [0x02]);
  assert.equal(granted.properties, undefined);
});

Deno.test("MQTTClient 3.1.1 publish resolves with undefined and unsubscribe with 0x00 per filter", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const accepting = server.acceptSession();
  await client.connect(urlOf(server));
  const [c] = await accepting;
  const publishing = client.publish("a", "1", { qos: 1 });
  const p = asPublish(await c.next());
  await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  assert.equal(await publishing, undefined);

  const unsubscribing = client.unsubscribe(["a", "b"]);
  const unsub = await c.next();
  if (unsub?.type !== PacketType.UNSUBSCRIBE) throw new Error("Expected UNSUBSCRIBE");
  await c.send({ type: PacketType.UNSUBACK, packetId: unsub.packetId });
  const codes = await unsubscribing;
  assert.deepEqual(codes, [0x00, 0x00]);
  assert.equal(codes.properties, undefined);
});
