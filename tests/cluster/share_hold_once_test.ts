// A shared QoS 2 message for a clean member holds its stream entry pending (group `r`) until its
// take is answered, so that a rescue of the node's stream after its death passes it on if it was
// never taken [MQTT-4.8.2-5]. One hold is let go once: a member whose session ended while its take
// was on its way had the hold let go by the sweep (the message went with the session), and the
// take's answer let it go a second time, acknowledging an entry that another delivery of it (a
// QoS 1 message of the same entry, not acknowledged yet) still held: a rescue would not pass that
// one on. Real processes on a redis-server, its writes paused (CLIENT PAUSE WRITE) to keep the
// take on its way; the publishing node is the test, writing a frame into B's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { FrameBatch } from "../../src/cluster/bus_frame.ts";
import { Node } from "./_nodes.ts";
import { chosen } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const G1 = "$share/g1/s/#";
const G3 = "$share/g3/s/#";

/** The entries of B's stream pending in its group `r` (read, not acknowledged). */
async function pending(r: Redis, prefix: string): Promise<number> {
  const [count] = await r.xpending(`${prefix}s:b`, "r") as [number];
  return count;
}

for (
  const [elsewhere, how] of [
    [false, "no other member of its group anywhere: let go by the sweep"],
    [true, "a member of its group on another node: passed on to it"],
  ] as const
) {
  Deno.test(
    `cluster: the hold of a shared QoS 2 message whose member ended while its take was on its way (${how}) is let go once, the entry kept pending for the other delivery it carries [MQTT-4.8.2-5]`,
    opts,
    async () => {
      const prefix = elsewhere ? "sho2:" : "sho1:";
      await using redis = await RedisServer.start();
      await using b = await Node.start(redis, { nodeId: "b", prefix });
      const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
      await r.connect();
      using _r = { [Symbol.dispose]: () => r.disconnect() };
      await using stack = new AsyncDisposableStack();
      let s2: TestClient | undefined;
      if (elsewhere) {
        const c = stack.use(await Node.start(redis, { nodeId: "c", prefix }));
        s2 = stack.use(await TestClient.connect(c.port, { clientId: "s2", protocolVersion: 5 }));
        assert.deepEqual((await s2.subscribe({ [G1]: 2 })).reasonCodes, [2]);
        await waitFor(
          async () => (await r.smembers(`${prefix}interest:c`)).join() === G1,
          30_000,
          "C's interest",
        );
      }
      // One message in flight at a time: the shared one waits in the queue behind a local one.
      const s1 = await TestClient.connect(b.port, {
        clientId: "s1",
        protocolVersion: 5,
        properties: { receiveMaximum: 1 },
      });
      let s1Open = true;
      try {
        assert.deepEqual((await s1.subscribe({ [G1]: 2, "t/#": 2 })).reasonCodes, [2, 2]);
        await using s3 = await TestClient.connect(b.port, { clientId: "s3", protocolVersion: 5 });
        assert.deepEqual((await s3.subscribe({ [G3]: 1 })).reasonCodes, [1]);
        await waitFor(
          async () => (await r.smembers(`${prefix}interest:b`)).sort().join() === `${G1},${G3},t/#`,
          30_000,
          "B's interest",
        );
        // A local QoS 2 message fills s1's window, its flow left open.
        await using pub = await TestClient.connect(b.port, { clientId: "pub" });
        // B knows of C's member by now (C's interest came before).
        if (elsewhere) await new Promise((resolve) => setTimeout(resolve, 1000));
        await pub.send(publishPacket("t/x", "first", { qos: 2, packetId: 1 }));
        const first = await s1.expect(PacketType.PUBLISH, 30_000);
        assert.equal(text(first), "first");
        // One entry: a QoS 2 message for g1 (s1's, queued) and a QoS 1 one for g3 (s3's, never
        // acknowledged here): two holds on the entry.
        const batch = new FrameBatch();
        batch.add(chosen("shared", 1, 2, [G1]));
        batch.add(chosen("other", 2, 1, [G3]));
        await r.xadd(`${prefix}s:b`, `${Date.now()}-7`, "f", Buffer.from(batch.finish()));
        const other = await s3.expect(PacketType.PUBLISH, 30_000);
        assert.equal(text(other), "other");
        // Redis's writes paused: s1's take, asked as its window frees, waits in Redis.
        await r.call("CLIENT", "PAUSE", "20000", "WRITE");
        try {
          await s1.send({ type: PacketType.PUBREC, packetId: first.packetId! });
          await s1.expect(PacketType.PUBREL);
          await s1.send({ type: PacketType.PUBCOMP, packetId: first.packetId! });
          // The shared message waits for its take: not written yet, the connection still open.
          await s1.send({ type: PacketType.PINGREQ });
          await s1.expect(PacketType.PINGRESP);
          // s1 ends, its take on its way: with no other member of g1, the sweeps (every 500 ms) let
          // its hold go; with one on C, the pass to it (made once Redis writes again) takes it.
          await s1.disconnect();
          s1Open = false;
          await new Promise((resolve) => setTimeout(resolve, 2000));
        } finally {
          await r.call("CLIENT", "UNPAUSE");
        }
        // The take is answered, and XACKs (every 50 ms) go out: the entry stays pending for s3's
        // delivery, not acknowledged yet.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal(await pending(r, prefix), 1);
        // Passed on, C's member has it, once.
        if (s2 !== undefined) {
          const got = await s2.expect(PacketType.PUBLISH, 30_000);
          assert.equal(text(got), "shared");
        }
        await s3.send({ type: PacketType.PINGREQ });
        await s3.expect(PacketType.PINGRESP);
        // s3's PUBACK lets the last hold go [MQTT-4.3.2-2].
        await s3.send({ type: PacketType.PUBACK, packetId: other.packetId! });
        await waitFor(
          async () => (await pending(r, prefix)) === 0,
          30_000,
          "the entry acknowledged",
        );
      } finally {
        if (s1Open) await s1.close();
      }
    },
  );
}
