/**
 * Broker, area 79: the CONNECT read into a slot of the shared read slabs (`src/transport/socket.ts`,
 * area 78), checked against what a hostile or clumsy client does with its first bytes: a CONNECT
 * larger than a slot (a 5.0 will of 1,500 bytes with a Correlation Data of 300), a CONNECT with
 * PUBLISH and SUBSCRIBE behind it in the same write, a CONNECT split over several writes with
 * turns between them, and connections closed halfway through their CONNECT among them. Many other
 * connections then read into the neighbouring slots (and the same clients into their own) before
 * the wills go out: every will and message arrives as sent [MQTT-3.1.2-8], and the connections
 * the test does not close stay open.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { connectPacket, TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const TEXT = new TextEncoder();

/** Bytes that say who wrote them, `n` long. */
function pattern(tag: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = tag.charCodeAt(i % tag.length) ^ (i & 0x3f);
  return out;
}

/** A 5.0 CONNECT for `id` with a will of `size` bytes and a Correlation Data of `data` bytes. */
function willConnect(id: string, size: number, data: number): Packet {
  return connectPacket({
    clientId: id,
    protocolVersion: 5,
    password: TEXT.encode(`secret-${id}`),
    will: {
      topic: `will/${id}`,
      payload: pattern(id, size),
      qos: 0,
      retain: false,
      properties: { correlationData: pattern(`c-${id}`, data), userProperties: [["id", id]] },
    },
  });
}

/** PUBLISH QoS 0 of `payload` to `topic`. */
function publish(topic: string, payload: Uint8Array): PublishPacket {
  return { type: PacketType.PUBLISH, topic, payload, qos: 0, retain: false, dup: false };
}

/** Reads PUBLISHes until `topics` all came, once each; returns them by topic. */
async function collect(sub: TestClient, topics: string[]): Promise<Map<string, PublishPacket>> {
  const got = new Map<string, PublishPacket>();
  while (got.size < topics.length) {
    const p = await sub.expect(PacketType.PUBLISH);
    assert.equal(got.has(p.topic), false, `${p.topic} once`);
    got.set(p.topic, p);
  }
  assert.deepEqual([...got.keys()].sort(), [...topics].sort());
  return got;
}

test("79 CONNECT in a slab slot: larger than a slot, with packets behind it, split, and closed halfway, every will and message as sent [MQTT-3.1.2-8]", async () => {
  await using b = await startBroker();
  await using watcher = await TestClient.connect(b.port, { clientId: "w", protocolVersion: 5 });
  await watcher.subscribe({ "will/#": 0, "m/#": 0 });
  const open: TestClient[] = [];
  try {
    // Larger than a slot (256 bytes): the first read fills its slot, the rest is read after.
    const big = await TestClient.open(b.port, { protocolVersion: 5 });
    open.push(big);
    // The CONNECT, a PUBLISH and a SUBSCRIBE in one write: one read may carry all three.
    await big.send(
      willConnect("big", 1500, 300),
      publish("m/big", pattern("m-big", 100)),
      { type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "back/big", qos: 0 }] },
    );
    assert.equal((await big.expect(PacketType.CONNACK)).reasonCode, 0);
    assert.deepEqual((await big.expect(PacketType.SUBACK)).reasonCodes, [0]);
    // Small ones with a packet behind their CONNECT in the same write.
    const small: TestClient[] = [];
    for (let i = 0; i < 12; i++) {
      const c = await TestClient.open(b.port, { protocolVersion: 5 });
      open.push(c);
      small.push(c);
      await c.send(
        willConnect(`s${i}`, 20 + i * 9, 8 + i),
        publish(`m/s${i}`, pattern(`m${i}`, 40)),
      );
    }
    // Split over three writes with turns between them, among connections closed halfway.
    const split: TestClient[] = [];
    for (let i = 0; i < 12; i++) {
      const bytes = encodePacket(willConnect(`p${i}`, 120 + i * 11, 16), 5);
      const c = await TestClient.open(b.port, { protocolVersion: 5 });
      open.push(c);
      split.push(c);
      const quitter = await TestClient.open(b.port, { protocolVersion: 5 });
      const cut = [7, Math.floor(bytes.length / 2), bytes.length];
      await c.sendBytes(bytes.subarray(0, cut[0]));
      await quitter.sendBytes(bytes.subarray(0, cut[1]! - 3));
      await delay(1);
      await c.sendBytes(bytes.subarray(cut[0], cut[1]));
      await quitter.close();
      await delay(1);
      await c.sendBytes(bytes.subarray(cut[1], cut[2]));
    }
    for (const c of [...small, ...split]) {
      assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 0);
    }
    await collect(watcher, ["m/big", ...small.map((_, i) => `m/s${i}`)]).then((got) => {
      assert.deepEqual(got.get("m/big")!.payload, pattern("m-big", 100));
      small.forEach((_, i) => assert.deepEqual(got.get(`m/s${i}`)!.payload, pattern(`m${i}`, 40)));
    });
    // Every slot read into again, by others and by the will clients themselves: 0xEE payloads.
    const chatter: TestClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await TestClient.connect(b.port, { clientId: `chatter-${i}` });
      chatter.push(c);
      open.push(c);
      await c.send(publish(`x/${i}`, new Uint8Array(230).fill(0xee)));
    }
    for (const c of [big, ...small, ...split]) {
      await c.send(publish("x/will", new Uint8Array(230).fill(0xee)));
    }
    for (const c of [...chatter, big, ...small, ...split]) {
      await c.send({ type: PacketType.PINGREQ });
      await c.expect(PacketType.PINGRESP);
    }
    // The wills go out as their connections close without DISCONNECT.
    const wills = [big, ...small, ...split];
    const names = ["big", ...small.map((_, i) => `s${i}`), ...split.map((_, i) => `p${i}`)];
    for (const c of wills) await c.close();
    const got = await collect(watcher, names.map((n) => `will/${n}`));
    names.forEach((n, i) => {
      const size = n === "big" ? 1500 : n[0] === "s" ? 20 + (i - 1) * 9 : 120 + (i - 13) * 11;
      const data = n === "big" ? 300 : n[0] === "s" ? 8 + (i - 1) : 16;
      const p = got.get(`will/${n}`)!;
      assert.deepEqual(p.payload, pattern(n, size), `${n}'s will payload`);
      assert.deepEqual(p.properties?.correlationData, pattern(`c-${n}`, data), `${n}'s data`);
      assert.deepEqual(p.properties?.userProperties, [["id", n]], `${n}'s user property`);
    });
    await waitFor(() => b.broker.clients().length === 41, 10_000, "only the chatter and watcher");
    for (const c of chatter) assert.equal(c.ended, false, "the other connections still open");
    assert.equal(watcher.ended, false);
  } finally {
    for (const c of open) await c.close();
  }
});
