// The cluster-wide $SYS totals of counters (messages, bytes, drops) never go down: what a node
// counted stays in them after it leaves, dies or is taken for dead (the script removing it adds
// its last share to `P departed`), and is counted once when a node taken for dead comes back as a
// new incarnation; gauges (clients connected) are of the live nodes only. Monitoring takes a
// counter that goes down for a restart. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { Inbox, Node, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SYS = ["sys_interval: 0.2"];

/** Publishes `count` QoS 1 messages from a client of `node` (its PUBLISH packets are counted there). */
async function publishOn(node: Node, clientId: string, count: number): Promise<void> {
  await using publisher = await Inbox.connect(node, clientId);
  for (let i = 0; i < count; i++) await publisher.client.publish("st/x", String(i), { qos: 1 });
}

/** The values of `$SYS/broker/cluster/NAME` that `watcher` received, as numbers, in order. */
function seen(watcher: Inbox, name: string): number[] {
  return watcher.on(`$SYS/broker/cluster/${name}`).map((m) => Number(m.payload));
}

/** Waits until `watcher` received `more` further values of `$SYS/broker/cluster/NAME`. */
async function further(watcher: Inbox, name: string, more: number): Promise<void> {
  const now = seen(watcher, name).length;
  await until(() => seen(watcher, name).length >= now + more, `${more} more ${name}`);
}

function assertNeverDown(values: number[], name: string): void {
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i] >= values[i - 1], `${name} went down: ${values.join(" ")}`);
  }
}

Deno.test(
  "cluster: $SYS/broker/cluster/… totals of counters keep what a node counted after it leaves or dies; clients/connected drops",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const options = { prefix: "st1:", yaml: SYS };
    await using b = await Node.start(redis, { ...options, nodeId: "b" });
    await using watcher = await Inbox.connect(b, "watcher");
    await watcher.client.subscribe([["$SYS/broker/cluster/#", 0]]);
    const last = (name: string) => seen(watcher, name).at(-1);
    const received = "messages/publish/received";

    // C leaves (SIGTERM) once its 3 messages are in the totals.
    const c = await Node.start(redis, { ...options, nodeId: "c" });
    try {
      await publishOn(c, "pub-c", 3);
      await until(() => last(received) === 3, "C's messages in the totals");
    } finally {
      assert.equal(await c.stop(), 0);
      await Deno.remove(c.config);
    }
    await until(() => last("nodes") === 1, "C gone from B's view");
    await further(watcher, received, 3);
    assert.equal(last(received), 3);

    // A dies (SIGKILL) once its 5 messages are in the totals: B reaps it.
    await using a = await Node.start(redis, { ...options, nodeId: "a", nodeTimeout: 1 });
    await using _onA = await Inbox.connect(a, "on-a");
    await publishOn(a, "pub-a", 5);
    await until(() => last(received) === 8, "A's messages in the totals");
    await until(() => last("clients/connected") === 2, "A's client in the totals");
    await a.crash();
    await until(() => last("node/nodes-dead") === 1, "B reaping A");
    await further(watcher, received, 3);
    assert.equal(last(received), 8);
    assertNeverDown(seen(watcher, received), received);
    assertNeverDown(seen(watcher, "clients/total"), "clients/total");
    // A gauge: of the live nodes only (B's watcher).
    await until(() => last("clients/connected") === 1, "A's client gone from the totals");
    assert.ok(watcher.client.connected);
  },
);

Deno.test(
  "cluster: a node taken for dead and back as a new incarnation is counted once in the $SYS totals of counters",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const options = { prefix: "st2:", yaml: SYS };
    await using b = await Node.start(redis, { ...options, nodeId: "b" });
    await using watcher = await Inbox.connect(b, "watcher");
    await watcher.client.subscribe([["$SYS/broker/cluster/#", 0]]);
    const last = (name: string) => seen(watcher, name).at(-1);
    const received = "messages/publish/received";
    // A is found dead 5 s after its last heartbeat (B only after 30 s): short enough for the
    // test, long enough that A, loaded, is not taken for dead again after it resumes.
    await using a = await Node.start(redis, { ...options, nodeId: "a", nodeTimeout: 5 });
    await publishOn(a, "pub-a", 5);
    await until(() => last(received) === 5, "A's messages in the totals");
    let resumed = false;
    try {
      a.process.kill("SIGSTOP");
      await until(() => last("node/nodes-dead") === 1, "B reaping A");
      a.process.kill("SIGCONT");
      resumed = true;
    } finally {
      if (!resumed) a.process.kill("SIGCONT");
    }
    await until(
      () => /joined again as a new incarnation of this node/.test(a.log()),
      "A registered again",
    );
    await until(() => last("nodes") === 2, "A back in B's view");
    // Two more on A: its new incarnation shares what it counted since, not its 5 again.
    await publishOn(a, "pub-a2", 2);
    await until(() => (last(received) ?? 0) >= 7, "A's new messages in the totals");
    // A few more rounds of every node's shares: it stays 7.
    await delay(1000);
    await further(watcher, received, 3);
    assert.equal(last(received), 7, seen(watcher, received).join(" "));
    assertNeverDown(seen(watcher, received), received);
    assert.equal(
      (a.log().match(/this node was taken for dead by the others/g) ?? []).length,
      1,
      "A taken for dead once",
    );
    assert.ok(watcher.client.connected);
  },
);

Deno.test(
  "cluster: a node that leaves shares what it counted since its last share first: the $SYS totals of counters keep it",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const prefix = "st3:";
    await using b = await Node.start(redis, { prefix, yaml: SYS, nodeId: "b" });
    await using watcher = await Inbox.connect(b, "watcher");
    await watcher.client.subscribe([["$SYS/broker/cluster/#", 0]]);
    const last = (name: string) => seen(watcher, name).at(-1);
    const received = "messages/publish/received";
    // C shares at its `$SYS` interval, an hour: its 4 messages are counted after its last share.
    const c = await Node.start(redis, { prefix, yaml: ["sys_interval: 3600"], nodeId: "c" });
    try {
      await until(() => last("nodes") === 2, "C in B's view");
      await publishOn(c, "pub-c", 4);
    } finally {
      assert.equal(await c.stop(), 0);
      await Deno.remove(c.config);
    }
    await until(() => last("nodes") === 1, "C gone from B's view");
    await until(() => last(received) === 4, "C's messages in the totals after it left");
    await further(watcher, received, 3);
    assert.equal(last(received), 4);
    assert.ok(watcher.client.connected);
  },
);
