// A login that waits for a cut-off owner's handoff (issue #14): the client resumes its session on
// another node while the node that holds it is cut off from Redis (alive, its liveness key still
// there, deaf to the takeover notice). The login waits for the handoff up to the cluster's bound
// (`node_timeout` + heartbeat, 11 s with the defaults) and then loads the session as stored; the
// broker's connect timeout (10 s by default) covers the CONNECT's arrival and its checks, not that
// wait, so the client gets its CONNACK instead of being refused or closed first. Real
// redis-server, node processes, a TCP proxy cutting only the old owner's Redis, byte-level
// clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster login wait: a client resuming its session on another node while the owner is cut off from Redis gets its CONNACK (session present, its queued message) after the handoff wait, with the default connect timeout [MQTT-3.2.2-2] [MQTT-4.4.0-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // A's liveness key outlives the wait: B cannot take A for dead and waits its whole bound.
    await using a = await Node.start(proxy, { nodeId: "a", prefix: "lw1:", nodeTimeout: 30 });
    // B with the product's defaults: connect_timeout 10 s (not set), node_timeout 10 s,
    // heartbeat 1 s: its wait for a handoff lasts up to 11 s.
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix: "lw1:",
      nodeTimeout: 10,
      heartbeatInterval: 1,
    });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // A persistent session on A, with a QoS 1 message queued for it (acknowledged once stored).
      {
        await using sub = await TestClient.connect(a.port, { clientId: "keep", clean: false });
        await sub.subscribe({ "s/keep": 1 });
        await sub.disconnect();
      }
      {
        await using pub = await TestClient.connect(a.port, { clientId: "pub", clean: true });
        await pub.send(publishPacket("s/keep", "queued", { qos: 1, packetId: 7 }));
        const puback = await pub.expect(PacketType.PUBACK);
        assert.equal(puback.packetId, 7);
        await pub.disconnect();
      }
      assert.equal(await admin.hget("lw1:owner", "keep"), "a");

      // A loses Redis (new connections never answered): it keeps its liveness key for 30 s and
      // never hears the takeover notice.
      proxy.mode = "stall";
      proxy.cut();
      await until(() => /Cluster: lost Redis/.test(a.log()), "A losing Redis");

      // The client resumes on B: B claims the session from A and waits for its handoff.
      await using again = await TestClient.open(b.port);
      await again.send(connectPacket({ clientId: "keep", clean: false }));
      const connack = await again.expect(PacketType.CONNACK, 120_000);
      assert.equal(connack.reasonCode, 0, "accepted, not refused at the connect timeout");
      assert.equal(connack.sessionPresent, true);
      // The wait ran out (11 s, past the 10 s connect timeout): the session was loaded as stored.
      assert.match(b.log(), /node a did not hand the session of keep over within 11 s/);
      // The message queued for the session on A [MQTT-4.4.0-1].
      const message = await again.expect(PacketType.PUBLISH);
      assert.equal(message.topic, "s/keep");
      assert.equal(new TextDecoder().decode(message.payload), "queued");
      assert.equal(message.qos, 1);
      await again.send({ type: PacketType.PUBACK, packetId: message.packetId! });
      await again.send({ type: PacketType.PINGREQ });
      await again.expect(PacketType.PINGRESP);
      assert.equal(await admin.hget("lw1:owner", "keep"), "b");

      // A is back: it answers the takeover it missed; the client stays on B.
      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(a.log()), "A reconnecting to Redis");
      await again.send({ type: PacketType.PINGREQ });
      await again.expect(PacketType.PINGRESP);
      assert.equal(await admin.hget("lw1:owner", "keep"), "b");
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster login wait: a client that leaves while its login waits for a cut-off owner: the wait still ends at its bound, the session is held by the node that claimed it, and the client's next login there resumes it at once [MQTT-3.2.2-2] [MQTT-4.4.0-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(proxy, { nodeId: "a", prefix: "lw2:", nodeTimeout: 30 });
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix: "lw2:",
      nodeTimeout: 10,
      heartbeatInterval: 1,
    });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      {
        await using sub = await TestClient.connect(a.port, { clientId: "left", clean: false });
        await sub.subscribe({ "s/left": 1 });
        await sub.disconnect();
      }
      {
        await using pub = await TestClient.connect(a.port, { clientId: "pub", clean: true });
        await pub.send(publishPacket("s/left", "queued", { qos: 1, packetId: 3 }));
        await pub.expect(PacketType.PUBACK);
        await pub.disconnect();
      }
      proxy.mode = "stall";
      proxy.cut();
      await until(() => /Cluster: lost Redis/.test(a.log()), "A losing Redis");

      // The client gives up once B has claimed the session (a client with a short timeout).
      {
        await using impatient = await TestClient.open(b.port);
        await impatient.send(connectPacket({ clientId: "left", clean: false }));
        for (let i = 0; i < 1500 && await admin.hget("lw2:owner", "left") !== "b"; i++) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(await admin.hget("lw2:owner", "left"), "b", "B's claim");
        await impatient.close();
      }
      // B's wait still ends at its bound and loads the session: B owns it and holds it.
      await until(
        () => /session of left loaded from the shared store \(was on node a\)/.test(b.log()),
        "B loading the session after the wait",
        60_000,
      );
      assert.match(b.log(), /node a did not hand the session of left over within 11 s/);
      assert.equal(await admin.hget("lw2:owner", "left"), "b");

      // The next try finds the session on B: no second wait for A.
      await using back = await TestClient.open(b.port);
      const connack = await back.handshake({ clientId: "left", clean: false });
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, true);
      const message = await back.expect(PacketType.PUBLISH);
      assert.equal(new TextDecoder().decode(message.payload), "queued");
      await back.send({ type: PacketType.PUBACK, packetId: message.packetId! });
      assert.equal(b.log().match(/did not hand the session of left over/g)?.length, 1);

      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(a.log()), "A reconnecting to Redis");
      await back.send({ type: PacketType.PINGREQ });
      await back.expect(PacketType.PINGRESP);
    } finally {
      admin.disconnect();
    }
  },
);
