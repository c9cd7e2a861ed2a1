/**
 * Redis gone back to older data under a running cluster: restarted from an RDB snapshot taken
 * before some of the cluster's writes (`RedisServer.snapshot`, then `rollback`). Its `P epoch` is
 * the old one, so no node would see a data loss; `P count` (counted by every registration and
 * heartbeat) is lower than the nodes last got, so the first node to register or heartbeat empties
 * the cluster's keys, and every node writes what it holds again, as after a FLUSHALL. Real `amqtt`
 * processes and redis-server, our client.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { CLUSTER_KEY_FAMILIES, CLUSTER_KEY_NAMES } from "../../src/cluster/_bus_scripts.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, received, retainedTopics, retry, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
/** A guard against a broken recovery, not a bound the tests assert. */
const GUARD_MS = 120_000;

/** Whether `node` is back on Redis after the rollback and wrote its sessions again. */
function rewritten(node: Node): boolean {
  const log = node.log();
  return /Redis is back|Redis went back to older data|Redis lost its data with no reconnection/
    .test(
      log,
    ) &&
    /Writes to the store .* work again/.test(log);
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

/**
 * Waits until each of `nodes` ran a heartbeat after the snapshot, so that each got a `P count`
 * above the snapshot's, whichever registers first after the rollback (a wait of a fixed time
 * would not tell on a loaded machine): each liveness key's lifetime is made far longer than a
 * heartbeat sets it, and each is waited for to be set again. Checks on the way that every key
 * under the prefix is one the emptying after a rollback deletes (`CLUSTER_KEY_NAMES`, `_FAMILIES`).
 */
async function heartbeated(server: RedisServer, prefix: string, ...nodes: string[]) {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    const far = 1_000_000_000;
    for (const node of nodes) assert.equal(await redis.pexpire(`${prefix}alive:${node}`, far), 1);
    await retry(async () => {
      const ttls = await Promise.all(nodes.map((n) => redis.pttl(`${prefix}alive:${n}`)));
      return ttls.every((ttl) => ttl > 0 && ttl < far / 2);
    }, `a heartbeat of ${nodes.join(", ")}`);
    for (const key of await redis.keys(`${prefix}*`)) {
      const rest = key.slice(prefix.length);
      const family = /^([a-z]+):/.exec(rest)?.[1];
      assert.ok(
        CLUSTER_KEY_NAMES.includes(rest) || CLUSTER_KEY_FAMILIES.includes(family ?? ""),
        `${key} is no key the emptying after a rollback deletes`,
      );
    }
  } finally {
    await redis.quit();
  }
}

Deno.test(
  "cluster: after Redis went back to a snapshot older than a node's registration, that node is not fenced as reaped: its connected client stays and gets messages, and its persistent session keeps its queued QoS 1 message [MQTT-3.1.2-4] [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "rb1:" });
    await redis.snapshot();
    // B registers after the snapshot: its incarnation key is not in it.
    await using b = await Node.start(redis, { nodeId: "b", prefix: "rb1:" });
    await using live = await Inbox.connect(b, "live-b", { cleanSession: false });
    assert.deepEqual(await live.client.subscribe([{ topic: "t/#", qos: 1 }]), [1]);
    await offlineSession(b, "kept-b", "k/#");
    await publish(a, "k/x", "k1");
    await heartbeated(redis, "rb1:", "a", "b");

    await redis.rollback();
    // (Taken for reaped, it would let go of its sessions and join again as a new incarnation.)
    await until(
      () => rewritten(b) || /was reaped/.test(b.log()),
      "node b to write its sessions again",
      GUARD_MS,
    );
    assert.doesNotMatch(b.log(), /was reaped|new incarnation/);
    await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);
    assert.ok(live.client.connected);
    await publish(a, "t/x", "after");
    await until(() => live.on("t/x").length >= 1, "the message published on a, at b", GUARD_MS);
    assert.deepEqual(received(live, "t/x"), ["after@1"]);
    assert.ok(live.client.connected);

    await using moved = await Inbox.connect(a, "kept-b", { cleanSession: false });
    await until(() => moved.on("k/x").length >= 1, "the queued message on node a", GUARD_MS);
    assert.deepEqual(received(moved, "k/x"), ["k1@1"]);
    assert.match(a.log(), /session of kept-b loaded from the shared store \(was on node b\)/);
  },
);

Deno.test(
  "cluster: a QoS 1 message queued for a persistent session after the snapshot Redis went back to is delivered when its client resumes the session on another node [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "rb2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "rb2:" });
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1");
    await redis.snapshot();
    await publish(a, "keep/x", "k2");
    await heartbeated(redis, "rb2:", "a", "b");

    await redis.rollback();
    await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);
    await until(() => rewritten(b), "node b to be back", GUARD_MS);
    assert.match(a.log() + b.log(), /Redis went back to older data/);

    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 2, "the queued messages on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1", "k2@1"]);
  },
);

/** The retained topics a new subscriber of `node` to `filter` gets, once it gets any. */
async function retainedSet(node: Node, filter: string): Promise<string[]> {
  let topics: string[] = [];
  await retry(
    async () => (topics = await retainedTopics(node, "retained", filter)).length > 0,
    filter,
  );
  return topics;
}

Deno.test(
  "cluster: a retained message cleared after the snapshot Redis went back to stays cleared, and one set after it stays set, on every node and on a node started later [MQTT-3.3.1-10] [MQTT-3.3.1-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "rb3:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "rb3:" });
    await using pub = await Inbox.connect(a, "pub");
    await pub.client.publish("r/one", "held", { qos: 1, retain: true });
    assert.deepEqual(await retainedSet(b, "r/#"), ["r/one"]);
    await redis.snapshot();
    await pub.client.publish("r/one", "", { qos: 1, retain: true });
    await pub.client.publish("r/two", "set after", { qos: 1, retain: true });
    await retry(async () => {
      const topics = await retainedTopics(b, "retained", "r/#");
      return topics.length === 1 && topics[0] === "r/two";
    }, "b holding the changes");
    await heartbeated(redis, "rb3:", "a", "b");

    await redis.rollback();
    await until(() => rewritten(a), "node a to be back", GUARD_MS);
    await until(() => rewritten(b), "node b to be back", GUARD_MS);
    assert.deepEqual(await retainedSet(a, "r/#"), ["r/two"]);
    assert.deepEqual(await retainedSet(b, "r/#"), ["r/two"]);
    await using c = await Node.start(redis, { nodeId: "c", prefix: "rb3:" });
    assert.deepEqual(await retainedSet(c, "r/#"), ["r/two"]);
    assert.ok(pub.client.connected);
  },
);

Deno.test(
  "cluster: after Redis went back to a snapshot older than a node's block of message ids, a node started later never gets its messages stored under that node's ids [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "rb4:" });
    await redis.snapshot();
    // C reserves its block of ids after the snapshot: Redis's counter goes back below it.
    await using c = await Node.start(redis, { nodeId: "c", prefix: "rb4:" });
    await heartbeated(redis, "rb4:", "a", "c");

    await redis.rollback();
    // (The ids C holds are renumbered when its store finds the loss, whenever that comes.)
    const back = (node: Node) =>
      /Redis is back|Redis went back to older data|joined again as a new incarnation/.test(
        node.log(),
      );
    await until(() => back(c), "node c to be back", GUARD_MS);
    await until(() => back(a), "node a to be back", GUARD_MS);
    // D reserves its block from the counter as the snapshot left it.
    await using d = await Node.start(redis, { nodeId: "d", prefix: "rb4:" });
    await offlineSession(c, "on-c", "c/#");
    await publish(c, "c/x", "from c 1", "from c 2");
    await offlineSession(d, "on-d", "d/#");
    await publish(d, "d/x", "from d 1", "from d 2");

    // Each session moves to the other node, which loads it from Redis: its own messages.
    {
      await using onC = await Inbox.connect(d, "on-c", { cleanSession: false });
      await until(() => onC.on("c/x").length >= 2, "on-c's queued messages", GUARD_MS);
      assert.deepEqual(received(onC, "c/x"), ["from c 1@1", "from c 2@1"]);
    }
    await using onD = await Inbox.connect(c, "on-d", { cleanSession: false });
    await until(() => onD.on("d/x").length >= 2, "on-d's queued messages", GUARD_MS);
    assert.deepEqual(received(onD, "d/x"), ["from d 1@1", "from d 2@1"]);
  },
);

Deno.test(
  "cluster: an emptying after Redis went back that outlasts Redis's busy-reply-threshold (the other node answered BUSY meanwhile) takes no node for dead: both write again, a connected client stays and gets messages, a queued QoS 1 message is delivered [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using a = await Node.start(server, { nodeId: "a", prefix: "rb5:" });
    await using b = await Node.start(server, { nodeId: "b", prefix: "rb5:" });
    await using live = await Inbox.connect(b, "live-b", { cleanSession: false });
    assert.deepEqual(await live.client.subscribe([{ topic: "t/#", qos: 1 }]), [1]);
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1");
    await heartbeated(server, "rb5:", "a", "b");
    const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
    await redis.connect();
    try {
      // Enough of the cluster's keys that the emptying takes a while, and Redis answering the
      // other clients BUSY after 50 ms of it (5 s by default).
      await redis.eval(
        "for i = 1, 400000 do redis.call('SET', ARGV[1] .. i, 'x') end return 0",
        0,
        "rb5:store:bulk:",
      );
      await redis.config("SET", "busy-reply-threshold", "50");
      // Redis gone back to older data with no connection closed (a lagging replica promoted
      // behind the same address): `P count` below what the nodes got, the epoch theirs.
      await redis.set("rb5:count", "1");
      await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);
      await until(() => rewritten(b), "node b to write its sessions again", GUARD_MS);
      assert.match(a.log() + b.log(), /Redis went back to older data/);
      const errors = await redis.info("errorstats");
      assert.match(errors, /errorstat_BUSY:count=[1-9]/, "a node was answered BUSY meanwhile");
      assert.equal(await redis.exists("rb5:store:bulk:1"), 0);
    } finally {
      await redis.quit();
    }
    for (const node of [a, b]) {
      assert.doesNotMatch(node.log(), /stopped responding|was reaped|new incarnation/);
    }
    assert.ok(live.client.connected);
    await publish(a, "t/x", "after");
    await until(() => live.on("t/x").length >= 1, "the message published on a, at b", GUARD_MS);
    assert.deepEqual(received(live, "t/x"), ["after@1"]);
    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 1, "the queued message on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1"]);
    assert.ok(live.client.connected);
  },
);

/** The value of `key` on `server` (null when gone). */
async function read(server: RedisServer, key: string): Promise<string | null> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    return await redis.get(key);
  } finally {
    await redis.quit();
  }
}

Deno.test(
  "cluster: a QoS 1 message acknowledged after the snapshot Redis went back to, with no heartbeat or registration of any node in between, reveals the rollback and is delivered when its client resumes the session on another node [MQTT-3.1.2-5] [MQTT-4.3.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // No heartbeat during the test: the store write alone must tell.
    const slow = { heartbeatInterval: 300, nodeTimeout: 600 };
    await using a = await Node.start(redis, { nodeId: "a", prefix: "rb6:", ...slow });
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1");
    const gen = await read(redis, "rb6:count");
    await redis.snapshot();
    await publish(a, "keep/x", "k2");
    assert.equal(await read(redis, "rb6:count"), gen, "no heartbeat or registration since");

    await redis.rollback();
    await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);
    assert.match(a.log(), /Redis went back to older data/);

    // A node started now loads the session from Redis, as a writes it again.
    await using b = await Node.start(redis, { nodeId: "b", prefix: "rb6:", ...slow });
    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 2, "the queued messages on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1", "k2@1"]);
  },
);

Deno.test(
  "cluster: P count deleted (as an allkeys maxmemory policy evicts it) under a running cluster is no rollback: nothing is emptied, a connected client stays and gets messages, a retained message stays [MQTT-3.3.1-5]",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using a = await Node.start(server, { nodeId: "a", prefix: "rb7:" });
    await using b = await Node.start(server, { nodeId: "b", prefix: "rb7:" });
    await using live = await Inbox.connect(b, "live-b", { cleanSession: false });
    assert.deepEqual(await live.client.subscribe([{ topic: "t/#", qos: 1 }]), [1]);
    await using pub = await Inbox.connect(a, "pub");
    await pub.client.publish("r/one", "held", { qos: 1, retain: true });
    assert.deepEqual(await retainedSet(b, "r/#"), ["r/one"]);
    const epoch = await read(server, "rb7:epoch");
    assert.notEqual(epoch, null);
    {
      const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
      await redis.connect();
      try {
        assert.equal(await redis.del("rb7:count"), 1);
      } finally {
        await redis.quit();
      }
    }
    // Each node ran a heartbeat since (with its last P count above the one counted again).
    await heartbeated(server, "rb7:", "a", "b");
    await heartbeated(server, "rb7:", "a", "b");
    assert.equal(await read(server, "rb7:epoch"), epoch);
    for (const node of [a, b]) {
      assert.doesNotMatch(node.log(), /Redis went back to older data|Redis lost its data/);
    }
    assert.ok(live.client.connected);
    assert.deepEqual(await retainedSet(a, "r/#"), ["r/one"]);
    await pub.client.publish("t/x", "after", { qos: 1 });
    await until(() => live.on("t/x").length >= 1, "the message published on a, at b", GUARD_MS);
    assert.deepEqual(received(live, "t/x"), ["after@1"]);
    assert.ok(live.client.connected);
  },
);

Deno.test(
  "cluster: after the emptying that follows Redis gone back, a node registered before it (heartbeats 300 s apart) registers again at once, and a client resumes its session there with its queued QoS 1 message [MQTT-3.1.2-5] [MQTT-4.3.2-2]",
  opts,
  async () => {
    await using server = await RedisServer.start();
    // A finds the rollback at its heartbeat; B's is 300 s away.
    await using a = await Node.start(server, {
      nodeId: "a",
      prefix: "rb8:",
      heartbeatInterval: 1,
      nodeTimeout: 600,
    });
    await using b = await Node.start(server, {
      nodeId: "b",
      prefix: "rb8:",
      heartbeatInterval: 300,
      nodeTimeout: 600,
    });
    await offlineSession(a, "keeper", "keep/#");
    await publish(a, "keep/x", "k1");
    await using live = await Inbox.connect(b, "live-b");
    assert.deepEqual(await live.client.subscribe([{ topic: "t/#", qos: 1 }]), [1]);
    // Redis went back to before A's last script, no connection closed (a lagging replica
    // promoted behind the same address): A's own counter below what A got.
    const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
    await redis.connect();
    try {
      await redis.set("rb8:gen:a", "1");
    } finally {
      await redis.quit();
    }
    await until(() => rewritten(a), "node a to write its sessions again", GUARD_MS);
    assert.match(a.log(), /Redis went back to older data/);
    await until(() => rewritten(b), "node b to register and write again", GUARD_MS);
    assert.match(b.log(), /Redis lost its data with no reconnection/);
    await using moved = await Inbox.connect(b, "keeper", { cleanSession: false });
    await until(() => moved.on("keep/x").length >= 1, "the queued message on node b", GUARD_MS);
    assert.deepEqual(received(moved, "keep/x"), ["k1@1"]);
    assert.ok(live.client.connected);
    await publish(a, "t/x", "after");
    await until(() => live.on("t/x").length >= 1, "the message published on a, at b", GUARD_MS);
    assert.deepEqual(received(live, "t/x"), ["after@1"]);
  },
);
