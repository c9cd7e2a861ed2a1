// A retained message cleared on one node while another node's Redis connection is down stays
// cleared when that node comes back: Redis kept its data (only the connection was cut), so the
// node does not restore its retained set into it, and drops the message whose clear it missed.
// Real processes, redis-server, a TCP proxy between A and Redis that the test cuts, our clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, retainedTopics, retry, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
/** The retained topics a new subscriber of `node` to `filter` gets, once it gets any. */
async function retainedSet(node: Node, name: string, filter: string): Promise<string[]> {
  let topics: string[] = [];
  await retry(async () => (topics = await retainedTopics(node, name, filter)).length > 0, name);
  return topics;
}

Deno.test(
  "cluster: a retained message cleared on B while A's Redis connection was cut stays cleared when A is back, on A, on B and on a node started later [MQTT-3.3.1-6] [MQTT-3.3.1-10]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // No node is taken for dead while A's Redis connection is down.
    await using a = await Node.start(proxy, { nodeId: "a", prefix: "rc1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "rc1:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await using pub = await Inbox.connect(a, "pub");
      await pub.client.publish("k/one", "held", { qos: 1, retain: true });
      assert.deepEqual(await retainedSet(b, "on-b", "k/#"), ["k/one"]);

      // A's connections to Redis are cut, and the new ones never answered.
      proxy.mode = "stall";
      proxy.cut();
      await until(() => /Cluster: lost Redis/.test(a.log()), "A losing Redis");
      // B clears the topic: Redis holds no retained message now; A still holds k/one.
      await using clear = await Inbox.connect(b, "clear");
      await clear.client.publish("k/one", "", { qos: 1, retain: true });
      await retry(async () => await admin.hlen("rc1:retained") === 0, "the clear in Redis");
      // A marker set on A meanwhile: shared when A is back, after the restore it would make.
      await pub.client.publish("k/marker", "from A", { qos: 1, retain: true });
      assert.deepEqual(await retainedSet(a, "on-a", "k/#"), ["k/marker", "k/one"]);

      // Redis is back for A, with its data.
      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(a.log()), "A reconnecting to Redis");
      await retry(
        async () => (await retainedTopics(b, "on-b", "k/#")).includes("k/marker"),
        "B getting A's marker",
      );
      // A restored nothing: Redis has the marker only.
      assert.doesNotMatch(a.log(), /restored the \d+ retained messages/);
      assert.deepEqual(await admin.hkeys("rc1:retained"), ["k/marker"]);
      // A drops the message whose clear it missed.
      await retry(async () => {
        const topics = await retainedTopics(a, "on-a", "k/#");
        return topics.length === 1 && topics[0] === "k/marker";
      }, "k/one cleared on A");
      assert.deepEqual(await retainedSet(b, "on-b", "k/#"), ["k/marker"]);
      // A's own `$SYS` retained message stays on A, and out of Redis.
      assert.deepEqual(await retainedSet(a, "sys-a", "$SYS/broker/version"), [
        "$SYS/broker/version",
      ]);
      await using c = await Node.start(redis, { nodeId: "c", prefix: "rc1:" });
      assert.deepEqual(await retainedSet(c, "on-c", "k/#"), ["k/marker"]);
      assert.doesNotMatch(a.log(), /restored the \d+ retained messages/);
    } finally {
      admin.disconnect();
    }
  },
);
