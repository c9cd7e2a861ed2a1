// What an operator needs to see of the cluster's state changes, in $SYS per node: another node
// found dead, the sessions this node adopted from it (with one summary line in the log), and
// Redis found without its data, by the bus (the cluster's keys) and by the store (the sessions').
// Real processes and redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: $SYS/broker/cluster/node/… counts the nodes found dead, the sessions adopted and Redis's data losses on each node",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "of1:", nodeTimeout: 1 });
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix: "of1:",
      yaml: ["sys_interval: 0.2"],
    });
    for (const clientId of ["orphan1", "orphan2"]) {
      await using mover = await Inbox.connect(a, clientId, { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "o/#", qos: 1 }]), [1]);
    }
    await using watcher = await Inbox.connect(b, "watcher");
    await watcher.client.subscribe([["$SYS/broker/cluster/node/#", 0]]);
    const last = (name: string) => watcher.on(`$SYS/broker/cluster/node/${name}`).at(-1)?.payload;
    await until(() => last("nodes_dead") !== undefined, "B's first figures");
    for (const name of ["nodes_dead", "sessions_adopted", "redis_data_lost", "store_data_lost"]) {
      assert.equal(last(name), "0", name);
    }

    await a.crash();
    await until(() => last("sessions_adopted") === "2", "B's adoptions in $SYS");
    assert.equal(last("nodes_dead"), "1");
    assert.match(b.log(), /Cluster: adopted 2 of the 2 sessions node a owned/);

    // Emptied under B: no connection closes; the bus's heartbeat finds it, and the store.
    const other = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await other.connect();
    try {
      await other.flushall();
    } finally {
      await other.quit();
    }
    await until(
      () => last("redis_data_lost") === "1" && last("store_data_lost") === "1",
      "B's data-loss figures",
    );
    assert.equal(last("taken_for_dead"), "0");
    assert.ok(watcher.client.connected);
  },
);

Deno.test(
  "cluster: $SYS/broker/cluster/node/taken_for_dead counts the times the other nodes took this node for dead",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, {
      nodeId: "a",
      prefix: "of2:",
      nodeTimeout: 1,
      yaml: ["sys_interval: 0.2"],
    });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "of2:" });
    let resumed = false;
    try {
      // A stops (its event loop blocked) until B has reaped it, then goes on and learns of it.
      a.process.kill("SIGSTOP");
      await until(() => /node a stopped responding/.test(b.log()), "B reaping A");
      a.process.kill("SIGCONT");
      resumed = true;
      await until(() => /joined again as a new incarnation/.test(a.log()), "A joining again");
    } finally {
      if (!resumed) a.process.kill("SIGCONT");
    }
    await using watcher = await Inbox.connect(a, "watcher");
    await watcher.client.subscribe([["$SYS/broker/cluster/node/taken_for_dead", 0]]);
    const last = () => watcher.on("$SYS/broker/cluster/node/taken_for_dead").at(-1)?.payload;
    await until(() => last() !== undefined && last() !== "0", "A's figure");
    // Once per incarnation reaped: as many as its log lines (more than one only when A, loaded,
    // was taken for dead again).
    const lines = a.log().match(/this node was taken for dead by the others/g) ?? [];
    assert.ok(Number(last()) >= 1 && Number(last()) <= lines.length, `${last()} / ${lines.length}`);
  },
);
