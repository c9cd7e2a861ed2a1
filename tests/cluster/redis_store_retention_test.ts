/**
 * A cluster node's store keeps nothing per commit once the commit is answered: each write raced
 * a promise settled only when Redis's connection closes, and every race left a reaction on it
 * (with the race's promise and the write's result) until then: about 320 B per commit, so a node
 * taking QoS 1/2 traffic for days grew without bound. Measured in a child process with forced
 * collections (the heap after, not a speed).
 */

import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";

Deno.test("RedisStore keeps no heap per answered commit on a long-lived connection", async () => {
  await using redis = await RedisServer.start();
  const child = new URL("./_commit_heap_child.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", child, redis.url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const { perCommit } = JSON.parse(text.trim().split("\n").pop()!);
  // Before the fix: ~320 B per commit; after: a few bytes (noise of the heap's own growth).
  assert.ok(perCommit < 100, `${perCommit.toFixed(1)} B of heap kept per commit`);
});
