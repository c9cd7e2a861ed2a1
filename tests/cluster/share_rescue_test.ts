// What the node that reaps a dead node passes on from the dead node's stream for its shared
// groups: what the dead node had no member to deliver to when it read it, or never read, goes to
// a member elsewhere; what it had delivered to a member that left afterwards does not go to a
// second one. The reaper decides from what the dead node wrote to Redis (its interest, and the
// point of its stream where a group's last member left it), not from its own view of the dead
// node, which may lag. Real processes on a redis-server, the dead node killed with SIGKILL; the
// publishing node is the test, writing frames into the dead node's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import type { ClusterBus } from "../../src/cluster/cluster_bus.ts";
import { adopted, Inbox, Node, until } from "./_nodes.ts";
import { startBus } from "./_bus_helpers.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff } from "./_away.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SHARE = "$share/g/s/#";

/** Payloads of the messages `inbox` got on `topic`. */
const payloads = (inbox: Inbox, topic: string) => inbox.on(topic).map((m) => m.payload);

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

/** A message for groups `shares`, as the publishing node `p` sends it to the node it chose. */
function chosenFor(body: string, seq: number, shares: string[]): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    shares,
    message: { topic: "s/x", payload: new TextEncoder().encode(body), qos: 1, retain: false },
  });
}

/** The nodes with members of the group, as `p` sees them. */
function groupNodes(p: ClusterBus): string {
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) for (const n of p.chooseShares("s/x")?.keys() ?? []) seen.add(n);
  return [...seen].sort().join(",");
}

/** A plain Redis client for the test's own writes, closed at the end of `body`. */
async function withRedis(redis: RedisServer, body: (r: Redis) => Promise<void>): Promise<void> {
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await r.connect();
  try {
    await body(r);
  } finally {
    r.disconnect();
  }
}

/** Redis, nodes B and C, and the bus of the publishing node P; disposing it stops them all. */
interface Nodes extends AsyncDisposable {
  redis: RedisServer;
  /** B's way to Redis, when started `proxied`. */
  proxy: StallProxy | undefined;
  b: Node;
  c: Node;
  p: ClusterBus;
}

/**
 * Starts the nodes under `prefix`: B is taken for dead 1 s after it dies; `proxied`, B reaches
 * Redis through a {@linkcode StallProxy} and its outage is shorter than its node timeout (10 s).
 */
async function startNodes(prefix: string, proxied = false): Promise<Nodes> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const proxy = proxied ? stack.use(new StallProxy(redis.port)) : undefined;
  const b = stack.use(
    await Node.start(proxy ?? redis, { nodeId: "b", prefix, nodeTimeout: proxied ? 10 : 1 }),
  );
  const c = stack.use(await Node.start(redis, { nodeId: "c", prefix }));
  const p = stack.use(await startBus(redis, "p", { prefix, livenessTtl: 60_000 }));
  const rest = stack.move();
  return { redis, proxy, b, c, p, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/** A clean member of the group on B and one on C; disposing it disconnects them. */
interface Members extends AsyncDisposable {
  memberB: Inbox;
  memberC: Inbox;
}

/** Clean members of the group on B and on C, subscribed at `qos`, once P sees both in it. */
async function twoMembers(nodes: Nodes, qos: 1 | 2): Promise<Members> {
  await using stack = new AsyncDisposableStack();
  const memberB = stack.use(await Inbox.connect(nodes.b, "member-b"));
  const memberC = stack.use(await Inbox.connect(nodes.c, "member-c"));
  assert.deepEqual(await memberB.client.subscribe([[SHARE, qos]]), [qos]);
  assert.deepEqual(await memberC.client.subscribe([[SHARE, qos]]), [qos]);
  await until(() => groupNodes(nodes.p) === "b,c", "both nodes in the group");
  const rest = stack.move();
  return { memberB, memberC, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/**
 * Once Redis knows that B's group has no persistent member, B dies, and a QoS 1 message chosen
 * for B by a node that had not found it dead yet lands in B's stream (so acknowledged to its
 * publisher [MQTT-4.3.2-1]), never read there. With no session of the group left to adopt, the
 * message goes to `memberC`, C's member, and nothing else does; `memberC` stays connected.
 */
async function diesWithNoPersistentMember(
  nodes: Nodes,
  prefix: string,
  memberC: Inbox,
): Promise<void> {
  await withRedis(nodes.redis, async (r) => {
    await waitFor(
      async () => await r.sismember(`${prefix}durable:b`, SHARE) === 0,
      30_000,
      "Redis to know B's group has no persistent member",
    );
    await nodes.b.crash();
    await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("chosen B", 1, 1)));
  });
  await until(() => payloads(memberC, "s/x").includes("chosen B"), "C's member to get it");
  assert.deepEqual(payloads(memberC, "s/x"), ["chosen B"]);
  assert.ok(memberC.client.connected);
}

Deno.test(
  "cluster: a reaper that never heard the dead node's last group member leave still passes on the QoS 1 message the dead node had no member for",
  opts,
  async () => {
    const prefix = "srs1:";
    await using nodes = await startNodes(prefix);
    const { redis, b } = nodes;
    await using members = await twoMembers(nodes, 1);
    const { memberC } = members;
    await b.crash();
    await withRedis(redis, async (r) => {
      // B's member left just before B died, and C never heard of it (the announcement lost with
      // B): Redis has what B's leave wrote (its interest without the group, and the last entry
      // it had read then: none), C's view still has B in the group.
      await r.multi().srem(`${prefix}interest:b`, SHARE).hset(`${prefix}left:b`, SHARE, "0-0")
        .exec();
      // Acknowledged to its publisher once in B's stream (chosen by a node that had not heard
      // the leave either); B never read it.
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("chosen B", 1, 1)));
    });
    // C reaps B and passes on what B had no member for [MQTT-4.3.2-1]: Redis says B had none.
    await until(() => payloads(memberC, "s/x").includes("chosen B"), "C's member to get it");
    assert.deepEqual(payloads(memberC, "s/x"), ["chosen B"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a QoS 2 message a dead node delivered to a group member that left afterwards is not passed on to another member, what came after the leave is",
  opts,
  async () => {
    const prefix = "srs2:";
    await using nodes = await startNodes(prefix);
    const { redis, b, p } = nodes;
    await using members = await twoMembers(nodes, 2);
    const { memberB, memberC } = members;
    await withRedis(redis, async (r) => {
      // Chosen for B while its member was there: B delivers it to that member.
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("delivered by B", 1, 2)));
      await until(() => payloads(memberB, "s/x").includes("delivered by B"), "B's member");
      // The member leaves; everyone hears of it. Its entry is still in B's stream (the last
      // one read), then B dies.
      await memberB.client.unsubscribe([SHARE]);
      await until(() => groupNodes(p) === "c", "only C in the group");
      await b.crash();
      // Chosen for B by a node that had not heard the leave, after it: B never read it.
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("after the leave", 2, 2)));
    });
    // C reaps B and passes on, in the order of B's stream, what B had no member for; the
    // message B delivered is not delivered again: once per group, exactly once at QoS 2.
    await until(
      () => payloads(memberC, "s/x").includes("after the leave"),
      "C's member to get what came after the leave",
    );
    assert.deepEqual(payloads(memberC, "s/x"), ["after the leave"]);
    assert.deepEqual(payloads(memberB, "s/x"), ["delivered by B"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a QoS 1 message sent to a dead node for its clean group members, never read there, reaches a member on another node; one it had delivered does not",
  opts,
  async () => {
    const prefix = "srs3:";
    await using nodes = await startNodes(prefix);
    const { redis, b } = nodes;
    await using members = await twoMembers(nodes, 1);
    const { memberB, memberC } = members;
    await withRedis(redis, async (r) => {
      // Chosen for B: its clean member has it and acknowledged it, and Redis was told (until
      // then the entry is pending: had B died first, the message would go to another member,
      // share_unfinished_test.ts). Its entry stays in B's stream (the last read).
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("delivered by B", 1, 1)));
      await until(() => payloads(memberB, "s/x").includes("delivered by B"), "B's member");
      await waitFor(
        async () => (await r.xpending(`${prefix}s:b`, "r") as [number])[0] === 0,
        30_000,
        "B to tell Redis its member acknowledged it",
      );
      await b.crash();
      // Chosen for B by a node that had not found it dead yet (its detection time): in B's
      // stream, so acknowledged to its publisher [MQTT-4.3.2-1], and never read. B's member's
      // session ended with B: the message goes to another member of the group, as one whose
      // chosen member's session ended before it was sent (MQTT 5.0, shared subscriptions).
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("chosen B", 2, 1)));
    });
    await until(() => payloads(memberC, "s/x").includes("chosen B"), "C's member to get it");
    // In the order of B's stream: had the delivered one been passed on, it would be here.
    assert.deepEqual(payloads(memberC, "s/x"), ["chosen B"]);
    assert.deepEqual(payloads(memberB, "s/x"), ["delivered by B"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a message sent to a dead node for a group with a persistent member there goes to that member once adopted, not also to another member",
  opts,
  async () => {
    const prefix = "srs4:";
    const OTHER = "$share/h/s/#";
    await using nodes = await startNodes(prefix);
    const { redis, b, c, p } = nodes;
    // Group g: a persistent member on B, a clean one on C. Group h: clean members on both.
    const durable = await Inbox.connect(b, "durable-b", { cleanSession: false });
    try {
      assert.deepEqual(await durable.client.subscribe([[SHARE, 1]]), [1]);
    } finally {
      await durable[Symbol.asyncDispose]();
    }
    await using otherB = await Inbox.connect(b, "other-b");
    await using memberC = await Inbox.connect(c, "member-c");
    assert.deepEqual(await otherB.client.subscribe([[OTHER, 1]]), [1]);
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1], [OTHER, 1]]), [1, 1]);
    await until(() => groupNodes(p) === "b,c", "both nodes in the group");
    await b.crash();
    await withRedis(redis, async (r) => {
      // Chosen for B for both groups by a node that had not found it dead yet; never read.
      const frame = chosenFor("chosen B", 1, [SHARE, OTHER]);
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(frame));
    });
    // For h, C passes it on to its member; for g, it leaves it to the adopter of durable-b
    // (C too). Passed on in that order: had g's been passed on, it would be here first.
    await until(() => memberC.on("s/x").length > 0, "C's member to get the message for h");
    await until(() => adopted(c.log(), "durable-b"), "the adoption");
    await using back = await Inbox.connect(c, "durable-b", { cleanSession: false });
    await until(() => payloads(back, "s/x").includes("chosen B"), "the adopted member to get it");
    // One delivery per group [MQTT-4.8.2-3]: g's to the persistent member, h's to C's member.
    assert.deepEqual(payloads(memberC, "s/x"), ["chosen B"]);
    assert.deepEqual(payloads(back, "s/x"), ["chosen B"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a group left while the node was cut off from Redis gets its leave mark when Redis is back: the QoS 2 message delivered before the leave is not passed on after the node dies",
  opts,
  async () => {
    const prefix = "srs5:";
    // B reaches Redis through the proxy; its outage is shorter than its node timeout.
    await using nodes = await startNodes(prefix, true);
    const { redis, b, p } = nodes;
    const proxy = nodes.proxy!;
    await using members = await twoMembers(nodes, 2);
    const { memberB, memberC } = members;
    await withRedis(redis, async (r) => {
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("delivered by B", 1, 2)));
      await until(() => payloads(memberB, "s/x").includes("delivered by B"), "B's member");
      // B loses Redis; its member leaves meanwhile: nothing of the leave reaches Redis then.
      await cutOff(proxy, b);
      await memberB.client.unsubscribe([SHARE]);
      // Back: B's resync writes its interest, and the leave's mark.
      await bringBack(proxy, b);
      await until(() => groupNodes(p) === "c", "only C in the group");
      await b.crash();
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("after the leave", 2, 2)));
    });
    await until(
      () => payloads(memberC, "s/x").includes("after the leave"),
      "C's member to get what came after the leave",
      60_000,
    );
    assert.deepEqual(payloads(memberC, "s/x"), ["after the leave"]);
    assert.deepEqual(payloads(memberB, "s/x"), ["delivered by B"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a group whose persistent member on a dead node left it while a clean member there stayed has its unread QoS 1 message passed on to a member elsewhere",
  opts,
  async () => {
    const prefix = "srs6:";
    await using nodes = await startNodes(prefix);
    const { b, c, p } = nodes;
    // Group g on B: a persistent member and a clean one; on C: a clean one.
    await using durable = await Inbox.connect(b, "durable-b", { cleanSession: false });
    await using cleanB = await Inbox.connect(b, "clean-b");
    await using memberC = await Inbox.connect(c, "member-c");
    assert.deepEqual(await durable.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await cleanB.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
    await until(() => groupNodes(p) === "b,c", "both nodes in the group");
    // The persistent member leaves the group (its session stays, with no member of it); the
    // clean one stays. Redis is told that B's group has no persistent member any more.
    await durable.client.unsubscribe([SHARE]);
    // B's clean member's session ends with B, and no session adopted from B is a member.
    await diesWithNoPersistentMember(nodes, prefix, memberC);
  },
);

Deno.test(
  "cluster: a 5.0 group member resumed on a node with a Session Expiry Interval of 0 (its session now ends with its connection) counts as a clean member when the node dies: the unread QoS 1 message goes to a member elsewhere",
  opts,
  async () => {
    const prefix = "srs7:";
    await using nodes = await startNodes(prefix);
    const { b, c, p } = nodes;
    const connect = { clientId: "x", clean: false, protocolVersion: 5 as const };
    {
      await using first = await TestClient.connect(b.port, {
        ...connect,
        properties: { sessionExpiryInterval: 600 },
      });
      await subscribe5(first, [{ topic: SHARE, qos: 1 }]);
      await first.disconnect();
    }
    await using memberC = await Inbox.connect(c, "member-c");
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
    await until(() => groupNodes(p) === "b,c", "both nodes in the group");
    // Resumed with its subscription, the session now ends with its connection (no Session
    // Expiry Interval in the CONNECT: 0) [MQTT-3.1.2-23]: the group has no persistent member
    // on B any more.
    await using again = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await again.handshake(connect);
    assert.equal(connack.sessionPresent, true);
    // The member's session ends with B (nothing adopts it).
    await diesWithNoPersistentMember(nodes, prefix, memberC);
  },
);
