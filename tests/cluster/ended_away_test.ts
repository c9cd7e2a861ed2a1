// A persistent session that ends on node A while A cannot reach Redis (its client starts a clean
// session there) is not resumed on node B, which the client reaches before A can write the end:
// B claims the session from A (A, cut off, misses the notice), and A's deletion, written once
// Redis is back, must remove what Redis still holds of it although B owns it now (B only loaded
// it, it wrote nothing of it). Before, A's deletion skipped a session another node owned, and the
// client got the ended session back, with its subscription and the message queued for it. A,
// back, learns of B's claim (its notice was lost) and hands the session over once it wrote the
// end, so B does not wait out its bound.
// Real processes, redis-server, a TCP proxy between A and Redis that the test cuts, byte-level
// clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";
import { FAILURE_LINE, GUARD_MS } from "../_helpers/store_full.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a session ended on a node cut off from Redis is not resumed on another node the client reaches first: Session Present 0, nothing of it delivered [MQTT-3.1.2-6] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // Nobody is taken for dead while A is cut off (B's wait for A's handoff is bounded by it).
    await using a = await Node.start(proxy, { nodeId: "a", prefix: "de1:", nodeTimeout: 30 });
    // B's login is not refused for its wait for A (30 s at most, A's handoff).
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix: "de1:",
      nodeTimeout: 30,
      yaml: ["connect_timeout: 120"],
    });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // A persistent session on A with a message queued for it.
      {
        await using sub = await TestClient.connect(a.port, { clientId: "ended", clean: false });
        await sub.subscribe({ "ended/#": 1 });
        await sub.disconnect();
      }
      {
        await using pub = await TestClient.connect(a.port, { clientId: "pub" });
        await pub.send(publishPacket("ended/a", "stale", { qos: 1, packetId: 1 }));
        assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
        await pub.disconnect();
      }
      assert.equal(await admin.hexists("de1:store:sub:ended", "ended/#"), 1);

      proxy.mode = "stall";
      proxy.cut();
      await until(() => /Cluster: lost Redis/.test(a.log()), "A losing Redis");
      // The client starts a clean session on A (served while Redis is away): the stored one
      // ends [MQTT-3.1.2-6], and A cannot write that.
      {
        await using clean = await TestClient.connect(a.port, { clientId: "ended", clean: true });
        await clean.disconnect();
      }
      await until(() => a.log().includes(FAILURE_LINE), "A's failed store write", GUARD_MS);

      // The client resumes on B: B loads what Redis holds, claims it from A and waits for A's
      // handoff (A missed the notice).
      await using resumed = await TestClient.open(b.port);
      await resumed.send(connectPacket({ clientId: "ended", clean: false }));
      for (let i = 0; i < 1500 && await admin.hget("de1:owner", "ended") !== "b"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(await admin.hget("de1:owner", "ended"), "b", "B's claim");

      // Redis is back for A, which writes what it could not.
      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(a.log()), "A reconnecting to Redis");

      // Refused as server busy until B has an answer for the session, then a new one.
      let client = resumed;
      let connack = await resumed.expect(PacketType.CONNACK, GUARD_MS);
      for (let attempt = 1; connack.reasonCode !== 0; attempt++) {
        assert.equal(connack.reasonCode, 3, "server unavailable while B waits");
        assert.equal(connack.sessionPresent, false);
        assert.ok(attempt < 30, "ended accepted again");
        await client.expectClosed();
        await client.close();
        await new Promise((resolve) => setTimeout(resolve, 200));
        client = await TestClient.open(b.port);
        await client.send(connectPacket({ clientId: "ended", clean: false }));
        connack = await client.expect(PacketType.CONNACK, GUARD_MS);
      }
      await using last = client;
      assert.equal(connack.sessionPresent, false, "the ended session is not resumed");
      // Nothing queued for the ended session arrives, and the connection stays open.
      assert.equal(await last.poll(1000), undefined);
      assert.equal(last.socketEnded, false);
      assert.equal(await admin.hexists("de1:store:sub:ended", "ended/#"), 0);
      // A told B, once back, rather than B waiting out its bound.
      assert.match(
        a.log(),
        /ended was claimed by node b while Redis was away, after this node let go of it .*: handed over/,
      );
      await last.disconnect();
    } finally {
      admin.disconnect();
    }
  },
);
