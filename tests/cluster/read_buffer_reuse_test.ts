// Cluster nodes read into a publisher's read buffer again once its PUBLISHes are routed
// (`BrokerCore.releaseReceived`): a message forwarded to another node is encoded into its frame
// during the routing, and the records of the node's Redis store are pointed at the message's copy
// before the buffer is read into again (`copyOutRecords`). Seeded random traffic from a publisher
// on each of two nodes (real processes, redis-server) to subscribers on both: one acknowledging,
// one never acknowledging (its window full, the rest queued) and one offline on each node. Then
// every persistent session moves to the other node, which loads it from Redis, and gets every
// QoS 1/2 message it is owed, byte for byte.
import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { check, publish, type Published, readDeliveries } from "../broker/_reuse_traffic.ts";
import { Node, probeRoute, UNBOUNDED_QUEUE, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: read buffers reused on both nodes: payloads forwarded, kept in flight, queued and stored in Redis stay byte for byte, and sessions moved to the other node get every QoS 1/2 message (seed 1) [MQTT-3.1.2-5] [MQTT-4.4.0-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const yaml = [UNBOUNDED_QUEUE, "max_inflight: 4"];
    await using a = await Node.start(redis, { nodeId: "a", prefix: "rbr:", yaml });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "rbr:", yaml });
    const nodes = { a, b };
    // Offline all along, one on each node: every QoS 1/2 message is queued for it, in Redis.
    for (const [node, id] of [[a, "aoff"], [b, "boff"]] as const) {
      const c = await TestClient.connect(node.port, { clientId: id, clean: false });
      await c.subscribe({ "t/#": 2 });
      await c.disconnect();
    }
    // Never acknowledging on A (a window of 4, the rest queued); acknowledging on B.
    const afull = await TestClient.connect(a.port, { clientId: "afull", clean: false });
    await afull.subscribe({ "t/#": 2, "probe/#": 0 });
    const bsub = await TestClient.connect(b.port, { clientId: "bsub", clean: false });
    await bsub.subscribe({ "t/#": 2, "probe/#": 0 });
    const p4 = await TestClient.connect(a.port, { clientId: "p4" });
    const p5 = await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 });
    const published = new Map<number, Published>();
    const seen = { afull: new Set<number>(), bsub: new Set<number>() };
    let failure: unknown;
    let done = false;
    const stop = () => done || failure !== undefined;
    const isProbe = (topic: string) => topic.startsWith("probe/");
    const known = (n: number, p: PublishPacket) => {
      const m = published.get(n);
      assert.ok(m !== undefined, `message ${n} was never published`);
      assert.equal(p.topic, m.topic);
    };
    const readers: Promise<void>[] = [];
    try {
      await probeRoute(p4, bsub);
      await probeRoute(p5, afull);
      readers.push(
        readDeliveries({ client: afull, seen: seen.afull }, stop, {
          ack: false,
          skip: isProbe,
          known,
        }).catch((e) => void (failure ??= e)),
        readDeliveries({ client: bsub, seen: seen.bsub }, stop, { skip: isProbe, known })
          .catch((e) => void (failure ??= e)),
      );
      await Promise.all([p4, p5].map((pub, k) => publish(pub, k, 1, 300, published)));
      const owed = [...published].filter(([_, m]) => m.qos > 0).map(([n]) => n).sort((x, y) =>
        x - y
      );
      await until(
        () => failure !== undefined || owed.every((n) => seen.bsub.has(n)),
        "every QoS 1/2 message at the acknowledging subscriber",
        60_000,
      );
      if (failure !== undefined) throw failure;
      done = true;
      await Promise.all(readers);
      await afull.close();
      await delay(100);
      // Each persistent session moves to the other node, which loads it from Redis.
      for (const [id, node] of [["aoff", "b"], ["boff", "a"], ["afull", "b"]] as const) {
        await using c = await TestClient.open(nodes[node].port);
        const connack = await c.handshake({ clientId: id, clean: false });
        assert.equal(connack.sessionPresent, true, `${id}'s session moved to ${node}`);
        const got = new Set<number>();
        while (got.size < owed.length) {
          const packet = await c.receive(30_000);
          if (packet.type === PacketType.PUBREL) {
            await c.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
            continue;
          }
          assert.equal(packet.type, PacketType.PUBLISH);
          const p = packet as PublishPacket;
          got.add(check(p.payload, `${id} on ${node} (${p.topic})`));
          await c.send({
            type: p.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
            packetId: p.packetId!,
          });
        }
        assert.deepEqual([...got].sort((x, y) => x - y), owed, `${id} got what it is owed`);
        await c.disconnect();
      }
    } finally {
      done = true;
      await Promise.all(readers);
      for (const c of [afull, bsub, p4, p5]) await c.close();
    }
  },
);
