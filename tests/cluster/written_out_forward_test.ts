// A QoS 1 message routed on a node only to clean sessions lets go of its payload once routed
// (`BrokerMessage.writtenOut`, and a 5.0 copy `copiesWrittenOut`), while its publisher's read
// buffer is read into again by its next PUBLISH. The same message forwarded to another node must
// carry its bytes: the bus encodes its frame during the routing. Real processes and redis-server;
// every payload checked byte for byte on both nodes, at sizes from a byte to several reads.
import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { check, payloadOf } from "../broker/_reuse_traffic.ts";
import { Node, probeRoute } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const SIZES = [1, 300, 7_000, 40, 70_000, 5, 2_000, 130_000];

/** The next `n` PUBLISHes on topics `t/...`, checked byte for byte; never acknowledged. */
async function numbers(client: TestClient, n: number, where: string): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const packet = await client.receive(30_000);
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    if (!p.topic.startsWith("t/")) continue;
    out.push(check(p.payload, where));
  }
  return out;
}

Deno.test(
  "cluster: a QoS 1 message written out to clean sessions on its node and let go of is forwarded to another node byte for byte [MQTT-3.1.2-6] [MQTT-4.4.0-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "wof:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "wof:" });
    // On A only clean sessions, a 5.0 one with a Subscription Identifier (a copy per delivery).
    await using a4 = await TestClient.connect(a.port, { clientId: "a4" });
    await a4.subscribe({ "t/#": 1 });
    await using a5 = await TestClient.connect(a.port, {
      clientId: "a5",
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 0 },
    });
    await subscribe5(a5, [{ topic: "t/#", qos: 1 }], { identifier: 9 });
    // On B a clean session that never acknowledges, and the probe's subscriber.
    await using b4 = await TestClient.connect(b.port, { clientId: "b4" });
    await b4.subscribe({ "t/#": 1, "probe/#": 0 });
    await using pub = await TestClient.connect(a.port, { clientId: "pub" });
    await probeRoute(pub, b4);
    const expected = SIZES.map((_, i) => i + 1);
    // One at a time: each PUBLISH's buffer is read into again by the next.
    for (const [i, size] of SIZES.entries()) {
      await pub.send({
        type: PacketType.PUBLISH,
        topic: `t/${i}`,
        payload: payloadOf(expected[i]!, size),
        qos: 1,
        packetId: i + 1,
        retain: false,
        dup: false,
      });
      const ack = await pub.expect(PacketType.PUBACK, 30_000);
      assert.equal(ack.packetId, i + 1);
    }
    assert.deepEqual(await numbers(a4, SIZES.length, "a4 on A"), expected);
    assert.deepEqual(await numbers(a5, SIZES.length, "a5 on A"), expected);
    assert.deepEqual(await numbers(b4, SIZES.length, "b4 on B"), expected);
    assert.ok(!a4.socketEnded && !a5.socketEnded && !b4.socketEnded);
  },
);
