// Provisional sessions (a Clean Start 0 login on a node cut off from Redis, for a session the node
// does not hold, served in memory until Redis is back), what session 13 left open: a settle that
// fails with Redis reachable is tried again; a settle that finds the session adopted by this node
// meanwhile gives way to it; a delayed will of a session that gave way is not published once the
// client logged in on another node; the subscriptions the client made during the outage are kept
// in the session that exists. Real nodes, redis-server, and a TCP proxy between a node and Redis
// that the tests cut.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { eventually, Inbox, Node, routeReady, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff, startAway } from "./_away.ts";
import { leaveWithQueued, resumeConnect, resumeOn } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a provisional session whose settle fails with Redis reachable (a script error) is settled again with back-off, claimed and stored once the error is gone",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "ps1:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxy, b);
      await using prov = await TestClient.open(b.port, { protocolVersion: 5 });
      const connack = await prov.handshake(resumeConnect("fresh", 5));
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, false);
      await subscribe5(prov, [{ topic: "p/fresh", qos: 1 }]);
      // The claim's script reads the store's session hash for a client no node owns: a key of
      // another type there makes it fail (WRONGTYPE) while Redis answers.
      assert.equal(await admin.exists("ps1:store:sessions"), 0, "no session stored yet");
      await admin.set("ps1:store:sessions", "not a hash");
      await bringBack(proxy, b);
      await until(
        () => /cannot settle the provisional session of fresh/.test(b.log()),
        "the settle failing",
      );
      assert.equal(
        await admin.hget("ps1:owner", "fresh"),
        null,
        "claimed though the script failed",
      );
      await admin.del("ps1:store:sessions");
      await until(
        () => /provisional session of fresh is this node's/.test(b.log()),
        "the settle tried again",
      );
      assert.equal(await admin.hget("ps1:owner", "fresh"), "b");
      assert.match(b.log(), /trying again in \d+ ms/);
      // Stored whole: its record is in Redis once the store writer's commit ran.
      await eventually(
        async () => await admin.hexists("ps1:store:sessions", "fresh") === 1,
        "the session stored",
      );
      // Still connected, and its subscription works.
      await using pub = await TestClient.connect(b.port, { clientId: "pubs" });
      await pub.send(publishPacket("p/fresh", "after", { qos: 1, packetId: 1 }));
      assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
      const p = await prov.expect(PacketType.PUBLISH);
      assert.equal(text(p), "after");
      await prov.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);

/** Logs `clientId` in on `node` resuming its session with a will to `w/CLIENT` after `delay` s. */
async function provisionalWithWill(
  node: Node,
  clientId: string,
  delay: number,
): Promise<TestClient> {
  const client = await TestClient.open(node.port, { protocolVersion: 5 });
  const connack = await client.handshake({
    ...resumeConnect(clientId, 5),
    will: {
      topic: `w/${clientId}`,
      payload: new TextEncoder().encode("gone"),
      qos: 1,
      retain: false,
      properties: { willDelayInterval: delay },
    },
  });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  return client;
}

Deno.test(
  "cluster: the delayed will of a provisional session that gave way is not published when its client logs in on another node within the Will Delay Interval [MQTT-3.1.3-9], and is published once the delay is over when it does not [MQTT-3.1.2-8]",
  opts,
  async () => {
    await using nodes = await startAway("ps2:");
    const { proxy, a, b } = nodes;
    // Two sessions on A; their clients log in on B while it is cut off from Redis.
    await leaveWithQueued(a, "back", 5, "kept");
    await leaveWithQueued(a, "away", 5, "kept");
    await using watch = await Inbox.connect(a, "watch");
    await watch.client.subscribe([{ topic: "w/#", qos: 1 }]);
    await using probe = await Inbox.connect(b, "probe");
    await routeReady(probe.client, watch, "w/probe");
    await cutOff(proxy, b);
    await using back = await provisionalWithWill(b, "back", 3);
    await using away = await provisionalWithWill(b, "away", 3);
    await bringBack(proxy, b);
    for (const client of [back, away]) {
      assert.equal((await client.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
      await client.expectClosed();
    }
    // `back` resumes its session on A within the delay; `away` does not come back.
    await using again = await resumeOn(a, "back");
    const p = await again.expect(PacketType.PUBLISH);
    assert.equal(text(p), "kept");
    await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    await until(() => watch.on("w/away").length > 0, "the will of away, its delay over");
    // A marker published on B after the delay of `away` was over: the will of `back`, published
    // (its delay ended first), would have come before it.
    await probe.client.publish("w/marker", "m", { qos: 1 });
    await until(() => watch.on("w/marker").length > 0, "the marker reaching A's subscriber");
    assert.deepEqual(watch.on("w/away").map((m) => m.payload), ["gone"]);
    assert.deepEqual(watch.on("w/back"), [], "the will published though its client is back");
    await until(
      () =>
        /delayed will of back \(its provisional session gave way here\) is not published/.test(
          b.log(),
        ),
      "B deciding about the will of back",
    );
    await again.send({ type: PacketType.PINGREQ });
    await again.expect(PacketType.PINGRESP);
  },
);

Deno.test(
  "cluster: the P gaveway note of a provisional session's delayed will is not left behind: dropped when its client logs in again on the node it gave way on [MQTT-3.1.3-9], and when that node leaves",
  opts,
  async () => {
    await using nodes = await startAway("ps3:");
    const { proxy, a, b, admin } = nodes;
    await leaveWithQueued(a, "same", 5, "kept");
    await leaveWithQueued(a, "left", 5, "kept");
    await cutOff(proxy, b);
    await using same = await provisionalWithWill(b, "same", 600);
    await using left = await provisionalWithWill(b, "left", 600);
    await bringBack(proxy, b);
    for (const client of [same, left]) {
      assert.equal(
        (await client.expect(PacketType.DISCONNECT)).reasonCode,
        ReasonCode.SERVER_BUSY,
      );
      await client.expectClosed();
    }
    assert.equal(await admin.hget("ps3:gaveway", "same"), "b");
    assert.equal(await admin.hget("ps3:gaveway", "left"), "b");
    // Back on B within the delay: the will is cancelled there, and so is its note in Redis
    // (B's own claim leaves it, as the claim of the node watching).
    await using again = await resumeOn(b, "same");
    const p = await again.expect(PacketType.PUBLISH);
    assert.equal(text(p), "kept");
    await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    await eventually(
      async () => await admin.hexists("ps3:gaveway", "same") === 0,
      "the note of same dropped",
    );
    assert.equal(await admin.hget("ps3:gaveway", "left"), "b");
    await again.send({ type: PacketType.DISCONNECT, reasonCode: 0 });
    await again.expectClosed();
    // B leaves with the will of `left` still waiting: its note goes with it.
    await b.stop();
    assert.equal(await admin.hexists("ps3:gaveway", "left"), 0);
  },
);

Deno.test(
  "cluster: a provisional session with a delayed will giving way to its client's session adopted here (its node died) is closed only once Redis has the watch for a login elsewhere, so that such a login cancels the will [MQTT-3.1.3-9]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "ps4:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      {
        // A is killed: its death is to be found soon.
        await using a = await Node.start(redis, { nodeId: "a", prefix: "ps4:", nodeTimeout: 1 });
        await leaveWithQueued(a, "adw", 5, "kept");
        await cutOff(proxy, b);
        await a.crash();
      }
      await eventually(async () => await admin.exists("ps4:alive:a") === 0, "A's liveness gone");
      await using prov = await provisionalWithWill(b, "adw", 600);
      // B's watch (HSET ps4:gaveway) reaches Redis late.
      const held = proxy.holdRequestsFrom("ps4:gaveway");
      await bringBack(proxy, b);
      await held.reached;
      assert.equal(await prov.poll(300), undefined, "closed before Redis had the watch");
      assert.equal(prov.socketEnded, false);
      held.release();
      assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
      await prov.expectClosed();
      assert.match(
        b.log(),
        /provisional session of adw gives way to the session that exists in the shared store, adopted here/,
      );
      assert.equal(await admin.hget("ps4:gaveway", "adw"), "b");
    } finally {
      admin.disconnect();
    }
  },
);
