// A client moving to a node whose connection to Redis is down (B cannot load its session) is
// refused as server busy; B claims nothing, so the node that has the session (A) keeps it with the
// messages it queued, and the client's next try on B, once Redis is back for B, gets them. A clean
// start goes on. Real processes, redis-server, a TCP proxy between B and Redis that the test cuts,
// byte-level clients at 3.1.1 and 5.0.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A persistent subscriber to `s/CLIENT` at QoS 1 that left `node`, with one message queued. */
async function leaveWithQueued(
  node: Node,
  clientId: string,
  protocolVersion: 4 | 5,
  body: string,
): Promise<void> {
  const connect = {
    clientId,
    clean: false,
    protocolVersion,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
  };
  {
    await using sub = await TestClient.connect(node.port, connect);
    if (protocolVersion === 5) await subscribe5(sub, [{ topic: `s/${clientId}`, qos: 1 }]);
    else await sub.subscribe({ [`s/${clientId}`]: 1 });
    await sub.disconnect();
  }
  // Acknowledged once stored.
  await using pub = await Inbox.connect(node, `pub-${clientId}`);
  await pub.client.publish(`s/${clientId}`, body, { qos: 1 });
}

Deno.test(
  "cluster: a login resuming a session another node holds, on a node that cannot reach Redis, is refused as server busy (3.1.1 return code 3, 5.0 0x89, Session Present 0) and the queued messages reach the next try; a clean start goes on [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // No node is taken for dead while B's Redis connection is down.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw1:", nodeTimeout: 30 });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw1:", nodeTimeout: 30 });
    await leaveWithQueued(a, "away4", 4, "kept4");
    await leaveWithQueued(a, "away5", 5, "kept5");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // B's connections to Redis are cut, and the new ones never answered: B's bus is not ready.
      proxy.mode = "stall";
      proxy.cut();
      await until(() => /Cluster: lost Redis/.test(b.log()), "B losing Redis");

      await using v4 = await TestClient.open(b.port);
      await using v5 = await TestClient.open(b.port, { protocolVersion: 5 });
      await using fresh = await TestClient.open(b.port);
      const [c4, c5, clean] = await Promise.all([
        v4.handshake({ clientId: "away4", clean: false }),
        v5.handshake({
          clientId: "away5",
          clean: false,
          protocolVersion: 5,
          properties: { sessionExpiryInterval: 600 },
        }),
        fresh.handshake({ clientId: "fresh", clean: true }),
      ]);
      // Not an empty session in place of the one A holds.
      assert.equal(c4.reasonCode, 3);
      assert.equal(c4.sessionPresent, false);
      assert.equal(c5.reasonCode, ReasonCode.SERVER_BUSY);
      assert.equal(c5.sessionPresent, false);
      await v4.expectClosed();
      await v5.expectClosed();
      // A clean start asks for nothing stored: B serves it while Redis is away.
      assert.equal(clean.reasonCode, 0);
      assert.equal(clean.sessionPresent, false);
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
        await using again = await TestClient.open(b.port, { protocolVersion: version });
        const connack = await again.handshake({
          clientId,
          clean: false,
          protocolVersion: version,
          ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
        });
        assert.equal(connack.reasonCode, 0);
        assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
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
