/**
 * Broker, area 86: the readers of a QoS 1 delivery after its routing that `BrokerMessage.writtenOut`
 * must not take for gone. The same messages go, in one turn each, to clean sessions (3.1.1 Clean
 * Session 1, 5.0 Session Expiry 0), whose deliveries may let go of the payload, and to sessions
 * that read them again while the publisher's read buffer is read into by its next PUBLISHes: a
 * 5.0 session made with Clean Start 1 and a Session Expiry Interval above 0, which outlives its
 * connection [MQTT-3.1.2-23] and resends after a takeover [MQTT-4.4.0-1] (with and without a
 * Subscription Identifier, which makes a copy per delivery), a 3.1.1 persistent session taken over
 * mid-flight, and a shared group member whose unacknowledged messages go to another member as its
 * session ends. Every payload is checked byte for byte.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type ProtocolVersion, type PublishPacket } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { check, payloadOf } from "./_reuse_traffic.ts";

/** Message sizes: from a few bytes to several reads, so that the read buffer is reused. */
const SIZES = [5, 300, 7_000, 40, 70_000, 1, 2_000, 130_000];

/** Reads the `n` PUBLISHes next, checked byte for byte; returns their numbers. */
async function publishes(
  client: TestClient,
  n: number,
  where: string,
  dup: boolean,
  identifier?: number,
): Promise<number[]> {
  const seen: number[] = [];
  while (seen.length < n) {
    const packet = await client.receive();
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    assert.equal(p.qos, 1, `${where}: QoS`);
    assert.equal(p.dup, dup, `${where}: DUP [MQTT-3.3.1-1]`);
    seen.push(check(p.payload, where));
    if (identifier !== undefined) {
      assert.deepEqual(p.properties?.subscriptionIdentifier, [identifier], `${where}: identifier`);
    }
  }
  return seen;
}

async function connect(
  port: number,
  clientId: string,
  version: ProtocolVersion,
  clean: boolean,
  expiry?: number,
): Promise<TestClient> {
  return await TestClient.connect(port, {
    clientId,
    protocolVersion: version,
    clean,
    ...(expiry === undefined ? {} : { properties: { sessionExpiryInterval: expiry } }),
  });
}

type Reader = "start5" | "start5id" | "kept4" | "member";

/** The readers, each alone beside the clean sessions: one that reads again keeps every copy. */
const READERS: Record<Reader, string> = {
  start5: "a 5.0 session of Clean Start 1 and Session Expiry 300, resumed after a takeover",
  start5id: "the same with a Subscription Identifier (a copy per delivery)",
  kept4: "a 3.1.1 persistent session, resumed after a takeover",
  member: "a clean shared group member whose messages go to another member as it leaves",
};

async function scenario(reader: Reader): Promise<void> {
  await using b = await startBroker({ max_inflight: 20 });
  const port = b.port;
  // Clean sessions: their deliveries are written out and never sent again.
  await using clean4 = await connect(port, "clean4", 4, true);
  await clean4.subscribe({ "t/#": 1 });
  await using clean5 = await connect(port, "clean5", 5, true, 0);
  await subscribe5(clean5, [{ topic: "t/#", qos: 1 }]);
  // The reader, connected while the messages are routed.
  const id = reader === "start5id" ? 7 : undefined;
  let first: TestClient;
  if (reader === "kept4") {
    first = await connect(port, reader, 4, false);
    await first.subscribe({ "t/#": 1 });
  } else if (reader === "member") {
    first = await connect(port, reader, 5, true, 0);
    await subscribe5(first, [{ topic: "$share/g/t/#", qos: 1 }]);
  } else {
    first = await connect(port, reader, 5, true, 300);
    await subscribe5(first, [{ topic: "t/#", qos: 1 }], id === undefined ? {} : { identifier: id });
  }

  // Each PUBLISH acknowledged before the next: its read buffer is read into again by the next.
  await using pub = await connect(port, "pub", 4, true);
  const numbers = SIZES.map((_, i) => i + 1);
  for (const [i, size] of SIZES.entries()) {
    await pub.send({
      type: PacketType.PUBLISH,
      topic: `t/${i}`,
      payload: payloadOf(numbers[i]!, size),
      qos: 1,
      packetId: i + 1,
      retain: false,
      dup: false,
    });
    const ack = await pub.expect(PacketType.PUBACK);
    assert.equal(ack.packetId, i + 1);
  }
  const n = SIZES.length;
  // Nobody acknowledges: every delivery stays in flight.
  assert.deepEqual(await publishes(clean4, n, "clean4", false), numbers);
  assert.deepEqual(await publishes(clean5, n, "clean5", false), numbers);
  assert.deepEqual(await publishes(first, n, reader, false, id), numbers);
  // More traffic through the same read buffer after the routing, to another topic.
  for (let i = 0; i < 4; i++) {
    await pub.send({
      type: PacketType.PUBLISH,
      topic: "other",
      payload: new Uint8Array(SIZES[i]! + 50).fill(0xee),
      qos: 1,
      packetId: 100 + i,
      retain: false,
      dup: false,
    });
    await pub.expect(PacketType.PUBACK);
  }

  if (reader === "member") {
    // The member leaves without acknowledging: its messages go to the new member.
    await using other = await connect(port, "other", 5, true, 0);
    await subscribe5(other, [{ topic: "$share/g/t/#", qos: 1 }]);
    await first.close();
    const handed = await publishes(other, n, "handed to another member", false);
    assert.deepEqual(handed.toSorted((x, y) => x - y), numbers);
    assert.ok(!other.socketEnded);
  } else {
    // Taken over by a connection that resumes the session: every unacknowledged PUBLISH again,
    // DUP 1, same bytes [MQTT-4.4.0-1] [MQTT-3.3.1-1].
    await using again = reader === "kept4"
      ? await connect(port, reader, 4, false)
      : await connect(port, reader, 5, false, 300);
    assert.deepEqual(await publishes(again, n, `${reader} resumed`, true, id), numbers);
    assert.ok(!again.socketEnded);
    await first.close();
  }
  assert.ok(!clean4.socketEnded && !clean5.socketEnded);
}

for (const [reader, what] of Object.entries(READERS)) {
  Deno.test(`86 written out: QoS 1 deliveries in flight to ${what} keep their bytes, beside clean sessions' written out [MQTT-3.1.2-23] [MQTT-4.4.0-1] [MQTT-3.1.2-6]`, async () => {
    await scenario(reader as Reader);
  });
}
