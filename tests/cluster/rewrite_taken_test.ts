// A node's rewrite after an outage does not replace a session another node took over meanwhile
// and wrote: node A holds a persistent session while cut off from Redis, Redis restarts without
// its data (the ownership is gone with it), the client logs in on node B, which starts a new
// session there (nobody owns the old one now), subscribes anew and gets a message queued; when A
// is back it writes its sessions again, and learns at its registration that B has that one. What
// Redis holds of it stays B's: its subscription and its queue, also while a publisher on A goes on
// publishing to A's copy of the session until A lets go of it. Real processes, redis-server
// restarted empty, a TCP proxy between A and Redis that the test cuts, byte-level clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { FAILURE_LINE, GUARD_MS, RECOVERY_LINE } from "../_helpers/store_full.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Node, retry, until } from "./_nodes.ts";
import { cutOff } from "./_away.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

async function publish(port: number, clientId: string, topic: string): Promise<void> {
  await using pub = await TestClient.connect(port, { clientId });
  await pub.send(publishPacket(topic, "body", { qos: 1, packetId: 1 }));
  assert.equal((await pub.expect(PacketType.PUBACK, GUARD_MS)).packetId, 1);
  await pub.disconnect();
}

/**
 * Redis, node A behind the proxy, node B, and a Redis client; disposing it stops them all.
 */
interface Outage extends AsyncDisposable {
  redis: RedisServer;
  proxy: StallProxy;
  a: Node;
  b: Node;
  /** A plain Redis client that rides out Redis's restart. */
  admin: Redis;
}

/**
 * Starts the nodes under `prefix`, leaves the persistent session of `moved` subscribed to
 * `old/#` on A, and cuts A off from Redis.
 */
async function cutOffWithSession(prefix: string): Promise<Outage> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const proxy = stack.use(new StallProxy(redis.port));
  const a = stack.use(await Node.start(proxy, { nodeId: "a", prefix, nodeTimeout: 30 }));
  const b = stack.use(await Node.start(redis, { nodeId: "b", prefix, nodeTimeout: 30 }));
  const admin = new Redis(redis.url, { lazyConnect: true });
  admin.on("error", () => {});
  await admin.connect();
  stack.defer(() => admin.disconnect());
  {
    await using sub = await TestClient.connect(a.port, { clientId: "moved", clean: false });
    await sub.subscribe({ "old/#": 1 });
    await sub.disconnect();
  }
  await cutOff(proxy, a);
  const rest = stack.move();
  return { redis, proxy, a, b, admin, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/**
 * Restarts Redis empty; once B is back on it, `moved` logs in on B, which starts a new session
 * there (nobody owns the old one now: Session Present 0) subscribed to `new/#`, and a message is
 * published to it on B.
 */
async function takenOnB(outage: Outage): Promise<void> {
  const { redis, b } = outage;
  await redis.restart();
  await until(() => /Cluster: Redis is back/.test(b.log()), "B back on the empty Redis");
  await retry(async () => {
    await using moved = await TestClient.open(b.port);
    const connack = await moved.handshake({ clientId: "moved", clean: false });
    if (connack.reasonCode !== 0) return false;
    assert.equal(connack.sessionPresent, false);
    await moved.subscribe({ "new/#": 1 });
    await moved.disconnect();
    return true;
  }, "the login on B");
  await publish(b.port, "pub-b", "new/y");
}

Deno.test(
  "cluster: a node's rewrite after an outage leaves a session another node took over meanwhile and wrote as that node wrote it [MQTT-3.1.2-4] [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using outage = await cutOffWithSession("rt1:");
    const { proxy, a, b, admin } = outage;
    // Queued on A for its session, not written (Redis is away for A).
    await publish(a.port, "pub-a", "old/x");
    await until(() => a.log().includes(FAILURE_LINE), "A's failed store write", GUARD_MS);

    await takenOnB(outage);
    assert.equal(await admin.hget("rt1:owner", "moved"), "b");
    assert.deepEqual(await admin.hkeys("rt1:store:sub:moved"), ["new/#"]);
    assert.equal(await admin.hlen("rt1:store:out:moved"), 1);

    // A is back: it writes its sessions again, and learns that B has this one.
    proxy.mode = "forward";
    proxy.cut();
    await until(() => a.log().includes(RECOVERY_LINE), "A's store written again", GUARD_MS);
    await until(
      () => /moved continues on node b/.test(a.log()),
      "A letting go of the session",
      GUARD_MS,
    );
    assert.deepEqual(await admin.hkeys("rt1:store:sub:moved"), ["new/#"], "B's subscription");
    assert.equal(await admin.hlen("rt1:store:out:moved"), 1, "B's queue");

    // The client resumes B's session, with what B queued.
    await using back = await TestClient.open(b.port);
    const connack = await back.handshake({ clientId: "moved", clean: false });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true);
    const p = await back.expect(PacketType.PUBLISH);
    assert.equal(p.topic, "new/y");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    await back.disconnect();
  },
);

Deno.test(
  "cluster: after Redis lost its data, a node cut off meanwhile puts none of its messages into the queue of its session that another node took [MQTT-3.1.2-4] [MQTT-3.1.2-5]",
  opts,
  async () => {
    await using outage = await cutOffWithSession("rt2:");
    const { proxy, a, admin } = outage;
    await takenOnB(outage);
    assert.equal(await admin.hlen("rt2:store:out:moved"), 1);

    // A publisher on A publishes to A's copy of the session without pause while A comes back,
    // until A lets go of the session.
    await using pub = await TestClient.connect(a.port, { clientId: "pub-a" });
    let stop = false;
    let closed = false;
    let sent = 0;
    // A's write of a message for the session, refused as B's, is not acknowledged: this 3.1.1
    // publisher is then closed (it would send the message again on reconnecting), and the test
    // stops publishing.
    const publishing = (async () => {
      while (!stop && !closed) {
        try {
          await pub.send(
            publishPacket("old/x", "late", { qos: 1, packetId: (sent++ % 60000) + 1 }),
          );
        } catch {
          closed = true; // by A meanwhile
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    proxy.mode = "forward";
    proxy.cut();
    await until(
      () => /moved continues on node b/.test(a.log()),
      "A letting go of the session",
      GUARD_MS,
    );
    await until(() => a.log().includes(RECOVERY_LINE), "A's store written again", GUARD_MS);
    // Some more after it let go (unless A closed the publisher for a refused write).
    const after = sent;
    await until(() => sent > after + 50 || closed, "more messages, or the publisher closed");
    stop = true;
    await publishing;
    // What Redis holds of the session is B's: one entry, the message published for it on B.
    const entries = await admin.hvals("rt2:store:out:moved");
    assert.equal(entries.length, 1, `B's queue alone: ${entries.join(", ")}`);
  },
);

Deno.test(
  "cluster: a node whose writes to a session are refused as another node's, with no Redis outage, logs that the store names that node as the session's writer, not a Redis that lost its data [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const prefix = "rt3:";
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await using held = await TestClient.connect(b.port, { clientId: "held", clean: false });
      await held.subscribe({ "held/#": 1 });
      // As a node's adoption leaves it (a chain of moves, ARCHITECTURE.md): node a owns the
      // session and writes it.
      await admin.hset(`${prefix}owner`, "held", "a");
      await admin.hset(`${prefix}store:writer`, "held", "a");
      // Its message for the session, refused in the store as a's, is not acknowledged: this
      // 3.1.1 publisher is closed without PUBACK [MQTT-4.4.0-1].
      await using pub = await TestClient.connect(b.port, { clientId: "pub-b" });
      await pub.send(publishPacket("held/x", "body", { qos: 1, packetId: 1 }));
      await pub.expectClosed(GUARD_MS);
      await until(() => /held continues on node a/.test(b.log()), "B letting go of the session");
      assert.match(
        b.log(),
        /held continues on node a, which the store names as the session's writer \(it adopted or took the session while this node still held it\): let go of here, its writes refused/,
      );
      assert.doesNotMatch(b.log(), /lost its data/);
      // Closed as taken over (the message it got before is the one refused in the store).
      await held.expectClosed(GUARD_MS, { allowPackets: true });
    } finally {
      admin.disconnect();
    }
  },
);
