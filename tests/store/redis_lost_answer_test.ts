/**
 * `RedisStore` and a command whose answer is lost: Redis dies (SIGKILL) with the command sent and
 * not answered. A write is then reported failed and is not sent again once Redis is back (the
 * broker's rewrite after the outage replaces what it changed; landing later, it would undo the
 * rewrite); a read fails too rather than wait for an answer that never comes. A real
 * redis-server with an append-only file, its clients paused (`CLIENT PAUSE`) so that the store's
 * commands wait unanswered when the server is killed. (A busy script from `redis-cli` did that
 * before, with a race: a probe connecting once the script ran waited for it to end, 60 s.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";

/**
 * Makes the server postpone every other client's commands (`CLIENT PAUSE … ALL`): read, neither
 * run nor answered. In effect once this resolves; a server killed meanwhile never runs them.
 */
async function pause(port: number): Promise<void> {
  const admin = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    retryStrategy: () => null,
  });
  admin.on("error", () => {});
  await admin.connect();
  try {
    assert.equal(await admin.call("CLIENT", "PAUSE", "600000", "ALL"), "OK");
  } finally {
    admin.disconnect();
  }
}

/** Whether `promise` has settled (its callbacks run before the next macrotask). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const later = new Promise<false>((resolve) => setTimeout(() => resolve(false), 0));
  return await Promise.race([promise.then(() => true, () => true), later]);
}

Deno.test("RedisStore: a write whose answer is lost when Redis dies is reported failed and not applied once Redis is back; a read in flight fails", async () => {
  await using redis = await RedisServer.start({ persist: true });
  await using store = await RedisStore.open({ url: redis.url, prefix: "l:store:" });
  store.apply([{
    type: "putSession",
    session: {
      clientId: "c",
      protocolVersion: 4,
      clean: false,
      expiryInterval: undefined,
      offlineSince: 1,
    },
  }]);
  await store.commit();
  await store.counters(["warm"]);

  await pause(redis.port);
  store.apply([{ type: "deleteSession", clientId: "c" }]);
  const commit = store.commit();
  commit.catch(() => {});
  const read = store.sessionIds();
  read.catch(() => {});
  // Both are sent (the connection is up) and wait, postponed, when the server dies.
  await redis.stop();
  await assert.rejects(commit, StoreError, "the deletion is reported failed");
  await redis.resume();
  await store.counters(["probe"]);
  assert.ok(
    await settled(read),
    "the read in flight did not wait for an answer that never comes",
  );
  await assert.rejects(read, StoreError);
  // Whatever else the store sends, the failed deletion is not among it.
  store.apply([{ type: "setCounter", name: "after", value: 1 }]);
  await store.commit();
  assert.deepEqual(await store.sessionIds(), ["c"], "the failed deletion did not land later");
});
