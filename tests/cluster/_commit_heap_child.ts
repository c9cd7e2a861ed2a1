/**
 * Child of `redis_store_retention_test.ts`, run with `--v8-flags=--expose-gc`: commits to a
 * `RedisStore` on the Redis at `Deno.args[0]` many times and prints the V8 heap kept per commit
 * after forced collections, as JSON.
 *
 * @module
 */

import { RedisStore } from "../../src/cluster/redis_store.ts";

const gc = (globalThis as unknown as { gc: () => void }).gc;
await using store = await RedisStore.open({ url: Deno.args[0]!, prefix: "retention:" });
async function commits(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    store.apply([{ type: "setCounter", name: "c", value: i }]);
    await store.commit();
  }
}
await commits(1000);
gc();
gc();
const before = Deno.memoryUsage().heapUsed;
const n = 5000;
await commits(n);
gc();
gc();
console.log(JSON.stringify({ perCommit: (Deno.memoryUsage().heapUsed - before) / n }));
