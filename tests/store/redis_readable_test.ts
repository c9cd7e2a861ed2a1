/**
 * `RedisStore.readable`: when another connection to the same Redis may read a session as this
 * store would (a cluster login reads it in its claim, on the bus's connection:
 * `ClusterBus.claimRead`). A write this store sent that Redis has not answered yet counts, not
 * only the batches still pending: the old read went on the store's own connection, behind such a
 * write; a read on another connection can overtake it. A real redis-server; `CLIENT PAUSE …
 * WRITE` holds the store's write unanswered while an admin connection reads.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { afterImmediates } from "../_helpers/immediates.ts";
import { persistentSession } from "./_rewrite_states.ts";

const P = "rd:store:";

async function admin(port: number): Promise<Redis> {
  const redis = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  return redis;
}

/**
 * The group commit (`setImmediate`) has sent what was applied. The wait is for that immediate, not
 * a `setTimeout(0)`, whose place among immediates is the event loop's to choose: run before it,
 * `readable()` would send the write itself, and the test would no longer show a write the group
 * commit sent.
 */
const turn = afterImmediates;

async function storeSession(store: RedisStore, clientId: string): Promise<void> {
  store.apply(persistentSession(clientId));
  await store.commit();
}

Deno.test("RedisStore: readable() waits for a write the group commit sent and Redis has not answered, so that another connection reads the session after it", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({ url: redis.url, prefix: P });
  const other = await admin(redis.port);
  try {
    await storeSession(store, "gone");
    await other.call("CLIENT", "PAUSE", "60000", "WRITE");
    store.apply([{ type: "deleteSession", clientId: "gone" }]);
    const committed = store.commit();
    await turn();
    // The deletion is sent (nothing pending), held by Redis unanswered.
    assert.notEqual(await other.hget(`${P}sessions`, "gone"), null, "not applied yet");
    const readable = store.readable();
    assert.notEqual(readable, undefined, "a write in flight: not readable at once");
    await other.call("CLIENT", "UNPAUSE");
    await readable;
    assert.equal(await other.hget(`${P}sessions`, "gone"), null, "read after the deletion");
    await committed;
    assert.equal(store.readable(), undefined, "nothing in flight: readable at once");
  } finally {
    await other.call("CLIENT", "UNPAUSE").catch(() => {});
    await other.quit();
  }
});

Deno.test("RedisStore: readable() waits for a deletion written at once (deleteDiscarded) that Redis has not answered", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({ url: redis.url, prefix: P });
  const other = await admin(redis.port);
  try {
    await storeSession(store, "discarded");
    await other.call("CLIENT", "PAUSE", "60000", "WRITE");
    const deleted = store.deleteDiscarded("discarded");
    await turn();
    const readable = store.readable();
    assert.notEqual(readable, undefined, "a write in flight: not readable at once");
    await other.call("CLIENT", "UNPAUSE");
    await readable;
    assert.equal(await other.hget(`${P}sessions`, "discarded"), null, "read after the deletion");
    await deleted;
  } finally {
    await other.call("CLIENT", "UNPAUSE").catch(() => {});
    await other.quit();
  }
});
