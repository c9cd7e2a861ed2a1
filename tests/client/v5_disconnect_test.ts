/**
 * MQTTClient with `protocolVersion: 5`: DISCONNECT both ways — the server's reason code and
 * reason string reported, the reconnect policy after it, and the client's own DISCONNECT with a
 * reason code and properties. Scripted servers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ClientError, MQTTClient, ServerDisconnectError } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { ScriptedServer } from "./_helpers.ts";
import { acceptV5, urlOf } from "./_v5.ts";

const reconnecting = { auto_reconnect: true, reconnect_max_interval: 0.05 };

Deno.test("MQTTClient v5 reports a server DISCONNECT with its reason code and reason string, then reconnects (0x8B)", async () => {
  await using server = new ScriptedServer();
  const seen: ServerDisconnectError[] = [];
  await using client = new MQTTClient({
    config: reconnecting,
    onServerDisconnect: (e) => seen.push(e),
  });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  await c.send({
    type: PacketType.DISCONNECT,
    reasonCode: 0x8b,
    properties: { reasonString: "maintenance" },
  });
  // The client reconnects after a shutdown: the server will be back.
  const [, again] = await acceptV5(server);
  assert.equal(again.protocolVersion, 5);
  assert.equal(seen.length, 1);
  assert.ok(seen[0] instanceof ServerDisconnectError);
  assert.equal(seen[0].reasonCode, 0x8b);
  assert.equal(seen[0].reasonString, "maintenance");
  assert.match(seen[0].message, /0x8B Server shutting down \(maintenance\)/);
});

Deno.test("MQTTClient v5 stays down after 0x8E Session taken over and says why [MQTT-3.1.4-3]", async () => {
  await using server = new ScriptedServer();
  const seen: number[] = [];
  await using client = new MQTTClient({
    config: reconnecting,
    onServerDisconnect: (e) => seen.push(e.reasonCode),
  });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  const reading = client.deliverMessage().catch((e) => e);
  await c.send({ type: PacketType.DISCONNECT, reasonCode: 0x8e });
  const error = await reading;
  assert.ok(error instanceof ServerDisconnectError);
  assert.equal(error.reasonCode, 0x8e);
  assert.deepEqual(seen, [0x8e]);
  assert.equal(client.connected, false);
  // No reconnect: operations fail with the same error instead of fighting the other client.
  const publishing = await client.publish("a", "x").catch((e) => e);
  assert.equal(publishing, error);
  // A later connect() starts afresh.
  const connectingAgain = client.connect(urlOf(server), { protocolVersion: 5 });
  await acceptV5(server);
  await connectingAgain;
  assert.equal(client.connected, true);
});

Deno.test("MQTTClient v5 without auto_reconnect fails pending operations with the ServerDisconnectError", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  const publishing = client.publish("a", "x", { qos: 1 }).catch((e) => e);
  assert.equal((await c.next())?.type, PacketType.PUBLISH);
  await c.send({ type: PacketType.DISCONNECT, reasonCode: 0x8d });
  const error = await publishing;
  assert.ok(error instanceof ServerDisconnectError);
  assert.equal(error.reasonCode, 0x8d);
});

Deno.test("MQTTClient v5 disconnect sends its reason code and properties [MQTT-3.14.2-1]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), {
    protocolVersion: 5,
    sessionExpiryInterval: 60,
  });
  const [c] = await acceptV5(server);
  await connecting;
  await client.disconnect({
    reasonCode: 0x04,
    sessionExpiryInterval: 600,
    reasonString: "going to sleep",
    userProperties: [["k", "v"]],
  });
  assert.deepEqual(await c.next(), {
    type: PacketType.DISCONNECT,
    reasonCode: 0x04,
    properties: {
      sessionExpiryInterval: 600,
      reasonString: "going to sleep",
      userProperties: [["k", "v"]],
    },
  });
});

Deno.test("MQTTClient v5 disconnect may not turn session expiry on [MQTT-3.14.2-2]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const [c] = await acceptV5(server);
  await connecting;
  await assert.rejects(client.disconnect({ sessionExpiryInterval: 60 }), RangeError);
  assert.equal(client.connected, true);
  await client.disconnect({ sessionExpiryInterval: 0 });
  const p = await c.next();
  assert.equal(p?.type, PacketType.DISCONNECT);
});

Deno.test("MQTTClient 3.1.1 still treats a DISCONNECT from the server as a protocol error", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server));
  const [c] = await server.acceptSession();
  await connecting;
  const reading = client.deliverMessage().catch((e) => e);
  await c.send({ type: PacketType.DISCONNECT });
  // The connection closes without a DISCONNECT of ours (3.1.1 has none from the client here).
  assert.equal(await c.next(), undefined);
  const result = await reading;
  assert.ok(result instanceof ClientError && !(result instanceof ServerDisconnectError));
});
