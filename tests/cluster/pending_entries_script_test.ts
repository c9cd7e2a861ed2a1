// What a provisional session that gave way left in Redis for the session that exists
// (`P pendsub:ID`, `P pendsubs`, PEND_SCRIPT) and when that session began (`P born`) go when
// the session ends: at its owner's release (ended or expired there), and at the reap or leave of
// its owner when the store holds no record of it (nobody adopts it); a stored one keeps them for
// its adopter. Else a client that never comes back leaves them in Redis for good. Run against a
// real redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import {
  CLAIM_SCRIPT,
  HEARTBEAT_SCRIPT,
  LEAVE_SCRIPT,
  PEND_SCRIPT,
  REGISTER_SCRIPT,
  RELEASE_SCRIPT,
} from "../../src/cluster/_bus_scripts.ts";

const P = "pe:";
const S = `${P}store:`;
/** A `since` after any `P born` the tests' claims note: the subscriptions are left. */
const LATER = String(Date.now() + 3_600_000);

async function withRedis(body: (redis: Redis) => Promise<void>): Promise<void> {
  await using server = await RedisServer.start();
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    await register(redis, "n");
    await body(redis);
  } finally {
    await redis.quit();
  }
}

function register(redis: Redis, node: string): Promise<unknown> {
  return redis.eval(
    REGISTER_SCRIPT,
    0,
    P,
    node,
    "60000",
    "sync",
    `${node}1`,
    "1",
    "",
    "0",
    "0",
    "0",
  );
}

/** Node `node` claims `clientId` (a clean start when `clean`). */
function claim(redis: Redis, node: string, clientId: string, clean: boolean): Promise<unknown> {
  return redis.eval(
    CLAIM_SCRIPT,
    0,
    P,
    node,
    `${node}1`,
    "",
    "0",
    clientId,
    "f",
    "",
    clean ? "!" : "",
  );
}

/** A give-way elsewhere leaves a subscription to `p/ID` for the session of `clientId`. */
async function pend(redis: Redis, clientId: string): Promise<void> {
  const filter = `p/${clientId}`;
  const json = JSON.stringify({ topic: filter, qos: 1 });
  const [left] = await redis.eval(PEND_SCRIPT, 0, P, clientId, LATER, filter, json) as [number];
  assert.equal(left, 1, `left for ${clientId}`);
  assert.equal(await redis.sismember(`${P}pendsubs`, clientId), 1);
  assert.notEqual(await redis.hget(`${P}born`, clientId), null);
}

/** Whether anything of `clientId` stays in `P pendsub:ID`, `P pendsubs` or `P born`. */
async function leftovers(redis: Redis, clientId: string): Promise<string[]> {
  const out: string[] = [];
  if (await redis.exists(`${P}pendsub:${clientId}`) === 1) out.push("pendsub");
  if (await redis.sismember(`${P}pendsubs`, clientId) === 1) out.push("pendsubs");
  if (await redis.hexists(`${P}born`, clientId) === 1) out.push("born");
  return out;
}

Deno.test("release script: a session its owner releases (ended or expired there) leaves no subscriptions pending for it, nor its start", async () => {
  await withRedis(async (redis) => {
    await claim(redis, "n", "gone", true);
    await pend(redis, "gone");
    assert.equal(await redis.eval(RELEASE_SCRIPT, 0, P, "n", "gone"), 1);
    assert.deepEqual(await leftovers(redis, "gone"), []);
  });
});

Deno.test("release script: a node that does not own the session leaves what is pending for it to the owner", async () => {
  await withRedis(async (redis) => {
    await register(redis, "m");
    await claim(redis, "m", "kept", true);
    await pend(redis, "kept");
    assert.equal(await redis.eval(RELEASE_SCRIPT, 0, P, "n", "kept"), "m");
    assert.deepEqual(await leftovers(redis, "kept"), ["pendsub", "pendsubs", "born"]);
  });
});

for (const how of ["reaped", "leaving"] as const) {
  Deno.test(`bus scripts: a node ${how} takes with it what is pending for its sessions the store does not hold; a stored one keeps it for its adopter`, async () => {
    await withRedis(async (redis) => {
      await register(redis, "d");
      await claim(redis, "d", "unstored", true);
      await claim(redis, "d", "stored", true);
      await redis.hset(`${S}sessions`, "stored", JSON.stringify({ clientId: "stored" }));
      await pend(redis, "unstored");
      await pend(redis, "stored");
      if (how === "reaped") {
        await redis.del(`${P}alive:d`);
        const [, , reaped] = await redis.eval(HEARTBEAT_SCRIPT, 0, P, "n", "60000", "n1") as [
          unknown,
          unknown,
          unknown[],
        ];
        assert.equal(reaped[0], "d");
      } else {
        await redis.eval(LEAVE_SCRIPT, 0, P, "d");
      }
      assert.equal(await redis.hget(`${P}owner`, "unstored"), null);
      assert.deepEqual(await leftovers(redis, "unstored"), []);
      assert.deepEqual(await leftovers(redis, "stored"), ["pendsub", "pendsubs", "born"]);
    });
  });
}

Deno.test("claim script: a Clean Start 0 login finding no session begins one, which what a provisional session that began before it left is not added to [MQTT-3.1.2-4] [MQTT-3.2.2-5]", async () => {
  await withRedis(async (redis) => {
    const before = String(Date.now() - 3_600_000);
    await claim(redis, "n", "fresh", false);
    assert.notEqual(await redis.hget(`${P}born`, "fresh"), null, "its start noted");
    const json = JSON.stringify({ topic: "p/fresh", qos: 1 });
    const [left, owner] = await redis.eval(PEND_SCRIPT, 0, P, "fresh", before, "p/fresh", json) as [
      number,
      string,
    ];
    // Its CONNACK said Session Present 0: the client discarded its state [MQTT-3.2.2-5] and
    // subscribes again as it needs; subscriptions added later would be ones it does not know of.
    assert.equal(left, -1);
    assert.equal(owner, "n");
    assert.equal(await redis.exists(`${P}pendsub:fresh`), 0);
  });
});
