// A QoS 1/2 publish acknowledged by a cluster node is in Redis for every node that has
// subscribers for it: a node killed with SIGKILL right after a PUBACK or PUBCOMP loses nothing it
// acknowledged. Real `amqtt` processes on a real redis-server, which the test pauses for writes
// (CLIENT PAUSE WRITE) while the messages are published: a node that acknowledged before its
// forwards were written would be killed with them still waiting in Redis's input, lost.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Publishes `count` messages at once from a client of `node`, kills the node with SIGKILL in the
 * callback of the `killAfter`-th acknowledgement (PUBACK for QoS 1, PUBCOMP for QoS 2), and
 * returns the payloads acknowledged before the kill. Redis executes no write from the moment the
 * messages are published until `pause` ms later: no acknowledgement may arrive meanwhile.
 */
async function publishAndCrash(
  node: Node,
  topic: string,
  qos: 1 | 2,
  options: { count: number; killAfter: number; subscriber: Inbox; redis: RedisServer },
): Promise<string[]> {
  const pub = await Inbox.connect(node, `pub-q${qos}`);
  const control = new Redis(options.redis.url, { lazyConnect: true });
  try {
    await control.connect();
    await routeReady(pub.client, options.subscriber, `${topic}/probe`);
    await control.call("CLIENT", "PAUSE", "60000", "WRITE");
    const acked: string[] = [];
    let killed = false;
    for (let i = 0; i < options.count; i++) {
      const payload = `q${qos}-${i}`;
      pub.client.publish(`${topic}/m`, payload, { qos }).then(() => {
        if (killed) return;
        acked.push(payload);
        if (acked.length === options.killAfter) {
          // At once, in the acknowledgement's own callback: nothing more gets out of the node.
          node.process.kill("SIGKILL");
          killed = true;
        }
      }, () => {});
    }
    // Held while the forwards wait in Redis (a lower bound on the hold, not a speed assertion).
    await delay(500);
    assert.deepEqual(acked, [], "acknowledged before Redis took the forwards");
    await control.call("CLIENT", "UNPAUSE");
    await until(() => killed, `${options.killAfter} acknowledgements`);
    await node.process.done;
    return acked;
  } finally {
    await control.call("CLIENT", "UNPAUSE").catch(() => {});
    control.disconnect();
    await pub[Symbol.asyncDispose]();
  }
}

for (const qos of [1, 2] as const) {
  Deno.test(
    `cluster: every QoS ${qos} message acknowledged (${
      qos === 1 ? "PUBACK" : "PUBCOMP"
    }) by a node killed with SIGKILL right after reaches the persistent subscriber on another node`,
    opts,
    async () => {
      await using redis = await RedisServer.start();
      const prefix = `ack${qos}:`;
      await using a = await Node.start(redis, { nodeId: "a", prefix, nodeTimeout: 1 });
      await using b = await Node.start(redis, { nodeId: "b", prefix });
      await using sub = await Inbox.connect(b, "sub", { cleanSession: false });
      assert.deepEqual(await sub.client.subscribe([["x/#", 2]]), [2]);

      const acked = await publishAndCrash(a, "x", qos, {
        count: 200,
        killAfter: 20,
        subscriber: sub,
        redis,
      });
      assert.ok(acked.length >= 20);
      await until(
        () => {
          const got = new Set(sub.on("x/m").map((m) => m.payload));
          return acked.every((p) => got.has(p));
        },
        "every acknowledged message on B",
      );
      // B's subscriber received each at the published QoS, in order, no acknowledged one missing.
      const got = sub.on("x/m");
      assert.ok(got.every((m) => m.qos === qos));
      const payloads = got.map((m) => m.payload);
      assert.deepEqual(payloads.filter((p) => acked.includes(p)), acked);
    },
  );
}
