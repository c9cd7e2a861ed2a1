/**
 * Broker, area 87: a clean 5.0 session with a Receive Maximum of 1 [MQTT-3.3.4-9]: its first
 * delivery of each message in flight is written out and let go of (`BrokerMessage.writtenOut`),
 * the ones behind its window wait in the session while the publisher's read buffer is read into
 * again by later PUBLISHes, and go out, byte for byte, as it acknowledges; with a Message Expiry
 * Interval, which each PUBLISH carries reduced by the time it waited [MQTT-3.3.2-6], and a
 * Subscription Identifier (a copy per delivery) [MQTT-3.3.4-3].
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { check, payloadOf } from "./_reuse_traffic.ts";

const SIZES = [3, 9_000, 70, 65_000, 1, 400, 130_000, 20];

for (const identifier of [undefined, 5]) {
  Deno.test(`87 written out: messages behind a clean 5.0 session's Receive Maximum of 1 go out intact as it acknowledges, with their expiry${identifier === undefined ? "" : " and Subscription Identifier"} [MQTT-3.3.4-9] [MQTT-3.3.2-6] [MQTT-3.3.4-3]`, async () => {
    await using b = await startBroker();
    await using sub = await TestClient.connect(b.port, {
      clientId: "sub",
      protocolVersion: 5,
      properties: { receiveMaximum: 1 },
    });
    await subscribe5(
      sub,
      [{ topic: "t/#", qos: 1 }],
      identifier === undefined ? {} : { identifier },
    );
    await using pub = await TestClient.connect(b.port, { clientId: "pub", protocolVersion: 5 });
    const expected = SIZES.map((_, i) => i + 1);
    for (const [i, size] of SIZES.entries()) {
      await pub.send({
        type: PacketType.PUBLISH,
        topic: `t/${i}`,
        payload: payloadOf(expected[i]!, size),
        qos: 1,
        packetId: i + 1,
        retain: false,
        dup: false,
        properties: { messageExpiryInterval: 3600 },
      });
      await pub.expect(PacketType.PUBACK);
    }
    // And through the same read buffer, messages to nobody.
    for (let i = 0; i < 3; i++) {
      await pub.send({
        type: PacketType.PUBLISH,
        topic: "other",
        payload: new Uint8Array(SIZES[i]! + 30).fill(0xee),
        qos: 1,
        packetId: 50 + i,
        retain: false,
        dup: false,
      });
      await pub.expect(PacketType.PUBACK);
    }
    const got: number[] = [];
    while (got.length < SIZES.length) {
      const packet = await sub.receive();
      if (packet.type !== PacketType.PUBLISH) continue;
      const p = packet as PublishPacket;
      got.push(check(p.payload, "delivery"));
      const expiry = p.properties?.messageExpiryInterval;
      assert.ok(expiry !== undefined && expiry <= 3600 && expiry > 0, `expiry ${expiry}`);
      if (identifier !== undefined) {
        assert.deepEqual(p.properties?.subscriptionIdentifier, [identifier]);
      }
      await sub.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    }
    assert.deepEqual(got, expected);
    assert.ok(!sub.socketEnded && !pub.socketEnded);
  });
}
