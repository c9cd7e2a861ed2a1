/**
 * `RedisStore.rewrite` and the sessions that ended while Redis was away: their deletion was in a
 * write that failed, so Redis still holds them when it comes back with its data. The rewrite
 * after the outage deletes them (Redis then holds what the node holds), unless the cluster's
 * ownership hash names another node that wrote the session since (it resumed it, or made a new
 * one); one that only claimed it, waiting for this node's handoff, must not get back a session
 * that ended. A real redis-server with an append-only file, stopped and started again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { queuedSession } from "./_rewrite_states.ts";

/** A persistent session subscribed to `<clientId>/#`, with one queued message under `id`. */
function session(clientId: string, id: number): StoreMutation[] {
  return queuedSession(clientId, `${clientId}/#`, id);
}

Deno.test("RedisStore.rewrite: a session ended while Redis was away (its deletion failed) is deleted by the rewrite, unless another node owns it now and wrote or read it since [MQTT-3.1.2-6]", async () => {
  await using redis = await RedisServer.start({ persist: true });
  await using store = await RedisStore.open({
    url: redis.url,
    prefix: "e:store:",
    owner: { key: "e:owner", node: "a" },
  });
  await using other = await RedisStore.open({
    url: redis.url,
    prefix: "e:store:",
    owner: { key: "e:owner", node: "b" },
  });
  store.apply([
    ...session("gone", 1),
    ...session("moved", 2),
    ...session("kept", 3),
    ...session("claimed", 4),
    ...session("adopted", 5),
  ]);
  await store.commit();
  const plain = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  plain.on("error", () => {});
  await plain.connect();
  try {
    await plain.hset(
      "e:owner",
      ...["gone", "a", "moved", "a", "kept", "a", "claimed", "a", "adopted", "a"],
    );

    await redis.stop();
    store.apply([
      { type: "deleteSession", clientId: "gone" },
      { type: "deleteSession", clientId: "moved" },
      { type: "deleteSession", clientId: "claimed" },
      { type: "deleteSession", clientId: "adopted" },
    ]);
    await assert.rejects(store.commit(), StoreError, "the deletions are not written");
    await redis.resume();
    await store.counters(["none"]);
    // The write reported failed did not land once Redis was back either (it was not queued).
    assert.deepEqual(
      (await plain.hkeys("e:store:sessions")).sort(),
      ["adopted", "claimed", "gone", "kept", "moved"],
      "the failed deletions are not applied after Redis is back",
    );
    // Another node took "moved" over after Redis came back, and its login wrote the session.
    await plain.hset("e:owner", "moved", "b");
    await other.counters(["none"]);
    other.apply([{
      type: "putSession",
      session: {
        clientId: "moved",
        protocolVersion: 4,
        clean: false,
        expiryInterval: undefined,
        offlineSince: undefined,
      },
    }]);
    await other.commit();
    // Another node claimed "claimed" and waits for this node's handoff: it wrote nothing of it.
    await plain.hset("e:owner", "claimed", "b");
    // Another node took "adopted" (this node taken for dead meanwhile) and read it: it holds the
    // session, and writes its changes on top of what it read; deleted under it, they would be
    // dropped (the store ignores writes for a missing session), acknowledged messages with them.
    await plain.hset("e:owner", "adopted", "b");
    await other.loadSession("adopted", Date.now());

    await store.rewrite(session("kept", 3));
    const state = await store.load(Date.now());
    assert.deepEqual(
      state.sessions.map((s) => s.session.clientId).sort(),
      ["adopted", "kept", "moved"],
    );
    assert.deepEqual(
      [...state.messages.keys()].sort(),
      [2, 3, 5],
      "the ended session's message went",
    );
    // Done once: a later rewrite does not delete "moved" once its owner changed back either.
    await plain.hset("e:owner", "moved", "a");
    await store.rewrite(session("kept", 3));
    const again = await store.load(Date.now());
    assert.deepEqual(
      again.sessions.map((s) => s.session.clientId).sort(),
      ["adopted", "kept", "moved"],
    );
  } finally {
    await plain.quit();
  }
});
