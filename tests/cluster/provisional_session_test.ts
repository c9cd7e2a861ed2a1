// Provisional sessions: a login resuming a session (Clean Start 0) on a node cut off from Redis,
// for a session the node does not hold, is served with a session kept only in memory; when Redis
// is back it becomes the node's if no session of the client exists cluster-wide, else it gives way
// (connection closed, nothing of it written) and the client resumes the session that exists.
// Here: mosquitto_sub as the client that gives way and resumes by itself, and two provisional
// sessions of one client id on two nodes cut off at once, settled to one owner. Real processes,
// redis-server, TCP proxies between the nodes and Redis that the tests cut.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { Tool } from "../_helpers/peers.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff } from "./_away.ts";
import { leaveWithQueued, resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Polls `read` every 20 ms until it gives `want` (a guard of 30 s, not a bound). */
async function settles<T>(read: () => Promise<T>, want: T): Promise<T> {
  let got = await read();
  for (let i = 0; i < 1500 && got !== want; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    got = await read();
  }
  return got;
}

Deno.test(
  "cluster: mosquitto_sub resuming its session on a node cut off from Redis is served provisionally, closed when Redis is back as its session lives on another node, and on its own reconnection gets that session's queued message [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "pv1:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "pv1:" });
    await leaveWithQueued(a, "msubp", 4, "kept");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxy, b);
      await using sub = new Tool("mosquitto_sub", [
        "-p",
        String(b.port),
        "-c",
        "-i",
        "msubp",
        "-q",
        "1",
        "-t",
        "s/msubp",
        "-V",
        "mqttv311",
        "-C",
        "1",
      ], 60_000);
      await until(
        () => /msubp is served with a provisional session/.test(b.log()),
        "B serving mosquitto_sub provisionally",
      );
      assert.equal(sub.exited, false, "connected (Session Present 0, nothing queued here)");
      await bringBack(proxy, b);
      const result = await sub.result();
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), "kept");
      assert.match(
        b.log(),
        /provisional session of msubp gives way to the session that exists on node a/,
      );
      assert.match(b.log(), /session of msubp loaded from the shared store \(was on node a\)/);
      assert.equal(await admin.hget("pv1:owner", "msubp"), "b");
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: what a provisional session's client publishes at QoS 1 and 2 while its node is cut off from Redis is acknowledged and routed as a clean start's: at once to the node's subscribers, and to another node's once Redis is back [MQTT-4.3.2-2] [MQTT-4.3.3-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "pv5:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "pv5:" });
    // A subscriber on A, connected throughout, with the route from B in place.
    await using far = await Inbox.connect(a, "far");
    await far.client.subscribe([{ topic: "r/#", qos: 1 }]);
    {
      await using probe = await Inbox.connect(b, "probe");
      await routeReady(probe.client, far, "r/probe");
    }
    await using near = await TestClient.connect(b.port, { clientId: "near", clean: true });
    await near.subscribe({ "r/#": 1 });
    await cutOff(proxy, b);
    await using prov = await TestClient.open(b.port);
    const connack = await prov.handshake(resumeConnect("pp", 4));
    assert.equal(connack.reasonCode, 0);
    assert.match(b.log(), /pp is served with a provisional session/);
    await using clean = await TestClient.connect(b.port, { clientId: "cc", clean: true });
    // The same answers for both: PUBACK; PUBREC, then PUBCOMP for the PUBREL.
    for (const [client, id] of [[prov, "pp"], [clean, "cc"]] as const) {
      await client.send(publishPacket(`r/${id}`, `${id}1`, { qos: 1, packetId: 1 }));
      assert.equal((await client.expect(PacketType.PUBACK)).packetId, 1);
      await client.send(publishPacket(`r/${id}`, `${id}2`, { qos: 2, packetId: 2 }));
      assert.equal((await client.expect(PacketType.PUBREC)).packetId, 2);
      await client.send({ type: PacketType.PUBREL, packetId: 2 });
      assert.equal((await client.expect(PacketType.PUBCOMP)).packetId, 2);
    }
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await near.expect(PacketType.PUBLISH);
      seen.push(text(p));
      await near.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    }
    assert.deepEqual(seen.sort(), ["cc1", "cc2", "pp1", "pp2"]);
    await bringBack(proxy, b);
    await until(
      () => far.on("r/pp").length + far.on("r/cc").length >= 4,
      "the messages published on B reaching A",
    );
    assert.deepEqual(far.on("r/pp").map((m) => m.payload), ["pp1", "pp2"]);
    assert.deepEqual(far.on("r/cc").map((m) => m.payload), ["cc1", "cc2"]);
    // The provisional session was the node's to keep (no session of pp existed).
    await until(
      () => /provisional session of pp is this node's/.test(b.log()),
      "B claiming pp's session",
    );
    await prov.send({ type: PacketType.PINGREQ });
    await prov.expect(PacketType.PINGRESP);
  },
);

Deno.test(
  "cluster: a provisional session whose client left before Redis was back is the node's if none existed: claimed and written, it queues what is published for it, and the client resumes it on another node with that message [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "pv6:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "pv6:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxy, b);
      {
        await using gone = await TestClient.connect(b.port, resumeConnect("gone", 5));
        await subscribe5(gone, [{ topic: "o/gone", qos: 1 }]);
        await gone.disconnect();
      }
      await bringBack(proxy, b);
      await until(
        () => /provisional session of gone is this node's/.test(b.log()),
        "B claiming the session",
      );
      assert.equal(await admin.hget("pv6:owner", "gone"), "b");
      assert.equal(await settles(() => admin.hexists("pv6:store:sub:gone", "o/gone"), 1), 1);
      // Published on B: queued for the session there (acknowledged once stored), then the
      // client resumes it on A, which takes it over from B.
      await using pub = await TestClient.connect(b.port, { clientId: "pub" });
      await pub.send(publishPacket("o/gone", "queued", { qos: 1, packetId: 1 }));
      assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
      await using back = await TestClient.open(a.port, { protocolVersion: 5 });
      const connack = await back.handshake(resumeConnect("gone", 5));
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, true);
      const p = await back.expect(PacketType.PUBLISH);
      assert.equal(text(p), "queued");
      await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);

/**
 * The session of `orph` left on A with a message queued, A gone (`stop`: it left; `crash`:
 * SIGKILLed, reaped and its sessions adopted once B is back) while B is cut off from Redis and
 * serves `orph` provisionally: B's provisional session gives way once B is back, and the next
 * login on B gets the stored session with its message.
 */
async function ownerGone(end: "stop" | "crash", prefix: string): Promise<void> {
  await using redis = await RedisServer.start();
  await using proxy = new StallProxy(redis.port);
  await using b = await Node.start(proxy, { nodeId: "b", prefix });
  const admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
  try {
    {
      // A is killed in one case: its death is to be found soon.
      await using a = await Node.start(redis, { nodeId: "a", prefix, nodeTimeout: 1 });
      await leaveWithQueued(a, "orph", 4, "kept");
      await cutOff(proxy, b);
      if (end === "stop") {
        // A leaves while B cannot hear of it: nobody adopts the session, which stays stored.
        assert.equal(await a.stop(), 0);
        assert.equal(await admin.hexists(`${prefix}owner`, "orph"), 0, "owned by nobody");
      } else {
        await a.crash();
        // Found dead by the first heartbeat after B is back (its liveness key gone): B reaps it
        // then, before the settle, and adopts its session.
        await settles(() => admin.exists(`${prefix}alive:a`), 0);
      }
    }
    assert.equal(await admin.hexists(`${prefix}store:sessions`, "orph"), 1, "stored");
    await using client = await TestClient.open(b.port);
    const connack = await client.handshake(resumeConnect("orph", 4));
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false, "B knows no session of it");
    await client.subscribe({ "prov/orph": 1 });
    await bringBack(proxy, b);
    await client.expectClosed();
    // Given way at the resync's claim to the stored one (A left: nobody owns it), or to the
    // session B adopted from A (A died: the settle waits for the heartbeat that reaps A, and
    // for the adoption it starts).
    assert.match(
      b.log(),
      end === "stop"
        ? /provisional session of orph gives way to the session that exists in the shared store:/
        : /provisional session of orph gives way to the session that exists in the shared store, adopted here/,
    );
    // Its subscription is kept in the session that exists (brought to B, or adopted there).
    assert.equal(
      await settles(() => admin.hexists(`${prefix}store:sub:orph`, "prov/orph"), 1),
      1,
      "the subscription made in the provisional session kept",
    );
    await using again = await resumeOn(b.port, "orph");
    const p = await again.expect(PacketType.PUBLISH);
    assert.equal(text(p), "kept");
    await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    assert.equal(await settles(() => admin.hget(`${prefix}owner`, "orph"), "b"), "b");
    await using pub = await TestClient.connect(b.port, { clientId: "puborph" });
    await pub.send(publishPacket("prov/orph", "sub kept", { qos: 1, packetId: 1 }));
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
    const q = await again.expect(PacketType.PUBLISH);
    assert.equal(text(q), "sub kept");
    await again.send({ type: PacketType.PUBACK, packetId: q.packetId! });
  } finally {
    admin.disconnect();
  }
}

Deno.test(
  "cluster: a provisional session whose client's session is stored with no owner (its node left while this one was cut off from Redis) gives way once Redis is back, and the client's next login gets the stored session with its queued message [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  () => ownerGone("stop", "pv3:"),
);

Deno.test(
  "cluster: a provisional session whose client's session was on a node SIGKILLed while this one was cut off from Redis gives way once Redis is back (to that node's session, or to it adopted here), and the client's next login gets the session with its queued message [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  () => ownerGone("crash", "pv4:"),
);

/**
 * Logs `clientId` in at 3.1.1 on `port` resuming its session, trying again while refused as
 * server busy (the node's store connection comes back on a schedule of its own, after the bus's):
 * the accepted connection, Session Present 1.
 */
async function resumeOn(port: number, clientId: string): Promise<TestClient> {
  for (let attempt = 1;; attempt++) {
    const client = await TestClient.open(port);
    const connack = await client.handshake(resumeConnect(clientId, 4));
    if (connack.reasonCode === 0) {
      assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
      return client;
    }
    assert.equal(connack.reasonCode, 3);
    await client.expectClosed();
    await client.close();
    // A guard, not a bound.
    assert.ok(attempt < 150, `${clientId} accepted again`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

Deno.test(
  "cluster: one client id served provisionally on two nodes cut off from Redis at once has one owner after they are back: the first back claims it and writes it, the other gives way (connection closed), and the client's next login there takes the session over [MQTT-3.1.4-3] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using toA = new StallProxy(redis.port);
    await using toB = new StallProxy(redis.port);
    await using a = await Node.start(toA, { nodeId: "a", prefix: "pv2:" });
    await using b = await Node.start(toB, { nodeId: "b", prefix: "pv2:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(toA, a);
      await cutOff(toB, b);
      await using onA = await TestClient.open(a.port, { protocolVersion: 5 });
      await using onB = await TestClient.open(b.port);
      const [ackA, ackB] = await Promise.all([
        onA.handshake(resumeConnect("twin", 5)),
        onB.handshake(resumeConnect("twin", 4)),
      ]);
      for (const connack of [ackA, ackB]) {
        assert.equal(connack.reasonCode, 0);
        assert.equal(connack.sessionPresent, false);
      }
      await subscribe5(onA, [{ topic: "tw/a", qos: 1 }]);
      await onB.subscribe({ "tw/b": 1 });

      await bringBack(toA, a);
      await until(
        () => /provisional session of twin is this node's/.test(a.log()),
        "A claiming the session",
      );
      assert.equal(await admin.hget("pv2:owner", "twin"), "a");
      assert.equal(await settles(() => admin.hexists("pv2:store:sub:twin", "tw/a"), 1), 1);

      await bringBack(toB, b);
      await onB.expectClosed();
      assert.match(
        b.log(),
        /provisional session of twin gives way to the session that exists on node a/,
      );
      assert.equal(await admin.hget("pv2:owner", "twin"), "a");
      assert.equal(await admin.hexists("pv2:store:sub:twin", "tw/b"), 0, "nothing of B's written");
      // A's client is served still.
      await onA.send({ type: PacketType.PINGREQ });
      await onA.expect(PacketType.PINGRESP);

      // The client B closed logs in again there: it takes over the session A holds.
      await using again = await resumeOn(b.port, "twin");
      const disconnect = await onA.expect(PacketType.DISCONNECT);
      assert.equal(disconnect.reasonCode, ReasonCode.SESSION_TAKEN_OVER);
      assert.equal(await settles(() => admin.hget("pv2:owner", "twin"), "b"), "b");
      // A message on the subscription made in A's provisional session reaches it on B.
      await using pub = await TestClient.connect(b.port, { clientId: "pub" });
      await pub.send({
        type: PacketType.PUBLISH,
        topic: "tw/a",
        payload: new TextEncoder().encode("after"),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      });
      await pub.expect(PacketType.PUBACK);
      const p = await again.expect(PacketType.PUBLISH);
      assert.equal(text(p), "after");
      await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);
