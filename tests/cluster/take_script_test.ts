// The take script (`TAKE_SCRIPT`), run as it is in a real redis-server: a node takes a shared
// QoS 2 message of its stream for a delivery before its first PUBLISH, under the key a pass of it
// uses in `P passed:ID`; whoever adds the key first owns the message for that group
// [MQTT-4.8.2-5]. A take asked again (its answer lost) finds its own key; a key a pass wrote
// first refuses the take, and a pass finds a key taken and passes nothing. A take of an
// incarnation that was reaped is refused whole (fenced): its rescuer passes the message on.
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

/**
 * Takes of node `n` as its incarnation `i1` (never registered here: not fenced), under no epoch:
 * pairs of (entry ms, key); the script's answer per pair.
 */
function take(redis: Redis, ...pairs: string[]): Promise<unknown> {
  return takeAs(redis, "i1", "", ...pairs);
}

/** Takes of node `n` as `incarnation`, which registered under `epoch` ('' for none). */
function takeAs(
  redis: Redis,
  incarnation: string,
  epoch: string,
  ...pairs: string[]
): Promise<unknown> {
  return redis.eval(TAKE_SCRIPT, 0, P, "n", incarnation, epoch, "0", KEEP, ...pairs);
}

/**
 * A pass of `key` from node `n`'s stream (as its rescuer makes it; `own`: as `n` makes it of a
 * message it never sent) to node `c`'s stream.
 */
function pass(redis: Redis, key: string, ms: string, own = false): Promise<unknown> {
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
    own ? "1" : "0",
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

Deno.test(
  "PASS_SCRIPT of the node's own message never sent replaces its take, once; a take asked again after it is refused [MQTT-4.8.2-5]",
  async () => {
    await withRedis(async (redis) => {
      assert.deepEqual(await take(redis, "1000", "1000-0 0 $share/g/t"), [1]);
      // Its member left before the PUBLISH was written: the node passes it on itself.
      assert.equal(await pass(redis, "1000-0 0 $share/g/t", "1000", true), 1);
      assert.equal(await redis.zscore(`${P}passed:n`, "1000-0 0 $share/g/t"), "1000");
      // Passed: neither a second pass (the node's, or a rescuer's) nor the take asked again.
      assert.equal(await pass(redis, "1000-0 0 $share/g/t", "1000", true), 0);
      assert.equal(await pass(redis, "1000-0 0 $share/g/t", "1000"), 0);
      assert.deepEqual(await take(redis, "1000", "1000-0 0 $share/g/t"), [0]);
      assert.equal(await redis.xlen(`${P}s:c`), 1);
    });
  },
);

Deno.test(
  "TAKE_SCRIPT answers each of many takes in one call (thousands of keys: read and added in chunks) in order",
  async () => {
    await withRedis(async (redis) => {
      const key = (i: number) => `1000-${i} 0 $share/g/t`;
      // One key passed first, one taken before: refused and taken again.
      assert.equal(await pass(redis, key(2600), "1000"), 1);
      assert.deepEqual(await take(redis, "1000", key(4100)), [1]);
      const pairs: string[] = [];
      for (let i = 0; i < 10_000; i++) pairs.push("1000", key(i));
      const made = await take(redis, ...pairs) as number[];
      assert.equal(made.length, 10_000);
      assert.deepEqual(made.flatMap((m, i) => m === 1 ? [] : [i]), [2600]);
      assert.equal(await redis.zcard(`${P}passed:n`), 10_001); // and `~`
      assert.equal(await redis.zscore(`${P}passed:n`, key(9999)), "1000.5");
    });
  },
);

Deno.test(
  "TAKE_SCRIPT of a reaped incarnation takes nothing, and the rescuer's pass of the message goes through [MQTT-4.8.2-5]",
  async () => {
    await withRedis(async (redis) => {
      await redis.set(`${P}epoch`, "e1");
      await redis.set(`${P}inc:n`, "i1");
      assert.deepEqual(await takeAs(redis, "i1", "e1", "1000", "1000-0 0 $share/g/t"), [1]);
      // Reaped while paused (its key says so), then registered again as `i2`: a take still
      // queued by `i1` reaches Redis before the rescuer's pass of its stream.
      await redis.set(`${P}inc:n`, "reaped");
      assert.equal(await takeAs(redis, "i1", "e1", "1000", "1000-1 0 $share/g/t"), -1);
      await redis.set(`${P}inc:n`, "i2");
      assert.equal(await takeAs(redis, "i1", "e1", "1000", "1000-2 0 $share/g/t"), -1);
      // Its key gone after the week (the epoch the same, `P count` not behind): fenced too.
      await redis.del(`${P}inc:n`);
      assert.equal(await takeAs(redis, "i1", "e1", "1000", "1000-3 0 $share/g/t"), -1);
      assert.deepEqual(await redis.zrange(`${P}passed:n`, 0, -1), ["1000-0 0 $share/g/t", "~"]);
      // The rescuer passes on what the reaped incarnation did not take, once.
      assert.equal(await pass(redis, "1000-1 0 $share/g/t", "1000"), 1);
      assert.equal(await pass(redis, "1000-2 0 $share/g/t", "1000"), 1);
      assert.equal(await pass(redis, "1000-0 0 $share/g/t", "1000"), 0);
      assert.equal(await redis.xlen(`${P}s:c`), 2);
    });
  },
);
