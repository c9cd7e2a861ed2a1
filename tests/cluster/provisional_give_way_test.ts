// Review of provisional sessions (a Clean Start 0 login on a node cut off from Redis, for a
// session the node does not hold, served in memory until Redis is back): what a session giving
// way leaves behind. Its will (published without a delay, kept for its delay otherwise), what was
// delivered to it unacknowledged (dropped with it), its subscriptions (kept in the session that
// exists, added by the node holding it, whose client may be connected there; nothing else of it
// written), and two logins of one client id on the one node cut off. Real nodes, redis-server, and a TCP proxy
// between one node and Redis that the tests cut.
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { eventually, Inbox, type Node, routeReady, until } from "./_nodes.ts";
import { bringBack, cutOff, startAway } from "./_away.ts";
import { leaveWithQueued, resumeConnect, resumeOn } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * What Redis holds of `clientId`'s session: every key of the shared store (`PREFIXstore:`,
 * dumped byte for byte) and its rows in the cluster's ownership, will, writer and handoff hashes.
 */
async function rows(admin: Redis, prefix: string, clientId: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const keys = (await admin.keys(`${prefix}store:*`)).sort();
  for (const key of keys) out.set(key, (await admin.dumpBuffer(key))?.toString("hex") ?? "");
  for (const hash of ["owner", "wills", "writer", "handing"]) {
    out.set(
      `${prefix}${hash}[${clientId}]`,
      (await admin.hget(`${prefix}${hash}`, clientId)) ?? "",
    );
  }
  return out;
}

Deno.test(
  "cluster: a provisional session giving way (DISCONNECT 0x89) publishes its client's will, as the server closed the connection without the client's DISCONNECT [MQTT-3.1.2-8], drops what it had in flight, and keeps its subscription in the session that exists, added by the node holding it [MQTT-3.8.4-3]",
  opts,
  async () => {
    await using nodes = await startAway("pg1:");
    const { proxy, a, b, admin } = nodes;
    await leaveWithQueued(a, "gw", 5, "kept");
    await using watch = await Inbox.connect(a, "watch");
    await watch.client.subscribe([{ topic: "w/#", qos: 1 }]);
    {
      await using probe = await Inbox.connect(b, "probe");
      await routeReady(probe.client, watch, "w/probe");
    }
    const before = await rows(admin, "pg1:", "gw");
    assert.ok(before.get("pg1:owner[gw]") === "a", "A owns the session");
    await cutOff(proxy, b);
    await using prov = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await prov.handshake({
      ...resumeConnect("gw", 5),
      will: { topic: "w/gw", payload: new TextEncoder().encode("gone"), qos: 1, retain: false },
    });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    // A subscription of the provisional session, and a message delivered on it not acknowledged.
    await subscribe5(prov, [{ topic: "p/gw", qos: 1 }]);
    await using pub = await TestClient.connect(b.port, { clientId: "pubb" });
    await pub.send(publishPacket("p/gw", "inflight", { qos: 1, packetId: 1 }));
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
    assert.equal(text(await prov.expect(PacketType.PUBLISH)), "inflight");
    assert.equal(await admin.hget("pg1:owner", "gw"), "a");

    await bringBack(proxy, b);
    const disconnect = await prov.expect(PacketType.DISCONNECT);
    assert.equal(disconnect.reasonCode, ReasonCode.SERVER_BUSY);
    await prov.expectClosed();
    await until(() => watch.on("w/gw").length > 0, "the will of gw reaching A's subscriber");
    assert.deepEqual(watch.on("w/gw").map((m) => m.payload), ["gone"]);
    // Its subscription is kept in the session that exists, sent to A, which holds it and adds
    // it there (the session stays on A): the rows of that session are A's with the
    // subscription added, and nothing else of the provisional session (the message in flight)
    // [MQTT-3.8.4-3].
    await until(
      () =>
        /the 1 subscriptions gw made in its provisional session on node b are kept in its session, held here/
          .test(a.log()),
      "the subscription of gw kept",
    );
    await eventually(
      async () => (await admin.hexists("pg1:store:sub:gw", "p/gw")) === 1,
      "the subscription stored",
    );
    assert.equal(await admin.hget("pg1:owner", "gw"), "a");
    assert.deepEqual((await admin.hkeys("pg1:store:sub:gw")).sort(), ["p/gw", "s/gw"]);
    assert.equal(before.get("pg1:owner[gw]"), "a");

    // The client resumes the session that exists, on B: its queued message, not the one
    // delivered in flight to the provisional session (dropped with it), and its subscription.
    await using back = await resumeOn(b, "gw");
    const p = await back.expect(PacketType.PUBLISH);
    assert.equal(text(p), "kept");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    await pub.send(publishPacket("p/gw", "after", { qos: 1, packetId: 2 }));
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 2);
    const q = await back.expect(PacketType.PUBLISH);
    assert.equal(text(q), "after");
    await back.send({ type: PacketType.PUBACK, packetId: q.packetId! });
    await back.send({ type: PacketType.PINGREQ });
    await back.expect(PacketType.PINGRESP);
    assert.equal(watch.on("w/gw").length, 1, "the will published once");
  },
);

Deno.test(
  "cluster: a provisional session giving way keeps its client's will for the Will Delay Interval, and the client's login resuming its session within the delay cancels it [MQTT-3.1.3-9]",
  opts,
  async () => {
    await using nodes = await startAway("pg2:");
    const { proxy, a, b } = nodes;
    await leaveWithQueued(a, "wd", 5, "kept");
    await using watch = await Inbox.connect(a, "watch");
    await watch.client.subscribe([{ topic: "w/#", qos: 1 }]);
    await using probe = await Inbox.connect(b, "probe");
    await routeReady(probe.client, watch, "w/probe");
    await cutOff(proxy, b);
    await using prov = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await prov.handshake({
      ...resumeConnect("wd", 5),
      will: {
        topic: "w/wd",
        payload: new TextEncoder().encode("gone"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 600 },
      },
    });
    assert.equal(connack.reasonCode, 0);
    await bringBack(proxy, b);
    assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
    await prov.expectClosed();
    await using back = await resumeOn(b, "wd");
    const p = await back.expect(PacketType.PUBLISH);
    assert.equal(text(p), "kept");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    // A marker published on B after the give-way and the login: the will, published at the
    // give-way, would have come before it.
    await probe.client.publish("w/marker", "m", { qos: 1 });
    await until(() => watch.on("w/marker").length > 0, "the marker reaching A's subscriber");
    assert.deepEqual(watch.on("w/wd"), [], "the will published though its client is back");
    await back.send({ type: PacketType.PINGREQ });
    await back.expect(PacketType.PINGRESP);
  },
);

Deno.test(
  "cluster: a provisional session giving way does not take the session from the node its client is connected to now: its subscription is added there, and that connection stays open [MQTT-3.1.4-3] [MQTT-3.8.4-3]",
  opts,
  async () => {
    await using nodes = await startAway("pg5:");
    const { proxy, a, b, admin } = nodes;
    // The client's session on A, its connection there open throughout (one side of a
    // partition, or a device whose connection to B A never saw closed).
    await using live = await TestClient.connect(a.port, resumeConnect("lv", 5));
    await subscribe5(live, [{ topic: "s/lv", qos: 1 }]);
    await eventually(async () => (await admin.hget("pg5:owner", "lv")) === "a", "A owning lv");
    await cutOff(proxy, b);
    await using prov = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await prov.handshake(resumeConnect("lv", 5));
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    await subscribe5(prov, [{ topic: "p/lv", qos: 1 }]);

    await bringBack(proxy, b);
    assert.equal((await prov.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
    await prov.expectClosed();
    await until(
      () =>
        /the 1 subscriptions lv made in its provisional session on node b are kept in its session, held here/
          .test(a.log()),
      "the subscription of lv kept on A",
    );
    // The session stays on A, and so does its client's connection: no takeover for a login
    // that did not happen [MQTT-3.1.4-3].
    assert.equal(await admin.hget("pg5:owner", "lv"), "a");
    await eventually(
      async () => (await admin.hexists("pg5:store:sub:lv", "p/lv")) === 1,
      "the subscription stored",
    );
    await using pub = await TestClient.connect(a.port, { clientId: "publv" });
    await pub.send(publishPacket("p/lv", "merged", { qos: 1, packetId: 1 }));
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
    const p = await live.expect(PacketType.PUBLISH);
    assert.equal(text(p), "merged");
    await live.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    await live.send({ type: PacketType.PINGREQ });
    await live.expect(PacketType.PINGRESP);
    assert.equal(live.socketEnded, false, "the client on A still connected");
    assert.doesNotMatch(a.log(), /lv.*taken over|takeover of lv/i);
  },
);

Deno.test(
  "cluster: one client id logging in twice on a node cut off from Redis: a second Clean Start 0 login takes the provisional session over [MQTT-3.1.4-2] and is the one that gives way once Redis is back, leaving one owner [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using nodes = await startAway("pg3:");
    const { proxy, a, b, admin } = nodes;
    await leaveWithQueued(a, "tw", 5, "kept");
    const before = await rows(admin, "pg3:", "tw");
    await cutOff(proxy, b);
    await using first = await TestClient.open(b.port, { protocolVersion: 5 });
    assert.equal((await first.handshake(resumeConnect("tw", 5))).sessionPresent, false);
    await subscribe5(first, [{ topic: "p/tw", qos: 1 }]);
    await using second = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await second.handshake(resumeConnect("tw", 5));
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true, "the provisional session held here");
    assert.equal(
      (await first.expect(PacketType.DISCONNECT)).reasonCode,
      ReasonCode.SESSION_TAKEN_OVER,
    );
    await first.expectClosed();
    await bringBack(proxy, b);
    assert.equal((await second.expect(PacketType.DISCONNECT)).reasonCode, ReasonCode.SERVER_BUSY);
    await second.expectClosed();
    assert.equal(
      b.log().match(/provisional session of tw gives way/g)?.length,
      1,
      "given way once",
    );
    // The subscription made in the provisional session (before the takeover) is kept in the
    // session that exists, added by A, which holds it; nothing else of the provisional session
    // is written.
    await until(
      () =>
        /the 1 subscriptions tw made in its provisional session on node b are kept/.test(a.log()),
      "the subscription of tw kept",
    );
    await eventually(
      async () => (await admin.hexists("pg3:store:sub:tw", "p/tw")) === 1,
      "the subscription stored",
    );
    assert.deepEqual((await admin.hkeys("pg3:store:sub:tw")).sort(), ["p/tw", "s/tw"]);
    assert.equal(before.get("pg3:owner[tw]"), "a");
    assert.equal(await admin.hget("pg3:owner", "tw"), "a");
    await using back = await resumeOn(b, "tw");
    const p = await back.expect(PacketType.PUBLISH);
    assert.equal(text(p), "kept");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  },
);

Deno.test(
  "cluster: a clean start on a node cut off from Redis taking over a provisional session there discards it and, once Redis is back, the session that exists on another node: the client stays connected and its node owns the one session [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using nodes = await startAway("pg4:");
    const { proxy, a, b, admin } = nodes;
    await leaveWithQueued(a, "cs", 5, "kept");
    await cutOff(proxy, b);
    await using first = await TestClient.open(b.port, { protocolVersion: 5 });
    assert.equal((await first.handshake(resumeConnect("cs", 5))).sessionPresent, false);
    await using clean = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await clean.handshake({ ...resumeConnect("cs", 5), clean: true });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    assert.equal(
      (await first.expect(PacketType.DISCONNECT)).reasonCode,
      ReasonCode.SESSION_TAKEN_OVER,
    );
    await first.expectClosed();
    await subscribe5(clean, [{ topic: "c/cs", qos: 1 }]);
    await bringBack(proxy, b);
    await eventually(
      async () => (await admin.hget("pg4:owner", "cs")) === "b",
      "B claiming the clean start's session",
    );
    // A's session, with its queued message, discarded [MQTT-3.1.2-4]; B's written.
    await eventually(
      async () => (await admin.hexists("pg4:store:sub:cs", "s/cs")) === 0,
      "A's subscription gone from the store",
    );
    await eventually(
      async () => (await admin.hexists("pg4:store:sub:cs", "c/cs")) === 1,
      "the clean start's subscription stored",
    );
    assert.doesNotMatch(b.log(), /provisional session of cs gives way/);
    await clean.send({ type: PacketType.PINGREQ });
    await clean.expect(PacketType.PINGRESP);
  },
);

/** How many times `pattern` is in `node`'s log. */
const count = (node: Node, pattern: RegExp) =>
  node.log().match(new RegExp(pattern.source, "g"))?.length ?? 0;

Deno.test(
  "cluster: a provisional session whose claim went through as Redis was lost again (its answer lost) and that the client then resumes on another node is handed over whole: Session Present 1 there, with the message queued for it and acknowledged to its publisher [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using nodes = await startAway("pg5:");
    const { proxy, a, b, admin } = nodes;
    await cutOff(proxy, b);
    {
      await using prov = await TestClient.open(b.port, { protocolVersion: 5 });
      assert.equal((await prov.handshake(resumeConnect("fl", 5))).sessionPresent, false);
      await subscribe5(prov, [{ topic: "f/fl", qos: 1 }]);
      await prov.disconnect();
    }
    {
      await using pub = await TestClient.connect(b.port, { clientId: "pubb" });
      await pub.send(publishPacket("f/fl", "queued", { qos: 1, packetId: 1 }));
      assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
    }
    // Redis back: the settle's claim (read `n`, its last argument) runs, its answer held.
    const held = proxy.throttleRepliesFrom("\r\n$1\r\nn\r\n", 4);
    await bringBack(proxy, b);
    await held.reached;
    await eventually(async () => (await admin.hget("pg5:owner", "fl")) === "b", "B's claim");
    // Lost again before the answer came.
    const lost = count(b, /Cluster: lost Redis/);
    proxy.mode = "stall";
    proxy.cut();
    held.release();
    await until(() => count(b, /Cluster: lost Redis/) > lost, "B losing Redis again");
    await until(
      () => /cannot settle the provisional session of fl/.test(b.log()),
      "B's settle failing",
    );
    // The client resumes on A meanwhile: A claims the session from B, which answers once back.
    const back = count(b, /Cluster: Redis is back/);
    const resumed = (async () => {
      for (let attempt = 1;; attempt++) {
        const client = await TestClient.open(a.port, { protocolVersion: 5 });
        const connack = await client.handshake(resumeConnect("fl", 5));
        if (connack.reasonCode === 0) return { client, connack };
        await client.expectClosed();
        await client.close();
        assert.ok(attempt < 150, "fl accepted on A");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    await eventually(async () => (await admin.hget("pg5:owner", "fl")) === "a", "A's claim");
    proxy.mode = "forward";
    proxy.cut();
    await until(() => count(b, /Cluster: Redis is back/) > back, "B reconnecting");
    const { client, connack } = await resumed;
    await using onA = client;
    assert.equal(connack.sessionPresent, true, "the session B held, handed over");
    const p = await onA.expect(PacketType.PUBLISH);
    assert.equal(text(p), "queued");
    await onA.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  },
);
