/**
 * The ordinary writes of a cluster node's `RedisStore` to a session another node holds (`wo` in
 * the write script): Redis restarted empty while node A was cut off (a TCP proxy between A and
 * Redis), node B took A's session meanwhile (nobody owned it any more), and A, back, writes its
 * sessions again (its rewrite leaves B's) and goes on writing before its registration tells it
 * that B has the session. Its queued entry, its acknowledgement of a delivery number B uses too
 * and its session record must not land on B's rows; the rest of the same write (A's own session)
 * lands, and A is told which session it lost (`taken`). Also: B's read of a session as missing
 * makes it B's before B's first write; a claim from another node names that node the writer
 * until the claimant reads (a live handover's last writes go through); a release drops the mark
 * of a session never stored (its reader's, or the one a claim refused before its read made). A real redis-server, the bus's scripts run on it as the bus does.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { CLAIM_SCRIPT, RELEASE_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { StallProxy } from "../cluster/_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

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

/** A message `id` and its delivery to `clientId` under number `seq`. */
function queued(clientId: string, id: number, seq = 2): StoreMutation[] {
  const payload = new TextEncoder().encode(`late for ${clientId}`);
  return [
    { type: "putMessage", id, message: { topic: "late", payload, qos: 1, retain: false } },
    { type: "queueOutbound", clientId, seq, messageId: id, qos: 1 },
  ];
}

/** The session record of `clientId` with expiry 999 and a subscription to `late/#`. */
function record(clientId: string): StoreMutation[] {
  return [
    {
      type: "putSession",
      session: { clientId, protocolVersion: 4, clean: false, expiryInterval: 999, offlineSince: 2 },
    },
    { type: "putSubscription", clientId, subscription: { filter: "late/#", ...SUBSCRIPTION } },
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
  };
}

/**
 * Awaits `store`'s commit, which `wo` refused in part (a session another node writes): it rejects
 * with a `StoreError` of kind `taken` once the rest is applied, so that nothing it carried for that
 * session is acknowledged.
 */
async function refused(store: RedisStore): Promise<void> {
  await assert.rejects(
    store.commit(),
    (e) =>
      e instanceof StoreError && e.kind === "taken" && /written by other nodes/.test(e.message),
  );
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * Two cluster stores on one redis-server, A's through a proxy, a store without a cluster reading
 * (`reader`) and a plain connection (`admin`, for the bus's keys). `taken` gathers what A's store
 * reports as taken (`client@node`).
 */
async function cluster(prefix: string) {
  const redis = await RedisServer.start();
  const proxy = new StallProxy(redis.port);
  const taken: string[] = [];
  const owner = (node: string) => ({
    key: `${prefix}owner`,
    node,
    taken: (clientId: string, by: string) => {
      if (node === "a") taken.push(`${clientId}@${by}`);
    },
  });
  const a = await RedisStore.open({ url: proxy.url, prefix: `${prefix}store:`, owner: owner("a") });
  const b = await RedisStore.open({ url: redis.url, prefix: `${prefix}store:`, owner: owner("b") });
  const reader = await RedisStore.open({ url: redis.url, prefix: `${prefix}store:` });
  const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  admin.on("error", () => {});
  await admin.connect();
  return {
    ownerKey: `${prefix}owner`,
    redis,
    proxy,
    a,
    b,
    reader,
    admin,
    taken,
    async [Symbol.asyncDispose]() {
      admin.disconnect();
      await reader.close();
      await b.close();
      await a.close();
      await proxy[Symbol.asyncDispose]();
      await redis[Symbol.asyncDispose]();
    },
  };
}

type Cluster = Awaited<ReturnType<typeof cluster>>;

/**
 * A owns and has written "moved" and "mine"; A is cut off, Redis restarts empty (the ownership
 * goes with it), and the client of "moved" logs in on B: B reads nothing (before its claim, as a
 * login does), claims the session from nobody, and, unless `write` is false, starts a new one
 * (subscribed to `new/#`, its message queued under delivery number 1). Then A is back: it finds
 * the data lost, renumbers, and writes its sessions again. Returns A's first new id and B's.
 */
async function takenWhileCutOff(
  c: Cluster,
  write = true,
): Promise<{ mine: number; first: number }> {
  const { a, b, proxy, redis, admin, ownerKey } = c;
  await admin.hset(ownerKey, "moved", "a", "mine", "a");
  a.apply([...session("moved", "old/#", 1), ...session("mine", "old/#", 2)]);
  await a.commit();
  proxy.mode = "stall";
  proxy.cut();
  await redis.restart();
  await eventually(() => b.checkData(), "B finding the data lost");
  let first = 0;
  await b.renewIds(100, (next) => first = next);
  assert.equal((await b.loadSession("moved", Date.now())).sessions.length, 0);
  await admin.hset(ownerKey, "moved", "b");
  if (write) {
    b.apply(session("moved", "new/#", first, 120));
    await b.commit();
  }
  proxy.mode = "forward";
  proxy.cut();
  await eventually(() => a.checkData(), "A finding the data lost");
  let mine = 0;
  await a.renewIds(100, (next) => mine = next);
  await a.rewrite([...session("moved", "old/#", mine), ...session("mine", "old/#", mine + 1)]);
  return { mine, first };
}

const B_ROWS = { expiry: 120, filters: ["new/#"], queued: [] as number[] };

Deno.test(
  "RedisStore: after Redis lost its data, a queued entry of a node cut off meanwhile does not land on the session another node took; the rest of the write does, and the node is told",
  opts,
  async () => {
    await using c = await cluster("wq:");
    const { mine, first } = await takenWhileCutOff(c);
    const bs = { ...B_ROWS, queued: [first] };
    assert.deepEqual(await rows(c.reader, "moved"), bs, "the rewrite left B's session");
    c.a.apply([...queued("moved", mine + 2), ...queued("mine", mine + 3)]);
    await refused(c.a);
    assert.deepEqual(await rows(c.reader, "moved"), bs, "B's queue, without A's entry");
    assert.deepEqual(
      (await rows(c.reader, "mine"))?.queued,
      [mine + 1, mine + 3],
      "A's own session",
    );
    // A's message for B's session is not kept unreferenced.
    assert.equal(await c.admin.hexists("wq:store:msg", String(mine + 2)), 0);
    assert.deepEqual(c.taken, ["moved@b"]);
  },
);

Deno.test(
  "RedisStore: after Redis lost its data, the acknowledgement of a node cut off meanwhile does not delete the entry of the same delivery number of the session another node took",
  opts,
  async () => {
    await using c = await cluster("wd:");
    const { first } = await takenWhileCutOff(c);
    // A's delivery 1 of its copy of the session is acknowledged: B's delivery 1 is another message.
    c.a.apply([
      { type: "deleteOutbound", clientId: "moved", seq: 1 },
      { type: "deleteOutbound", clientId: "mine", seq: 1 },
    ]);
    await refused(c.a);
    assert.deepEqual(await rows(c.reader, "moved"), { ...B_ROWS, queued: [first] });
    assert.deepEqual((await rows(c.reader, "mine"))?.queued, []);
    assert.deepEqual(c.taken, ["moved@b"]);
  },
);

Deno.test(
  "RedisStore: after Redis lost its data, the session record of a node cut off meanwhile does not replace the one of the node that took the session",
  opts,
  async () => {
    await using c = await cluster("wr:");
    const { first } = await takenWhileCutOff(c);
    c.a.apply([...record("moved"), ...record("mine")]);
    await refused(c.a);
    assert.deepEqual(await rows(c.reader, "moved"), { ...B_ROWS, queued: [first] });
    assert.equal((await rows(c.reader, "mine"))?.expiry, 999);
    assert.deepEqual(c.taken, ["moved@b"]);
  },
);

Deno.test(
  "RedisStore: a session read as missing by the node that then takes it is that node's before its first write: neither the rewrite nor the writes of a node cut off while Redis lost its data mix their rows with it",
  opts,
  async () => {
    await using c = await cluster("wm:");
    // B read the session as missing and claimed it, and has not written it yet when A is back.
    const { mine } = await takenWhileCutOff(c, false);
    assert.equal(await rows(c.reader, "moved"), undefined, "A's rewrite left the session to B");
    c.a.apply([...record("moved"), ...queued("moved", mine + 2)]);
    await refused(c.a);
    assert.equal(await rows(c.reader, "moved"), undefined, "nor did A's writes land");
    assert.deepEqual(c.taken, ["moved@b"]);
    // B's first write: its new session alone.
    let first = 0;
    await c.b.renewIds(100, (next) => first = next);
    c.b.apply(session("moved", "new/#", first, 120));
    await c.b.commit();
    assert.deepEqual(await rows(c.reader, "moved"), { ...B_ROWS, queued: [first] });
  },
);

Deno.test(
  "RedisStore: a session its owner read and discarded (a clean start [MQTT-3.1.2-6]) stays that node's: the writes of a node cut off while Redis lost its data do not put the discarded session back",
  opts,
  async () => {
    await using c = await cluster("wx:");
    const { a, b, proxy, redis, admin, ownerKey, reader, taken } = c;
    await admin.hset(ownerKey, "moved", "a");
    a.apply(session("moved", "old/#", 1));
    await a.commit();
    proxy.mode = "stall";
    proxy.cut();
    await redis.restart();
    proxy.mode = "forward";
    proxy.cut();
    // A, back, writes its copy again (nobody owns it: the ownership went with the data).
    await eventually(() => a.checkData(), "A finding the data lost");
    let mine = 0;
    await a.renewIds(100, (next) => mine = next);
    await a.rewrite(session("moved", "old/#", mine));
    // B's login claims it from nobody and reads A's copy; its client starts clean: the session
    // read is discarded, and the new one is not stored.
    await eventually(() => b.checkData(), "B finding the data lost");
    await b.renewIds(100, () => {});
    await admin.hset(ownerKey, "moved", "b");
    assert.equal((await b.loadSession("moved", 0)).sessions.length, 1);
    await b.deleteDiscarded("moved");
    assert.equal(await rows(reader, "moved"), undefined);
    // A goes on writing its copy before its registration tells it that B has the session.
    a.apply([...record("moved"), ...queued("moved", mine + 1)]);
    await refused(a);
    assert.equal(await rows(reader, "moved"), undefined, "the discarded session stays discarded");
    assert.deepEqual(taken, ["moved@b"]);
    // Its release, the session never stored again, drops B's mark.
    await admin.eval(RELEASE_SCRIPT, 0, "wx:", "b", "moved");
    assert.equal(await admin.hexists("wx:store:writer", "moved"), 0);
  },
);

Deno.test(
  "RedisStore: in a live handover the old owner's last writes land though the new owner read the session as missing before its claim; the new owner's read after the handoff makes it the writer",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "lh:";
    const owner = (node: string) => ({ key: `${P}owner`, node, taken: () => taken++ });
    let taken = 0;
    await using a = await RedisStore.open({
      url: redis.url,
      prefix: `${P}store:`,
      owner: owner("a"),
    });
    await using b = await RedisStore.open({
      url: redis.url,
      prefix: `${P}store:`,
      owner: owner("b"),
    });
    await using reader = await RedisStore.open({ url: redis.url, prefix: `${P}store:` });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    admin.on("error", () => {});
    await admin.connect();
    try {
      // B reads the session before anyone owns it (marked B's), then A gets the client first and
      // owns it, writing its queue but no record yet; then B's login claims it from A.
      assert.equal((await b.loadSession("h", Date.now())).sessions.length, 0);
      await admin.hset(`${P}owner`, "h", "a");
      assert.deepEqual(
        // (The node's own counter last.)
        (await admin.eval(
          CLAIM_SCRIPT,
          0,
          P,
          "b",
          "inc-b",
          "",
          "0",
          "h",
          "frame",
          "",
          "",
        ) as unknown[])
          .slice(0, -1),
        ["a"],
      );
      // A's last writes before its handoff.
      a.apply([...session("h", "a/#", 1)]);
      await a.commit();
      assert.equal(taken, 0);
      assert.deepEqual(await rows(reader, "h"), { expiry: 60, filters: ["a/#"], queued: [1] });
      // B reads after the handoff: from now on A's writes are refused.
      assert.equal((await b.loadSession("h", 0)).sessions.length, 1);
      a.apply(queued("h", 2));
      await refused(a);
      assert.equal(taken, 1);
      assert.deepEqual((await rows(reader, "h"))?.queued, [1]);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "RedisStore: the release of a session never stored drops its reader's writer mark; one stored keeps it",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rl:";
    await using b = await RedisStore.open({
      url: redis.url,
      prefix: `${P}store:`,
      owner: { key: `${P}owner`, node: "b" },
    });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    admin.on("error", () => {});
    await admin.connect();
    try {
      await b.loadSession("clean", Date.now());
      await b.loadSession("kept", Date.now());
      assert.equal(await admin.hget(`${P}store:writer`, "clean"), "b");
      b.apply(session("kept", "k/#", 1));
      await b.commit();
      await admin.eval(RELEASE_SCRIPT, 0, P, "b", "clean");
      await admin.eval(RELEASE_SCRIPT, 0, P, "b", "kept");
      assert.equal(await admin.hexists(`${P}store:writer`, "clean"), 0);
      assert.equal(await admin.hget(`${P}store:writer`, "kept"), "b");
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "RedisStore: a login refused after its claim from another node gives the session back without the writer mark its claim made, unless the old owner stored the session meanwhile",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rg:";
    const taken: string[] = [];
    const owner = (node: string) => ({
      key: `${P}owner`,
      node,
      taken: (clientId: string, by: string) => taken.push(`${clientId}@${by}`),
    });
    await using a = await RedisStore.open({
      url: redis.url,
      prefix: `${P}store:`,
      owner: owner("a"),
    });
    await using c = await RedisStore.open({
      url: redis.url,
      prefix: `${P}store:`,
      owner: owner("c"),
    });
    await using reader = await RedisStore.open({ url: redis.url, prefix: `${P}store:` });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    admin.on("error", () => {});
    await admin.connect();
    const claimFromA = async (clientId: string) => {
      await admin.hset(`${P}owner`, clientId, "a");
      assert.deepEqual(
        // (The node's own counter last.)
        (await admin.eval(
          CLAIM_SCRIPT,
          0,
          P,
          "b",
          "inc-b",
          "",
          "0",
          clientId,
          "frame",
          "",
          "",
        ) as unknown[])
          .slice(0, -1),
        ["a"],
      );
      assert.equal(await admin.hget(`${P}store:writer`, clientId), "a");
    };
    try {
      // A's clean session, never stored: B's login claims it, is refused before its read, and
      // gives it back.
      await claimFromA("x");
      assert.equal(await admin.eval(RELEASE_SCRIPT, 0, P, "b", "x"), 1);
      assert.equal(await admin.hexists(`${P}store:writer`, "x"), 0);
      // Node C, holding the session without owning it yet (its claim is still to be made), writes
      // it: it lands, and C is not told that A took it.
      c.apply(session("x", "c/#", 1));
      await c.commit();
      assert.deepEqual(taken, []);
      assert.deepEqual(await rows(reader, "x"), { expiry: 60, filters: ["c/#"], queued: [1] });

      // A stored its session (its last writes before the handoff) before B gave it back: A
      // stays its writer.
      await claimFromA("y");
      a.apply(session("y", "a/#", 2));
      await a.commit();
      assert.equal(await admin.eval(RELEASE_SCRIPT, 0, P, "b", "y"), 1);
      assert.equal(await admin.hget(`${P}store:writer`, "y"), "a");
      c.apply(queued("y", 3));
      await refused(c);
      assert.deepEqual(taken, ["y@a"]);
      assert.deepEqual((await rows(reader, "y"))?.queued, [2]);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "RedisStore: writes land on a session nobody wrote yet, and from a store without a cluster",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const owner = (node: string) => ({ key: "ok:owner", node });
    await using a = await RedisStore.open({
      url: redis.url,
      prefix: "ok:store:",
      owner: owner("a"),
    });
    await using b = await RedisStore.open({
      url: redis.url,
      prefix: "ok:store:",
      owner: owner("b"),
    });
    await using plain = await RedisStore.open({ url: redis.url, prefix: "ok:store:" });
    // "fresh": A's first write of a new session, its ownership not in Redis (nobody owns it).
    a.apply(session("fresh", "f/#", 3));
    await a.commit();
    assert.deepEqual((await rows(plain, "fresh"))?.filters, ["f/#"]);
    // A store without a cluster writes whatever the cluster's stores noted: B's session here.
    b.apply(session("held", "b/#", 4));
    await b.commit();
    plain.apply([...record("held"), ...queued("held", 5)]);
    await plain.commit();
    assert.deepEqual(await rows(plain, "held"), {
      expiry: 999,
      filters: ["b/#", "late/#"],
      queued: [4, 5],
    });
  },
);

Deno.test(
  "RedisStore: a load-time expiry deletes a session another node wrote, read before this node claims it, so the new session a login starts does not get its rows",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const owner = (node: string) => ({ key: "ex:owner", node });
    await using a = await RedisStore.open({
      url: redis.url,
      prefix: "ex:store:",
      owner: owner("a"),
    });
    await using b = await RedisStore.open({
      url: redis.url,
      prefix: "ex:store:",
      owner: owner("b"),
    });
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
      // A login on A reads each first (before its claim): expired, deleted.
      assert.equal((await a.loadSession("left", Date.now())).sessions.length, 0);
      assert.equal((await a.loadSession("owned", Date.now())).sessions.length, 0);
      assert.equal(await rows(reader, "left"), undefined);
      assert.equal(await rows(reader, "owned"), undefined);
      assert.equal(await admin.hlen("ex:store:msg"), 0);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "RedisStore: a session expired when its new owner reads it stays that node's after the deletion: another node's writes do not land under the new session",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const owner = (node: string) => ({
      key: "xo:owner",
      node,
      taken: (clientId: string, by: string) => taken.push(`${clientId}@${by}`),
    });
    const taken: string[] = [];
    await using a = await RedisStore.open({
      url: redis.url,
      prefix: "xo:store:",
      owner: owner("a"),
    });
    await using b = await RedisStore.open({
      url: redis.url,
      prefix: "xo:store:",
      owner: owner("b"),
    });
    await using reader = await RedisStore.open({ url: redis.url, prefix: "xo:store:" });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    admin.on("error", () => {});
    await admin.connect();
    try {
      // Written by A, offline since time 1 with an expiry of 60 s, owned by nobody; B's login
      // claims it and reads it (as the claim with its read does): expired, deleted.
      a.apply(session("gone", "old/#", 1));
      await a.commit();
      await admin.hset("xo:owner", "gone", "b");
      assert.equal((await b.loadSession("gone", Date.now())).sessions.length, 0);
      assert.equal(await rows(reader, "gone"), undefined);
      assert.equal(await admin.hget("xo:store:writer", "gone"), "b");
      // A's late writes of its copy (cut off meanwhile, say) do not make a session under B's.
      a.apply([...record("gone"), ...queued("gone", 2)]);
      await refused(a);
      assert.equal(await rows(reader, "gone"), undefined);
      assert.deepEqual(taken, ["gone@b"]);
    } finally {
      admin.disconnect();
    }
  },
);
