// A login on a node that was reaped and has not heard of it yet (its next heartbeat is to come):
// its claim of the session is refused in Redis (AMQTT_FENCED). A client resuming its session is
// then refused as server busy, and comes back once the node registered again. Before, the login
// went on with an empty session whose first write the fence refused: the client was closed
// with no CONNACK at all. Real processes, redis-server, a byte-level 5.0 client.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { acl, adopted, eventually, Node, type NodeOptions, until } from "./_nodes.ts";
import { leaveWithQueued, resumeConnect, resumeQueued } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** The CONNECT of the client `sub`, whose session (5.0, kept 600 s) the tests resume. */
const CONNECT = resumeConnect("sub", 5);

/** A node that learns of its reap from its next heartbeat, 20 s away: logins come before it. */
function lateNode(nodeId: string, prefix: string): NodeOptions {
  return { nodeId, prefix, nodeTimeout: 60, heartbeatInterval: 20 };
}

/**
 * `sub`'s login on `node` is refused as server busy (the node is joining again), with Session
 * Present 0, and the connection closed [MQTT-3.2.2-4].
 */
async function refusedBusy(node: Node): Promise<void> {
  await using early = await TestClient.open(node.port, { protocolVersion: 5 });
  const connack = await early.handshake(CONNECT);
  assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY, "refused as server busy");
  assert.equal(
    connack.properties?.reasonString,
    "session not loaded: this node is joining the cluster again",
    "its own reason, not a Redis timeout",
  );
  assert.equal(connack.sessionPresent, false);
  await early.expectClosed();
}

/** What `startNodes` starts; disposing it stops all of it, the last started first. */
interface Nodes extends AsyncDisposable {
  redis: RedisServer;
  /** The node that learns of its reap late (`lateNode`). */
  a: Node;
  /** The node holding `sub`'s session, with a message (`queued`) for it. */
  b: Node;
  /** The other nodes asked for, in that order. */
  more: Node[];
  /** A connection of the test's own to Redis. */
  admin: Redis;
}

/**
 * Starts node A, late to learn of its reap, node B (and `more` nodes, taken for dead after 60 s
 * too) under `prefix`, and leaves `sub`'s session on B with the message `queued` for it.
 */
async function startNodes(prefix: string, ...more: string[]): Promise<Nodes> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const a = stack.use(await Node.start(redis, lateNode("a", prefix)));
  const b = stack.use(await Node.start(redis, { nodeId: "b", prefix, nodeTimeout: 60 }));
  const others: Node[] = [];
  for (const nodeId of more) {
    others.push(stack.use(await Node.start(redis, { nodeId, prefix, nodeTimeout: 60 })));
  }
  await leaveWithQueued(b, "sub", 5, "queued");
  const admin = new Redis(redis.url, { lazyConnect: true });
  stack.defer(() => admin.disconnect());
  await admin.connect();
  const rest = stack.move();
  return {
    redis,
    a,
    b,
    more: others,
    admin,
    [Symbol.asyncDispose]: () => rest.disposeAsync(),
  };
}

Deno.test(
  "cluster: a client resuming its session on a node reaped unawares (its claim fenced) is refused as server busy (not accepted on an empty session), and resumes it once the node registered again [MQTT-3.2.2-2] [MQTT-3.2.2-4]",
  opts,
  async () => {
    const prefix = "fl1:";
    // A learns of its reap from its next heartbeat, seconds away: the login comes before it.
    await using nodes = await startNodes(prefix);
    const { a, admin } = nodes;
    const key = `${prefix}inc:a`;
    const first = await admin.get(key);
    assert.ok(first !== null && first !== "reaped");
    // Reaped as far as Redis is concerned (what the reaping script writes), unknown to A.
    await admin.set(key, "reaped");
    // Refused as busy, not left unanswered; its own reason, not a Redis timeout.
    await refusedBusy(a);
    // The refused claim made A check at once: it registered again as a new incarnation.
    await until(() => /joined again as a new incarnation/.test(a.log()), "A registered again");
    const now = await admin.get(key);
    assert.ok(now !== null && now !== "reaped" && now !== first, `${now}`);
    await resumeQueued(a.port, "sub", 5, "queued");
  },
);

Deno.test(
  "cluster: a client resuming its session on a node registered again after its step-down but not ready yet is refused as server busy, not given an empty session (Session Present 0) that takes the stored one over, and resumes it once the node, trying its registration again at its heartbeat, is ready [MQTT-3.2.2-2] [MQTT-3.2.2-4]",
  opts,
  async () => {
    const prefix = "fl2:";
    await using nodes = await startNodes(prefix);
    const { redis, a, admin } = nodes;
    try {
      const key = `${prefix}inc:a`;
      const first = await admin.get(key);
      // A's registration after its step-down stops half-way (it cannot read the other nodes'
      // shared-group members): registered as a new incarnation, not ready.
      await acl(redis, "-hgetall");
      await admin.set(key, "reaped");
      {
        // A login's claim, refused, makes A check: it steps down and registers again.
        await using trigger = await TestClient.open(a.port, { protocolVersion: 5 });
        await trigger.handshake({ clientId: "trigger", clean: true, protocolVersion: 5 })
          .catch(() => undefined);
      }
      await until(() => /this node was taken for dead by the others/.test(a.log()), "step-down");
      let now: string | null = null;
      for (let i = 0; i < 1500 && (now === null || now === "reaped" || now === first); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        now = await admin.get(key);
      }
      assert.ok(now !== null && now !== "reaped" && now !== first, "registered again");
      assert.doesNotMatch(a.log(), /joined again as a new incarnation/, "not ready yet");
      // Refused, not given an empty session.
      await refusedBusy(a);
      // The registration is tried again at A's next heartbeat, Redis still connected.
      await acl(redis, "+hgetall");
      await until(() => /joined again as a new incarnation/.test(a.log()), "A ready again");
    } finally {
      await acl(redis, "+hgetall").catch(() => {});
    }
    await resumeQueued(a.port, "sub", 5, "queued");
  },
);

Deno.test(
  "cluster: a login whose claim was made before its node was reaped, and that waits for the previous owner's handover past the step-down, is refused as server busy rather than restored next to the adopter's copy [MQTT-3.2.2-2]",
  opts,
  async () => {
    const prefix = "fl3:";
    await using nodes = await startNodes(prefix, "c");
    const { a, b, admin, more: [c] } = nodes;
    let stopped = false;
    try {
      // B, which keeps the session, answers no takeover for a while: A's login waits for it.
      b.process.kill("SIGSTOP");
      stopped = true;
      await using early = await TestClient.open(a.port, { protocolVersion: 5 });
      const handshake = early.handshake(CONNECT);
      handshake.catch(() => {});
      let owner: string | null = null;
      for (let i = 0; i < 1500 && owner !== "a"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        owner = await admin.hget(`${prefix}owner`, "sub");
      }
      assert.equal(owner, "a", "A claimed the session");
      // Meanwhile A is taken for dead: C reaps it and adopts the session; A steps down. B, only
      // paused, is alive (its liveness key holds for its node timeout) and still writes the
      // session (the writer mark of A's claim): C waits for B's handoff before it loads, so that
      // what B wrote last is in the session.
      await admin.del(`${prefix}alive:a`);
      await until(
        () => /node b still writes the session of sub, adopted from node a/.test(c.log()),
        "C waiting for B's handoff",
      );
      await until(() => /taken for dead by the others/.test(a.log()), "A stepping down", 60_000);
      assert.ok(!adopted(c.log(), "sub"), "not loaded on C while B may still write it");
      b.process.kill("SIGCONT");
      stopped = false;
      // B goes on: it hands the session over (to A, and to C, its owner now), and C loads it.
      await until(() => adopted(c.log(), "sub"), "C adopting the session");
      const connack = await handshake;
      assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY, "not restored on A as well");
      assert.equal(
        connack.properties?.reasonString,
        "session not loaded: this node was taken for dead while it loaded the session",
      );
      assert.equal(connack.sessionPresent, false);
      await early.expectClosed();
    } finally {
      if (stopped) b.process.kill("SIGCONT");
    }
    // Its next login finds the session where it is now (on C), brought to A with what is queued.
    await until(() => /joined again as a new incarnation/.test(a.log()), "A ready again", 60_000);
    await resumeQueued(a.port, "sub", 5, "queued");
  },
);

Deno.test(
  "cluster: a client resuming its session on a node that learnt of its reap from a refused store write, and cannot register again yet (its bus not ready), is refused as server busy, not served an empty provisional session with Session Present 0 [MQTT-3.2.2-2] [MQTT-3.2.2-4]",
  opts,
  async () => {
    const prefix = "fl4:";
    await using nodes = await startNodes(prefix);
    const { redis, a, admin } = nodes;
    try {
      // A persistent client on A, whose next store write the fence refuses.
      await using writer = await TestClient.connect(a.port, resumeConnect("w", 5));
      // A's registration again stops before it registers (it cannot write its members, MULTI):
      // its bus is not ready, and has not told that it was reaped.
      await acl(redis, "-multi");
      await admin.call("ACL", "LOG", "RESET");
      await admin.set(`${prefix}inc:a`, "reaped");
      // No SUBACK: the commit it waits for is refused, and the client closed as taken over.
      await writer.send({
        type: PacketType.SUBSCRIBE,
        packetId: 1,
        subscriptions: [{ topic: "w/x", qos: 1 }],
        properties: {},
      });
      await until(
        () =>
          /taken for dead by the others \(a write to the shared store was refused/.test(a.log()),
        "A stepping down from the refused write",
      );
      // The step-down checks at once (a heartbeat): reaped, A tries to register again, refused.
      await eventually(async () => {
        const log = (await admin.call("ACL", "LOG")) as unknown[][];
        return log.some((entry) => entry.map(String).includes("multi"));
      }, "A's registration again stopped");
      assert.doesNotMatch(a.log(), /joined again as a new incarnation/, "not ready yet");
      // Before: "Redis is unreachable", served provisionally with Session Present 0 while its
      // session (and the queued message) is on B.
      await refusedBusy(a);
      assert.doesNotMatch(a.log(), /sub is served with a provisional session/);
      await acl(redis, "+multi");
      await until(() => /joined again as a new incarnation/.test(a.log()), "A ready again", 60_000);
    } finally {
      await acl(redis, "+multi").catch(() => {});
    }
    await resumeQueued(a.port, "sub", 5, "queued");
  },
);
