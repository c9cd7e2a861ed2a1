// The Redis store's fence (`RedisStoreOptions.fence`): a cluster node's writes carry its
// incarnation, and Redis refuses a write whole, atomically, once the incarnation key names
// another one (the node was reaped while only paused, and its sessions adopted elsewhere). The
// writer learns it as a `fenced` StoreError (no outage), after the `refused` callback.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { message, session } from "./_conformance.ts";

const KEY = "c:inc:node-a";

/** A store fenced by `KEY`, with the incarnation `token.current`, noting its refusals. */
function openFenced(server: RedisServer, token: { current: string }, refused: StoreError[]) {
  return RedisStore.open({
    url: server.url,
    prefix: "c:store:",
    fence: { key: KEY, token: () => token.current, refused: (error) => refused.push(error) },
  });
}

async function withRedis<T>(server: RedisServer, body: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    return await body(redis);
  } finally {
    await redis.quit();
  }
}

function isFenced(error: unknown): boolean {
  assert.ok(error instanceof StoreError);
  assert.equal(error.kind, "fenced");
  assert.match(error.message, /taken for dead/);
  return true;
}

Deno.test("RedisStore with a fence writes while its incarnation is the key's, or no key is set", async () => {
  await using server = await RedisServer.start();
  const token = { current: "one" };
  const refused: StoreError[] = [];
  await using store = await openFenced(server, token, refused);
  // No key yet (Redis lost its data, or no node registered): nothing is fenced.
  store.apply([{ type: "putSession", session: session("c1") }]);
  await store.commit();
  await withRedis(server, (r) => r.set(KEY, "one"));
  store.apply([{ type: "putSession", session: session("c2") }]);
  await store.commit();
  const ids = (await store.load(Date.now())).sessions.map((s) => s.session.clientId).sort();
  assert.deepEqual(ids, ["c1", "c2"]);
  assert.deepEqual(refused, []);
});

Deno.test("RedisStore refuses a reaped incarnation's commit whole, atomically, as fenced", async () => {
  await using server = await RedisServer.start();
  const token = { current: "one" };
  const refused: StoreError[] = [];
  await using store = await openFenced(server, token, refused);
  await withRedis(server, (r) => r.set(KEY, "one"));
  store.apply([
    { type: "putSession", session: session("c1") },
    { type: "putMessage", id: 1, message: message("t", "first") },
    { type: "queueOutbound", clientId: "c1", seq: 1, messageId: 1, qos: 1 },
  ]);
  await store.commit();
  // Reaped: the key names another incarnation (the reaping script writes "reaped"; the adopter
  // loads the session from here on).
  await withRedis(server, (r) => r.set(KEY, "reaped"));
  store.apply([
    { type: "putMessage", id: 2, message: message("t", "second") },
    { type: "queueOutbound", clientId: "c1", seq: 2, messageId: 2, qos: 1 },
  ]);
  store.apply([{ type: "putSession", session: session("c2") }]);
  let order = "";
  const commit = store.commit().catch((error) => {
    // The callback came first: the cluster closes the clients before any waiter hears of it.
    order += refused.length === 1 ? "refused, then rejected" : "rejected first";
    throw error;
  });
  await assert.rejects(commit, isFenced);
  assert.equal(order, "refused, then rejected");
  assert.equal(refused[0]!.kind, "fenced");
  // Nothing of it was applied: the session as before, no c2, no message 2.
  const state = await withRedis(server, async (r) => ({
    sessions: (await r.hkeys("c:store:sessions")).sort(),
    out: await r.hkeys("c:store:out:c1"),
    messages: (await r.hkeys("c:store:msg")).sort(),
  }));
  assert.deepEqual(state, { sessions: ["c1"], out: ["1"], messages: ["1"] });
  // A rewrite (after an outage) of the reaped incarnation is refused as well.
  await assert.rejects(store.rewrite([{ type: "putSession", session: session("c3") }]), isFenced);
  assert.deepEqual(await withRedis(server, (r) => r.hkeys("c:store:sessions")), ["c1"]);
  // Registered again as a new incarnation: its writes go through again.
  token.current = "two";
  await withRedis(server, (r) => r.set(KEY, "two"));
  store.apply([{ type: "putSession", session: session("c4") }]);
  await store.commit();
  assert.deepEqual((await withRedis(server, (r) => r.hkeys("c:store:sessions"))).sort(), [
    "c1",
    "c4",
  ]);
});

Deno.test("RedisStore writes each batch under the incarnation current when it was applied", async () => {
  await using server = await RedisServer.start();
  const token = { current: "one" };
  const refused: StoreError[] = [];
  await using store = await openFenced(server, token, refused);
  // Registered again as "two" after "one" was reaped.
  await withRedis(server, (r) => r.set(KEY, "two"));
  // Applied by the reaped incarnation, then (in the same turn) by the new one: the first is
  // refused, the second stored.
  store.apply([{ type: "putSession", session: session("old") }]);
  token.current = "two";
  store.apply([{ type: "putSession", session: session("new") }]);
  await assert.rejects(store.commit(), isFenced);
  assert.deepEqual(await withRedis(server, (r) => r.hkeys("c:store:sessions")), ["new"]);
});

Deno.test("RedisStore refuses a write whose incarnation key is gone while the cluster's epoch is the node's (its reaped mark expired during a long pause), not when the epoch is gone", async () => {
  await using server = await RedisServer.start();
  const refused: StoreError[] = [];
  const epoch = { current: "" };
  await using store = await RedisStore.open({
    url: server.url,
    prefix: "c:store:",
    fence: {
      key: KEY,
      token: () => "one",
      epochKey: "c:epoch",
      epoch: () => epoch.current,
      refused: (error) => refused.push(error),
    },
  });
  // The node knows no epoch yet: a key gone fences nothing.
  store.apply([{ type: "putSession", session: session("c1") }]);
  await store.commit();
  // Registered under epoch e1, reaped, then paused past the reaped mark's life: key gone.
  await withRedis(server, (r) => r.set("c:epoch", "e1"));
  epoch.current = "e1";
  store.apply([{ type: "putSession", session: session("c2") }]);
  await assert.rejects(store.commit(), isFenced);
  assert.equal(refused.length, 1);
  assert.deepEqual(await withRedis(server, (r) => r.hkeys("c:store:sessions")), ["c1"]);
  // The cluster's epoch changed (Redis lost its data, another node registered since): no fence.
  await withRedis(server, (r) => r.set("c:epoch", "e2"));
  store.apply([{ type: "putSession", session: session("c3") }]);
  await store.commit();
  assert.deepEqual((await withRedis(server, (r) => r.hkeys("c:store:sessions"))).sort(), [
    "c1",
    "c3",
  ]);
  assert.equal(refused.length, 1);
});

Deno.test("RedisStore does not refuse a write whose incarnation key is gone with the cluster's epoch kept while the cluster's P gen is below the node's last one (Redis went back to older data), and refuses it otherwise", async () => {
  await using server = await RedisServer.start();
  const refused: StoreError[] = [];
  const gen = { current: 9 };
  await using store = await RedisStore.open({
    url: server.url,
    prefix: "c:store:",
    fence: {
      key: KEY,
      token: () => "one",
      epochKey: "c:epoch",
      epoch: () => "e1",
      genKey: "c:gen",
      gen: () => gen.current,
      refused: (error) => refused.push(error),
    },
  });
  await withRedis(server, (r) => r.mset("c:epoch", "e1", "c:gen", "5"));
  store.apply([{ type: "putSession", session: session("c1") }]);
  await store.commit();
  assert.deepEqual(await withRedis(server, (r) => r.hkeys("c:store:sessions")), ["c1"]);
  // The node got no more than Redis holds: its key gone is the expired reaped mark.
  gen.current = 5;
  store.apply([{ type: "putSession", session: session("c2") }]);
  await assert.rejects(store.commit(), isFenced);
  assert.equal(refused.length, 1);
  assert.deepEqual(await withRedis(server, (r) => r.hkeys("c:store:sessions")), ["c1"]);
});

Deno.test("RedisStore with the node's own counter counts every write that passes the fence, and tells its value and epoch before the commit's waiters learn of it; a refused write counts nothing", async () => {
  await using server = await RedisServer.start();
  const counted: [number, string][] = [];
  const token = { current: "one" };
  let seenByWaiter = -1;
  const taken: [string, string][] = [];
  await using store = await RedisStore.open({
    url: server.url,
    prefix: "c:store:",
    owner: { key: "c:owner", node: "node-a", taken: (c, n) => taken.push([c, n]) },
    fence: {
      key: KEY,
      token: () => token.current,
      epochKey: "c:epoch",
      epoch: () => "e1",
      nodeGenKey: "c:gen:node-a",
      counted: (gen, epoch) => counted.push([gen, epoch]),
    },
  });
  await withRedis(server, (r) => r.mset(KEY, "one", "c:epoch", "e1", "c:gen:node-a", "41"));
  store.apply([{ type: "putSession", session: session("c1") }]);
  await store.commit().then(() => seenByWaiter = counted.length);
  assert.equal(seenByWaiter, 1);
  store.apply([
    { type: "putMessage", id: 1, message: message("t", "m") },
    { type: "queueOutbound", clientId: "c1", seq: 1, messageId: 1, qos: 1 },
  ]);
  await store.commit();
  // A write at once (outside the group commit) and a rewrite count too.
  await store.deleteDiscarded("nobody");
  await store.rewrite([{ type: "putSession", session: session("c1") }]);
  assert.deepEqual(counted, [[42, "e1"], [43, "e1"], [44, "e1"], [45, "e1"]]);
  assert.equal(await withRedis(server, (r) => r.get("c:gen:node-a")), "45");
  // Another node wrote c2 since and owns it: c2's operations are refused (`wo`), counted still.
  await withRedis(
    server,
    (r) =>
      r.multi().hset("c:store:sessions", "c2", "{}").hset("c:store:writer", "c2", "node-b")
        .hset("c:owner", "c2", "node-b").exec(),
  );
  store.apply([{
    type: "putSubscription",
    clientId: "c2",
    subscription: {
      filter: "x/#",
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    },
  }]);
  // Applied but for c2's part: the commit rejects, so that nothing it carried is acknowledged.
  await assert.rejects(
    store.commit(),
    (e) => e instanceof StoreError && e.kind === "taken",
  );
  assert.deepEqual(counted.at(-1), [46, "e1"]);
  assert.deepEqual(taken, [["c2", "node-b"]]);
  assert.equal(await withRedis(server, (r) => r.exists("c:store:sub:c2")), 0);
  // Reaped: nothing is counted.
  await withRedis(server, (r) => r.set(KEY, "reaped"));
  store.apply([{ type: "putSession", session: session("c3") }]);
  await assert.rejects(store.commit(), isFenced);
  assert.equal(counted.length, 5);
  assert.equal(await withRedis(server, (r) => r.get("c:gen:node-a")), "46");
});

Deno.test("RedisStore does not refuse a write whose incarnation key and own counter are both gone while the node got a value of that counter (it registered after the snapshot Redis went back to, which idle nodes hid from P gen), and refuses it when the node passes none or the counter is there", async () => {
  await using server = await RedisServer.start();
  const refused: StoreError[] = [];
  const own = { current: 7 };
  await using store = await RedisStore.open({
    url: server.url,
    prefix: "c:store:",
    fence: {
      key: KEY,
      token: () => "one",
      epochKey: "c:epoch",
      epoch: () => "e1",
      genKey: "c:gen",
      gen: () => 5,
      nodeGenKey: "c:gen:node-a",
      nodeGen: () => own.current,
      refused: (error) => refused.push(error),
    },
  });
  await withRedis(server, (r) => r.mset("c:epoch", "e1", "c:gen", "9"));
  store.apply([{ type: "putSession", session: session("c1") }]);
  await store.commit();
  assert.deepEqual(refused, []);
  // Counted by that write: the counter is there now, and the key gone fences.
  store.apply([{ type: "putSession", session: session("c2") }]);
  await assert.rejects(store.commit(), isFenced);
  // Gone again, with no value passed (the node's last answer is older than a reaped mark lives).
  await withRedis(server, (r) => r.del("c:gen:node-a"));
  own.current = 0;
  store.apply([{ type: "putSession", session: session("c3") }]);
  await assert.rejects(store.commit(), isFenced);
  assert.equal(refused.length, 2);
  assert.deepEqual(await withRedis(server, (r) => r.hkeys("c:store:sessions")), ["c1"]);
});
