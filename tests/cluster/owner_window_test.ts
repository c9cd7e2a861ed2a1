// Ownership after an outage (issue #14): a node whose release of a session failed while it was cut
// off from Redis is still listed as the session's owner, and a node the client logs in on
// meanwhile claims the session from it and waits for its handoff; the takeover notice was sent
// while that node was not listening. Once it is back, it answers (it no longer holds the session):
// the login goes on with the session as last stored, rather than after the longest handoff wait.
// Real redis-server, node processes, a TCP proxy cutting only the old owner's Redis, byte-level
// clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import { Buffer } from "node:buffer";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff } from "./_away.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Polls `read` until it gives `want` (Redis written by another process). */
async function untilRedis(read: () => Promise<unknown>, want: unknown, what: string) {
  for (let i = 0; i < 1500; i++) {
    if (await read() === want) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`${what}: still ${await read()}`);
}

/** What `roamLeftCutOff` sets up; disposing it closes all of it, the last made first. */
interface RoamScene extends AsyncDisposable {
  redis: RedisServer;
  /** A's way to Redis, stalled. */
  proxy: StallProxy;
  a: Node;
  b: Node;
  /** A connection of the test's own to Redis. */
  admin: Redis;
  /** The client's login on B (its CONNECT sent, not answered). */
  again: TestClient;
}

/**
 * Client "roam" on node A with a session that ends with its connection, A cut off from Redis
 * (new connections never answered) and the client leaving it (A's release of the session fails),
 * then the client resuming on node B: B claims the session from A, still listed as its owner.
 * A's liveness key lives `aTimeout` seconds; B's login waits for A as long as it takes (no
 * connect timeout ends it first).
 */
async function roamLeftCutOff(prefix: string, aTimeout: number): Promise<RoamScene> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const proxy = stack.use(new StallProxy(redis.port));
  const a = stack.use(await Node.start(proxy, { nodeId: "a", prefix, nodeTimeout: aTimeout }));
  const b = stack.use(
    await Node.start(redis, {
      nodeId: "b",
      prefix,
      nodeTimeout: 30,
      yaml: ["connect_timeout: 600"],
    }),
  );
  const admin = new Redis(redis.url, { lazyConnect: true });
  stack.defer(() => admin.disconnect());
  await admin.connect();
  {
    // The client is on A, with a session that ends with its connection (clean): A owns it.
    await using first = await TestClient.connect(a.port, { clientId: "roam", clean: true });
    await untilRedis(() => admin.hget(`${prefix}owner`, "roam"), "a", "A's claim");
    // A loses Redis, and the client leaves: the session ended, and A's release of it fails.
    await cutOff(proxy, a);
    await first.disconnect();
    await until(() => /Event brokerClientDisconnected: client roam/.test(a.log()), "roam gone");
  }
  const again = stack.use(await TestClient.open(b.port));
  await again.send(connectPacket({ clientId: "roam", clean: false }));
  const rest = stack.move();
  return { redis, proxy, a, b, admin, again, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

Deno.test(
  "cluster ownership: a client whose session ended on a node cut off from Redis (its release lost) logs in on another node once that node is back and answers, not on another node's handoff nor after waiting out the handoff [MQTT-3.1.2-4] [MQTT-3.1.4-3] [MQTT-3.2.2-3]",
  opts,
  async () => {
    await using scene = await roamLeftCutOff("ow2:", 30);
    const { proxy, a, b, admin, again } = scene;
    // The client resumed on B: B claims the session from A and waits for A's handoff.
    await untilRedis(() => admin.hget("ow2:owner", "roam"), "b", "B's claim");
    // A handoff from a node other than the previous owner (the late answer of an older move)
    // is not A's: B goes on waiting for A.
    await admin.publish(
      "ow2:to:b",
      Buffer.from(encodeFrame({ type: "handoff", origin: "c", clientId: "roam" })),
    );
    await again.expectNothing(1000);

    // A is back: it releases nothing (B owns the session now) and answers B's claim.
    await bringBack(proxy, a);

    // The session ended on A: none is resumed [MQTT-3.2.2-3].
    const connack = await again.expect(PacketType.CONNACK, 120_000);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    await again.expectNothing(500);
    // Still connected: a ping is answered.
    await again.send({ type: PacketType.PINGREQ });
    await again.expect(PacketType.PINGRESP);
    assert.equal(await admin.hget("ow2:owner", "roam"), "b");
    // Answered by A, not loaded after the longest wait for a handoff.
    assert.doesNotMatch(b.log(), /did not hand the session of roam over/);
  },
);

Deno.test(
  "cluster ownership: a client that left a node cut off from Redis (its release lost) and logged in on another node while that one was cut off too keeps its connection when that node is back first, and gets messages published on the first [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxyA = new StallProxy(redis.port);
    await using proxyB = new StallProxy(redis.port);
    await using a = await Node.start(proxyA, { nodeId: "a", prefix: "ow3:", nodeTimeout: 30 });
    await using b = await Node.start(proxyB, { nodeId: "b", prefix: "ow3:", nodeTimeout: 30 });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await using first = await TestClient.connect(a.port, { clientId: "roam", clean: true });
      await untilRedis(() => admin.hget("ow3:owner", "roam"), "a", "A's claim");

      // Redis is away for both nodes; the client leaves A (its release fails) and starts clean
      // on B (served locally; B's claim fails).
      for (const proxy of [proxyA, proxyB]) {
        proxy.mode = "stall";
        proxy.cut();
      }
      await until(() => /Cluster: lost Redis/.test(a.log()), "A losing Redis");
      await until(() => /Cluster: lost Redis/.test(b.log()), "B losing Redis");
      await first.disconnect();
      await until(() => /Event brokerClientDisconnected: client roam/.test(a.log()), "roam gone");
      await using moved = await TestClient.connect(b.port, { clientId: "roam", clean: true });
      await moved.subscribe({ "s/roam": 1 });
      // A retained change meanwhile, shared when Redis is back (before B's claims are made again).
      await moved.send(publishPacket("r/roam", "here", { qos: 0, retain: true }));
      await moved.send({ type: PacketType.PINGREQ });
      await moved.expect(PacketType.PINGRESP);

      // B is back first: Redis still names A, which holds nothing of the session.
      await bringBack(proxyB, b);
      // B's registration found Redis naming A: B claims the session (not ending its client as
      // taken over by a node that holds nothing of it).
      await until(
        () => /roam, which logged in here|roam continues on node a/.test(b.log()),
        "B dealing with A's record",
      );
      assert.doesNotMatch(b.log(), /roam continues on node a/);
      await untilRedis(() => admin.hget("ow3:owner", "roam"), "b", "B's claim");
      // Still connected: nothing came (no DISCONNECT 0x8E, no close), and a ping is answered.
      await moved.expectNothing(500);
      await moved.send({ type: PacketType.PINGREQ });
      await moved.expect(PacketType.PINGRESP);

      // A is back: its late release leaves B the owner, and a message published on A reaches
      // the client on B.
      await bringBack(proxyA, a);
      assert.equal(await admin.hget("ow3:owner", "roam"), "b");
      await using pub = await TestClient.connect(a.port, { clientId: "pub", clean: true });
      for (let i = 0;; i++) {
        // Until A knows of B's interest (announced at B's return).
        await pub.send(publishPacket("s/roam", `m${i}`, { qos: 0 }));
        const p = await moved.poll(100);
        if (p !== undefined) {
          assert.equal(p.type, PacketType.PUBLISH);
          break;
        }
        assert.ok(i < 300, "a message from A reaching the client on B");
      }
      assert.equal(await admin.hget("ow3:owner", "roam"), "b");
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster ownership: a client whose session ended on a node cut off from Redis (its release lost) logs in on another node once that node, still away, is taken for dead, which steps down when back [MQTT-3.1.4-3] [MQTT-3.2.2-3]",
  opts,
  async () => {
    // A's liveness key lives 5 s: B takes A for dead that long after A lost Redis.
    await using scene = await roamLeftCutOff("ow4:", 5);
    const { proxy, a, b, admin, again } = scene;
    // B cannot hear from A: its login waits until A's liveness key expired, reaps A (whose
    // writes are refused from then on) and goes on.
    const connack = await again.expect(PacketType.CONNACK, 120_000);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    assert.equal(await admin.hget("ow4:owner", "roam"), "b");
    assert.doesNotMatch(b.log(), /did not hand the session of roam over/);
    assert.equal(await admin.sismember("ow4:nodes", "a"), 0);

    // A is back: taken for dead, it steps down and joins again owning nothing; B keeps the
    // client.
    proxy.mode = "forward";
    proxy.cut();
    await until(() => /taken for dead by the others/.test(a.log()), "A stepping down");
    await until(() => /Cluster: joined again/.test(a.log()), "A joining again");
    assert.equal(await admin.hget("ow4:owner", "roam"), "b");
    await again.send({ type: PacketType.PINGREQ });
    await again.expect(PacketType.PINGRESP);
  },
);

Deno.test(
  "cluster ownership: a login that waited in vain for the handoff of a node that, back from an outage, claimed the session for its own client meanwhile is refused as server busy (3.1.1 return code 3), not given a second copy; the next try takes the session over [MQTT-3.1.4-3] [MQTT-3.2.2-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, {
      nodeId: "a",
      prefix: "ow5:",
      nodeTimeout: 30,
      yaml: ["connect_timeout: 600"],
    });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "ow5:", nodeTimeout: 30 });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // A persistent session held by B.
      {
        await using sub = await TestClient.connect(b.port, { clientId: "dual", clean: false });
        await sub.subscribe({ "s/dual": 1 });
        await sub.disconnect();
      }
      assert.equal(await admin.hget("ow5:owner", "dual"), "b");
      // B loses Redis; the client resumes there (B holds the session; its claim fails).
      await cutOff(proxy, b);
      await using onB = await TestClient.open(b.port);
      const resumed = await onB.handshake({ clientId: "dual", clean: false });
      assert.equal(resumed.reasonCode, 0);
      assert.equal(resumed.sessionPresent, true);

      // A login of the same client on A claims the session from B, whose notice is lost.
      await using onA = await TestClient.open(a.port);
      await onA.send(connectPacket({ clientId: "dual", clean: false }));
      await untilRedis(() => admin.hget("ow5:owner", "dual"), "a", "A's claim");
      // B is back and claims it for the client it served meanwhile.
      await bringBack(proxy, b);
      await untilRedis(() => admin.hget("ow5:owner", "dual"), "b", "B's claim");

      // A's wait for B's handoff runs out: the session is B's, not restored on A as well.
      const refused = await onA.expect(PacketType.CONNACK, 120_000);
      assert.equal(refused.reasonCode, 3);
      assert.equal(refused.sessionPresent, false);
      await onA.expectClosed();
      assert.match(a.log(), /login of dual is refused as server busy: node b claimed its session/);
      await onB.send({ type: PacketType.PINGREQ });
      await onB.expect(PacketType.PINGRESP);

      // The client's next try on A takes the session over from B [MQTT-3.1.4-3].
      await using retry = await TestClient.open(a.port);
      const taken = await retry.handshake({ clientId: "dual", clean: false });
      assert.equal(taken.reasonCode, 0);
      assert.equal(taken.sessionPresent, true);
      await onB.expectClosed();
      assert.equal(await admin.hget("ow5:owner", "dual"), "a");
    } finally {
      admin.disconnect();
    }
  },
);
