/**
 * A 5.0 delivery that needs nothing of 5.0 of its own (no Subscription Identifier, no expiry
 * interval, no topic alias, well under the client's Maximum Packet Size) shares one encoding with
 * every other delivery of its protocol level and QoS, as 3.1.1 deliveries do: read off real
 * sockets, every 5.0 subscriber gets exactly the bytes one encoding gives (with its own packet id
 * and flags), whatever the publisher's level, with or without forwarded properties, from the first
 * delivery of a message (written straight) to the later ones (copied).
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType, type QoS } from "../../src/packet/mod.ts";
import type { Properties } from "../../src/packet/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { RawSubscriber } from "../_helpers/raw_subscriber.ts";
import { publish5, publishPacket, TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** The PUBLISH a subscriber must get: one encoding at its level, its QoS and packet id. */
function expected(
  level: 4 | 5,
  topic: string,
  payload: string,
  qos: QoS,
  packetId?: number,
  properties?: Properties,
): Uint8Array {
  const packet = publishPacket(topic, payload, { qos, packetId });
  if (properties !== undefined) packet.properties = properties;
  return encodePacket(packet, level);
}

test("44 v5 shared fan-out: a 3.1.1 publisher's messages reach every 5.0 and 3.1.1 subscriber as one encoding per level and QoS [MQTT-3.8.4-8]", async () => {
  await using b = await startBroker();
  const subs: { sub: RawSubscriber; level: 4 | 5; qos: QoS }[] = [];
  try {
    for (
      const [i, level, qos, max] of [
        [0, 5, 0, undefined],
        [1, 5, 0, 1000],
        [2, 5, 1, undefined],
        [3, 5, 1, 1000],
        [4, 4, 0, undefined],
        [5, 4, 1, undefined],
      ] as const
    ) {
      const props = max === undefined ? undefined : { maximumPacketSize: max };
      const sub = await RawSubscriber.open(b.port, `s${i}`, { topic: "sf/#", qos }, props, level);
      subs.push({ sub, level, qos });
    }
    await using pub = await TestClient.connect(b.port, { clientId: "p" });
    // Published at QoS 2: no subscription has that shape, so the first delivery of each level
    // is written straight and the next ones copy one encoding.
    for (const [n, payload] of ["first", "second", "third"].entries()) {
      await pub.send(publishPacket(`sf/${n}`, payload, { qos: 2, packetId: n + 1 }));
      const rec = await pub.expect(PacketType.PUBREC);
      await pub.send({ type: PacketType.PUBREL, packetId: rec.packetId });
      await pub.expect(PacketType.PUBCOMP);
      for (const { sub, level, qos } of subs) {
        assert.deepEqual(
          await sub.publishBytes(),
          expected(level, `sf/${n}`, payload, qos, qos > 0 ? n + 1 : undefined),
          `level ${level} QoS ${qos}, message ${n}`,
        );
      }
    }
  } finally {
    for (const { sub } of subs) await sub[Symbol.asyncDispose]();
  }
});

test("44 v5 shared fan-out: forwarded properties go to every 5.0 subscriber in one encoding, each with its packet id in place [MQTT-3.3.2-17] [MQTT-3.3.2-20]", async () => {
  await using b = await startBroker();
  const subs: { sub: RawSubscriber; qos: QoS }[] = [];
  try {
    for (const [i, qos, max] of [[0, 1, undefined], [1, 1, 4096], [2, 0, undefined]] as const) {
      const props = max === undefined ? undefined : { maximumPacketSize: max };
      subs.push({
        sub: await RawSubscriber.open(b.port, `s${i}`, { topic: "pr/#", qos }, props),
        qos,
      });
    }
    await using pub = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "p" });
    const properties: Properties = { contentType: "text/plain", userProperties: [["k", "v"]] };
    for (const n of [1, 2]) {
      await pub.send(publish5("pr/t", `message ${n}`, properties, { qos: 1, packetId: n }));
      await pub.expect(PacketType.PUBACK);
      for (const { sub, qos } of subs) {
        assert.deepEqual(
          await sub.publishBytes(),
          expected(5, "pr/t", `message ${n}`, qos, qos > 0 ? n : undefined, properties),
          `QoS ${qos}, message ${n}`,
        );
      }
    }
  } finally {
    for (const { sub } of subs) await sub[Symbol.asyncDispose]();
  }
});

test("44 v5 shared fan-out: the shared bytes go to a client whose Maximum Packet Size is their length, not to one whose is a byte less [MQTT-3.1.2-24] [MQTT-3.1.2-25]", async () => {
  await using b = await startBroker();
  const bytes = expected(5, "mp/t", "just fits", 0);
  await using exact = await RawSubscriber.open(b.port, "exact", { topic: "mp/#", qos: 0 }, {
    maximumPacketSize: bytes.length,
  });
  await using under = await RawSubscriber.open(b.port, "under", { topic: "mp/#", qos: 0 }, {
    maximumPacketSize: bytes.length - 1,
  });
  await using plain = await RawSubscriber.open(b.port, "plain", { topic: "mp/#", qos: 0 });
  await using pub = await TestClient.connect(b.port, { clientId: "p" });
  for (let n = 0; n < 2; n++) {
    await pub.send(publishPacket("mp/t", "just fits", { qos: 1, packetId: n + 1 }));
    await pub.expect(PacketType.PUBACK);
    assert.deepEqual(await plain.publishBytes(), bytes);
    assert.deepEqual(await exact.publishBytes(), bytes);
  }
  await under.expectNothing(200);
});
