/**
 * Broker, area 37: the last MQTT 5.0 statements about the connection itself, checked byte by byte
 * over TCP: a protocol level the broker does not serve, the byte stream under the packets (packets
 * split across writes and run together), and the 65535-byte bound of topic names and filters.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

/** A CONNECT with the protocol name "MQTT" at any level byte, client id "c". */
function connectAtLevel(level: number): number[] {
  const body = [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, level, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x63];
  return [0x10, body.length, ...body];
}

test("37 v5 connect: a Protocol Version the broker does not serve (not 3, 4 or 5) is refused and the connection closed [MQTT-3.1.2-2]", async () => {
  await using b = await startBroker();
  for (const level of [0, 1, 2, 6, 0x85]) {
    await using c = await TestClient.open(b.port);
    await c.sendBytes(connectAtLevel(level));
    // The CONNACK is optional; what may come is a refusal, and the close must.
    const seen = await c.expectClosed(10_000, { allowPackets: true });
    for (const p of seen) {
      assert.ok(
        p.type === PacketType.CONNACK && p.reasonCode !== 0,
        `level ${level}: ${JSON.stringify(p.type)}`,
      );
    }
  }
  assert.equal(b.broker.stats.clientsConnected, 0);
  // Level 5 itself is served.
  await using ok = await TestClient.open(b.port, V5);
  assert.equal((await ok.handshake({ ...V5, clientId: "c" })).reasonCode, 0);
  await ok.disconnect();
});

test("37 v5 stream: packets split across writes at every size and run together arrive whole and in order, both ways [MQTT-4.2.0-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  // QoS 0 deliveries: no window of unacknowledged messages to reorder QoS 0 past QoS 1 (which
  // MQTT allows).
  await subscribe5(sub, [{ topic: "s/#", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  const count = 120;
  const stream: number[] = [];
  for (let i = 1; i <= count; i++) {
    const packet = publishPacket(`s/${i % 7}`, `m${i}`, { qos: (i % 2) as 0 | 1, packetId: i });
    if (i % 3 === 0) packet.properties = { userProperties: [["n", String(i)]] };
    stream.push(...encodePacket(packet, 5));
  }
  // Chunks of 1, 2, 3, … 9 bytes, then again: no write holds a packet boundary in the same place.
  let at = 0;
  for (let size = 1; at < stream.length; size = size % 9 + 1) {
    await pub.sendBytes(stream.slice(at, at + size));
    at += size;
  }
  for (let i = 1; i <= count; i += 2) {
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, i, "PUBACKs in order");
  }
  for (let i = 1; i <= count; i++) {
    const got = await sub.expect(PacketType.PUBLISH);
    assert.equal(text(got), `m${i}`, "messages in order, none lost");
    assert.equal(got.topic, `s/${i % 7}`);
    if (i % 3 === 0) assert.deepEqual(got.properties?.userProperties, [["n", String(i)]]);
  }
  await pub.disconnect();
  await sub.disconnect();
});

test("37 v5 topics: a 16383-character topic name and filter are served, longer ones refused within [MQTT-4.7.3-3]", async () => {
  await using b = await startBroker();
  // The longest the broker takes (V8 hashes longer strings by length: 95_long_topics_test.ts);
  // the codec reads and writes up to 65535 bytes.
  const longest = "t/" + "x".repeat(16381);
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  assert.deepEqual(await subscribe5(sub, [{ topic: longest, qos: 0 }]), [0]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket(longest, "edge"));
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.topic, longest);
  // One character more: the host API refuses it.
  assert.throws(() => b.broker.publish(longest + "y", "x"), TypeError);
  // A topic length running past the end of the PUBLISH is malformed: DISCONNECT 0x81, closed.
  await pub.sendBytes([0x30, 0x05, 0xff, 0xff, 0x61, 0x62, 0x00]);
  const seen = await pub.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x81);
  await sub.disconnect();
});
