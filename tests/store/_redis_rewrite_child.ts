// A process that rewrites a Redis store again and again (generation 1, 2, …, see
// `_rewrite_states.ts`, with messages of 256 KiB: pieces of about 1 MiB), and prints each
// generation once its rewrite resolved, until it is killed. Used by the kill -9 test of
// `RedisStore.rewrite`.
//
// Usage: deno run -A _redis_rewrite_child.ts <redis url>
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { generation } from "./_rewrite_states.ts";

const store = await RedisStore.open({ url: Deno.args[0]!, prefix: "kill:" });
const encoder = new TextEncoder();
for (let g = 1;; g++) {
  await store.rewrite(generation(g, 256 * 1024));
  Deno.stdout.writeSync(encoder.encode(`${g}\n`));
}
