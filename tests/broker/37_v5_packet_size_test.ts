/**
 * Broker, area 37: the client's Maximum Packet Size at level 5, byte by byte over TCP: PUBLISH
 * packets that would be over it are never sent and end as if delivered, and the Reason Strings and
 * User Properties of the broker's acknowledgements are left out where they would push a packet
 * over it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("37 v5 packet size: a resend over the Maximum Packet Size of the new connection is dropped, counted, and frees its window slot [MQTT-3.1.2-24] [MQTT-3.1.2-25]", async () => {
  await using b = await startBroker();
  const session = { sessionExpiryInterval: 3600, receiveMaximum: 1 };
  const first = await TestClient.connect(b.port, {
    ...V5,
    clientId: "s",
    clean: false,
    properties: session,
  });
  await subscribe5(first, [{ topic: "q/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/big", "x".repeat(200), { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const big = await first.expect(PacketType.PUBLISH);
  assert.equal(big.payload.length, 200);
  // Not acknowledged: with Receive Maximum 1 the next message waits behind it.
  await pub.send(publishPacket("q/small", "small 1", { qos: 1, packetId: 2 }));
  await pub.expect(PacketType.PUBACK);
  await first.expectNothing(100);
  await first.close();

  // Back with a Maximum Packet Size the big PUBLISH does not fit.
  await using again = await TestClient.open(b.port, V5);
  const connack = await again.handshake({
    ...V5,
    clientId: "s",
    clean: false,
    properties: { ...session, maximumPacketSize: 100 },
  });
  assert.equal(connack.sessionPresent, true);
  const next = await again.expect(PacketType.PUBLISH);
  assert.equal(text(next), "small 1", "the big resend was dropped and its slot went on");
  assert.equal(next.dup, false);
  assert.equal(b.broker.stats.droppedBy.tooLarge, 1);
  await again.send({ type: PacketType.PUBACK, packetId: next.packetId! });
  await pub.send(publishPacket("q/small", "small 2", { qos: 1, packetId: 3 }));
  await pub.expect(PacketType.PUBACK);
  assert.equal(text(await again.expect(PacketType.PUBLISH)), "small 2");
  await again.disconnect();
  await pub.disconnect();
});
