// The subscriptions of a provisional session that gave way (a Clean Start 0 login served while
// its node was cut off from Redis) are left in Redis for the session that exists, not only sent
// to its holder: a holder cut off from Redis at the give-way adds them when it is back, one cut
// off and then dead leaves them to the node adopting the session; a session the client started
// clean elsewhere after the provisional one began gets none of them [MQTT-3.1.2-4]. Real nodes,
// redis-server, and TCP proxies between nodes and Redis that the tests cut.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { eventually, Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff } from "./_away.ts";
import { leaveWithQueued, resumeConnect, resumeOn } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Serves `clientId` provisionally on `node` (cut off), subscribed to `p/CLIENT`. */
async function provisional(node: Node, clientId: string): Promise<TestClient> {
  const prov = await TestClient.open(node.port, { protocolVersion: 5 });
  const connack = await prov.handshake(resumeConnect(clientId, 5));
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false, "provisional: Session Present 0 [MQTT-3.2.2-2]");
  await subscribe5(prov, [{ topic: `p/${clientId}`, qos: 1 }]);
  return prov;
}

/** Publishes `body` on `topic` at QoS 1 from a client of `node`, acknowledged. */
async function publish(node: Node, topic: string, body: string): Promise<void> {
  await using pub = await TestClient.connect(node.port, { clientId: `pub-${body}` });
  await pub.send(publishPacket(topic, body, { qos: 1, packetId: 1 }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
}

Deno.test(
  "cluster: the subscription of a provisional session that gave way to a session held by a node cut off from Redis then is added by that node when it is back, not lost with the frame [MQTT-3.8.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxyA = new StallProxy(redis.port);
    await using proxyB = new StallProxy(redis.port);
    await using a = await Node.start(proxyA, { nodeId: "a", prefix: "ps1:" });
    await using b = await Node.start(proxyB, { nodeId: "b", prefix: "ps1:" });
    await leaveWithQueued(a, "hc", 5, "kept");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      assert.equal(await admin.hget("ps1:owner", "hc"), "a");
      await cutOff(proxyB, b);
      await using prov = await provisional(b, "hc");
      // A, holding the session, is cut off when B gives way: the `subscribed` frame is lost.
      await cutOff(proxyA, a);
      await bringBack(proxyB, b);
      assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
      await prov.expectClosed();
      await until(
        () => /subscriptions hc made in its provisional session are left for node a/.test(b.log()),
        "left for A",
      );
      assert.deepEqual(Object.keys(await admin.hgetall("ps1:pendsub:hc")), ["p/hc"]);
      assert.deepEqual(await admin.smembers("ps1:pendsubs"), ["hc"]);
      assert.doesNotMatch(a.log(), /subscriptions hc made in its provisional session/);

      await bringBack(proxyA, a);
      await until(
        () =>
          /the 1 subscriptions hc made in its provisional session are kept in its session, held here/
            .test(a.log()),
        "the subscription added by A once back",
      );
      await eventually(
        async () => (await admin.hexists("ps1:store:sub:hc", "p/hc")) === 1,
        "the subscription stored",
      );
      await eventually(
        async () => (await admin.exists("ps1:pendsub:hc")) === 0,
        "left entry dropped",
      );
      assert.deepEqual(await admin.smembers("ps1:pendsubs"), []);
      assert.equal(await admin.hget("ps1:owner", "hc"), "a");

      await using back = await resumeOn(a, "hc");
      const p = await back.expect(PacketType.PUBLISH);
      assert.equal(text(p), "kept");
      await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      await publish(b, "p/hc", "after");
      const q = await back.expect(PacketType.PUBLISH);
      assert.equal(text(q), "after");
      await back.send({ type: PacketType.PUBACK, packetId: q.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: the subscription of a provisional session that gave way to a session whose node never heard of it (cut off, then dead before its reap) is added by the node adopting that session [MQTT-3.8.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxyA = new StallProxy(redis.port);
    await using proxyB = new StallProxy(redis.port);
    await using a = await Node.start(proxyA, { nodeId: "a", prefix: "ps2:", nodeTimeout: 1 });
    await using b = await Node.start(proxyB, { nodeId: "b", prefix: "ps2:" });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "ps2:" });
    await leaveWithQueued(a, "dd", 5, "kept");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxyB, b);
      await using prov = await provisional(b, "dd");
      await cutOff(proxyA, a);
      await bringBack(proxyB, b);
      assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
      await prov.expectClosed();
      await until(
        () => /subscriptions dd made in its provisional session are left for node a/.test(b.log()),
        "left for A",
      );
      assert.deepEqual(Object.keys(await admin.hgetall("ps2:pendsub:dd")), ["p/dd"]);
      // A dies without having heard of them; its session is adopted by B or C.
      await a.crash();
      await eventually(async () => {
        const owner = await admin.hget("ps2:owner", "dd");
        return owner === "b" || owner === "c";
      }, "the session of dd adopted");
      const adopter = (await admin.hget("ps2:owner", "dd")) === "b" ? b : c;
      await until(
        () =>
          /the 1 subscriptions dd made in its provisional session are kept in its session, held here/
            .test(adopter.log()),
        "the subscription added by the adopter",
      );
      await eventually(
        async () => (await admin.hexists("ps2:store:sub:dd", "p/dd")) === 1,
        "the subscription stored",
      );
      await eventually(
        async () => (await admin.exists("ps2:pendsub:dd")) === 0,
        "left entry dropped",
      );
      await using back = await resumeOn(c, "dd");
      const p = await back.expect(PacketType.PUBLISH);
      assert.equal(text(p), "kept");
      await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      await publish(c, "p/dd", "after");
      const q = await back.expect(PacketType.PUBLISH);
      assert.equal(text(q), "after");
      await back.send({ type: PacketType.PUBACK, packetId: q.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: the subscription of a provisional session is not added to a session its client started clean on another node after the provisional one began, a new session [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxyB = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "ps3:" });
    await using b = await Node.start(proxyB, { nodeId: "b", prefix: "ps3:" });
    await leaveWithQueued(a, "cs", 5, "old");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxyB, b);
      await using prov = await provisional(b, "cs");
      // Later, the client starts clean on A (a new session, kept 600 s), connected there.
      await using fresh = await TestClient.open(a.port, { protocolVersion: 5 });
      const connack = await fresh.handshake({
        clientId: "cs",
        clean: true,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      });
      assert.equal(connack.sessionPresent, false);
      await subscribe5(fresh, [{ topic: "n/cs", qos: 1 }]);
      await eventually(
        async () => (await admin.hkeys("ps3:store:sub:cs")).join() === "n/cs",
        "the new session stored",
      );

      await bringBack(proxyB, b);
      assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
      await prov.expectClosed();
      await until(
        () =>
          /the 1 subscriptions cs made in its provisional session are not kept: its session on node a began after the provisional one/
            .test(b.log()),
        "not kept",
      );
      assert.equal(await admin.exists("ps3:pendsub:cs"), 0);
      assert.deepEqual(await admin.hkeys("ps3:store:sub:cs"), ["n/cs"]);
      await publish(b, "p/cs", "stray");
      await publish(b, "n/cs", "own");
      // Only its own subscription's message, in order after the other: the stray one was not
      // delivered, and the connection is open.
      const p = await fresh.expect(PacketType.PUBLISH);
      assert.equal(text(p), "own");
      await fresh.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      await fresh.send({ type: PacketType.PINGREQ });
      await fresh.expect(PacketType.PINGRESP);
      assert.equal(fresh.socketEnded, false);
      assert.doesNotMatch(a.log(), /subscriptions cs made in its provisional session/);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a session that began before its client's provisional session elsewhere is left the provisional session's subscription, and a clean start after the give-way drops it with the older session [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxyA = new StallProxy(redis.port);
    await using proxyB = new StallProxy(redis.port);
    await using a = await Node.start(proxyA, { nodeId: "a", prefix: "ps4:", nodeTimeout: 1 });
    await using b = await Node.start(proxyB, { nodeId: "b", prefix: "ps4:" });
    await leaveWithQueued(a, "cl", 5, "old");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxyB, b);
      await using prov = await provisional(b, "cl");
      await cutOff(proxyA, a);
      await bringBack(proxyB, b);
      assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
      await prov.expectClosed();
      // Left for the session that exists, which began before the provisional one.
      await until(
        () => /subscriptions cl made in its provisional session are left for node a/.test(b.log()),
        "left for A",
      );
      assert.deepEqual(Object.keys(await admin.hgetall("ps4:pendsub:cl")), ["p/cl"]);
      // A dies; the client starts clean on B: a new session, which gets nothing of the old one.
      await a.crash();
      await using fresh = await TestClient.open(b.port, { protocolVersion: 5 });
      const connack = await fresh.handshake({
        clientId: "cl",
        clean: true,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      });
      assert.equal(connack.sessionPresent, false);
      await subscribe5(fresh, [{ topic: "n/cl", qos: 1 }]);
      await eventually(
        async () => (await admin.hkeys("ps4:store:sub:cl")).join() === "n/cl",
        "the new session stored alone",
      );
      assert.equal(await admin.exists("ps4:pendsub:cl"), 0, "left entry dropped");
      assert.deepEqual(await admin.smembers("ps4:pendsubs"), []);
      await publish(b, "p/cl", "stray");
      await publish(b, "n/cl", "own");
      const p = await fresh.expect(PacketType.PUBLISH);
      assert.equal(text(p), "own", "nothing of the old session's subscription delivered");
      await fresh.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      await fresh.send({ type: PacketType.PINGREQ });
      await fresh.expect(PacketType.PINGRESP);
      assert.equal(fresh.socketEnded, false);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: subscriptions left in Redis that are malformed (hand-written, corrupt) are refused at the session's load, never thrown; the others are added within max_subscriptions_per_client and max_topic_levels [MQTT-3.8.4-5]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const yaml = ["max_subscriptions_per_client: 3", "max_topic_levels: 4"];
    await using a = await Node.start(redis, { nodeId: "a", prefix: "ps5:", yaml });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "ps5:", yaml });
    // A session of hc held offline by A, subscribed to s/hc.
    await leaveWithQueued(a, "hc", 5, "kept");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      const entry = (topic: string, qos: unknown) => JSON.stringify({ topic, qos });
      await admin.hset("ps5:pendsub:hc", {
        "a/#/b": entry("a/#/b", 1), // not a filter
        "q/3": entry("q/3", 3), // no QoS 3
        "nojson": "{not json",
        "named": entry("other", 1), // names another filter than its field
        "ident": JSON.stringify({ topic: "ident", qos: 1, identifier: 0 }), // no identifier 0
        "p/1": entry("p/1", 1),
        "p/2": entry("p/2", 1),
        "p/3": entry("p/3", 1),
        "l/1/2/3/4": entry("l/1/2/3/4", 1), // five levels
      });
      await admin.sadd("ps5:pendsubs", "hc");
      // The client resumes on B: the session moves there, and B adds what was left for it.
      await using back = await resumeOn(b, "hc");
      const p = await back.expect(PacketType.PUBLISH);
      assert.equal(text(p), "kept");
      await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      await until(
        () =>
          /the 2 subscriptions hc made in its provisional session are kept in its session, held here/
            .test(b.log()),
        "two added: s/hc and two of p/1..3 make max_subscriptions_per_client 3",
      );
      await eventually(
        async () => (await admin.exists("ps5:pendsub:hc")) === 0,
        "every entry dropped, the malformed and refused ones too",
      );
      assert.deepEqual(await admin.smembers("ps5:pendsubs"), []);
      const stored = (await admin.hkeys("ps5:store:sub:hc")).sort();
      assert.equal(stored.length, 3);
      assert.ok(stored.includes("s/hc"));
      assert.equal(stored.filter((f) => f.startsWith("p/")).length, 2);
      // Both nodes live on, and the client's connection is open.
      await back.send({ type: PacketType.PINGREQ });
      await back.expect(PacketType.PINGRESP);
      assert.equal(back.socketEnded, false);
      await using other = await TestClient.connect(a.port, { clientId: "other" });
      await other.send({ type: PacketType.PINGREQ });
      await other.expect(PacketType.PINGRESP);
      assert.doesNotMatch(a.log() + b.log(), /Uncaught|TypeError|RangeError/);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a session that ends on its node (a clean one, its connection closed) takes with it the subscriptions left in Redis for it and its start (P born): nothing stays for a client that never comes back",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "ps6:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      const client = await TestClient.connect(a.port, { clientId: "gone", clean: true });
      await eventually(async () => (await admin.hget("ps6:owner", "gone")) === "a", "claimed");
      await eventually(async () => (await admin.hexists("ps6:born", "gone")) === 1, "its start");
      // Left for it by a give-way whose `subscribed` frame this node never heard.
      await admin.hset("ps6:pendsub:gone", "p/gone", JSON.stringify({ topic: "p/gone", qos: 1 }));
      await admin.sadd("ps6:pendsubs", "gone");
      await client.disconnect();
      await eventually(async () => (await admin.hexists("ps6:owner", "gone")) === 0, "released");
      assert.equal(await admin.exists("ps6:pendsub:gone"), 0);
      assert.deepEqual(await admin.smembers("ps6:pendsubs"), []);
      assert.equal(await admin.hexists("ps6:born", "gone"), 0);
    } finally {
      admin.disconnect();
    }
  },
);
