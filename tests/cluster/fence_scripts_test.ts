// The bus scripts' fence, run as they are in a real redis-server: a node's incarnation
// (`P inc:ID`) is replaced when it is reaped; its registration as that incarnation, its claims
// and its adoptions are refused from then on, and its registration as a new incarnation moves
// what other nodes wrote to its stream after the reap into its dead stream, for the adopters.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import {
  ADOPT_SCRIPT,
  CLAIM_SCRIPT,
  DROP_WILL_SCRIPT,
  HEARTBEAT_SCRIPT,
  LEAVE_SCRIPT,
  PASS_SCRIPT,
  REAPED_INCARNATION_MS,
  REGISTER_SCRIPT,
  TAKE_WILL_SCRIPT,
} from "../../src/cluster/_bus_scripts.ts";
import { RedisServer } from "../_helpers/redis.ts";

const P = "f:";

/** The claim script's answer per claim (the node's own counter, last, left out). */
async function claim(redis: Redis, ...args: string[]): Promise<unknown[]> {
  return (await redis.eval(CLAIM_SCRIPT, 0, ...args) as unknown[]).slice(0, -1);
}

async function withRedis<T>(body: (redis: Redis) => Promise<T>): Promise<T> {
  await using server = await RedisServer.start();
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    return await body(redis);
  } finally {
    await redis.quit();
  }
}

/**
 * Registers `node` as `incarnation` (`fresh`: a new one), with no interest and no sessions, as a
 * node that found the cluster's epoch `epoch` at its last registration ("" for none).
 */
async function register(
  redis: Redis,
  node: string,
  incarnation: string,
  fresh: boolean,
  epoch = "",
) {
  const reply = await redis.eval(
    REGISTER_SCRIPT,
    0,
    P,
    node,
    "1000",
    "sync",
    incarnation,
    fresh ? "1" : "0",
    epoch,
    "0",
    "0",
    "0",
  ) as unknown[];
  // Whether it registered and the sessions it could not re-claim (not `P count`: rollback_test.ts).
  return reply.slice(0, 2);
}

Deno.test("bus scripts: a reaped incarnation's registration, heartbeat, claim and adoption are refused", async () => {
  await withRedis(async (redis) => {
    assert.deepEqual(await register(redis, "n", "one", true), [1, []]);
    assert.equal(await redis.get(`${P}inc:n`), "one");
    // Another node reaps n (its liveness key gone).
    await redis.del(`${P}alive:n`);
    const [, , reaped] = await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1") as unknown[];
    assert.deepEqual(reaped, ["n", []]);
    assert.equal(await redis.get(`${P}inc:n`), "reaped");
    // n, only paused, goes on as "one": refused everywhere.
    const [registered] = await redis.eval(HEARTBEAT_SCRIPT, 0, P, "n", "1000", "one") as unknown[];
    assert.equal(registered, 0);
    await assert.rejects(
      redis.eval(CLAIM_SCRIPT, 0, P, "n", "one", "", "0", "c", "frame", "", ""),
      /AMQTT_FENCED/,
    );
    await assert.rejects(redis.eval(ADOPT_SCRIPT, 0, P, "n", "c", "0", "one"), /AMQTT_FENCED/);
    assert.equal(await redis.hget(`${P}owner`, "c"), null);
    assert.deepEqual(await register(redis, "n", "one", false), [0, []]);
    assert.equal(await redis.sismember(`${P}nodes`, "n"), 0);
    // As a new incarnation it registers, claims and adopts again.
    assert.deepEqual(await register(redis, "n", "two", true), [1, []]);
    assert.equal(await redis.get(`${P}inc:n`), "two");
    assert.deepEqual(
      await claim(redis, P, "n", "two", "", "0", "c", "frame", "", ""),
      [""],
    );
    assert.equal(await redis.hget(`${P}owner`, "c"), "n");
    // A Redis that lost its data (no key) fences nothing: the same incarnation registers again.
    await redis.del(`${P}inc:n`);
    assert.deepEqual(await register(redis, "n", "two", false), [1, []]);
    assert.equal(await redis.get(`${P}inc:n`), "two");
  });
});

Deno.test("bus scripts: a new incarnation's registration moves what was written to its stream after the reap to its dead stream", async () => {
  await withRedis(async (redis) => {
    await register(redis, "n", "one", true);
    await redis.xadd(`${P}s:n`, "*", "m", "read before the reap");
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1");
    // The reap renamed the stream and left an empty one, with the dead stream's lifetime; a node
    // that had not heard of it writes under the live name.
    assert.equal(await redis.xlen(`${P}s:n`), 0);
    assert.ok(await redis.pttl(`${P}s:n`) > 0);
    await redis.xadd(`${P}s:n`, "*", "m", "late 1");
    await redis.xadd(`${P}s:n`, "*", "m", "late 2");
    await register(redis, "n", "two", true);
    const dead = (await redis.xrange(`${P}dead:n`, "-", "+")).map(([, fields]) => fields[1]);
    assert.deepEqual(dead, ["read before the reap", "late 1", "late 2"]);
    assert.ok(await redis.pttl(`${P}dead:n`) > 0);
    assert.equal(await redis.exists(`${P}s:n`), 0);
    // No dead stream left (read and gone): the late entries become it.
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1");
    await redis.del(`${P}dead:n`);
    await redis.xadd(`${P}s:n`, "*", "m", "late 3");
    await register(redis, "n", "three", true);
    assert.deepEqual(
      (await redis.xrange(`${P}dead:n`, "-", "+")).map(([, fields]) => fields[1]),
      ["late 3"],
    );
  });
});

Deno.test("bus scripts: a reaped or departed incarnation's key expires (node ids with a pid are never seen again), a registered one's does not", async () => {
  await withRedis(async (redis) => {
    await register(redis, "n", "one", true);
    await register(redis, "gone", "g1", true);
    assert.equal(await redis.pttl(`${P}inc:n`), -1);
    // n is reaped; "gone" leaves (a broker stopped: its pid-based id never registers again).
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1");
    await redis.eval(LEAVE_SCRIPT, 0, P, "gone");
    for (const node of ["n", "gone"]) {
      assert.equal(await redis.get(`${P}inc:${node}`), "reaped");
      const ttl = await redis.pttl(`${P}inc:${node}`);
      // Long enough for a node only paused to learn it was reaped (its writes stay fenced).
      assert.ok(ttl > REAPED_INCARNATION_MS - 60_000 && ttl <= REAPED_INCARNATION_MS, `${ttl}`);
    }
    // Registered again (same node id, a new incarnation): kept while it is registered.
    await register(redis, "n", "two", true);
    assert.equal(await redis.get(`${P}inc:n`), "two");
    assert.equal(await redis.pttl(`${P}inc:n`), -1);
  });
});

Deno.test("bus scripts: a reaped incarnation neither drops nor takes the will of a session nobody adopted yet [MQTT-3.1.2-8]", async () => {
  await withRedis(async (redis) => {
    await register(redis, "n", "one", true);
    await register(redis, "m", "m1", true);
    assert.deepEqual(
      await claim(redis, P, "n", "one", "", "0", "c", "frame", "will", ""),
      [
        "",
      ],
    );
    // n is reaped (only paused): c is released, its will waits for the node adopting it.
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1");
    assert.equal(await redis.hget(`${P}owner`, "c"), null);
    // n, unaware, ends c's connection as it would (the session kept): refused, the will stays.
    await assert.rejects(redis.eval(DROP_WILL_SCRIPT, 0, P, "n", "c", "one"), /AMQTT_FENCED/);
    await assert.rejects(redis.eval(TAKE_WILL_SCRIPT, 0, P, "c", "n", "one"), /AMQTT_FENCED/);
    assert.equal(await redis.hget(`${P}wills`, "c"), "will");
    // The live node takes it, once (counted in its own counter `P gen:m`).
    const taken = await redis.eval(TAKE_WILL_SCRIPT, 0, P, "c", "m", "m1") as [string, number];
    assert.equal(taken[0], "will");
    assert.equal(taken[1], Number(await redis.get(`${P}gen:m`)));
    assert.deepEqual(await redis.eval(TAKE_WILL_SCRIPT, 0, P, "c", "m", "m1"), ["", 0]);
    // A live owner still drops its session's will (counted too).
    await claim(redis, P, "m", "m1", "", "0", "d", "frame", "will d", "");
    const dropped = await redis.eval(DROP_WILL_SCRIPT, 0, P, "m", "d", "m1");
    assert.equal(dropped, Number(await redis.get(`${P}gen:m`)));
    assert.equal(await redis.hget(`${P}wills`, "d"), null);
  });
});

Deno.test("bus scripts: a stream written to after its node was reaped or left keeps a lifetime (however soon its writer stops), a registered node's has none", async () => {
  await withRedis(async (redis) => {
    await register(redis, "n", "one", true);
    await register(redis, "m", "m1", true);
    await register(redis, "gone", "g1", true);
    await redis.xadd(`${P}s:n`, "*", "f", "before the reap");
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1");
    await redis.eval(LEAVE_SCRIPT, 0, P, "gone");
    /** Passes a message from m's stream to `node`'s live stream, as a node that knows it. */
    const pass = (node: string, key: string) =>
      redis.eval(
        PASS_SCRIPT,
        0,
        P,
        "m",
        key,
        "1",
        `${P}s:${node}`,
        "frame",
        "60000",
        "0",
        `hop ${key}`,
        "4",
        node,
      );
    // Forwards (plain XADDs) and a pass by nodes that had not heard of it.
    for (const node of ["n", "gone"]) {
      await redis.xadd(`${P}s:${node}`, "MINID", "~", "0", "*", "f", "late");
      const ttl = await redis.pttl(`${P}s:${node}`);
      assert.ok(ttl > 0 && ttl <= 600_000, `${node}: ${ttl}`);
      assert.equal(await redis.xlen(`${P}s:${node}`), 1);
    }
    assert.equal(await pass("n", "k1"), 1);
    const ttl = await redis.pttl(`${P}s:n`);
    assert.ok(ttl > 0 && ttl <= 600_000, `${ttl}`);
    assert.deepEqual(
      (await redis.xrange(`${P}dead:n`, "-", "+")).map(([, fields]) => fields[1]),
      ["before the reap"],
    );
    // Released again (a node restarted with the same id retires it): its late entries join its
    // dead stream rather than replace it.
    await redis.eval(LEAVE_SCRIPT, 0, P, "n");
    assert.deepEqual(
      (await redis.xrange(`${P}dead:n`, "-", "+")).map(([, fields]) => fields[1]),
      ["before the reap", "late", "frame"],
    );
    assert.equal(await redis.xlen(`${P}s:n`), 0);
    assert.ok(await redis.pttl(`${P}s:n`) > 0);
    // A registered node's stream lasts.
    await register(redis, "o", "o1", true);
    assert.equal(await pass("o", "k2"), 1);
    await redis.xadd(`${P}s:o`, "*", "f", "live");
    assert.equal(await redis.pttl(`${P}s:o`), -1);
    // Registered again as a new incarnation: the empty stream moves away, the next write makes
    // one that lasts.
    await register(redis, "gone", "g2", true);
    assert.equal(await redis.exists(`${P}s:gone`), 0);
    await redis.xadd(`${P}s:gone`, "*", "f", "for g2");
    assert.equal(await redis.pttl(`${P}s:gone`), -1);
  });
});

Deno.test("bus scripts: an incarnation whose reaped mark expired (a node paused past it) is refused while the cluster's epoch is the one it registered under, not after Redis lost its data", async () => {
  await withRedis(async (redis) => {
    await redis.set(`${P}epoch`, "e1");
    assert.deepEqual(await register(redis, "n", "one", true, "e1"), [1, []]);
    await register(redis, "m", "m1", true, "e1");
    assert.deepEqual(
      await claim(redis, P, "n", "one", "e1", "0", "c", "f", "will", ""),
      [
        "",
      ],
    );
    await redis.xadd(`${P}s:n`, "*", "m", "before the reap");
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1", "e1");
    assert.equal(await redis.get(`${P}inc:n`), "reaped");
    // n stays paused past REAPED_INCARNATION_MS: its mark is gone, the epoch is not.
    await redis.del(`${P}inc:n`);
    await redis.xadd(`${P}s:n`, "*", "m", "late");
    const [registered] = await redis.eval(HEARTBEAT_SCRIPT, 0, P, "n", "1000", "one", "e1") as [
      number,
    ];
    assert.equal(registered, 0);
    assert.equal(await redis.exists(`${P}alive:n`), 0, "its liveness key refreshed");
    await assert.rejects(
      redis.eval(CLAIM_SCRIPT, 0, P, "n", "one", "e1", "0", "d", "frame", "", ""),
      /AMQTT_FENCED/,
    );
    await assert.rejects(
      redis.eval(ADOPT_SCRIPT, 0, P, "n", "c", "0", "one", "e1"),
      /AMQTT_FENCED/,
    );
    await assert.rejects(
      redis.eval(DROP_WILL_SCRIPT, 0, P, "n", "c", "one", "e1"),
      /AMQTT_FENCED/,
    );
    await assert.rejects(
      redis.eval(TAKE_WILL_SCRIPT, 0, P, "c", "n", "one", "e1"),
      /AMQTT_FENCED/,
    );
    assert.equal(await redis.hget(`${P}owner`, "d"), null);
    assert.equal(await redis.hget(`${P}owner`, "c"), null);
    assert.equal(await redis.hget(`${P}wills`, "c"), "will");
    assert.deepEqual(await register(redis, "n", "one", false, "e1"), [0, []]);
    assert.equal(await redis.sismember(`${P}nodes`, "n"), 0);
    // As a new incarnation it registers; what was written to its stream after the reap goes to
    // its dead stream, for the adopters.
    assert.deepEqual(await register(redis, "n", "two", true, "e1"), [1, []]);
    assert.equal(await redis.get(`${P}inc:n`), "two");
    assert.deepEqual(
      (await redis.xrange(`${P}dead:n`, "-", "+")).map(([, fields]) => fields[1]),
      ["before the reap", "late"],
    );
    assert.deepEqual(
      await claim(redis, P, "n", "two", "e1", "0", "d", "f", "", ""),
      [
        "",
      ],
    );
    // Redis loses its data (the epoch with it; another node set a new one since): a key gone is
    // no fence then, and the node registers again as the same incarnation.
    for (const epoch of [undefined, "e2"]) {
      await redis.flushall();
      if (epoch !== undefined) await redis.set(`${P}epoch`, epoch);
      const [alive] = await redis.eval(HEARTBEAT_SCRIPT, 0, P, "n", "1000", "two", "e1") as [
        number,
      ];
      assert.equal(alive, 0, "not registered any more");
      assert.deepEqual(
        await claim(redis, P, "n", "two", "e1", "0", "d", "f", "", ""),
        [""],
      );
      assert.deepEqual(await register(redis, "n", "two", false, "e1"), [1, []]);
      assert.equal(await redis.get(`${P}inc:n`), "two");
      assert.equal(await redis.sismember(`${P}nodes`, "n"), 1);
    }
    // A node that knows no epoch yet is not fenced by a key gone either.
    await redis.del(`${P}inc:n`);
    assert.deepEqual(
      await claim(redis, P, "n", "two", "", "0", "e", "f", "", ""),
      [
        "",
      ],
    );
  });
});

Deno.test("bus scripts: a node's stream becomes its dead stream whole, entry ids kept (its adopter replays past its read mark by id), though its id was released at its start", async () => {
  await withRedis(async (redis) => {
    // A node starting retires its id first (LEAVE), then registers as a new incarnation: the
    // empty stream the release left goes, and no dead stream is left in the way.
    await redis.eval(LEAVE_SCRIPT, 0, P, "n");
    assert.equal(await redis.xlen(`${P}s:n`), 0);
    assert.deepEqual(await register(redis, "n", "one", true), [1, []]);
    assert.equal(await redis.exists(`${P}s:n`), 0);
    assert.equal(await redis.exists(`${P}dead:n`), 0);
    const ids = [
      await redis.xadd(`${P}s:n`, "*", "f", "a"),
      await redis.xadd(`${P}s:n`, "*", "f", "b"),
    ];
    await redis.del(`${P}alive:n`);
    await redis.eval(HEARTBEAT_SCRIPT, 0, P, "m", "1000", "m1");
    assert.deepEqual((await redis.xrange(`${P}dead:n`, "-", "+")).map(([id]) => id), ids);
    // A node whose stream is empty (all read) leaves no dead stream.
    await register(redis, "e", "e1", true);
    await redis.xadd(`${P}s:e`, "*", "f", "read");
    await redis.xtrim(`${P}s:e`, "MAXLEN", 0);
    await redis.eval(LEAVE_SCRIPT, 0, P, "e");
    assert.equal(await redis.exists(`${P}dead:e`), 0);
  });
});
