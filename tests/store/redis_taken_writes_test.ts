/**
 * The ordinary writes of a cluster node's `RedisStore` to a session another node holds: Redis
 * restarted empty while node A was cut off (a TCP proxy between A and Redis), node B took A's
 * session meanwhile (nobody owned it any more), and A, back, writes its sessions again (its
 * rewrite leaves B's) and goes on writing before its registration tells it that B has the
 * session. Those writes (its session record, a subscription, a queued entry, the acknowledgement
 * of a delivery number B uses too, an inbound QoS 2 id) must not land on B's rows; the rest of
 * the same write (A's own session) lands. Writes another node does not hold yet land: a live
 * handover (the new owner only claimed the session and waits for this node's state), a session
 * nobody holds, a store without a cluster. A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { StallProxy } from "../cluster/_stall_proxy.ts";

const SUBSCRIPTION = {
  qos: 1,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
} as const;

/** A persistent session subscribed to `filter`, with message `id` queued under number 1. */
function session(clientId: string, filter: string, id: number, expiry = 60): StoreMutation[] {
  const payload = new TextEncoder().encode(`${filter} for ${clientId}`);
  return [
    {
      type: "putSession",
      session: {
        clientId,
        protocolVersion: 4,
        clean: false,
        expiryInterval: expiry,
        offlineSince: 1,
      },
    },
    { type: "putSubscription", clientId, subscription: { filter, ...SUBSCRIPTION } },
    { type: "putMessage", id, message: { topic: `${clientId}/t`, payload, qos: 1, retain: false } },
    { type: "queueOutbound", clientId, seq: 1, messageId: id, qos: 1 },
  ];
}

/** A node's ordinary writes to a session it holds (or thinks it holds). */
function writes(clientId: string, id: number): StoreMutation[] {
  const payload = new TextEncoder().encode(`late for ${clientId}`);
  return [
    {
      type: "putSession",
      session: {
        clientId,
        protocolVersion: 4,
        clean: false,
        expiryInterval: 999,
        offlineSince: 2,
      },
    },
    { type: "putSubscription", clientId, subscription: { filter: "late/#", ...SUBSCRIPTION } },
    { type: "putMessage", id, message: { topic: "late", payload, qos: 1, retain: false } },
    { type: "queueOutbound", clientId, seq: 2, messageId: id, qos: 1 },
    // The acknowledgement of its own delivery number 1: the other node's entry 1 if it lands.
    { type: "deleteOutbound", clientId, seq: 1 },
    { type: "putInbound", clientId, packetId: 7 },
  ];
}

/**
 * What Redis holds of a session, read by a store without a cluster (its reads mark no writer) at
 * time 0 (nothing expires): record's expiry, filters, queued message ids, inbound ids.
 */
async function rows(reader: RedisStore, clientId: string) {
  const s = (await reader.loadSession(clientId, 0)).sessions[0];
  if (s === undefined) return undefined;
  return {
    expiry: s.session.expiryInterval,
    filters: s.subscriptions.map((x) => x.filter).sort(),
    queued: s.outbound.map((o) => o.messageId),
    inbound: [...s.inbound],
  };
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

Deno.test("RedisStore: after Redis lost its data, a node's writes to a session another node took meanwhile do not land on that node's rows; the rest of the write does [MQTT-3.1.2-4] [MQTT-3.1.2-5]", async () => {
  await using redis = await RedisServer.start();
  await using proxy = new StallProxy(redis.port);
  const owner = (node: string) => ({ key: "lf:owner", node });
  await using a = await RedisStore.open({ url: proxy.url, prefix: "lf:store:", owner: owner("a") });
  await using b = await RedisStore.open({ url: redis.url, prefix: "lf:store:", owner: owner("b") });
  await using reader = await RedisStore.open({ url: redis.url, prefix: "lf:store:" });
  const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  admin.on("error", () => {});
  await admin.connect();
  try {
    await admin.hset("lf:owner", "moved", "a", "mine", "a");
    a.apply([...session("moved", "old/#", 1), ...session("mine", "old/#", 2)]);
    await a.commit();

    // A is cut off; Redis restarts without its data (the ownership goes with it).
    proxy.mode = "stall";
    proxy.cut();
    await redis.restart();
    await eventually(() => b.checkData(), "B finding the data lost");
    let first = 0;
    await b.renewIds(100, (next) => first = next);
    // The client logs in on B: nobody owns its session, B claims it, reads nothing, and
    // starts a new one (subscribed anew, a message queued under its delivery number 1).
    await admin.hset("lf:owner", "moved", "b");
    assert.equal((await b.loadSession("moved", Date.now())).sessions.length, 0);
    b.apply(session("moved", "new/#", first, 120));
    await b.commit();
    const bs = { expiry: 120, filters: ["new/#"], queued: [first], inbound: [] };
    assert.deepEqual(await rows(reader, "moved"), bs);

    // A is back: it finds the data lost, renumbers, and writes its sessions again; the rewrite
    // leaves B's session (B wrote it since).
    proxy.mode = "forward";
    proxy.cut();
    await eventually(() => a.checkData(), "A finding the data lost");
    let mine = 0;
    await a.renewIds(100, (next) => mine = next);
    await a.rewrite([...session("moved", "old/#", mine), ...session("mine", "old/#", mine + 1)]);
    assert.deepEqual(await rows(reader, "moved"), bs, "the rewrite left it");

    // A's ordinary writes, before its registration tells it that B took the session.
    a.apply([...writes("moved", mine + 2), ...writes("mine", mine + 3)]);
    await a.commit();
    assert.deepEqual(
      await rows(reader, "moved"),
      bs,
      "B's record, subscriptions, queue and inbound ids, none of A's",
    );
    assert.deepEqual(await rows(reader, "mine"), {
      expiry: 999,
      filters: ["late/#", "old/#"],
      queued: [mine + 3],
      inbound: [7],
    }, "the rest of A's write landed");
    // A's message for B's session is not kept unreferenced.
    assert.equal(await admin.hexists("lf:store:msg", String(mine + 2)), 0);
  } finally {
    admin.disconnect();
  }
});

Deno.test("RedisStore: writes to a session no other node holds yet land: a live handover's new owner that only claimed it, a new session nobody owns, a store without a cluster", async () => {
  await using redis = await RedisServer.start();
  const owner = (node: string) => ({ key: "ok:owner", node });
  await using a = await RedisStore.open({ url: redis.url, prefix: "ok:store:", owner: owner("a") });
  await using b = await RedisStore.open({ url: redis.url, prefix: "ok:store:", owner: owner("b") });
  await using plain = await RedisStore.open({ url: redis.url, prefix: "ok:store:" });
  const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  admin.on("error", () => {});
  await admin.connect();
  try {
    await admin.hset("ok:owner", "handed", "a");
    a.apply(session("handed", "old/#", 1));
    await a.commit();
    // B claimed it (a takeover) and waits for A's last writes before it reads the session.
    await admin.hset("ok:owner", "handed", "b");
    // "fresh": A's first write of a new session, its ownership not in Redis (nobody owns it).
    a.apply([...writes("handed", 2), ...session("fresh", "f/#", 3)]);
    await a.commit();
    assert.deepEqual(await rows(plain, "handed"), {
      expiry: 999,
      filters: ["late/#", "old/#"],
      queued: [2],
      inbound: [7],
    });
    assert.deepEqual((await rows(plain, "fresh"))?.filters, ["f/#"]);
    // A store without a cluster writes whatever the cluster's stores noted: B's session here.
    await admin.hset("ok:owner", "held", "b");
    b.apply(session("held", "b/#", 4));
    await b.commit();
    plain.apply(writes("held", 5));
    await plain.commit();
    assert.deepEqual(await rows(plain, "held"), {
      expiry: 999,
      filters: ["b/#", "late/#"],
      queued: [5],
      inbound: [7],
    });
  } finally {
    admin.disconnect();
  }
});

Deno.test("RedisStore: a load-time expiry deletes a session another node wrote, read before this node claims it, so the new session a login starts does not get its rows", async () => {
  await using redis = await RedisServer.start();
  const owner = (node: string) => ({ key: "ex:owner", node });
  await using a = await RedisStore.open({ url: redis.url, prefix: "ex:store:", owner: owner("a") });
  await using b = await RedisStore.open({ url: redis.url, prefix: "ex:store:", owner: owner("b") });
  await using reader = await RedisStore.open({ url: redis.url, prefix: "ex:store:" });
  const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  admin.on("error", () => {});
  await admin.connect();
  try {
    // Written by B, offline since time 1 with an expiry of 60 s; B left (nobody owns it), and
    // another one B still owns.
    b.apply([...session("left", "old/#", 1), ...session("owned", "old/#", 2)]);
    await b.commit();
    await admin.hset("ex:owner", "owned", "b");
    assert.ok(await rows(reader, "left") !== undefined);
    // A login on A reads each first (before its claim): expired, deleted.
    assert.equal((await a.loadSession("left", Date.now())).sessions.length, 0);
    assert.equal((await a.loadSession("owned", Date.now())).sessions.length, 0);
    assert.equal(await rows(reader, "left"), undefined);
    assert.equal(await rows(reader, "owned"), undefined);
    assert.equal(await admin.hlen("ex:store:msg"), 0);
  } finally {
    admin.disconnect();
  }
});
