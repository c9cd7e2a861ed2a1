/**
 * `RedisStore` and a read asked while Redis is away: it waits for Redis, and once sent it fails
 * if the connection closes before its answer, rather than waiting for an answer that never comes
 * (a command in flight is not sent again after a reconnection: `autoResendUnfulfilledCommands`
 * is off, so that a failed write never lands later). A real redis-server with an append-only
 * file behind a proxy; `CLIENT PAUSE … WRITE` holds the store's script unanswered (the reconnection's ready
 * check still answered) when the server is killed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { StallProxy } from "../cluster/_stall_proxy.ts";

/** Whether `promise` has settled (its callbacks run before the next macrotask). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const later = new Promise<false>((resolve) => setTimeout(() => resolve(false), 0));
  return await Promise.race([promise.then(() => true, () => true), later]);
}

/** An admin connection to `port` that does not reconnect. */
async function admin(port: number): Promise<Redis> {
  const redis = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  await redis.connect();
  return redis;
}

Deno.test("RedisStore: a read asked while Redis is away, sent once it is back and not answered when the connection closes again, fails instead of never settling", async () => {
  await using redis = await RedisServer.start({ persist: true });
  await using proxy = new StallProxy(redis.port);
  await using store = await RedisStore.open({ url: proxy.url, prefix: "q:store:" });
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

  // The store's next connection (its ready check) waits at the proxy until Redis holds scripts.
  const reconnection = proxy.hold("\r\n");
  await redis.stop();
  // Until the store has seen the connection close: a write is refused at once then.
  for (;;) {
    store.apply([{ type: "setCounter", name: "probe", value: 1 }]);
    const refused = await store.commit().then(() => false, () => true);
    if (refused) break;
  }
  const read = store.loadSession("c", Date.now());
  read.catch(() => {});
  await redis.resume();
  // Scripts wait (the store's ready check, INFO, does not): the read is sent once the store is
  // connected again, and waits.
  const paused = await admin(redis.port);
  try {
    await paused.client("PAUSE", "60000", "WRITE");
    proxy.release(await reconnection);
    for (;;) {
      // The store's connection, its script held (flags b).
      if (/flags=b .*cmd=eval/.test(String(await paused.client("LIST")))) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    paused.disconnect();
  }
  await redis.stop();
  await redis.resume();
  // Connected again (a read after the reconnection is answered).
  assert.deepEqual(await store.sessionIds(), ["c"]);
  assert.ok(await settled(read), "the read did not wait for an answer that never comes");
  await assert.rejects(read, StoreError);
});
