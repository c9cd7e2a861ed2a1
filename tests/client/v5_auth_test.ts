/**
 * MQTTClient with `protocolVersion: 5`: enhanced authentication (AUTH packets) through the
 * `auth` hooks, at CONNECT and for re-authentication. Scripted servers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnectError, type EnhancedAuth, MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet } from "../../src/packet/types.ts";
import { ScriptedServer } from "./_helpers.ts";
import { urlOf } from "./_v5.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A toy challenge/response method: the answer is "<nonce>:<secret>". */
function nonceAuth(calls: string[]): EnhancedAuth {
  return {
    method: "x-nonce",
    initial: (re) => {
      calls.push(`initial ${re}`);
      return encoder.encode(re ? "again" : "hello");
    },
    challenge: async (data) => {
      await Promise.resolve(); // hooks may be async
      calls.push(`challenge ${decoder.decode(data)}`);
      return encoder.encode(`${decoder.decode(data)}:secret`);
    },
  };
}

function authOf(p: Packet | undefined) {
  if (p?.type !== PacketType.AUTH) throw new Error(`Expected AUTH, got ${p?.type}`);
  return {
    code: p.reasonCode,
    method: p.properties?.authenticationMethod,
    data: p.properties?.authenticationData,
  };
}

Deno.test("MQTTClient v5 runs an AUTH challenge before CONNACK through the auth hook [MQTT-4.12.0-1]", async () => {
  await using server = new ScriptedServer();
  const calls: string[] = [];
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), {
    protocolVersion: 5,
    auth: nonceAuth(calls),
  });
  const c = await server.accept();
  const connect = await c.next();
  if (connect?.type !== PacketType.CONNECT) throw new Error("Expected CONNECT");
  assert.equal(connect.properties?.authenticationMethod, "x-nonce");
  assert.equal(decoder.decode(connect.properties?.authenticationData), "hello");
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "x-nonce", authenticationData: encoder.encode("n1") },
  });
  const answer = authOf(await c.next());
  // The answer continues the exchange with the same method [MQTT-4.12.0-2].
  assert.equal(answer.code, 0x18);
  assert.equal(answer.method, "x-nonce");
  assert.equal(decoder.decode(answer.data), "n1:secret");
  await c.send({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: { authenticationMethod: "x-nonce" },
  });
  const connack = await connecting;
  assert.equal(connack.returnCode, 0);
  assert.deepEqual(calls, ["initial false", "challenge n1"]);

  // Re-authentication with the same method [MQTT-4.12.1-1].
  const reauth = client.reauthenticate();
  const start = authOf(await c.next());
  assert.deepEqual([start.code, start.method, decoder.decode(start.data)], [
    0x19,
    "x-nonce",
    "again",
  ]);
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "x-nonce", authenticationData: encoder.encode("n2") },
  });
  const step = authOf(await c.next());
  assert.equal(decoder.decode(step.data), "n2:secret");
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x00,
    properties: { authenticationMethod: "x-nonce" },
  });
  await reauth;
  assert.deepEqual(calls, ["initial false", "challenge n1", "initial true", "challenge n2"]);
  assert.equal(client.connected, true);
});

Deno.test("MQTTClient v5 rejects connect with the server's reason when authentication fails", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, auth: nonceAuth([]) });
  const c = await server.accept();
  await c.next();
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "x-nonce", authenticationData: encoder.encode("n1") },
  });
  authOf(await c.next());
  await c.send({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0x86,
    properties: { reasonString: "wrong secret" },
  });
  const error = await connecting.catch((e) => e);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.returnCode, 0x86);
  assert.equal(error.reasonString, "wrong secret");
});

Deno.test("MQTTClient v5 disconnects with 0x80 when the auth hook throws", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), {
    protocolVersion: 5,
    auth: {
      method: "x-nonce",
      challenge: () => {
        throw new Error("cannot answer");
      },
    },
  }).catch((e) => e);
  const c = await server.accept();
  await c.next();
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "x-nonce" },
  });
  const p = await c.next();
  assert.equal(p?.type === PacketType.DISCONNECT && p.reasonCode, 0x80);
  const error = await connecting;
  assert.ok(error instanceof ConnectError);
  assert.match(String(error.cause), /cannot answer/);
});

Deno.test("MQTTClient v5 treats AUTH without an authentication method in CONNECT as a protocol error", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 }).catch((e) => e);
  const c = await server.accept();
  await c.next();
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "x-nonce" },
  });
  const p = await c.next();
  assert.equal(p?.type === PacketType.DISCONNECT && p.reasonCode, 0x82);
  assert.ok(await connecting instanceof ConnectError);
});

Deno.test("MQTTClient v5 reauthenticate needs a connection made with auth", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  await assert.rejects(client.reauthenticate(), /not connected/);
  const connecting = client.connect(urlOf(server), { protocolVersion: 5 });
  const c = await server.accept();
  await c.next();
  await c.send({ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 0 });
  await connecting;
  await assert.rejects(client.reauthenticate(), /without the auth option/);
});

Deno.test("MQTTClient v5 auth.done checks the server's final data in CONNACK and AUTH Success", async () => {
  await using server = new ScriptedServer();
  const proofs: string[] = [];
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const auth: EnhancedAuth = {
    method: "x-proof",
    challenge: () => undefined,
    done: (data) => {
      proofs.push(decoder.decode(data));
      if (decoder.decode(data) !== "good") throw new Error("bad server signature");
    },
  };
  const connecting = client.connect(urlOf(server), { protocolVersion: 5, auth });
  const c = await server.accept();
  await c.next();
  await c.send({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: { authenticationMethod: "x-proof", authenticationData: encoder.encode("good") },
  });
  await connecting;
  assert.equal(client.connected, true);
  const reauth = client.reauthenticate().catch((e) => e);
  assert.equal(authOf(await c.next()).code, 0x19);
  await c.send({
    type: PacketType.AUTH,
    reasonCode: 0x00,
    properties: { authenticationMethod: "x-proof", authenticationData: encoder.encode("forged") },
  });
  // A server that cannot prove itself is left with DISCONNECT 0x80.
  const p = await c.next();
  assert.equal(p?.type === PacketType.DISCONNECT && p.reasonCode, 0x80);
  const error = await reauth;
  assert.match(String(error), /did not verify: bad server signature/);
  assert.deepEqual(proofs, ["good", "forged"]);
});

Deno.test("MQTTClient v5 connect fails when auth.done rejects the CONNACK's data", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const connecting = client.connect(urlOf(server), {
    protocolVersion: 5,
    auth: {
      method: "x-proof",
      challenge: () => undefined,
      done: () => Promise.reject(new Error("no proof")),
    },
  }).catch((e) => e);
  const c = await server.accept();
  await c.next();
  await c.send({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: { authenticationMethod: "x-proof" },
  });
  const p = await c.next();
  assert.equal(p?.type === PacketType.DISCONNECT && p.reasonCode, 0x80);
  const error = await connecting;
  assert.ok(error instanceof ConnectError);
  assert.match(error.message, /no proof/);
  assert.equal(client.connected, false);
});
