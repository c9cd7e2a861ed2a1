/**
 * Broker, area 74: a CONNECT without password, will or properties holds no view into the bytes it
 * was decoded from, so the connection's next read goes into the same buffer; a CONNECT with any of
 * them, and every AUTH, keeps its bytes. Clients of each kind write their CONNECT and first
 * PUBLISHes byte by byte, interleaved with each other (each byte usually a read of its own, packets
 * gathered across reads), then more traffic that overwrites whatever buffer can be read into
 * again. A plugin keeps every CONNECT and AUTH it is shown (packet events); at the end each one
 * still encodes to the bytes the client sent, every message arrived as sent, and a will is
 * published with its payload as sent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType } from "../../src/packet/mod.ts";
import type { ProtocolVersion } from "../../src/packet/constants.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes that say who wrote them, `n` long. */
function pattern(tag: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = tag.charCodeAt(i % tag.length) ^ (i & 0x1f);
  return out;
}

/** Keeps every CONNECT and AUTH the broker receives, as plugins are handed them. */
function keeper(): { kept: Packet[]; plugin: BrokerPlugin } {
  const kept: Packet[] = [];
  return {
    kept,
    plugin: {
      name: "keeper",
      onMqttPacketReceived: ({ packet }) => {
        // The subscriber's is not one of the test's.
        if (packet.type === PacketType.CONNECT && packet.clientId === "sub") return;
        if (packet.type === PacketType.CONNECT || packet.type === PacketType.AUTH) {
          kept.push(packet);
        }
      },
    },
  };
}

/** A toy enhanced authentication: the broker says "ping" (later), the client answers "pong". */
const pingPong: BrokerPlugin = {
  name: "ping_pong",
  authenticationMethods: ["x-ping"],
  authenticateEnhanced: async ({ step, data }) => {
    await delay(1);
    if (step === 0) return { continue: encoder.encode("ping") };
    return decoder.decode(data) === "pong" ? { success: true } : { refuse: 0x87 };
  },
};

interface Writer {
  client: TestClient;
  bytes: Uint8Array;
}

/** Writes the writers' bytes one byte at a time, taking turns, each byte its own write. */
async function interleave(writers: Writer[]): Promise<void> {
  const longest = Math.max(...writers.map((w) => w.bytes.length));
  for (let i = 0; i < longest; i++) {
    for (const w of writers) {
      if (i < w.bytes.length) await w.client.sendBytes(w.bytes.subarray(i, i + 1));
    }
    // Now and then a turn of the event loop: the broker reads what has come.
    if (i % 4 === 3) await delay(0);
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface Login {
  name: string;
  version: ProtocolVersion;
  connect: Packet;
}

const LOGINS: Login[] = [
  {
    name: "plain",
    version: 4,
    connect: connectPacket({ clientId: "plain-client-with-a-long-id", username: "user-plain" }),
  },
  {
    name: "will",
    version: 4,
    connect: connectPacket({
      clientId: "will-client",
      username: "user-will",
      password: encoder.encode("secret-of-the-will-client"),
      will: { topic: "will/gone", payload: pattern("will", 60), qos: 0, retain: false },
    }),
  },
  {
    name: "old",
    version: 3,
    connect: connectPacket({ clientId: "old-3.1", protocolVersion: 3, username: "user-old" }),
  },
  { name: "five", version: 5, connect: connectPacket({ clientId: "five", protocolVersion: 5 }) },
  {
    name: "five-props",
    version: 5,
    connect: connectPacket({
      clientId: "five-props",
      protocolVersion: 5,
      password: encoder.encode("password-without-user-name"),
      properties: {
        sessionExpiryInterval: 30,
        userProperties: [["where", "the read buffer"]],
      },
    }),
  },
];

/** The bytes of `packet` at `version`. */
function encoded(packet: Packet, version: ProtocolVersion): number[] {
  return [...encodePacket(packet, version)];
}

/** Reads until `count` PUBLISHes came; returns their payloads by topic, in order. */
async function collect(sub: TestClient, count: number): Promise<Map<string, Uint8Array[]>> {
  const got = new Map<string, Uint8Array[]>();
  for (let n = 0; n < count;) {
    const p = await sub.expect(PacketType.PUBLISH);
    const list = got.get(p.topic) ?? [];
    list.push(p.payload.slice());
    got.set(p.topic, list);
    n++;
  }
  return got;
}

test("74 connect buffer: CONNECTs and first PUBLISHes of five clients interleaved byte by byte; kept CONNECTs, messages and a will stay as sent [MQTT-3.1.2-8] [MQTT-4.6.0-6]", async () => {
  const { kept, plugin } = keeper();
  await using b = await startBroker({}, { plugins: [plugin], packetEvents: true });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "t/#": 0, "will/#": 0 });
  const clients: TestClient[] = [];
  try {
    const writers: Writer[] = [];
    for (const login of LOGINS) {
      const client = await TestClient.open(b.port, { protocolVersion: login.version });
      clients.push(client);
      // CONNECT and two PUBLISHes, as one stream of bytes.
      writers.push({
        client,
        bytes: concat(
          encodePacket(login.connect, login.version),
          encodePacket(publishPacket(`t/${login.name}/1`, pattern(login.name, 33)), login.version),
          encodePacket(publishPacket(`t/${login.name}/2`, pattern(login.name, 7)), login.version),
        ),
      });
    }
    await interleave(writers);
    for (const [i, client] of clients.entries()) {
      const connack = await client.expect(PacketType.CONNACK);
      assert.equal(connack.reasonCode, 0, LOGINS[i]!.name);
    }
    const first = await collect(sub, 2 * LOGINS.length);
    for (const login of LOGINS) {
      assert.deepEqual(first.get(`t/${login.name}/1`), [pattern(login.name, 33)], login.name);
      assert.deepEqual(first.get(`t/${login.name}/2`), [pattern(login.name, 7)], login.name);
    }
    // More traffic, in one write and in pieces: whatever buffer was freed is read into again.
    for (let round = 0; round < 3; round++) {
      await Promise.all(clients.map(async (client, i) => {
        const login = LOGINS[i]!;
        const burst = concat(
          ...[0, 1, 2].map((k) =>
            encodePacket(
              publishPacket(`t/${login.name}/more`, pattern(`${login.name}${round}${k}`, 90)),
              login.version,
            )
          ),
        );
        await client.sendBytes(burst.subarray(0, 50));
        await delay(1);
        await client.sendBytes(burst.subarray(50));
      }));
    }
    const more = await collect(sub, 9 * LOGINS.length);
    for (const login of LOGINS) {
      const expected = [0, 1, 2].flatMap((round) =>
        [0, 1, 2].map((k) => pattern(`${login.name}${round}${k}`, 90))
      );
      const got = more.get(`t/${login.name}/more`) ?? [];
      // Each client's messages in its order [MQTT-4.6.0-6]; the clients' rounds race each other.
      assert.deepEqual(got, expected, `${login.name}: the later messages`);
    }
    // The broker knows each client by the id it sent.
    const connected = b.broker.clients().filter((c) => c.connected).map((c) => c.clientId).sort();
    assert.deepEqual(
      connected,
      [...LOGINS.map((l) => (l.connect as { clientId: string }).clientId), "sub"].sort(),
    );
    // Gone without DISCONNECT: the will, with its payload as sent [MQTT-3.1.2-8].
    await clients[1]!.close();
    const will = await sub.expect(PacketType.PUBLISH);
    assert.equal(will.topic, "will/gone");
    assert.deepEqual(will.payload, pattern("will", 60));
    // Every CONNECT a plugin kept still is what its client sent.
    assert.equal(kept.length, LOGINS.length);
    for (const login of LOGINS) {
      const clientId = (login.connect as { clientId: string }).clientId;
      const k = kept.find((p) => p.type === PacketType.CONNECT && p.clientId === clientId);
      assert.ok(k !== undefined, `${login.name}: its CONNECT was kept`);
      assert.deepEqual(
        encoded(k, login.version),
        encoded(login.connect, login.version),
        `${login.name}: the kept CONNECT changed`,
      );
    }
  } finally {
    for (const c of clients) await c.close();
  }
});

test("74 connect buffer: a 5.0 enhanced authentication interleaved byte by byte with a plain login's traffic; the kept CONNECT and AUTH stay as sent [MQTT-4.12.0-2]", async () => {
  const { kept, plugin } = keeper();
  await using b = await startBroker({}, { plugins: [plugin, pingPong], packetEvents: true });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "t/#": 0 });
  const authConnect = connectPacket({
    clientId: "authed",
    protocolVersion: 5,
    properties: { authenticationMethod: "x-ping", authenticationData: pattern("hello", 24) },
  });
  const answer: Packet = {
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "x-ping", authenticationData: encoder.encode("pong") },
  };
  const plainConnect = connectPacket({ clientId: "plain-one", username: "plain-user" });
  await using authed = await TestClient.open(b.port, { protocolVersion: 5 });
  await using plain = await TestClient.open(b.port);
  const plainPublish = (n: number) =>
    encodePacket(publishPacket(`t/plain/${n}`, pattern(`p${n}`, 40)), 4);
  await interleave([
    { client: authed, bytes: encodePacket(authConnect, 5) },
    { client: plain, bytes: concat(encodePacket(plainConnect, 4), plainPublish(0)) },
  ]);
  const challenge = await authed.expect(PacketType.AUTH);
  assert.equal(challenge.reasonCode, 0x18);
  assert.equal(decoder.decode(challenge.properties?.authenticationData), "ping");
  await interleave([
    {
      client: authed,
      bytes: concat(
        encodePacket(answer, 5),
        encodePacket(publishPacket("t/authed", pattern("authed", 50)), 5),
      ),
    },
    { client: plain, bytes: concat(plainPublish(1), plainPublish(2)) },
  ]);
  assert.equal((await authed.expect(PacketType.CONNACK)).reasonCode, 0);
  assert.equal((await plain.expect(PacketType.CONNACK)).reasonCode, 0);
  const got = await collect(sub, 4);
  assert.deepEqual(got.get("t/authed"), [pattern("authed", 50)]);
  for (let n = 0; n < 3; n++) assert.deepEqual(got.get(`t/plain/${n}`), [pattern(`p${n}`, 40)]);
  // More from both, overwriting any buffer read into again.
  for (let n = 3; n < 6; n++) await plain.sendBytes(plainPublish(n));
  const later = await collect(sub, 3);
  for (let n = 3; n < 6; n++) assert.deepEqual(later.get(`t/plain/${n}`), [pattern(`p${n}`, 40)]);
  const connects = kept.filter((p) => p.type === PacketType.CONNECT);
  const auths = kept.filter((p) => p.type === PacketType.AUTH);
  assert.equal(connects.length, 2);
  assert.equal(auths.length, 1);
  const keptAuthed = connects.find((p) => p.type === PacketType.CONNECT && p.clientId === "authed");
  assert.deepEqual(encoded(keptAuthed!, 5), encoded(authConnect, 5), "the kept 5.0 CONNECT");
  assert.deepEqual(encoded(auths[0]!, 5), encoded(answer, 5), "the kept AUTH");
  const keptPlain = connects.find((p) =>
    p.type === PacketType.CONNECT && p.clientId === "plain-one"
  );
  assert.deepEqual(encoded(keptPlain!, 4), encoded(plainConnect, 4), "the kept 3.1.1 CONNECT");
});

test("74 connect buffer: each kind of CONNECT with its first PUBLISHes and a PINGREQ in one write, then more writes: kept CONNECTs and messages stay as sent [MQTT-3.12.4-1]", async () => {
  const { kept, plugin } = keeper();
  await using b = await startBroker({}, { plugins: [plugin], packetEvents: true });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "t/#": 0 });
  const clients: TestClient[] = [];
  try {
    for (const login of LOGINS) {
      const client = await TestClient.open(b.port, { protocolVersion: login.version });
      clients.push(client);
      const publish = (n: number) =>
        encodePacket(
          publishPacket(`t/${login.name}/${n}`, pattern(`${login.name}${n}`, 20)),
          login.version,
        );
      await client.sendBytes(
        concat(encodePacket(login.connect, login.version), publish(0), new Uint8Array([0xc0, 0])),
      );
      assert.equal((await client.expect(PacketType.CONNACK)).reasonCode, 0, login.name);
      await client.expect(PacketType.PINGRESP);
      for (let n = 1; n < 4; n++) await client.sendBytes(publish(n));
      const got = await collect(sub, 4);
      for (let n = 0; n < 4; n++) {
        assert.deepEqual(
          got.get(`t/${login.name}/${n}`),
          [pattern(`${login.name}${n}`, 20)],
          `${login.name}: message ${n}`,
        );
      }
    }
    for (const login of LOGINS) {
      const clientId = (login.connect as { clientId: string }).clientId;
      const k = kept.find((p) => p.type === PacketType.CONNECT && p.clientId === clientId);
      assert.deepEqual(
        encoded(k!, login.version),
        encoded(login.connect, login.version),
        login.name,
      );
    }
  } finally {
    for (const c of clients) await c.close();
  }
});
