// A client moving to a node whose connection to Redis is down (B cannot load its session) is
// refused as server busy; B claims nothing, so the node that has the session (A) keeps it with the
// messages it queued, and the client's next try on B, once Redis is back for B, gets them. A clean
// start goes on. Real processes, redis-server, a TCP proxy between B and Redis that the test cuts,
// byte-level clients at 3.1.1 and 5.0.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { busyButClean, leaveWithQueued, resumeConnect } from "./_resume.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Logs `clientId` in on `port` resuming its session, trying again while refused as server busy
 * (the node's store connection comes back on a schedule of its own, after the bus's); returns the
 * accepted connection.
 */
async function resume(port: number, clientId: string, version: 4 | 5): Promise<TestClient> {
  for (let attempt = 1;; attempt++) {
    const client = await TestClient.open(port, { protocolVersion: version });
    const connack = await client.handshake(resumeConnect(clientId, version));
    if (connack.reasonCode === 0) {
      assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
      return client;
    }
    assert.equal(connack.reasonCode, version === 5 ? ReasonCode.SERVER_BUSY : 3);
    assert.equal(connack.sessionPresent, false);
    await client.expectClosed();
    await client.close();
    assert.ok(attempt < 30, `${clientId} accepted again`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

Deno.test(
  "cluster: a login resuming a session another node holds, on a node that cannot reach Redis, is refused as server busy (3.1.1 return code 3, 5.0 0x89, Session Present 0) and the queued messages reach the next try; a clean start goes on [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // No node is taken for dead while B's Redis connection is down.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw1:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw1:" });
    await leaveWithQueued(a, "away4", 4, "kept4");
    await leaveWithQueued(a, "away5", 5, "kept5");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // B's connections to Redis are cut, and the new ones never answered: B's bus is not ready.
      proxy.mode = "stall";
      proxy.cut();
      await until(() => /Cluster: lost Redis/.test(b.log()), "B losing Redis");

      // Not an empty session in place of the one A holds. A clean start asks for nothing
      // stored: B serves it while Redis is away (connected until its claim is checked below).
      await using _fresh = await busyButClean(b.port, "away4", "away5");
      assert.match(b.log(), /stored session of away4 \(Redis is unreachable\).*server busy/);

      // Redis is back for B: it redoes the claims of what it holds, and none of the refused.
      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(b.log()), "B reconnecting to Redis");
      for (let i = 0; i < 1500 && await admin.hget("mw1:owner", "fresh") !== "b"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // The clean start's claim, made when Redis is back, is through: so would a resuming one be.
      assert.equal(await admin.hget("mw1:owner", "fresh"), "b");
      assert.equal(await admin.hget("mw1:owner", "away4"), "a");
      assert.equal(await admin.hget("mw1:owner", "away5"), "a");

      // The next tries get the sessions from A, with what A had queued.
      for (
        const [clientId, version, body] of [["away4", 4, "kept4"], ["away5", 5, "kept5"]] as const
      ) {
        await using again = await resume(b.port, clientId, version);
        const p = await again.expect(PacketType.PUBLISH);
        assert.equal(text(p), body);
        await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
        assert.equal(await admin.hget("mw1:owner", clientId), "b");
      }
      assert.match(b.log(), /session of away4 loaded from the shared store \(was on node a\)/);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a login resuming a session, whose load is under way when the node loses Redis, is refused as server busy (5.0 0x89, Session Present 0) and the queued message reaches the next try [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw2:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw2:" });
    await leaveWithQueued(a, "midway", 5, "kept");
    // Redis answers nobody for a while: B's read of the session waits, and B loses its
    // connections (cut by the proxy) before the answer.
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await admin.call("CLIENT", "PAUSE", "6000", "ALL");
      await using v5 = await TestClient.open(b.port, { protocolVersion: 5 });
      await v5.send({
        type: PacketType.CONNECT,
        protocolName: "MQTT",
        protocolVersion: 5,
        clean: false,
        keepAlive: 60,
        clientId: "midway",
        properties: { sessionExpiryInterval: 600 },
      });
      // Time for B to start the read (a guard: had it not, the login would meet Redis away, and
      // be refused the same way; the log line below tells which).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      proxy.mode = "stall";
      proxy.cut();
      const connack = await v5.expect(PacketType.CONNACK);
      assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY);
      assert.equal(connack.sessionPresent, false);
      await v5.expectClosed();
      assert.match(
        b.log(),
        /stored session of midway \((?!Redis is unreachable)[^)]*\).*server busy/,
      );

      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(b.log()), "B reconnecting to Redis");
      assert.equal(await admin.hget("mw2:owner", "midway"), "a");
      await using again = await resume(b.port, "midway", 5);
      const p = await again.expect(PacketType.PUBLISH);
      assert.equal(text(p), "kept");
      await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a login of a brand-new client id resuming a session on a node that cannot reach Redis is refused as server busy (3.1.1 return code 3, 5.0 0x89: the node cannot tell it is new), and accepted with Session Present 0 once Redis is back [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw3:" });
    proxy.mode = "stall";
    proxy.cut();
    await until(() => /Cluster: lost Redis/.test(b.log()), "B losing Redis");
    for (const version of [4, 5] as const) {
      await using client = await TestClient.open(b.port, { protocolVersion: version });
      const connack = await client.handshake(resumeConnect(`new${version}`, version));
      assert.equal(connack.reasonCode, version === 5 ? ReasonCode.SERVER_BUSY : 3);
      assert.equal(connack.sessionPresent, false);
      await client.expectClosed();
    }
    proxy.mode = "forward";
    proxy.cut();
    await until(() => /Cluster: Redis is back/.test(b.log()), "B reconnecting to Redis");
    for (const version of [4, 5] as const) {
      for (let attempt = 1;; attempt++) {
        await using client = await TestClient.open(b.port, { protocolVersion: version });
        const connack = await client.handshake(resumeConnect(`new${version}`, version));
        if (connack.reasonCode === 0) {
          assert.equal(connack.sessionPresent, false, "a new session");
          await client.disconnect();
          break;
        }
        // The store's connection comes back on a schedule of its own, after the bus's.
        assert.equal(connack.reasonCode, version === 5 ? ReasonCode.SERVER_BUSY : 3);
        // A guard, not a bound: the store's reconnection waits up to 2 s per try, longer on a
        // loaded machine (as `retry` of _nodes.ts, 30 s at least).
        assert.ok(attempt < 150, `new${version} accepted once Redis is back`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  },
);
