// Several `amqtt` processes on one redis-server act as one broker: messages published on one node
// reach subscribers on the others at the subscription's QoS, in order, RETAIN clear; the retained
// set is shared (a node started later has it); a session is owned by one node (a CONNECT on
// another takes it over); a killed node's clients' wills are published by the others; a Redis
// restart leaves local traffic going and the cluster resynchronises. Real processes, real clients
// (ours, mosquitto_pub/sub, MQTT.js).
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { RedisServer } from "../_helpers/redis.ts";
import { runTool } from "../_helpers/peers.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { Inbox, Node, retry, routeReady, until } from "./_nodes.ts";
import { delay } from "../_helpers/broker.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster of two processes: QoS 0/1/2 published on A reach B's subscriber at min(published, granted), in order, RETAIN 0 [MQTT-3.8.4-6] [MQTT-3.3.1-9]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t1:" });
    await using sub = await Inbox.connect(b, "sub");
    assert.deepEqual(await sub.client.subscribe([{ topic: "q/#", qos: 2 }, ["low/#", 0]]), [2, 0]);
    await using pub = await Inbox.connect(a, "pub");
    await routeReady(pub.client, sub, "q/probe");
    await routeReady(pub.client, sub, "low/probe");

    for (let i = 0; i < 30; i++) {
      await pub.client.publish("q/x", `m${i}`, { qos: (i % 3) as 0 | 1 | 2 });
    }
    await pub.client.publish("low/x", "two", { qos: 2 });
    await pub.client.publish("q/r", "retained", { qos: 1, retain: true });
    await until(() => sub.on("q/x").length === 30 && sub.on("q/r").length === 1, "30 messages");
    await until(() => sub.on("low/x").length === 1, "the QoS 0 subscription's message");
    // One publisher's messages keep their order across the hop [MQTT-4.6.0-6].
    assert.deepEqual(
      sub.on("q/x"),
      Array.from({ length: 30 }, (_, i) => ({ payload: `m${i}`, qos: i % 3, retain: false })),
    );
    assert.deepEqual(sub.on("low/x"), [{ payload: "two", qos: 0, retain: false }]);
    // A live delivery of a retained message carries RETAIN 0 [MQTT-3.3.1-9].
    assert.deepEqual(sub.on("q/r"), [{ payload: "retained", qos: 1, retain: false }]);
    assert.match(a.log(), /Cluster: joined as node a/);
  },
);

Deno.test(
  "cluster: a retained message published on A is delivered by a third node started later, RETAIN 1, and cleared cluster-wide by an empty retained message [MQTT-3.3.1-6] [MQTT-3.3.1-10]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t2:" });
    // mosquitto_pub publishes on A; nobody subscribes yet.
    const put = await runTool("mosquitto_pub", [
      "-p",
      String(a.port),
      "-t",
      "state/door",
      "-m",
      "open",
      "-q",
      "1",
      "-r",
    ]);
    assert.equal(put.code, 0, put.stderr);
    // B got the retained set live; C loads it from Redis when it joins.
    await using c = await Node.start(redis, { nodeId: "c", prefix: "t2:" });
    assert.match(c.log(), /Cluster: joined as node c \(other nodes: a, b\), 1 retained messages/);
    // B has it once its change announcement arrived.
    await using onB = await Inbox.connect(b, "on-b");
    await retainedArrives(onB, "state/door", "state/door");
    for (const node of [b, c]) {
      const js = await mqtt.connectAsync(node.url, {
        reconnectPeriod: 0,
        clientId: `js-${node.port}`,
      });
      try {
        const got = new Promise<{ payload: string; retain: boolean; qos: number }>((resolve) => {
          js.on(
            "message",
            (_t, payload, packet) =>
              resolve({ payload: payload.toString(), retain: packet.retain, qos: packet.qos }),
          );
        });
        await js.subscribeAsync("state/#", { qos: 1 });
        assert.deepEqual(await got, { payload: "open", retain: true, qos: 1 });
      } finally {
        await js.endAsync();
      }
    }
    // Cleared on B: no node delivers it to a new subscription any more.
    const clear = await runTool("mosquitto_pub", [
      "-p",
      String(b.port),
      "-t",
      "state/door",
      "-n",
      "-r",
      "-q",
      "1",
    ]);
    assert.equal(clear.code, 0, clear.stderr);
    await using marker = await Inbox.connect(c, "marker");
    // A later retained message on another topic, from B: once C has it, C has the clear too (one
    // publisher's changes arrive in order).
    await runTool("mosquitto_pub", ["-p", String(b.port), "-t", "state/z", "-m", "z", "-r"]);
    await retainedArrives(marker, "state/#", "state/z");
    await using again = await Inbox.connect(a, "again");
    await retainedArrives(again, "state/#", "state/z");
    assert.deepEqual(marker.on("state/door"), []);
    assert.deepEqual(again.on("state/door"), []);
    assert.ok(again.client.connected && marker.client.connected);
  },
);

Deno.test(
  "cluster: a CONNECT on node B takes the session over from node A: A closes the old connection and publishes its will",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t3:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t3:" });
    await using watcher = await Inbox.connect(a, "watcher");
    await watcher.client.subscribe([["wills/#", 1]]);
    const first = new MQTTClientWithClose(a.url, "dup");
    await first.open({ will: { topic: "wills/dup", payload: "gone", qos: 1 } });
    await using second = await Inbox.connect(b, "dup");
    assert.ok(second.client.connected);
    await first.closed;
    await until(() => watcher.on("wills/dup").length === 1, "the old connection's will");
    assert.deepEqual(watcher.on("wills/dup"), [{ payload: "gone", qos: 1, retain: false }]);
    await until(() => /dup continues on node b/.test(a.log()), "A's log line");
    await first.dispose();
  },
);

Deno.test(
  "cluster: a node killed with SIGKILL is found dead; another node publishes its client's will; the client reconnects to a live node",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t4:", nodeTimeout: 1 });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t4:" });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "t4:" });
    // mosquitto_sub on C waits for the will; it is published by B or C, whichever takes it.
    await using watcher = await Inbox.connect(c, "watcher");
    await watcher.client.subscribe([["status/#", 1]]);
    await using probeB = await Inbox.connect(b, "probe-b");
    await routeReady(probeB.client, watcher, "status/probe-b");
    const device = new MQTTClientWithClose(a.url, "device");
    await device.open({
      will: { topic: "status/device", payload: "offline", qos: 1, retain: true },
    });
    await willStored(redis, "t4:", "device");
    const waiting = runTool("mosquitto_sub", [
      "-p",
      String(c.port),
      "-t",
      "status/device",
      "-C",
      "1",
      "-q",
      "1",
      "-v",
    ], 60_000);
    await a.crash();
    const seen = await waiting;
    assert.equal(seen.code, 0, seen.stderr);
    assert.equal(seen.stdout, "status/device offline\n");
    await until(() => watcher.on("status/device").length === 1, "the will on the watcher");
    assert.deepEqual(watcher.on("status/device"), [{ payload: "offline", qos: 1, retain: false }]);
    await until(() => /node a stopped responding and was removed/.test(b.log() + c.log()), "log");
    // Published exactly once cluster-wide.
    const publishedBy = [b, c].filter((n) => /publishing the will of device/.test(n.log()));
    assert.equal(publishedBy.length, 1);
    // The device's connection died with its node; it reconnects to B.
    await device.closed;
    await device.dispose();
    await using back = await Inbox.connect(b, "device");
    assert.ok(back.client.connected);
  },
);

Deno.test(
  "cluster: Redis restarted mid-stream: each node keeps serving its local clients, logs it, reconnects, resynchronises, forwards what was published meanwhile, and routes across nodes again",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t5:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t5:" });
    await using localSub = await Inbox.connect(a, "local-sub");
    await localSub.client.subscribe([["s/#", 1]]);
    await using remoteSub = await Inbox.connect(b, "remote-sub");
    await remoteSub.client.subscribe([["s/#", 1]]);
    await using pub = await Inbox.connect(a, "pub");
    await routeReady(pub.client, remoteSub, "s/probe1");

    await redis.stop();
    await until(() => /Cluster: lost Redis/.test(a.log()), "A's log line");
    for (let i = 0; i < 5; i++) await pub.client.publish("s/local", `l${i}`, { qos: 1 });
    await until(() => localSub.on("s/local").length === 5, "local traffic while Redis is away");
    assert.deepEqual(localSub.on("s/local").map((m) => m.payload), ["l0", "l1", "l2", "l3", "l4"]);
    // What B wants waits on A (bounded) while Redis is away, and goes when it is back.
    assert.deepEqual(remoteSub.on("s/local"), []);

    // An empty Redis comes back on the same port: both nodes register again with their interest.
    await redis.resume();
    await until(() => /Redis is back: interest and sessions resynchronised/.test(a.log()), "A");
    await until(() => /Redis is back: interest and sessions resynchronised/.test(b.log()), "B");
    await until(() => remoteSub.on("s/local").length === 5, "the messages held while away");
    assert.deepEqual(remoteSub.on("s/local").map((m) => m.payload), ["l0", "l1", "l2", "l3", "l4"]);
    await routeReady(pub.client, remoteSub, "s/probe2");
    await pub.client.publish("s/after", "after", { qos: 1 });
    await until(() => remoteSub.on("s/after").length === 1, "a message across nodes again");
    assert.ok(localSub.client.connected && remoteSub.client.connected);
  },
);

/**
 * Waits until a subscription to `filter` gets the retained message of `topic`: subscribes again
 * (which resends the retained messages [MQTT-3.8.4-3]) every 50 ms until it arrives, since the
 * node learns of a change made on another node a moment later. Fails after 30 s.
 */
function retainedArrives(inbox: Inbox, filter: string, topic: string): Promise<void> {
  return retry(async () => {
    await inbox.client.subscribe([[filter, 1]]);
    await inbox.client.ping(); // the retained messages follow the SUBACK: they are in by PINGRESP
    return inbox.on(topic).length > 0;
  }, `the retained message of ${topic}`);
}

/**
 * Waits until the node that accepted `clientId` has stored its will in Redis (it does so right
 * after the CONNACK, in the background): a node killed before that takes the will with it.
 */
function willStored(redis: RedisServer, prefix: string, clientId: string): Promise<void> {
  return retry(async () => {
    const args = ["-p", String(redis.port), "hexists", `${prefix}wills`, clientId];
    return (await runTool("redis-cli", args)).stdout.trim() === "1";
  }, `the will of ${clientId} stored`);
}

/** A client whose connection's end can be awaited (taken over, or its node killed). */
class MQTTClientWithClose {
  readonly #url: string;
  readonly #clientId: string;
  #inbox: Inbox | undefined;
  closed: Promise<void> = Promise.resolve();

  constructor(url: string, clientId: string) {
    this.#url = url;
    this.#clientId = clientId;
  }

  async open(options: Parameters<typeof Inbox.connect>[2]): Promise<void> {
    this.#inbox = await Inbox.connect(this.#url, this.#clientId, options);
    const client = this.#inbox.client;
    this.closed = until(() => !client.connected, `${this.#clientId} to be disconnected`);
  }

  async dispose(): Promise<void> {
    await this.#inbox?.[Symbol.asyncDispose]();
  }
}

Deno.test(
  "cluster: $SYS/broker/cluster/… per node (its id, nodes, traffic) and cluster-wide totals; /metrics per node",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const passwords = await Deno.makeTempFile({ suffix: ".passwd" });
    await Deno.writeTextFile(passwords, `ops:${await hashPassword("secret", { rounds: 1000 })}\n`);
    await using a = await Node.start(redis, {
      nodeId: "a",
      prefix: "t6:",
      yaml: ["sys_interval: 0.2"],
      listeners: [
        "  web:",
        "    type: http",
        "    bind: 127.0.0.1:0",
        "    admins: [ops]",
        `    password_file: ${passwords}`,
      ],
    });
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix: "t6:",
      yaml: ["sys_interval: 0.2"],
    });
    await using onA = await Inbox.connect(a, "sys-a");
    await onA.client.subscribe([["$SYS/broker/cluster/#", 0]]);
    // Two clients on B, one on A: three connected cluster-wide.
    await using b1 = await Inbox.connect(b, "b1");
    await using b2 = await Inbox.connect(b, "b2");
    const last = (topic: string) => onA.on(`$SYS/broker/cluster/${topic}`).at(-1)?.payload;
    await until(() => last("clients/connected") === "3", "the cluster-wide client count");
    assert.equal(last("node_id"), "a");
    assert.equal(last("nodes"), "2");
    // $SYS stays on its node: A's subscriber never sees B's id.
    assert.ok(onA.on("$SYS/broker/cluster/node_id").every((m) => m.payload === "a"));
    assert.ok(b1.client.connected && b2.client.connected);

    const [, port] = a.log().match(/Listener "web" bound to [^:]+:(\d+)/)!;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: { authorization: `Basic ${btoa("ops:secret")}` },
    });
    const text = await response.text();
    await Deno.remove(passwords);
    assert.match(text, /^amqtt_cluster_node_info\{node="a"\} 1$/m);
    assert.match(text, /^amqtt_cluster_nodes 2$/m);
    assert.match(text, /^amqtt_cluster_ready 1$/m);
    assert.match(text, /^amqtt_cluster_forwarded_total \d+$/m);
    for (
      const name of [
        "nodes_dead",
        "sessions_adopted",
        "taken_for_dead",
        "redis_data_lost",
        "malformed",
      ]
    ) {
      assert.match(text, new RegExp(`^amqtt_cluster_${name}_total 0$`, "m"));
    }
    assert.match(text, /^amqtt_cluster_store_data_lost_total 0$/m);
  },
);

Deno.test(
  "cluster: a node without node_id is named after its host and process id",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using node = await Node.start(redis, { prefix: "t7:" });
    const id = `${Deno.hostname()}-${node.process.child.pid}`.replace(/[^\x21-\x7e]/g, "_");
    assert.ok(node.log().includes(`Cluster: joined as node ${id} (no other node)`), node.log());
  },
);

Deno.test(
  "cluster: a node restarted at once with the id of a killed one retires it first: its clients' wills are published",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // Long timeouts: the others would find the killed node dead only after a minute.
    const slow = { prefix: "t8:", nodeTimeout: 60 };
    await using b = await Node.start(redis, { ...slow, nodeId: "b" });
    await using watcher = await Inbox.connect(b, "watcher");
    await watcher.client.subscribe([["status/#", 1]]);
    await using first = await Node.start(redis, { ...slow, nodeId: "a" });
    const device = new MQTTClientWithClose(first.url, "device");
    await device.open({ will: { topic: "status/device", payload: "offline", qos: 1 } });
    await willStored(redis, "t8:", "device");
    await first.crash();
    await device.closed;
    await device.dispose();
    await using again = await Node.start(redis, { ...slow, nodeId: "a" });
    await until(() => watcher.on("status/device").length === 1, "the will");
    assert.deepEqual(watcher.on("status/device"), [{ payload: "offline", qos: 1, retain: false }]);
    assert.match(b.log(), /node a stopped responding and was removed \(1 clients\)/);
    assert.match(again.log(), /Cluster: joined as node a \(other nodes: b\)/);
  },
);

Deno.test(
  "cluster: when its Redis stays down, each node fails over to the next URL of its redis list and routing across nodes resumes there",
  opts,
  async () => {
    await using first = await RedisServer.start();
    await using second = await RedisServer.start();
    // No node dies here: a node starved past its timeout on a loaded machine would be taken for dead.
    const both = { prefix: "t9:", alternates: [second] };
    await using a = await Node.start(first, { ...both, nodeId: "a" });
    await using b = await Node.start(first, { ...both, nodeId: "b" });
    await using sub = await Inbox.connect(b, "sub");
    await sub.client.subscribe([["f/#", 1]]);
    await using pub = await Inbox.connect(a, "pub");
    await routeReady(pub.client, sub, "f/probe1");

    await first.stop(); // and it does not come back
    await until(() => /Redis is back/.test(a.log()) && /Redis is back/.test(b.log()), "failover");
    await routeReady(pub.client, sub, "f/probe2");
    await pub.client.publish("f/after", "on the second Redis", { qos: 1 });
    await until(() => sub.on("f/after").length === 1, "a message through the second Redis");
    // Both nodes registered on the second server.
    const probe = await runTool("redis-cli", ["-p", String(second.port), "smembers", "t9:nodes"]);
    assert.deepEqual(probe.stdout.trim().split("\n").sort(), ["a", "b"]);
  },
);

Deno.test(
  "cluster: retained messages survive a Redis restart without its data: the nodes restore them, share what changed meanwhile, and a node started later has them",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t10:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t10:" });
    await using pub = await Inbox.connect(a, "pub");
    await pub.client.publish("r/kept", "before", { qos: 1, retain: true });
    await using onB = await Inbox.connect(b, "on-b");
    await retainedArrives(onB, "r/kept", "r/kept");

    await redis.stop();
    await until(() => /Cluster: lost Redis/.test(a.log()), "A's log line");
    await pub.client.publish("r/away", "meanwhile", { qos: 1, retain: true });
    await pub.client.publish("r/more", "meanwhile too", { qos: 1, retain: true });
    await until(() => /r\/away was not shared/.test(a.log()), "one line for the first failure");
    assert.doesNotMatch(a.log(), /r\/more was not shared/); // the rest are counted

    await redis.resume();
    await until(
      () => /restored the \d+ retained messages this node holds/.test(a.log() + b.log()),
      "a restore",
    );
    await until(() => /2 changes failed while Redis was away; sharing them now/.test(a.log()), "A");
    // B has the change made on A while Redis was away.
    await using onB2 = await Inbox.connect(b, "on-b2");
    await retainedArrives(onB2, "r/#", "r/away");
    await retainedArrives(onB2, "r/#", "r/more");
    // A node started now loads all three from Redis.
    await using c = await Node.start(redis, { nodeId: "c", prefix: "t10:" });
    await using onC = await Inbox.connect(c, "on-c");
    await retainedArrives(onC, "r/#", "r/kept");
    await retainedArrives(onC, "r/#", "r/away");
    await retainedArrives(onC, "r/#", "r/more");
    assert.deepEqual(onC.on("r/away").at(-1), { payload: "meanwhile", qos: 1, retain: true });
    // A node's `$SYS` retained messages describe it: none was restored into the cluster's set.
    const probe = await runTool("redis-cli", ["-p", String(redis.port), "hkeys", "t10:retained"]);
    assert.deepEqual(probe.stdout.trim().split("\n").sort(), ["r/away", "r/kept", "r/more"]);
  },
);

Deno.test(
  "cluster: a node stops cleanly on SIGTERM while Redis is down (exit 0, its clients closed)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const node = await Node.start(redis, { nodeId: "a", prefix: "t11:" });
    try {
      await using client = await Inbox.connect(node, "c");
      await redis.stop();
      await until(() => /Cluster: lost Redis/.test(node.log()), "the loss noticed");
      assert.equal(await node.stop(), 0);
      assert.match(node.log(), /Broker stopped/);
      await until(() => !client.client.connected, "the client's connection closed");
    } finally {
      await node[Symbol.asyncDispose]();
    }
  },
);

Deno.test(
  "cluster: the SUBACK of a filter new on a node comes once the other nodes know it: a message published on another node right after it arrives, with no probe",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "t12:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "t12:" });
    await using sub = await Inbox.connect(b, "sub");
    await using pub = await Inbox.connect(a, "pub");
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await sub.client.subscribe([[`fresh/${i}/#`, 1]]), [1]);
      await pub.client.publish(`fresh/${i}/x`, `m${i}`, { qos: 1 });
    }
    await until(() => sub.messages.length === 20, "a message for each new subscription");
    assert.deepEqual(
      sub.messages.map((m) => m.topic),
      Array.from({ length: 20 }, (_, i) => `fresh/${i}/x`),
    );
  },
);

Deno.test(
  "cluster: a persistent session stays owned by its node while offline and is released cluster-wide when it expires",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, {
      nodeId: "a",
      prefix: "t13:",
      yaml: ["session_expiry_interval: 1"],
    });
    const owner = async () =>
      (await runTool("redis-cli", ["-p", String(redis.port), "hget", "t13:owner", "p"])).stdout
        .trim();
    const client = await Inbox.connect(a, "p", { cleanSession: false });
    await client.client.subscribe([["p/#", 1]]);
    for (let i = 0; i < 600 && await owner() !== "a"; i++) await delay(20);
    assert.equal(await owner(), "a");
    await client[Symbol.asyncDispose]();
    // Offline, the session is still this node's (a CONNECT elsewhere must take it over).
    assert.equal(await owner(), "a");
    for (let i = 0; i < 600 && await owner() !== ""; i++) await delay(50);
    assert.equal(await owner(), "", "released after the session expired");
  },
);
