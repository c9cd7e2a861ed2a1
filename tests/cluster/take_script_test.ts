// The take script (`TAKE_SCRIPT`), run as it is in a real redis-server: a node takes a shared
// QoS 2 message of its stream for a delivery before its first PUBLISH, under the key a pass of it
// uses in `P passed:ID`; whoever adds the key first owns the message for that group
// [MQTT-4.8.2-5]. A take asked again (its answer lost) finds its own key; a key a pass wrote
// first refuses the take, and a pass finds a key taken and passes nothing.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { PASS_SCRIPT, TAKE_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { RedisServer } from "../_helpers/redis.ts";

const P = "tk:";
const KEEP = "60000";

async function withRedis(body: (redis: Redis) => Promise<void>): Promise<void> {
  await using server = await RedisServer.start();
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    await body(redis);
  } finally {
    await redis.quit();
  }
}

/** Takes of node `n`: pairs of (entry ms, key); the script's answer per pair. */
function take(redis: Redis, ...pairs: string[]): Promise<unknown> {
  return redis.eval(TAKE_SCRIPT, 0, P, "n", KEEP, ...pairs);
}

/** A pass of `key` from node `n`'s stream (as its rescuer makes it) to node `c`'s stream. */
function pass(redis: Redis, key: string, ms: string): Promise<unknown> {
  return redis.eval(
    PASS_SCRIPT,
    0,
    P,
    "n",
    key,
    ms,
    `${P}s:c`,
    "frame",
    KEEP,
    "0",
    `o p 1 1 ${key}`,
    "4",
    "c",
  );
}

Deno.test(
  "TAKE_SCRIPT takes a key once per message and group, again for a take asked twice, and marks the node as one that takes",
  async () => {
    await withRedis(async (redis) => {
      assert.deepEqual(
        await take(redis, "1000", "1000-0 0 $share/g/t", "1000", "1000-0 1 $share/g/t"),
        [1, 1],
      );
      // Its answer lost, the take is asked again: its own key, taken.
      assert.deepEqual(await take(redis, "1000", "1000-0 0 $share/g/t"), [1]);
      assert.equal(await redis.zscore(`${P}passed:n`, "~"), "inf");
      assert.ok(await redis.pttl(`${P}passed:n`) > 0);
    });
  },
);

Deno.test(
  "TAKE_SCRIPT refuses a key a pass wrote first, and PASS_SCRIPT passes nothing under a key taken [MQTT-4.8.2-5]",
  async () => {
    await withRedis(async (redis) => {
      // The rescuer passed the message on first: the node, paused meanwhile, must not send it.
      assert.equal(await pass(redis, "1000-0 0 $share/g/t", "1000"), 1);
      assert.deepEqual(await take(redis, "1000", "1000-0 0 $share/g/t"), [0]);
      // The node took the message first: the rescuer's pass of it is made already, in effect.
      assert.deepEqual(await take(redis, "1000", "1000-0 1 $share/g/t"), [1]);
      assert.equal(await pass(redis, "1000-0 1 $share/g/t", "1000"), 0);
      // One pass written to C's stream, that of the key the rescuer had first.
      assert.equal(await redis.xlen(`${P}s:c`), 1);
    });
  },
);
