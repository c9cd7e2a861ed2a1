/**
 * `RedisStore.rewrite` (the broker's rewrite after an outage, on a cluster's shared store): sent
 * in pieces to a staging list and applied by one script, so a writer killed in the middle leaves
 * the state before it, whole. A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { generationSummary, summary } from "./_rewrite_states.ts";

// A reply larger than one socket read starts ioredis's parser pool shrink interval, which ends by
// itself within about two seconds (see redis_store_test.ts).
const POOL_SHRINK_MS = 3000;

Deno.test("RedisStore.rewrite: a writer killed (kill -9) while it sends the pieces of a rewrite leaves the last whole generation; its staging list expires", async () => {
  await using redis = await RedisServer.start();
  const plain = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
  await plain.connect();
  const script = new URL("./_redis_rewrite_child.ts", import.meta.url).pathname;
  let cut = 0;
  try {
    for (let round = 0; round < 3; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, redis.url],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      let last = 0;
      let buffered = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const read = async () => {
        const { value, done } = await reader.read();
        if (done) return false;
        buffered += value;
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        for (const line of lines) last = Number(line);
        return true;
      };
      const before = new Set(await plain.keys("kill:rewrite:*"));
      try {
        const until = last + 1;
        while (last < until) assert.ok(await read(), "the child runs");
        // Once the next rewrite is being staged, Redis holds every write (the child's next
        // pieces and the script that would apply them) while the child is killed.
        const staging = async () =>
          (await plain.keys("kill:rewrite:*")).some((key) => !before.has(key));
        while (!await staging()) await new Promise((resolve) => setTimeout(resolve, 1));
        await plain.call("CLIENT", "PAUSE", "10000", "WRITE");
        child.kill("SIGKILL");
        while (await read());
      } finally {
        await plain.call("CLIENT", "UNPAUSE");
        await reader.cancel().catch(() => {});
      }
      assert.equal((await child.status).signal, "SIGKILL");
      if (await plain.keys("kill:rewrite:*").then((keys) => keys.some((k) => !before.has(k)))) {
        cut++;
      }
      const store = await RedisStore.open({ url: redis.url, prefix: "kill:" });
      try {
        const got = summary(await store.load(0));
        const g = Number(got.retained[0]?.slice("r/g".length));
        assert.ok(g === last || g === last + 1, `generation ${g} after ${last} resolved`);
        assert.deepEqual(got, generationSummary(g), "one whole generation");
      } finally {
        await store.close();
      }
    }
    assert.ok(cut > 0, "a rewrite was cut short in the middle of its pieces");
    for (const key of await plain.keys("kill:rewrite:*")) {
      const ttl = await plain.ttl(key);
      assert.ok(ttl > 0 && ttl <= 3600, `${key} expires (ttl ${ttl})`);
    }
  } finally {
    await plain.quit();
  }
  await new Promise((resolve) => setTimeout(resolve, POOL_SHRINK_MS));
});
