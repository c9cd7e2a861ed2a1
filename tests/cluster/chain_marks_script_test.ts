// The writer marks of a chain of moves (`CLAIM_SCRIPT`, `LOAD_SESSION_SCRIPT`, `RELEASE_SCRIPT`):
// B claims the session from A, C claims it from B before B read it. The mark stays with A (its
// last writes before its handoff go through), B takes it when it reads after A's handoff (its
// writes until it hands on go through), C when it reads as the owner, which ends the chain
// (`P store:handing`). Run against a real redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { retry } from "./_nodes.ts";
import {
  ADOPT_SCRIPT,
  CLAIM_SCRIPT,
  HAND_OFF_SCRIPT,
  LEAVE_SCRIPT,
  REGISTER_SCRIPT,
  RELEASE_SCRIPT,
} from "../../src/cluster/_bus_scripts.ts";
import { LOAD_SESSION_SCRIPT } from "../../src/cluster/_redis_store_scripts.ts";

const P = "cm:";
const S = `${P}store:`;

async function withRedis(body: (redis: Redis) => Promise<void>): Promise<void> {
  await using server = await RedisServer.start();
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    for (const node of ["a", "b", "c", "d"]) {
      await redis.eval(REGISTER_SCRIPT, 0, P, node, "1000", "sync", "inc", "1", "", "0", "0", "0");
    }
    await redis.hset(`${S}sessions`, "m", JSON.stringify({ clientId: "m", protocolVersion: 4 }));
    await redis.hset(`${P}owner`, "m", "a");
    await redis.hset(`${S}writer`, "m", "a");
    await body(redis);
  } finally {
    await redis.quit();
  }
}

/** `node` claims the session of m (a login's claim with its read): the previous owner. */
async function claim(redis: Redis, node: string): Promise<string> {
  const [[previous]] = await redis.eval(
    CLAIM_SCRIPT,
    0,
    P,
    node,
    "inc",
    "",
    "0",
    "m",
    "frame",
    "",
    "r",
  ) as [[string]];
  return previous;
}

/** `node` reads the session of m as the store does after a handoff. */
async function load(redis: Redis, node: string): Promise<void> {
  await redis.eval(LOAD_SESSION_SCRIPT, 0, S, `${P}owner`, node, "m");
}

async function marks(redis: Redis): Promise<[string | null, string | null]> {
  return [await redis.hget(`${S}writer`, "m"), await redis.hget(`${S}handing`, "m")];
}

Deno.test("chain marks: a claim from a node that has not read the session leaves the mark with the node still writing it", async () => {
  await withRedis(async (redis) => {
    assert.equal(await claim(redis, "b"), "a");
    assert.deepEqual(await marks(redis), ["a", "a"]);
    assert.equal(await claim(redis, "c"), "b");
    assert.deepEqual(await marks(redis), ["a", "a\nb"], "A still writes it");
    // A node not in the chain reads nothing of it as its own.
    await load(redis, "d");
    assert.deepEqual(await marks(redis), ["a", "a\nb"]);
    // B reads after A's handoff: its writes until it hands on are the session's.
    await load(redis, "b");
    assert.deepEqual(await marks(redis), ["b", "a\nb"]);
    // C, the owner, reads after B's handoff: the chain is over.
    await load(redis, "c");
    assert.deepEqual(await marks(redis), ["c", null]);
    // The next move names C, which read it, the writer.
    assert.equal(await claim(redis, "d"), "c");
    assert.deepEqual(await marks(redis), ["c", "c"]);
  });
});

Deno.test("chain marks: the owner's release, or a claim from nobody, ends the chain", async () => {
  await withRedis(async (redis) => {
    assert.equal(await claim(redis, "b"), "a");
    assert.equal(await redis.eval(RELEASE_SCRIPT, 0, P, "b", "m"), 1);
    assert.equal(await redis.hget(`${S}handing`, "m"), null);
    // Owned by nobody now: C's claim reads it as its owner.
    assert.equal(await claim(redis, "c"), "");
    assert.deepEqual(await marks(redis), ["c", null]);
  });
});

Deno.test("chain marks: a fourth node's claim during the chain passes the mark along it, and a node reading late does not take it back", async () => {
  await withRedis(async (redis) => {
    assert.equal(await claim(redis, "b"), "a");
    assert.equal(await claim(redis, "c"), "b");
    assert.equal(await claim(redis, "d"), "c");
    assert.deepEqual(await marks(redis), ["a", "a\nb\nc"], "A still writes it");
    // B's takeover stopped waiting for its login (maxWait) and handed on without reading: C
    // read after that handoff, and writes what it hands on to D.
    await load(redis, "c");
    assert.deepEqual(await marks(redis), ["c", "a\nb\nc"]);
    // B's login reads late (A's handoff came after all): C keeps the mark, or its last writes
    // before its handoff to D would be refused as another node's.
    await load(redis, "b");
    assert.deepEqual(await marks(redis), ["c", "a\nb\nc"]);
    // D, the owner, reads after C's handoff: the chain is over.
    await load(redis, "d");
    assert.deepEqual(await marks(redis), ["d", null]);
  });
});

Deno.test("chain marks: in a chain of four, each node reads after the one before it handed over and takes the mark in turn", async () => {
  await withRedis(async (redis) => {
    assert.equal(await claim(redis, "b"), "a");
    assert.equal(await claim(redis, "c"), "b");
    assert.equal(await claim(redis, "d"), "c");
    await load(redis, "b");
    assert.deepEqual(await marks(redis), ["b", "a\nb\nc"]);
    await load(redis, "c");
    assert.deepEqual(await marks(redis), ["c", "a\nb\nc"]);
    await load(redis, "d");
    assert.deepEqual(await marks(redis), ["d", null]);
  });
});

/** `node` hands the session of m over to `to` (the handoff after its takeover). */
async function handOff(redis: Redis, node: string, to: string): Promise<void> {
  await redis.eval(HAND_OFF_SCRIPT, 0, P, node, "m", to, `handoff of ${node}`);
}

Deno.test("chain marks: a handoff passes the mark to the next node of the chain and reaches the owner too", async () => {
  await withRedis(async (redis) => {
    assert.equal(await claim(redis, "b"), "a");
    assert.equal(await claim(redis, "c"), "b");
    const listener = new Redis({ port: redis.options.port, host: "127.0.0.1", lazyConnect: true });
    await listener.connect();
    try {
      const heard: string[] = [];
      listener.on("message", (channel: string, message: string) => {
        heard.push(`${channel} ${message}`);
      });
      await listener.subscribe(`${P}to:b`, `${P}to:c`);
      // A hands over to B, which C claimed it from: C hears of it too, and the mark says A is
      // done (C, finding B dead, waits for A while the mark is still A's).
      await handOff(redis, "a", "b");
      assert.deepEqual(await marks(redis), ["b", "a\nb"]);
      await retry(() => Promise.resolve(heard.length === 2), "both handoffs");
      assert.deepEqual(heard.sort(), [`${P}to:b handoff of a`, `${P}to:c handoff of a`]);
      // B reads and hands on: the mark goes to the owner, which reads it then.
      await load(redis, "b");
      await handOff(redis, "b", "c");
      assert.deepEqual(await marks(redis), ["c", "a\nb"]);
      await load(redis, "c");
      assert.deepEqual(await marks(redis), ["c", null]);
      // A handoff of a node without the mark (a single move's, after the read) moves nothing.
      assert.equal(await claim(redis, "d"), "c");
      await load(redis, "d");
      await handOff(redis, "c", "d");
      assert.deepEqual(await marks(redis), ["d", null]);
    } finally {
      await listener.quit();
    }
  });
});

Deno.test("chain marks: a single move's handoff after its new owner was reaped, before the adoption, passes the mark on: the adopter does not wait for a handoff made already", async () => {
  await withRedis(async (redis) => {
    assert.equal(await claim(redis, "b"), "a");
    assert.deepEqual(await marks(redis), ["a", "a"], "A writes it until its handoff");
    // B dies before A's handoff and is released (what a reap does): nobody owns the session.
    await redis.eval(LEAVE_SCRIPT, 0, P, "b");
    assert.equal(await redis.hget(`${P}owner`, "m"), null);
    assert.deepEqual(await marks(redis), ["a", "a"], "the chain kept for the adopter");
    // A hands over to B all the same: the mark leaves A (a mark left with A would have the
    // adopter wait for A's handoff until its bound), to the node it handed over to.
    await handOff(redis, "a", "b");
    assert.deepEqual(await marks(redis), ["b", "a"]);
    // C adopts the session and reads it as its owner: the chain is over.
    const [won] = await redis.eval(ADOPT_SCRIPT, 0, P, "c", "m", "0", "inc", "", "0") as [number];
    assert.equal(won, 1);
    await load(redis, "c");
    assert.deepEqual(await marks(redis), ["c", null]);
  });
});
