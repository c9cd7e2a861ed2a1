/**
 * `RedisStore`'s own check that Redis kept its data (`dataCheckInterval`): an idle store whose
 * keys are gone with no reconnection (deleted, evicted, FLUSHALL) learns of it without a write of
 * its own and without the cluster's bus, which checks its own keys only: the loss is reported as
 * a failed write of kind `lost`, which starts the broker's outage and rewrite. A store whose
 * writes are answered asks nothing more: each write checks the epoch itself. A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { waitFor } from "../_helpers/broker.ts";

/** A connection of the test's own. */
async function admin(server: RedisServer): Promise<Redis & AsyncDisposable> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  redis.on("error", () => {});
  await redis.connect();
  return Object.assign(redis, { [Symbol.asyncDispose]: () => redis.quit().then(() => {}) });
}

const SESSION: StoreMutation = {
  type: "putSession",
  session: {
    clientId: "c",
    protocolVersion: 4,
    clean: false,
    expiryInterval: undefined,
    offlineSince: 1,
  },
};

Deno.test("RedisStore: an idle store finds on its own that Redis lost its keys, with no reconnection and no write, and reports it as a loss", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({
    url: redis.url,
    prefix: "dc1:store:",
    dataCheckInterval: 20,
  });
  const failures: unknown[] = [];
  store.reportFailures((error) => failures.push(error));
  store.apply([SESSION]);
  await store.commit();
  await using other = await admin(redis);
  // The store's keys alone go (another prefix, a bus's, stays): no connection closes.
  await other.set("dc1:epoch", "the bus's");
  const keys = await other.keys("dc1:store:*");
  assert.ok(keys.includes("dc1:store:epoch"), keys.join(" "));
  await other.del(...keys);
  const transactions = store.transactions;
  await waitFor(() => store.dataLost, 10_000, "the store's own check");
  assert.equal(store.transactions, transactions, "no write told it");
  assert.equal(failures.length, 1);
  assert.ok(failures[0] instanceof StoreError && failures[0].kind === "lost", String(failures[0]));
  assert.equal(await other.get("dc1:epoch"), "the bus's");
});
