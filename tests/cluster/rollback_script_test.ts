// The bus scripts' rollback check (`P count`), run as they are in a real redis-server: a heartbeat
// or registration that finds the counter below the node's last value, under the node's epoch,
// empties the cluster's keys (the store's too) but the counter and the store's id counter, and
// nothing of another prefix; a lower counter under another epoch, or from a node that knows none,
// is no rollback.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import {
  ADOPT_SCRIPT,
  CLAIM_SCRIPT,
  HEARTBEAT_SCRIPT,
  REGISTER_SCRIPT,
} from "../../src/cluster/_bus_scripts.ts";
import { RedisServer } from "../_helpers/redis.ts";

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

/** Heartbeat of node `n` as incarnation `i`, epoch and last gen given: { gen, rolled back }. */
async function heartbeat(redis: Redis, P: string, epoch: string, gen: number) {
  const reply = await redis.eval(HEARTBEAT_SCRIPT, 0, P, "n", "1000", "i", epoch, String(gen), "0");
  const [, , , , current, rolled] = reply as unknown[];
  return { gen: current, rolled };
}

/**
 * Heartbeat of node `node` (incarnation `i`) under epoch `e1`, with the last `P count` and own
 * `P gen:ID` given: { gen, rolled back, own }.
 */
async function beat(redis: Redis, P: string, node: string, gen: number, own: number) {
  const reply = await redis.eval(
    HEARTBEAT_SCRIPT,
    0,
    P,
    node,
    "1000",
    "i",
    "e1",
    String(gen),
    String(own),
  ) as unknown[];
  return { gen: reply[4], rolled: reply[5], own: reply[6] };
}

/** Cluster keys of `P`, the store's among them, and a key of a prefix `P` begins. */
async function fill(redis: Redis, P: string): Promise<void> {
  await redis.set(`${P}epoch`, "e1");
  await redis.set(`${P}count`, "5");
  await redis.set(`${P}inc:n`, "i");
  await redis.sadd(`${P}nodes`, "n");
  await redis.hset(`${P}retained`, "t", "old");
  await redis.hset(`${P}store:sessions`, "c", "{}");
  // A chain of moves under way (its writer mark and the nodes the owner waits for) goes too.
  await redis.hset(`${P}store:writer`, "c", "a");
  await redis.hset(`${P}store:handing`, "c", "a\nb");
  await redis.set(`${P}store:epoch`, "s1");
  await redis.set(`${P}store:msgid`, "16777216");
  await redis.set("other:x", "kept");
}

Deno.test("bus scripts: a heartbeat finding P count below the node's last one under its epoch empties the cluster's keys but P count and P store:msgid", async () => {
  await withRedis(async (redis) => {
    // The prefix's glob characters are escaped: "{r*}:" must not match "{rx}:".
    for (const P of ["rb:", "{r*}:"]) {
      await fill(redis, P);
      await redis.set("{rx}:epoch", "kept");
      assert.deepEqual(await heartbeat(redis, P, "e1", 9), { gen: 6, rolled: 1 });
      // (The node's own counter, counted again after the emptying.)
      assert.deepEqual((await redis.keys(`${P.replace("*", "\\*")}*`)).sort(), [
        `${P}count`,
        `${P}gen:n`,
        `${P}store:msgid`,
      ]);
      // Started again at Redis's clock in microseconds (COUNT_LUA).
      assert.ok(Number(await redis.get(`${P}gen:n`)) > 1e15);
      assert.equal(await redis.get(`${P}store:msgid`), "16777216");
      assert.equal(await redis.get("other:x"), "kept");
      assert.equal(await redis.get("{rx}:epoch"), "kept");
      // Afterwards (epoch gone, then a new one), the lower counter is no rollback.
      assert.deepEqual(await heartbeat(redis, P, "e1", 9), { gen: 7, rolled: 0 });
      await redis.set(`${P}epoch`, "e2");
      await redis.hset(`${P}retained`, "t", "new");
      assert.deepEqual(await heartbeat(redis, P, "e1", 9), { gen: 8, rolled: 0 });
      assert.equal(await redis.hget(`${P}retained`, "t"), "new");
    }
  });
});

Deno.test("bus scripts: the emptying after a rollback leaves the keys of a cluster whose prefix begins with this one's (a and ab, amqtt: and amqtt:eu:)", async () => {
  await withRedis(async (redis) => {
    for (const [P, Q] of [["a", "ab"], ["amqtt:", "amqtt:eu:"]]) {
      await fill(redis, Q);
      await redis.set(`${Q}alive:n`, "1");
      await redis.sadd(`${Q}owned:n`, "c");
      const before = (await redis.keys(`${Q}*`)).sort();
      await fill(redis, P);
      await redis.set(`${P}alive:n`, "1");
      assert.deepEqual(await heartbeat(redis, P, "e1", 9), { gen: 6, rolled: 1 });
      assert.deepEqual((await redis.keys(`${Q}*`)).sort(), before);
      assert.equal(await redis.get(`${Q}epoch`), "e1");
      assert.equal(await redis.hget(`${Q}store:sessions`, "c"), "{}");
      // This cluster's keys went all the same.
      assert.equal(await redis.get(`${P}epoch`), null);
      assert.equal(await redis.get(`${P}alive:n`), null);
      assert.equal(await redis.hget(`${P}store:sessions`, "c"), null);
      await redis.flushall();
    }
  });
});

Deno.test("bus scripts: P count at or above the node's last one, or a node that knows no gen or no epoch, is no rollback", async () => {
  await withRedis(async (redis) => {
    const P = "ok:";
    await fill(redis, P);
    assert.deepEqual(await heartbeat(redis, P, "e1", 5), { gen: 6, rolled: 0 });
    assert.deepEqual(await heartbeat(redis, P, "e1", 0), { gen: 7, rolled: 0 });
    assert.deepEqual(await heartbeat(redis, P, "", 99), { gen: 8, rolled: 0 });
    assert.equal(await redis.hget(`${P}retained`, "t"), "old");
    assert.equal(await redis.get(`${P}store:epoch`), "s1");
  });
});

Deno.test("bus scripts: a registration finding P count below the node's last one empties the cluster's keys first, so the incarnation key it lacks fences nothing", async () => {
  await withRedis(async (redis) => {
    const P = "reg:";
    await fill(redis, P);
    // Registered after the snapshot: its incarnation key is not in the data Redis went back to.
    await redis.del(`${P}inc:n`);
    const reply = await redis.eval(
      REGISTER_SCRIPT,
      0,
      P,
      "n",
      "1000",
      "sync",
      "i",
      "0",
      "e1",
      "9",
      "0",
      "1",
      "f/#",
      "owned-1",
    ) as unknown[];
    assert.deepEqual(reply.slice(0, 4), [1, [], 6, 1]);
    // Its own counter, gone with the emptying, started again at Redis's clock (COUNT_LUA).
    assert.ok(Number(reply[4]) > 1e15);
    assert.equal(await redis.get(`${P}inc:n`), "i");
    assert.equal(await redis.get(`${P}epoch`), null);
    assert.equal(await redis.hget(`${P}owner`, "owned-1"), "n");
    assert.deepEqual(await redis.smembers(`${P}interest:n`), ["f/#"]);
    assert.equal(await redis.hget(`${P}retained`, "t"), null);
    assert.equal(await redis.hget(`${P}store:sessions`, "c"), null);
  });
});

Deno.test("bus scripts: a claim or adoption by a node whose incarnation key is gone with the epoch kept is not fenced while P count is below the node's last one (Redis went back, not found yet), and is fenced otherwise", async () => {
  await withRedis(async (redis) => {
    const P = "fc:";
    await fill(redis, P);
    await redis.del(`${P}inc:n`);
    // P count is 5: the node got 9 before Redis went back.
    const claimed = await redis.eval(CLAIM_SCRIPT, 0, P, "n", "i", "e1", "9", "c", "f", "", "");
    assert.deepEqual((claimed as unknown[]).slice(0, -1), [""]);
    assert.equal(await redis.hget(`${P}owner`, "c"), "n");
    const adopted = await redis.eval(ADOPT_SCRIPT, 0, P, "n", "d", "0", "i", "e1", "9");
    assert.deepEqual((adopted as unknown[]).slice(0, 2), [1, ""]);
    // The node got no more than Redis holds: the key expired while it was paused (reaped).
    await assert.rejects(
      redis.eval(CLAIM_SCRIPT, 0, P, "n", "i", "e1", "5", "e", "f", "", ""),
      /AMQTT_FENCED/,
    );
    await assert.rejects(
      redis.eval(ADOPT_SCRIPT, 0, P, "n", "g", "0", "i", "e1", "0"),
      /AMQTT_FENCED/,
    );
    assert.equal(await redis.hget(`${P}owner`, "e"), null);
  });
});

Deno.test("bus scripts: a node's own counter below its last one finds the rollback that nodes idle since the snapshot hid from P count", async () => {
  await withRedis(async (redis) => {
    const P = "own:";
    await fill(redis, P);
    await redis.set(`${P}inc:m`, "i");
    await redis.set(`${P}gen:m`, "1");
    await redis.set(`${P}gen:n`, "3");
    // Before the snapshot: P count 5, n's own counter 3. After it (then lost), n counted to 7 of
    // its own (store writes) and P count to 6; m, idle since the snapshot, heartbeats first after
    // the rollback and raises P count to 6 and 7, as high as n last got.
    assert.deepEqual(await beat(redis, P, "m", 5, 1), { gen: 6, rolled: 0, own: 2 });
    assert.deepEqual(await beat(redis, P, "m", 6, 2), { gen: 7, rolled: 0, own: 3 });
    assert.equal(await redis.hget(`${P}retained`, "t"), "old");
    // n's heartbeat: P count (7) is not below its last (6), its own counter (3) is below 7.
    const found = await beat(redis, P, "n", 6, 7);
    assert.deepEqual([found.gen, found.rolled], [8, 1]);
    assert.equal(await redis.get(`${P}epoch`), null);
    assert.equal(await redis.hget(`${P}retained`, "t"), null);
    assert.equal(await redis.get(`${P}gen:m`), null);
  });
});

Deno.test("bus scripts: a node's own counter at or above its last one, or gone (the node registered after the snapshot, or paused past its key's week), is no rollback by itself", async () => {
  await withRedis(async (redis) => {
    const P = "own2:";
    await fill(redis, P);
    await redis.set(`${P}gen:n`, "4");
    assert.deepEqual(await beat(redis, P, "n", 5, 4), { gen: 6, rolled: 0, own: 5 });
    // Counted higher by another process of the same node id (a restart): no rollback.
    await redis.set(`${P}gen:n`, "40");
    assert.deepEqual(await beat(redis, P, "n", 6, 5), { gen: 7, rolled: 0, own: 41 });
    // Gone: started again at Redis's clock in microseconds, above what the node got (COUNT_LUA).
    await redis.del(`${P}gen:n`);
    const again = await beat(redis, P, "n", 7, 41);
    assert.deepEqual([again.gen, again.rolled], [8, 0]);
    assert.ok(Number(again.own) > 1e15);
    assert.deepEqual(await beat(redis, P, "n", 8, Number(again.own)), {
      gen: 9,
      rolled: 0,
      own: Number(again.own) + 1,
    });
    assert.equal(await redis.hget(`${P}retained`, "t"), "old");
  });
});

Deno.test("bus scripts: P count gone (deleted, or evicted by an allkeys maxmemory policy) under the node's epoch is no rollback: the cluster's keys stay and the counter starts again", async () => {
  await withRedis(async (redis) => {
    const P = "ev:";
    await fill(redis, P);
    await redis.del(`${P}count`);
    // It starts again at Redis's clock in microseconds, above what any node got (COUNT_LUA):
    // another node that got more than this one before finds no rollback either.
    const { gen, rolled } = await heartbeat(redis, P, "e1", 9);
    assert.equal(rolled, 0);
    assert.ok(Number(gen) > 1e15);
    assert.deepEqual(await heartbeat(redis, P, "e1", 12), { gen: Number(gen) + 1, rolled: 0 });
    assert.equal(await redis.get(`${P}epoch`), "e1");
    assert.equal(await redis.hget(`${P}retained`, "t"), "old");
    assert.equal(await redis.hget(`${P}store:sessions`, "c"), "{}");
    // Lower than the node's last value once more, with the key there: Redis went back.
    await redis.set(`${P}count`, "3");
    assert.deepEqual(await heartbeat(redis, P, "e1", 9), { gen: 4, rolled: 1 });
    assert.equal(await redis.hget(`${P}retained`, "t"), null);
  });
});

Deno.test("bus scripts: a reaped node's own counter is kept as long as its reaped mark, and a registration keeps it for good", async () => {
  await withRedis(async (redis) => {
    const P = "rp:";
    await redis.set(`${P}epoch`, "e1");
    await redis.sadd(`${P}nodes`, "n");
    await redis.set(`${P}inc:n`, "i");
    await redis.set(`${P}gen:n`, "12");
    await redis.set(`${P}count`, "1");
    await redis.set(`${P}gen:m`, "1");
    // No liveness key: m's heartbeat reaps n.
    await beat(redis, P, "m", 0, 0);
    assert.equal(await redis.get(`${P}inc:n`), "reaped");
    assert.equal(await redis.get(`${P}gen:n`), "12");
    const ttl = await redis.pttl(`${P}gen:n`);
    assert.ok(ttl > 0 && ttl <= await redis.pttl(`${P}inc:n`) + 1000, String(ttl));
    // The paused node's heartbeat finds its counter as it left it: fenced, no rollback.
    const reply = await beat(redis, P, "n", 0, 12);
    assert.deepEqual(reply, { gen: 3, rolled: 0, own: 13 });
    assert.equal(await redis.get(`${P}epoch`), "e1");
    await redis.eval(REGISTER_SCRIPT, 0, P, "n", "1000", "sync", "j", "1", "e1", "3", "13", "0");
    assert.equal(await redis.pttl(`${P}gen:n`), -1);
  });
});

Deno.test("bus scripts: a node registered after the snapshot (its own counter and incarnation key gone) finds the rollback although idle nodes raised P count past its last one, unless its last script was answered longer ago than a reaped mark lives (then fenced)", async () => {
  await withRedis(async (redis) => {
    const P = "late:";
    await fill(redis, P);
    await redis.del(`${P}inc:n`);
    await redis.sadd(`${P}nodes`, "n");
    // P count (5) raised by idle nodes to 9, n's last: no rollback by P count.
    await redis.set(`${P}count`, "9");
    // Passing no own counter (answered too long ago): a node paused past its reaped mark.
    const [registered, , , epoch, , rolled] = await redis.eval(
      HEARTBEAT_SCRIPT,
      0,
      P,
      "n",
      "1000",
      "i",
      "e1",
      "9",
      "0",
    ) as unknown[];
    assert.deepEqual([registered, epoch, rolled], [0, "e1", 0]);
    assert.equal(await redis.hget(`${P}retained`, "t"), "old");
    // Passing its own counter's last value: Redis went back to before its registration.
    await redis.del(`${P}gen:n`);
    const found = await beat(redis, P, "n", 10, 4);
    assert.equal(found.rolled, 1);
    assert.equal(await redis.get(`${P}epoch`), null);
    assert.equal(await redis.hget(`${P}retained`, "t"), null);
  });
});

Deno.test("bus scripts: a counter gone starts again above the value the node passes when Redis's clock is behind it (set back since the counter last started), so that the node's next script finds no rollback", async () => {
  await withRedis(async (redis) => {
    const P = "clk:";
    await fill(redis, P);
    // Values past Redis's clock in microseconds: started at a clock ahead of this one.
    const ahead = 5_000_000_000_000_000;
    await redis.del(`${P}count`);
    const { gen, rolled } = await heartbeat(redis, P, "e1", ahead);
    assert.deepEqual([gen, rolled], [ahead + 1, 0]);
    await redis.del(`${P}gen:n`);
    const own = await beat(redis, P, "n", ahead + 1, ahead + 7);
    assert.deepEqual(own, { gen: ahead + 2, rolled: 0, own: ahead + 8 });
    assert.deepEqual(await beat(redis, P, "n", ahead + 2, ahead + 8), {
      gen: ahead + 3,
      rolled: 0,
      own: ahead + 9,
    });
    assert.equal(await redis.get(`${P}epoch`), "e1");
    assert.equal(await redis.hget(`${P}retained`, "t"), "old");
  });
});
