/**
 * Broker, area 36: MQTT 5.0 enhanced authentication (§4.12, AUTH §3.15) over TCP: the exchange
 * at CONNECT and re-authentication, with our 5.0 client and byte by byte.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnectError, MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/types.ts";
import { ChallengeAuthPlugin, challengeResponse } from "../../src/plugins/challenge_auth.ts";
import { ScramAuthPlugin, scramCredentials } from "../../src/plugins/scram_auth.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { connectPacket, TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A toy method: the broker says "ping" (asynchronously), the client must answer "pong". */
const pingPong: BrokerPlugin = {
  name: "ping_pong",
  authenticationMethods: ["x-ping"],
  authenticateEnhanced: async ({ step, data }) => {
    await Promise.resolve();
    if (step === 0) return { continue: encoder.encode("ping") };
    return decoder.decode(data) === "pong"
      ? { success: true, data: encoder.encode("welcome") }
      : { refuse: 0x87, reasonString: "wrong answer" };
  },
};

function auth(code: number, data?: string, method = "x-ping"): Packet {
  return {
    type: PacketType.AUTH,
    reasonCode: code,
    properties: {
      authenticationMethod: method,
      ...(data === undefined ? {} : { authenticationData: encoder.encode(data) }),
    },
  };
}

async function expectAuth(c: TestClient, code: number, data: string | undefined): Promise<void> {
  const p = await c.expect(PacketType.AUTH);
  assert.equal(p.reasonCode ?? 0, code);
  // Every AUTH carries the CONNECT's method [MQTT-4.12.0-5].
  assert.equal(p.properties?.authenticationMethod, "x-ping");
  const got = p.properties?.authenticationData;
  assert.equal(got === undefined ? undefined : decoder.decode(got), data);
}

async function startExchange(c: TestClient, clientId: string): Promise<void> {
  await c.send(connectPacket({
    ...V5,
    clientId,
    properties: { authenticationMethod: "x-ping" },
  }));
  // The plugin's challenge comes as AUTH 0x18 Continue authentication [MQTT-4.12.0-2].
  await expectAuth(c, 0x18, "ping");
}

test("36 v5 enhanced auth: CONNECT with a method gets AUTH 0x18 with the plugin's data, the answer CONNACK 0x00 with method and data [MQTT-4.12.0-2] [MQTT-4.12.0-5]", async () => {
  await using b = await startBroker({}, { plugins: [pingPong] });
  await using c = await TestClient.open(b.port, V5);
  await startExchange(c, "e1");
  await c.send(auth(0x18, "pong"));
  const connack = await c.expect(PacketType.CONNACK);
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.authenticationMethod, "x-ping");
  assert.equal(decoder.decode(connack.properties?.authenticationData), "welcome");
  await c.subscribe({ "t/e1": 0 });
});

test("36 v5 enhanced auth: a refused answer gets CONNACK with the plugin's code, then a close [MQTT-4.12.0-4]", async () => {
  await using b = await startBroker({}, { plugins: [pingPong] });
  await using c = await TestClient.open(b.port, V5);
  await startExchange(c, "e2");
  await c.send(auth(0x18, "pang"));
  const connack = await c.expect(PacketType.CONNACK);
  assert.equal(connack.reasonCode, 0x87);
  assert.equal(connack.properties?.authenticationMethod, undefined);
  await c.expectClosed();
  assert.ok(!b.broker.clients().some((x) => x.clientId === "e2"));
});

test("36 v5 enhanced auth: an AUTH with another method is a protocol error: no CONNACK, a close [MQTT-4.12.0-5]", async () => {
  await using b = await startBroker({}, { plugins: [pingPong] });
  await using c = await TestClient.open(b.port, V5);
  await startExchange(c, "e3");
  await c.send(auth(0x18, "pong", "x-other"));
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  assert.ok(!seen.some((p) => p.type === PacketType.CONNACK), "no CONNACK");
});

test("36 v5 enhanced auth: a packet other than AUTH or DISCONNECT during the exchange is a protocol error [MQTT-3.1.2-30]", async () => {
  await using b = await startBroker({}, { plugins: [pingPong] });
  await using c = await TestClient.open(b.port, V5);
  await startExchange(c, "e4");
  await c.send({ type: PacketType.PINGREQ });
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  assert.ok(!seen.some((p) => p.type === PacketType.CONNACK || p.type === PacketType.PINGRESP));
});

test("36 v5 enhanced auth: the connect timeout bounds the exchange", async () => {
  await using b = await startBroker({ connect_timeout: 1 }, { plugins: [pingPong] });
  await using c = await TestClient.open(b.port, V5);
  await startExchange(c, "e5");
  // No answer to the challenge: the connection closes within the timeout and its sweep.
  const elapsed = await c.waitEnd(15_000);
  assert.ok(elapsed !== undefined, "connection still open 15 s into the exchange");
});

test("36 v5 enhanced auth: re-authentication AUTH 0x19 runs the exchange again and ends with AUTH 0x00; a refusal sends DISCONNECT 0x87 [MQTT-3.15.2-1] [MQTT-4.12.0-5] [MQTT-4.12.1-2]", async () => {
  await using b = await startBroker({}, { plugins: [pingPong] });
  await using c = await TestClient.open(b.port, V5);
  await startExchange(c, "e6");
  await c.send(auth(0x18, "pong"));
  assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 0);
  await c.send(auth(0x19));
  await expectAuth(c, 0x18, "ping");
  await c.send(auth(0x18, "pong"));
  await expectAuth(c, 0x00, "welcome");
  // The session is still there; a second re-authentication with a wrong answer ends it.
  await c.send(auth(0x19));
  await expectAuth(c, 0x18, "ping");
  await c.send(auth(0x18, "pang"));
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x87);
});

test("36 v5 enhanced auth: without a method in CONNECT the CONNACK names none and a client AUTH is a protocol error [MQTT-4.12.0-6]", async () => {
  await using b = await startBroker({}, {
    plugins: [pingPong, { name: "all", authenticate: () => true }],
  });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "e7" });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.authenticationMethod, undefined);
  await c.send(auth(0x19));
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  assert.ok(!seen.some((p) => p.type === PacketType.AUTH), "no AUTH from the server");
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x82);
});

test("36 v5 enhanced auth: our 5.0 client logs in and re-authenticates with ChallengeAuthPlugin (HMAC-SHA-256)", async () => {
  const plugin = new ChallengeAuthPlugin({ secrets: { alice: "s3cret" } });
  await using b = await startBroker({}, { plugins: [plugin] });
  const hmac = (secret: string) => ({
    method: "x-hmac-sha256",
    initial: () => encoder.encode("alice"),
    challenge: (nonce: Uint8Array | undefined) => challengeResponse(secret, nonce!),
  });
  await using client = new MQTTClient({ clientId: "alice-1", config: { auto_reconnect: false } });
  const connack = await client.connect(`mqtt://127.0.0.1:${b.port}`, {
    ...V5,
    auth: hmac("s3cret"),
  });
  assert.equal(connack.returnCode, 0);
  assert.equal(connack.properties?.authenticationMethod, "x-hmac-sha256");
  await client.reauthenticate();
  await client.disconnect();

  await using wrong = new MQTTClient({ clientId: "alice-2", config: { auto_reconnect: false } });
  const refused = await wrong.connect(`mqtt://127.0.0.1:${b.port}`, {
    ...V5,
    auth: hmac("guess"),
  }).then(() => undefined, (e) => e);
  assert.ok(refused instanceof ConnectError, `expected ConnectError, got ${refused}`);
  assert.equal(refused.returnCode, 0x86);
});

/** A SCRAM-SHA-256 client (RFC 5802) for our MQTTClient's `auth` hooks; `done` checks the server. */
function scramClient(user: string, password: string) {
  const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
  const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const hmac = async (key: Uint8Array, data: string) => {
    const k = await crypto.subtle.importKey(
      "raw",
      key as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, encoder.encode(data)));
  };
  let clientFirstBare = "";
  let serverSignature = "";
  return {
    method: "SCRAM-SHA-256",
    initial: () => {
      clientFirstBare = `n=${user},r=${b64(crypto.getRandomValues(new Uint8Array(18)))}`;
      return encoder.encode(`n,,${clientFirstBare}`);
    },
    challenge: async (data: Uint8Array | undefined) => {
      const serverFirst = decoder.decode(data);
      const attrs = new Map(serverFirst.split(",").map((a) => [a[0], a.slice(2)]));
      const key = await crypto.subtle.importKey(
        "raw",
        encoder.encode(password),
        "PBKDF2",
        false,
        ["deriveBits"],
      );
      const salted = new Uint8Array(
        await crypto.subtle.deriveBits(
          {
            name: "PBKDF2",
            hash: "SHA-256",
            salt: unb64(attrs.get("s")!),
            iterations: Number(attrs.get("i")),
          },
          key,
          256,
        ),
      );
      const clientKey = await hmac(salted, "Client Key");
      const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-256", clientKey));
      const withoutProof = `c=biws,r=${attrs.get("r")}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const signature = await hmac(storedKey, authMessage);
      serverSignature = b64(await hmac(await hmac(salted, "Server Key"), authMessage));
      const proof = clientKey.map((b, i) => b ^ signature[i]!);
      return encoder.encode(`${withoutProof},p=${b64(proof)}`);
    },
    done: (data: Uint8Array | undefined) => {
      // The server proves it holds the keys too (RFC 5802 server-final-message).
      if (decoder.decode(data) !== `v=${serverSignature}`) throw new Error("Bad server signature");
    },
  };
}

test("36 v5 enhanced auth: our 5.0 client speaking SCRAM-SHA-256 logs in and re-authenticates with ScramAuthPlugin; a wrong password gets 0x86", async () => {
  const plugin = new ScramAuthPlugin({ users: { bob: await scramCredentials("hunter2") } });
  await using b = await startBroker({}, { plugins: [plugin] });
  const url = `mqtt://127.0.0.1:${b.port}`;
  await using client = new MQTTClient({ clientId: "bob-1", config: { auto_reconnect: false } });
  const connack = await client.connect(url, { ...V5, auth: scramClient("bob", "hunter2") });
  assert.equal(connack.returnCode, 0);
  assert.equal(connack.properties?.authenticationMethod, "SCRAM-SHA-256");
  await client.reauthenticate();
  await client.disconnect();

  await using wrong = new MQTTClient({ clientId: "bob-2", config: { auto_reconnect: false } });
  const refused = await wrong.connect(url, { ...V5, auth: scramClient("bob", "hunter3") })
    .then(() => undefined, (e) => e);
  assert.ok(refused instanceof ConnectError, `expected ConnectError, got ${refused}`);
  assert.equal(refused.returnCode, 0x86);
});
