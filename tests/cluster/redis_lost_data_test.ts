/**
 * Redis restarted empty (no persistence) under a running cluster: every node notices on
 * reconnecting (the store's epoch key is gone), says so in its log, and writes what it holds
 * again, with message ids from a fresh block, so that a persistent session kept on a node that
 * was idle across the restart is found by the node its client moves to, and no two nodes store
 * different messages under one id. Real `amqtt` processes and redis-server, our client.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, received, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
/** A guard against a broken recovery, not a bound the tests assert. */
const GUARD_MS = 120_000;

/**
 * Whether `node` found Redis without its data, wrote its state again since, and its cluster
 * connection is back (a login on a node whose connection is not back goes on without loading the
 * session: local service does not wait for Redis).
 */
function rewritten(node: Node): boolean {
  const log = node.log();
  return /Redis lost its data/.test(log) && /Writes to the store .* work again/.test(log) &&
    /Redis is back/.test(log);
}

/** A persistent session on `node` subscribed to `filter` at QoS 1, offline. */
async function offlineSession(node: Node, clientId: string, filter: string): Promise<void> {
  await using client = await Inbox.connect(node, clientId, { cleanSession: false });
  assert.deepEqual(await client.client.subscribe([{ topic: filter, qos: 1 }]), [1]);
}

/** Publishes each payload on `node` at QoS 1 (each PUBACK once stored). */
async function publish(node: Node, topic: string, ...payloads: string[]): Promise<void> {
  await using pub = await Inbox.connect(node, `pub-${crypto.randomUUID().slice(0, 8)}`);
  for (const payload of payloads) await pub.client.publish(topic, payload, { qos: 1 });
}

Deno.test(
  "cluster: after Redis restarted empty, a persistent session kept on a node idle across the restart is found by the node its client moves to, with its queued QoS 1 messages [MQTT-3.1.2-4] [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "lost1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "lost1:" });
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1", "k2");

    await redis.restart();
    // Node a writes nothing of its own accord: it finds out from the reconnection.
    await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);
    await until(() => rewritten(b), "node b to be back", GUARD_MS);

    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 2, "the queued messages on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1", "k2@1"]);
    assert.match(b.log(), /session of keeper loaded from the shared store \(was on node a\)/);
    // Interest was resynchronised too: a message published on a after the move reaches b.
    await publish(a, "keep/x", "k3");
    await until(() => moved.on("keep/x").length >= 3, "the message published after the move");
    assert.deepEqual(received(moved, "keep/x"), ["k1@1", "k2@1", "k3@1"]);
  },
);

Deno.test(
  "cluster: after Redis restarted empty, a node started before another node comes back never gets its messages replaced by that node's, stored under the same ids [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "lost2:", nodeTimeout: 10 });
    await offlineSession(a, "on-a", "a/#");
    await publish(a, "a/x", "from a 1", "from a 2");

    // A is away while Redis restarts empty; node c starts meanwhile, its ids from a counter that
    // started again, and stores messages for a session of its own.
    a.process.kill("SIGSTOP");
    let resumed = false;
    let c: Node | undefined;
    try {
      await redis.restart();
      c = await Node.start(redis, { nodeId: "c", prefix: "lost2:", nodeTimeout: 10 });
      await offlineSession(c, "on-c", "c/#");
      await publish(c, "c/x", "from c 1", "from c 2");
      a.process.kill("SIGCONT");
      resumed = true;
      await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);

      // Each session moves to the other node, which loads it from Redis: its own messages.
      {
        await using onC = await Inbox.connect(a, "on-c", { cleanSession: false });
        await until(() => onC.on("c/x").length >= 2, "on-c's queued messages", GUARD_MS);
        assert.deepEqual(received(onC, "c/x"), ["from c 1@1", "from c 2@1"]);
      }
      await using onA = await Inbox.connect(c, "on-a", { cleanSession: false });
      await until(() => onA.on("a/x").length >= 2, "on-a's queued messages", GUARD_MS);
      assert.deepEqual(received(onA, "a/x"), ["from a 1@1", "from a 2@1"]);
    } finally {
      if (!resumed) a.process.kill("SIGCONT");
      await c?.[Symbol.asyncDispose]();
    }
  },
);

Deno.test(
  "cluster: after Redis lost its data with no reconnection (FLUSHALL), an idle node registers its interest and writes its persistent sessions again: a message published on the other node reaches its subscriber, and a session kept there is resumed elsewhere with its queued QoS 1 messages [MQTT-3.1.2-4] [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "lost3:", nodeTimeout: 30 });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "lost3:", nodeTimeout: 30 });
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1", "k2");
    // Idle clients: a subscriber on a, a publisher on b, the route between them in place.
    await using sub = await Inbox.connect(a, "sub-a");
    assert.deepEqual(await sub.client.subscribe([{ topic: "live/#", qos: 1 }]), [1]);
    await using pub = await Inbox.connect(b, "pub-b");
    await routeReady(pub.client, sub, "live/probe");

    // Emptied under the nodes: no connection closes, so no reconnection tells them.
    await flushAll(redis);
    // Node a writes nothing of its own accord: its heartbeat finds the cluster's epoch gone.
    await until(
      () => /Writes to the store .* work again/.test(a.log()),
      "a's sessions rewritten",
      GUARD_MS,
    );
    await until(() => /Cluster: Redis lost its data/.test(b.log()), "b noticing", GUARD_MS);
    assert.match(a.log(), /Cluster: Redis lost its data/);

    await pub.client.publish("live/x", "after", { qos: 1 });
    await until(() => sub.on("live/x").length >= 1, "the message published on b, at a", GUARD_MS);
    assert.deepEqual(received(sub, "live/x"), ["after@1"]);
    assert.ok(sub.client.connected && pub.client.connected);

    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 2, "the queued messages on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1", "k2@1"]);
    assert.match(b.log(), /session of keeper loaded from the shared store \(was on node a\)/);
  },
);

Deno.test(
  "cluster: the store's keys alone lost (deleted or evicted, the bus's kept) with no reconnection: an idle node's store finds it on its own and writes its persistent sessions again, and the session is resumed elsewhere with its queued QoS 1 messages [MQTT-3.1.2-4] [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "lost4:", nodeTimeout: 30 });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "lost4:", nodeTimeout: 30 });
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1", "k2");
    const other = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await other.connect();
    try {
      // The store's keys go, the bus's stay: its heartbeat finds its epoch and says nothing.
      const keys = await other.keys("lost4:store:*");
      assert.ok(keys.includes("lost4:store:epoch"), keys.join(" "));
      await other.del(...keys);
      assert.notEqual(await other.get("lost4:epoch"), null);
    } finally {
      await other.quit();
    }
    // Node a writes nothing of its own accord: its store's own check finds the loss.
    await until(
      () => /Writes to the store .* work again/.test(a.log()),
      "a's sessions rewritten",
      GUARD_MS,
    );
    assert.match(a.log(), /Redis lost its data/);
    assert.doesNotMatch(a.log(), /Cluster: Redis lost its data/, "the bus found nothing");

    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 2, "the queued messages on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1", "k2@1"]);
    assert.match(b.log(), /session of keeper loaded from the shared store \(was on node a\)/);
  },
);

/** Empties `server` (FLUSHALL) through a connection of the test's own. */
async function flushAll(server: RedisServer): Promise<void> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    await redis.flushall();
  } finally {
    await redis.quit();
  }
}
