/**
 * Broker, area 85: the packets the packet events hand to plugins (`mqttPacketReceived`,
 * `mqttPacketSent`) have binary fields of their own, whatever the packet type: an AUTH's
 * Authentication Data, a CONNECT's password, will payload, will Correlation Data and
 * Authentication Data, a PUBLISH's payload and Correlation Data. A decoded packet's binary fields
 * are views into the read buffer it came in, or into a slot of a slab shared with other
 * connections' idle reads; a plugin keeping one must neither see it change as later packets are
 * read into the same memory nor keep that memory alive. The client's bytes come in pieces of
 * seeded random sizes, so that packets are split across reads.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";
import { check, payloadOf } from "./_reuse_traffic.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The client answers the challenge with `pong` and then the bytes of message `n`. */
function answer(n: number, length: number): Uint8Array {
  const rest = payloadOf(n, length);
  const out = new Uint8Array(4 + rest.length);
  out.set(encoder.encode("pong"));
  out.set(rest, 4);
  return out;
}

/** A challenge the client must answer with bytes that start with "pong". */
const pingPong: BrokerPlugin = {
  name: "ping_pong",
  authenticationMethods: ["x-ping"],
  authenticateEnhanced: ({ step, data }) => {
    if (step === 0) return { continue: encoder.encode("ping") };
    return decoder.decode(data?.subarray(0, 4)) === "pong"
      ? { success: true }
      : { refuse: 0x87, reasonString: "wrong answer" };
  },
};

/** Whether `bytes` is a buffer of its own: no view into a larger one (a read buffer, a slab). */
function own(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;
}

for (const seed of [1, 2, 3]) {
  Deno.test(`85 packet events: AUTH, CONNECT and PUBLISH packets a plugin keeps have binary data of their own, intact as later packets reuse the read buffer (seed ${seed}) [MQTT-4.12.0-2] [MQTT-4.12.1-2]`, async () => {
    const random = rng(seed * 17);
    const kept: { packet: Packet; sent: boolean }[] = [];
    const keeper: BrokerPlugin = {
      name: "keeper",
      onMqttPacketReceived: ({ packet }) => void kept.push({ packet, sent: false }),
      onMqttPacketSent: ({ packet }) => void kept.push({ packet, sent: true }),
    };
    await using b = await startBroker({}, { plugins: [pingPong, keeper], packetEvents: true });
    await using c = await TestClient.open(b.port, { protocolVersion: 5 });
    // Writes a packet's bytes in pieces: each piece usually a read of its own.
    const send = async (packet: Packet) => {
      const bytes = encodePacket(packet, 5);
      for (let from = 0; from < bytes.length;) {
        const n = random() < 0.4 ? bytes.length : 1 + Math.floor(random() * 300);
        await c.sendBytes(bytes.subarray(from, from + n));
        from += n;
        if (random() < 0.3) await delay(1);
      }
    };
    const password = payloadOf(1, 30 + seed);
    const will = payloadOf(2, 200 * seed);
    const willCorrelation = payloadOf(3, 16);
    const connectData = payloadOf(4, 50);
    await send(connectPacket({
      protocolVersion: 5,
      clientId: `a${seed}`,
      username: "u",
      password,
      will: {
        topic: "will/a",
        payload: will,
        qos: 1,
        retain: false,
        properties: { correlationData: willCorrelation },
      },
      properties: { authenticationMethod: "x-ping", authenticationData: connectData },
    }));
    assert.equal((await c.expect(PacketType.AUTH)).reasonCode, 0x18);
    // The answers (AUTH 0x18), at CONNECT and in re-authentications (AUTH 0x19) [MQTT-4.12.1-2].
    const answers: Uint8Array[] = [];
    const authenticate = async (code: number) => {
      const data = answer(100 + answers.length, Math.floor(random() * 600));
      answers.push(data);
      await send({
        type: PacketType.AUTH,
        reasonCode: code,
        properties: { authenticationMethod: "x-ping", authenticationData: data },
      });
    };
    await authenticate(0x18);
    assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 0);
    const correlations: Uint8Array[] = [];
    for (let round = 0; round < 5; round++) {
      await send({
        type: PacketType.AUTH,
        reasonCode: 0x19,
        properties: { authenticationMethod: "x-ping" },
      });
      assert.equal((await c.expect(PacketType.AUTH)).reasonCode, 0x18);
      await authenticate(0x18);
      assert.equal((await c.expect(PacketType.AUTH)).reasonCode, 0);
      // Then PUBLISHes through the same read buffer, with and without Correlation Data.
      for (let i = 0; i < 20; i++) {
        const n = 1000 + round * 100 + i;
        const packet = publishPacket("t/x", "", { qos: 1, packetId: n % 60_000 + 1 });
        packet.payload = payloadOf(n, Math.floor(random() * 400));
        if (random() < 0.5) {
          const data = payloadOf(n + 500_000, 8 + Math.floor(random() * 40));
          correlations.push(data);
          packet.properties = { correlationData: data };
        }
        await send(packet);
        assert.equal((await c.expect(PacketType.PUBACK)).packetId, packet.packetId);
      }
    }
    await waitFor(() => kept.some((k) => k.sent && k.packet.type === PacketType.PUBACK), 10_000);
    assert.equal(c.socketEnded, false);

    // The AUTH answers as sent, bytes of their own.
    const auths = kept.filter((k) => !k.sent && k.packet.type === PacketType.AUTH);
    const authData = auths.flatMap(({ packet }) =>
      packet.type === PacketType.AUTH && packet.properties?.authenticationData !== undefined
        ? [packet.properties.authenticationData]
        : []
    );
    assert.deepEqual(authData.map((d) => [...d]), answers.map((d) => [...d]));
    for (const d of authData) assert.ok(own(d), "AUTH's Authentication Data is a view");
    // The CONNECT's binary fields.
    const connect = kept.find((k) => k.packet.type === PacketType.CONNECT)!.packet;
    assert.ok(connect.type === PacketType.CONNECT);
    for (
      const [name, got, sent] of [
        ["password", connect.password!, password],
        ["will payload", connect.will!.payload, will],
        ["will Correlation Data", connect.will!.properties!.correlationData!, willCorrelation],
        ["Authentication Data", connect.properties!.authenticationData!, connectData],
      ] as const
    ) {
      assert.deepEqual([...got], [...sent], name);
      assert.ok(own(got), `CONNECT's ${name} is a view`);
    }
    // The PUBLISHes and their Correlation Data.
    const got: Uint8Array[] = [];
    for (const { packet, sent } of kept) {
      if (sent || packet.type !== PacketType.PUBLISH) continue;
      check(packet.payload, "PUBLISH kept");
      assert.ok(own(packet.payload), "a PUBLISH's payload is a view");
      const data = packet.properties?.correlationData;
      if (data !== undefined) {
        assert.ok(own(data), "a PUBLISH's Correlation Data is a view");
        got.push(data);
      }
    }
    assert.deepEqual(got.map((d) => [...d]), correlations.map((d) => [...d]));
  });
}

Deno.test("85 plugins: the properties authorizePublish is given have a Correlation Data of its own, intact as later PUBLISHes reuse the read buffer", async () => {
  const kept: Uint8Array[] = [];
  const plugin: BrokerPlugin = {
    name: "keeper",
    authorizePublish: (_client, _topic, _qos, _retain, properties) => {
      if (properties?.correlationData !== undefined) kept.push(properties.correlationData);
      return true;
    },
  };
  await using b = await startBroker({}, { plugins: [plugin] });
  await using c = await TestClient.connect(b.port, { clientId: "p", protocolVersion: 5 });
  const sent: Uint8Array[] = [];
  for (let n = 0; n < 50; n++) {
    const data = payloadOf(n, 8 + (n * 13) % 90);
    sent.push(data);
    const packet = publishPacket("t/p", "", { qos: 1, packetId: n + 1 });
    packet.payload = payloadOf(n + 1000, (n * 37) % 300);
    packet.properties = { correlationData: data };
    // And one without properties after each, whose read buffer is reused once routed.
    await c.send(packet, publishPacket("t/p", "x".repeat(n), { qos: 1, packetId: n + 100 }));
    await c.expect(PacketType.PUBACK);
    await c.expect(PacketType.PUBACK);
  }
  assert.equal(c.socketEnded, false);
  assert.deepEqual(kept.map((d) => [...d]), sent.map((d) => [...d]));
  for (const d of kept) assert.ok(own(d), "the Correlation Data is a view");
});
