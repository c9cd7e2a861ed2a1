// The claim script with the session's read (`CLAIM_SCRIPT`, read mode `s` or `r`): what it claims,
// what it answers, and when it marks the node as the session's writer (`P store:writer`): as a
// read made after the claim would (`LOAD_SESSION_SCRIPT`), when the node owned the session already
// or claimed it from nobody; not when another node had it, which may still write it until its
// handoff. Run against a real redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { CLAIM_SCRIPT, REGISTER_SCRIPT } from "../../src/cluster/_bus_scripts.ts";

const P = "cr:";
const S = `${P}store:`;

async function withRedis(body: (redis: Redis) => Promise<void>): Promise<void> {
  await using server = await RedisServer.start();
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    await redis.eval(REGISTER_SCRIPT, 0, P, "n", "1000", "sync", "inc", "1", "", "0", "0", "0");
    await body(redis);
  } finally {
    await redis.quit();
  }
}

/** A stored session of `clientId`, with a subscription to `filter` when given. */
async function store(redis: Redis, clientId: string, filter?: string): Promise<void> {
  await redis.hset(`${S}sessions`, clientId, JSON.stringify({ clientId, protocolVersion: 4 }));
  if (filter !== undefined) {
    await redis.hset(`${S}sub:${clientId}`, filter, JSON.stringify({ filter, qos: 1 }));
  }
}

/** Node n claims `clientId` with read `mode`: its answer. */
function claim(redis: Redis, clientId: string, mode: "s" | "r"): Promise<unknown> {
  return redis.eval(CLAIM_SCRIPT, 0, P, "n", "inc", "", "0", clientId, "frame", "", mode);
}

Deno.test("claim script: a session claimed from nobody is read with it and marks the node as its writer", async () => {
  await withRedis(async (redis) => {
    await store(redis, "c1");
    const [[previous, claimed, rows]] = await claim(redis, "c1", "r") as [
      [string, number, unknown[]],
    ];
    assert.equal(previous, "");
    assert.equal(claimed, 1);
    assert.match(String(rows[0]), /"clientId":"c1"/);
    assert.equal(await redis.hget(`${P}owner`, "c1"), "n");
    assert.equal(await redis.hget(`${S}writer`, "c1"), "n");
  });
});

Deno.test("claim script: a session claimed from another node is not marked as this node's to write (the other may still write it until its handoff)", async () => {
  await withRedis(async (redis) => {
    await store(redis, "c2");
    await redis.hset(`${P}owner`, "c2", "m");
    await redis.hset(`${S}writer`, "c2", "m");
    const sub = redis.duplicate();
    const notices: string[] = [];
    await sub.subscribe(`${P}to:m`);
    sub.on("message", (_channel: string, message: string) => notices.push(message));
    try {
      const [[previous, claimed]] = await claim(redis, "c2", "s") as [[string, number]];
      assert.equal(previous, "m");
      assert.equal(claimed, 1);
      assert.equal(await redis.hget(`${P}owner`, "c2"), "n");
      assert.equal(await redis.hget(`${S}writer`, "c2"), "m");
      for (let i = 0; i < 200 && notices.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(notices, ["frame"], "the takeover notice");
    } finally {
      await sub.quit();
    }
  });
});

Deno.test("claim script: a stored session with subscriptions is read only, unclaimed, in mode s (its filters are announced first); mode r claims it", async () => {
  await withRedis(async (redis) => {
    await store(redis, "c3", "t/#");
    await redis.hset(`${P}owner`, "c3", "m");
    const [[previous, claimed, rows]] = await claim(redis, "c3", "s") as [
      [string, number, unknown[]],
    ];
    assert.equal(previous, "m");
    assert.equal(claimed, 0);
    assert.equal((rows[1] as string[])[0], "t/#");
    assert.equal(await redis.hget(`${P}owner`, "c3"), "m", "not claimed");
    assert.equal(await redis.hget(`${S}writer`, "c3"), null);
    const [[again, claimedNow]] = await claim(redis, "c3", "r") as [[string, number]];
    assert.equal(again, "m");
    assert.equal(claimedNow, 1);
    assert.equal(await redis.hget(`${P}owner`, "c3"), "n");
  });
});

Deno.test("claim script: a session this node owns already is marked as its own when read; a session not stored is claimed and marked its own (the session it starts)", async () => {
  await withRedis(async (redis) => {
    await store(redis, "c4", "t/#");
    await redis.hset(`${P}owner`, "c4", "n");
    const [[previous, claimed]] = await claim(redis, "c4", "s") as [[string, number]];
    assert.equal(previous, "");
    assert.equal(claimed, 0, "subscriptions: read only");
    assert.equal(await redis.hget(`${S}writer`, "c4"), "n");
    const [[none, claimedNew, rows]] = await claim(redis, "c5", "s") as [
      [string, number, unknown[]],
    ];
    assert.equal(none, "");
    assert.equal(claimedNew, 1);
    assert.equal(rows[0], null);
    assert.equal(await redis.hget(`${P}owner`, "c5"), "n");
    assert.equal(await redis.hget(`${S}writer`, "c5"), "n", "read as missing by its owner");
  });
});

/** A message queued for `clientId` (outbound entry 1, message 7). */
async function queue(redis: Redis, clientId: string): Promise<void> {
  await redis.hset(`${S}msg`, "7", "body");
  await redis.hset(`${S}ref`, "7", "1");
  await redis.hset(`${S}out:${clientId}`, "1", "queued|1||7");
}

Deno.test("claim script: a session claimed from another node is not read by the claim (the login reads it once, after that node's handoff): its rows say none", async () => {
  await withRedis(async (redis) => {
    await store(redis, "c6");
    await queue(redis, "c6");
    await redis.hset(`${P}owner`, "c6", "m");
    for (const mode of ["s", "r"] as const) {
      await redis.hset(`${P}owner`, "c6", "m");
      const [[previous, claimed, rows]] = await claim(redis, "c6", mode) as [
        [string, number, unknown[]],
      ];
      assert.equal(previous, "m");
      assert.equal(claimed, 1);
      assert.deepEqual(rows, [null, [], [], [], []], `mode ${mode}: not read`);
      assert.equal(await redis.hget(`${P}owner`, "c6"), "n");
    }
  });
});

Deno.test("claim script: a stored session with subscriptions read only in mode s answers its record and subscriptions, not its queue (read with its claim)", async () => {
  await withRedis(async (redis) => {
    await store(redis, "c7", "t/#");
    await queue(redis, "c7");
    const [[previous, claimed, rows]] = await claim(redis, "c7", "s") as [
      [string, number, unknown[]],
    ];
    assert.equal(previous, "");
    assert.equal(claimed, 0);
    assert.match(String(rows[0]), /"clientId":"c7"/);
    assert.equal((rows[1] as string[])[0], "t/#");
    assert.deepEqual(rows.slice(2), [[], [], []], "no queue read");
    // Claimed from nobody with a read: whole.
    const [[, claimedNow, whole]] = await claim(redis, "c7", "r") as [
      [string, number, unknown[]],
    ];
    assert.equal(claimedNow, 1);
    assert.deepEqual(whole[2], ["1", "queued|1||7"]);
    assert.deepEqual(whole[4], ["7", "body"]);
  });
});
