// What becomes of the messages a clean shared-group member held when its session ends on a node
// with no other member of the group: they go to a member on another node (MQTT 5.0 on shared
// subscriptions: if the member's session ends before it acknowledged a QoS 1 message, the server
// SHOULD send it to another member), as one broker hands them to another local member
// (shared_redelivery.ts); a QoS 2 message whose delivery began goes to no other member
// [MQTT-4.8.2-5]. Real processes on a redis-server; the publishing node is the test's bus `p`,
// writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import type { ClusterBus } from "../../src/cluster/cluster_bus.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SHARE = "$share/g/s/#";

/** A message for the group, as the publishing node `p` sends it to the node it chose. */
function chosen(body: string, seq: number, qos: 1 | 2): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    shares: [SHARE],
    message: { topic: "s/x", payload: new TextEncoder().encode(body), qos, retain: false },
  });
}

/** The nodes with members of the group, as `p` sees them. */
function groupNodes(p: ClusterBus): string {
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) for (const n of p.chooseShares("s/x")?.keys() ?? []) seen.add(n);
  return [...seen].sort().join(",");
}

Deno.test(
  "cluster: the QoS 1 messages a clean group member did not acknowledge go to a member on another node when its session ends on a node with no other member; a QoS 2 one whose delivery began does not [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "sep1:";
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    await using c = await Node.start(redis, { nodeId: "c", prefix });
    await using p = await startBus(redis, "p", { prefix, livenessTtl: 60_000 });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    try {
      // B's member: a clean session that never acknowledges anything by itself.
      const memberB = await TestClient.connect(b.port, { clientId: "member-b" });
      assert.deepEqual((await memberB.subscribe({ [SHARE]: 2 })).reasonCodes, [2]);
      await using memberC = await Inbox.connect(c, "member-c");
      assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
      await until(() => groupNodes(p) === "b,c", "both nodes in the group");
      const stream = `${prefix}s:b`;
      await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 2 begun", 1, 2)));
      await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 1 unacknowledged", 2, 1)));
      const got = [
        await memberB.expect(PacketType.PUBLISH),
        await memberB.expect(PacketType.PUBLISH),
      ];
      assert.deepEqual(got.map((m) => [text(m), m.qos]), [
        ["QoS 2 begun", 2],
        ["QoS 1 unacknowledged", 1],
      ]);
      const pending = async () => (await r.xpending(stream, "r") as [number])[0];
      await waitFor(async () => await pending() === 1, 30_000, "the QoS 1 entry held");
      // The member leaves with neither answered: its clean session ends, B has no other member.
      await memberB.disconnect();
      await until(
        () => memberC.on("s/x").some((m) => m.payload === "QoS 1 unacknowledged"),
        "C's member to get the message B's member never acknowledged",
      );
      // Passed on in the order B's session held them: the QoS 2 one would be here first.
      assert.deepEqual(memberC.on("s/x").map((m) => m.payload), ["QoS 1 unacknowledged"]);
      // Once passed, B lets its stream entry go.
      await waitFor(async () => await pending() === 0, 30_000, "the entry acknowledged");
      assert.ok(memberC.client.connected);
    } finally {
      r.disconnect();
    }
  },
);

Deno.test(
  "cluster: a clean group member's unacknowledged QoS 1 message stays with the other members on its node when its session ends there",
  opts,
  async () => {
    const prefix = "sep2:";
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    await using c = await Node.start(redis, { nodeId: "c", prefix });
    await using p = await startBus(redis, "p", { prefix, livenessTtl: 60_000 });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    try {
      const memberB = await TestClient.connect(b.port, { clientId: "member-b" });
      assert.deepEqual((await memberB.subscribe({ [SHARE]: 1 })).reasonCodes, [1]);
      await using memberC = await Inbox.connect(c, "member-c");
      assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
      await until(() => groupNodes(p) === "b,c", "both nodes in the group");
      // A second member on B, connected after the message went to the first one.
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("unacknowledged", 1, 1)));
      assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "unacknowledged");
      await using otherB = await Inbox.connect(b, "other-b");
      assert.deepEqual(await otherB.client.subscribe([[SHARE, 1]]), [1]);
      await memberB.disconnect();
      await until(
        () => otherB.on("s/x").some((m) => m.payload === "unacknowledged"),
        "B's other member to get it",
      );
      // Not also on C (it went to B's member once): a message chosen for C after it, from p,
      // arrives there alone.
      await r.xadd(`${prefix}s:c`, "*", "f", Buffer.from(chosen("for C", 2, 1)));
      await until(() => memberC.on("s/x").some((m) => m.payload === "for C"), "C's message");
      assert.deepEqual(memberC.on("s/x").map((m) => m.payload), ["for C"]);
      assert.ok(memberC.client.connected && otherB.client.connected);
    } finally {
      r.disconnect();
    }
  },
);

Deno.test(
  "cluster: a QoS 2 message a clean group member's session never sent (queued behind its receive maximum) goes to a member on another node with its unacknowledged QoS 1 one when the session ends on a node with no other member",
  opts,
  async () => {
    const prefix = "sep3:";
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    await using c = await Node.start(redis, { nodeId: "c", prefix });
    await using p = await startBus(redis, "p", { prefix, livenessTtl: 60_000 });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    try {
      // One message in flight at a time [MQTT-3.3.4-9].
      const memberB = await TestClient.connect(b.port, {
        clientId: "member-b",
        protocolVersion: 5,
        properties: { receiveMaximum: 1 },
      });
      assert.deepEqual((await memberB.subscribe({ [SHARE]: 2 })).reasonCodes, [2]);
      await using memberC = await Inbox.connect(c, "member-c");
      assert.deepEqual(await memberC.client.subscribe([[SHARE, 2]]), [2]);
      await until(() => groupNodes(p) === "b,c", "both nodes in the group");
      const stream = `${prefix}s:b`;
      await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 1 in flight", 1, 1)));
      await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 2 queued", 2, 2)));
      assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "QoS 1 in flight");
      // B read both (its group's last id is the second entry): the second waits in the queue.
      const read = async () => {
        const groups = await r.xinfo("GROUPS", stream) as unknown[][];
        const fields = groups[0]!;
        return String(fields[fields.indexOf("last-delivered-id") + 1]);
      };
      const last = (await r.xrevrange(stream, "+", "-", "COUNT", 1))[0]![0];
      await waitFor(async () => await read() === last, 30_000, "B to have read both");
      await memberB.disconnect();
      await until(
        () => memberC.on("s/x").length === 2,
        "C's member to get both messages B's session held",
      );
      assert.deepEqual(memberC.on("s/x").map((m) => [m.payload, m.qos]), [
        ["QoS 1 in flight", 1],
        ["QoS 2 queued", 2],
      ]);
      assert.ok(memberC.client.connected);
    } finally {
      r.disconnect();
    }
  },
);
