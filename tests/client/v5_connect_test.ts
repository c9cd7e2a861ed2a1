/**
 * MQTTClient with `protocolVersion: 5` against scripted servers: CONNECT properties, CONNACK
 * refusals with reason codes and reason strings, and what a CONNACK tells the client.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnectError, MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { ScriptedServer } from "./_helpers.ts";
import { acceptV5, urlOf } from "./_v5.ts";

const noReconnect = { auto_reconnect: false };

Deno.test("MQTTClient v5 sends the CONNECT properties it is given [MQTT-3.1.2-24]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    clientId: "props",
    config: noReconnect,
    maxPacketSize: 4096,
  });
  const connecting = client.connect(urlOf(server), {
    protocolVersion: 5,
    sessionExpiryInterval: 300,
    receiveMaximum: 10,
    topicAliasMaximum: 5,
    requestResponseInformation: true,
    requestProblemInformation: false,
    userProperties: [["app", "test"], ["app", "again"]],
    will: { topic: "w", payload: "gone", properties: { willDelayInterval: 30 } },
  });
  const [, connect] = await acceptV5(server, { sessionExpiryInterval: 120 });
  assert.equal(connect.protocolVersion, 5);
  assert.deepEqual(connect.properties, {
    sessionExpiryInterval: 300,
    receiveMaximum: 10,
    topicAliasMaximum: 5,
    // The server may not send a packet larger than this [MQTT-3.1.2-24].
    maximumPacketSize: 4096,
    requestResponseInformation: 1,
    requestProblemInformation: 0,
    userProperties: [["app", "test"], ["app", "again"]],
  });
  assert.deepEqual(connect.will?.properties, { willDelayInterval: 30 });
  const connack = await connecting;
  assert.deepEqual(connack, {
    sessionPresent: false,
    returnCode: 0,
    properties: { sessionExpiryInterval: 120 },
  });
});

Deno.test("MQTTClient v5 rejects a refusing CONNACK with its reason code and reason string [MQTT-3.2.2-7]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: noReconnect });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const c = await server.accept();
  await c.next();
  await c.send({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0x87,
    properties: { reasonString: "sensors may not connect at night" },
  });
  const error = await connecting.catch((e) => e);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.returnCode, 0x87);
  assert.equal(error.reasonString, "sensors may not connect at night");
  assert.match(error.message, /0x87 Not authorized \(sensors may not connect at night\)/);
  assert.equal(client.connected, false);
  // The client closes its side after a refusal [MQTT-3.2.2-7]: the server reads end of stream.
  assert.equal(await c.next(), undefined);
});

Deno.test("MQTTClient v5 takes the Assigned Client Identifier and reconnects with it [MQTT-3.2.2-16]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    clientId: "",
    config: { auto_reconnect: true, reconnect_max_interval: 0.05 },
  });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [first, connect] = await acceptV5(server, { assignedClientIdentifier: "srv-42" });
  assert.equal(connect.clientId, "");
  const connack = await connecting;
  assert.equal(connack.properties?.assignedClientIdentifier, "srv-42");
  assert.equal(client.clientId, "srv-42");
  first.close();
  const [, again] = await acceptV5(server);
  assert.equal(again.clientId, "srv-42");
});

Deno.test("MQTTClient v5 uses the Server Keep Alive instead of its own [MQTT-3.2.2-21]", async () => {
  await using server = new ScriptedServer();
  // Our keepalive is an hour; the server wants one second.
  await using client = new MQTTClient({ config: { ...noReconnect, keep_alive: 3600 } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c, connect] = await acceptV5(server, { serverKeepAlive: 1 });
  await connecting;
  assert.ok(connect.keepAlive > 3000);
  // Only the one-second keepalive makes the client ping an idle connection.
  const p = await c.next();
  assert.equal(p?.type, PacketType.PINGREQ);
  await c.send({ type: PacketType.PINGRESP });
});

Deno.test("MQTTClient v5 refuses a second CONNACK with DISCONNECT 0x82 [MQTT-3.2.0-1]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: noReconnect });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  await c.send({ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 0 });
  const p = await c.next();
  assert.equal(p?.type, PacketType.DISCONNECT);
  assert.equal(p.type === PacketType.DISCONNECT && p.reasonCode, 0x82);
  assert.equal(await c.next(), undefined);
});

Deno.test("MQTTClient v5 checks its CONNECT options before connecting", async () => {
  await using client = new MQTTClient({ config: noReconnect });
  await assert.rejects(
    client.connect("mqtt://127.0.0.1:1", { protocolVersion: 5, receiveMaximum: 0 }),
    RangeError,
  );
  await assert.rejects(
    client.connect("mqtt://127.0.0.1:1", { protocolVersion: 5, sessionExpiryInterval: -1 }),
    RangeError,
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    client.connect("mqtt://127.0.0.1:1", { protocolVersion: 5, userProperties: [["a"]] as any }),
    TypeError,
  );
});
