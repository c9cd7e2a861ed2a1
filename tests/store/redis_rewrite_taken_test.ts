/**
 * `RedisStore.rewrite` of a cluster node and the sessions another node took over while it was
 * away: one that node wrote since (it took it without a handoff, Redis having lost the ownership
 * with its data) stays as that node wrote it; one that node only claimed (it waits for this
 * node's handoff) gets this node's state, as does one nobody else owns. A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { queuedSession as session } from "./_rewrite_states.ts";
import { Redis } from "ioredis";

Deno.test("RedisStore.rewrite: a session another node owns and wrote since is left as that node wrote it; one it only claimed, or nobody else owns, gets the rewrite [MQTT-3.1.2-4]", async () => {
  await using redis = await RedisServer.start();
  const owner = (node: string) => ({ key: "t:owner", node });
  await using a = await RedisStore.open({ url: redis.url, prefix: "t:store:", owner: owner("a") });
  await using b = await RedisStore.open({ url: redis.url, prefix: "t:store:", owner: owner("b") });
  a.apply([
    ...session("taken", "old/#", 1),
    ...session("claimed", "old/#", 2),
    ...session("mine", "old/#", 3),
  ]);
  await a.commit();
  const plain = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  await plain.connect();
  try {
    // B took "taken" over and wrote it (a new session of its own); it claimed "claimed" and
    // waits for A's handoff; "mine" is A's.
    await plain.hset("t:owner", "taken", "b", "claimed", "b", "mine", "a");
    b.apply([{ type: "deleteSession", clientId: "taken" }, ...session("taken", "new/#", 11)]);
    await b.commit();

    await a.rewrite([
      ...session("taken", "rewritten/#", 21),
      ...session("claimed", "rewritten/#", 22),
      ...session("mine", "rewritten/#", 23),
    ]);
    const state = await a.load(Date.now());
    const filters = new Map(
      state.sessions.map((s) => [s.session.clientId, s.subscriptions.map((x) => x.filter)]),
    );
    assert.deepEqual(filters.get("taken"), ["new/#"], "B's session is left as B wrote it");
    assert.deepEqual(filters.get("claimed"), ["rewritten/#"]);
    assert.deepEqual(filters.get("mine"), ["rewritten/#"]);
    const taken = state.sessions.find((s) => s.session.clientId === "taken")!;
    assert.deepEqual(taken.outbound.map((o) => o.messageId), [11]);
    // The rewrite's message for the session it left is not kept unreferenced.
    assert.deepEqual([...state.messages.keys()].sort((x, y) => x - y), [11, 22, 23]);
  } finally {
    await plain.quit();
  }
});

Deno.test("RedisStore.rewrite: a session another node owns and has read, not written yet, is left as that node read it, not mixed with the rewrite [MQTT-3.1.2-4]", async () => {
  await using redis = await RedisServer.start();
  const owner = (node: string) => ({ key: "m:owner", node });
  await using a = await RedisStore.open({ url: redis.url, prefix: "m:store:", owner: owner("a") });
  await using b = await RedisStore.open({ url: redis.url, prefix: "m:store:", owner: owner("b") });
  a.apply(session("read", "old/#", 1));
  await a.commit();
  const plain = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  await plain.connect();
  try {
    // B claims the session from nobody (Redis lost the ownership while A was cut off) and reads
    // it: it holds "old/#" and message 1, and writes its changes on top of them.
    await plain.hset("m:owner", "read", "b");
    const read = await b.loadSession("read", Date.now());
    assert.deepEqual(read.sessions[0]!.subscriptions.map((s) => s.filter), ["old/#"]);
    // A's rewrite lands before B's first write.
    await a.rewrite(session("read", "rewritten/#", 21));
    b.apply([{
      type: "putSubscription",
      clientId: "read",
      subscription: {
        filter: "b/#",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      },
    }]);
    await b.commit();

    const stored = (await b.loadSession("read", Date.now())).sessions[0]!;
    assert.deepEqual(
      stored.subscriptions.map((s) => s.filter),
      ["b/#", "old/#"],
      "Redis holds what B holds, not A's rows mixed with B's",
    );
    assert.deepEqual(stored.outbound.map((o) => o.messageId), [1]);
  } finally {
    await plain.quit();
  }
});
