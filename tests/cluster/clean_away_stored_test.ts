// A 5.0 clean start with a Session Expiry Interval served on node A while A cannot reach Redis
// makes a new session that A stores [MQTT-3.1.2-4]; the session another node, B, held is
// discarded [MQTT-3.1.2-6]. When A gets Redis back, its store's rewrite and its claim made again
// (`ClusterSessions.reclaimClean`) race: a rewrite that runs before the claim leaves B's session
// as it is (B owns it and wrote it last, `tg`), and A's later writes went on top of B's rows.
// Once B handed the session over, A writes its session whole: Redis then holds A's session only,
// and a login resuming it (on B) gets A's subscription and not B's, nor B's queued message.
// Real processes, redis-server, a TCP proxy between A and Redis that the test cuts, byte-level
// 5.0 clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { GUARD_MS } from "../_helpers/store_full.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Inbox, Node, retry, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { cutOff } from "./_away.ts";
import { leaveStale, resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a 5.0 clean start with a Session Expiry served on a node cut off from Redis is stored whole once the session's holder handed it over: the discarded session's subscription and queued message are not resumed [MQTT-3.1.2-6] [MQTT-3.1.2-4]",
  opts,
  async () => {
    const prefix = "cas:";
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(proxy, { nodeId: "a", prefix });
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // B holds the persistent session of `held`: `held/#`, and the message `stale` queued.
      await leaveStale(b, "held", 5);
      await cutOff(proxy, a);
      {
        // A clean start on A, stored (Session Expiry Interval 600), subscribed to `fresh/#`.
        await using clean = await TestClient.connect(a.port, {
          clientId: "held",
          clean: true,
          protocolVersion: 5,
          properties: { sessionExpiryInterval: 600 },
        });
        assert.deepEqual(await subscribe5(clean, [{ topic: "fresh/#", qos: 1 }]), [1]);
        // Redis back for A's store first: its resync (and the claim it makes again) waits for
        // its XREAD connection, which the proxy holds until the store's rewrite ran.
        const held = proxy.hold(":xread");
        proxy.mode = "forward";
        proxy.cut();
        const reader = await held;
        await until(
          () => /Writes to the store .* work again/.test(a.log()),
          "A's store rewrite",
          GUARD_MS,
        );
        assert.doesNotMatch(a.log(), /Cluster: Redis is back/, "the rewrite ran before the resync");
        proxy.release(reader);
        await until(() => /Cluster: Redis is back/.test(a.log()), "A's resync");
        await until(
          () => /held continues on node a: handed over/.test(b.log()),
          "B handing the session over",
        );
        // Redis holds A's session whole: its subscription only.
        let subs: string[] = [];
        let queued = -1;
        await retry(async () => {
          // Both keys in one atomic read: read apart, the subscriptions could be B's (before A's
          // write) and the queue A's (after it), an empty queue beside B's subscription.
          const replies = await admin.multi().hkeys(`${prefix}store:sub:held`)
            .hlen(`${prefix}store:out:held`).exec();
          subs = replies![0]![1] as string[];
          queued = replies![1]![1] as number;
          return subs.length === 1 && subs[0] === "fresh/#" && queued === 0;
        }, "Redis holding A's session only").catch(() => {});
        assert.deepEqual(subs, ["fresh/#"], "A's subscription only");
        assert.equal(queued, 0, "B's queued message gone");
        await clean.disconnect();
      }
      // Resumed on B (A hands it over): A's session, with nothing of B's.
      await using client = await TestClient.open(b.port, { protocolVersion: 5 });
      await client.send(connectPacket(resumeConnect("held", 5)));
      const connack = await client.expect(PacketType.CONNACK, GUARD_MS);
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, true, "A's session resumed");
      assert.equal(await client.poll(1000), undefined, "B's queued message is not delivered");
      {
        await using pub = await Inbox.connect(b, "pub-cas");
        await pub.client.publish("held/b", "old filter", { qos: 1 });
        await pub.client.publish("fresh/b", "new filter", { qos: 1 });
      }
      const publish = await client.expect(PacketType.PUBLISH, GUARD_MS);
      assert.equal(text(publish), "new filter", "only A's subscription matches");
      assert.equal(publish.topic, "fresh/b");
      assert.equal(await client.poll(500), undefined);
      assert.equal(client.socketEnded, false);
      await client.disconnect();
    } finally {
      admin.disconnect();
    }
  },
);
