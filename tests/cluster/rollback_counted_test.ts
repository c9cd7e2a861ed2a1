/**
 * A node's adoptions, and the wills it drops or takes, count in its own counter (`P gen:ID`) as
 * its claims and store writes do: Redis gone back to a snapshot taken before one of them, with no
 * heartbeat, claim or write of that node after it, is found by the node's next heartbeat, which
 * empties the cluster (a data loss for every node). Not found, a session adopted after the
 * snapshot would be nobody's again, for another node to adopt too, and a will published after it
 * would be back in Redis, for another node to publish again. Real `ClusterBus` instances on a real
 * redis-server, heartbeats driven by the test; the test rolls back the keys the script wrote.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { ClusterBus } from "../../src/cluster/cluster_bus.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { nextEvent, startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const WILL = {
  topic: "w/c",
  payload: new TextEncoder().encode("gone"),
  qos: 1,
  retain: false,
} as const;

/**
 * Runs `setup`, then `write`, with node `a`'s bus and a plain Redis client: `write` makes one write
 * of `a` and answers how to undo it (as Redis going back to a snapshot taken just before it). Asserts that
 * the write counted one in `a`'s counter, that `a` kept that value, and that `a`'s next heartbeat
 * after the undo finds the rollback and empties the cluster; then runs `after`.
 */
async function rolledBackAfter(
  setup: (bus: ClusterBus, redis: Redis) => Promise<void>,
  write: (bus: ClusterBus, redis: Redis) => Promise<(redis: Redis) => Promise<void>>,
  after: (redis: Redis) => Promise<void>,
): Promise<void> {
  await using server = await RedisServer.start();
  await using bus = await startBus(server, "a");
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    await setup(bus, redis);
    const before = Number(await redis.get("test:gen:a"));
    const epoch = await redis.get("test:epoch");
    const undo = await write(bus, redis);
    const counted = Number(await redis.get("test:gen:a"));
    assert.equal(counted, before + 1, "the write counted");
    assert.equal(bus.incarnation.nodeGen, counted, "the node kept the value");
    // The snapshot Redis goes back to was taken before the write.
    await redis.set("test:gen:a", String(before));
    await undo(redis);
    const ready = nextEvent(bus, "state", (s) => s.state === "ready" && s.rolledBack);
    await bus.heartbeat();
    await ready;
    assert.notEqual(await redis.get("test:epoch"), epoch, "the cluster was emptied");
    await after(redis);
  } finally {
    await redis.quit();
  }
}

Deno.test(
  "ClusterBus counts an adoption in its own counter: Redis gone back to before it is found, and the node owns the session again in Redis",
  opts,
  () =>
    rolledBackAfter(async () => {}, async (bus) => {
      assert.deepEqual(await bus.adopt("c1"), { will: undefined });
      return async (redis) => {
        await redis.hdel("test:owner", "c1");
        await redis.srem("test:owned:a", "c1");
      };
    }, async (redis) => {
      // Registered again, re-claiming what it owns: no other node adopts it.
      assert.equal(await redis.hget("test:owner", "c1"), "a");
    }),
);

Deno.test(
  "ClusterBus counts a will it drops in its own counter: Redis gone back to before the drop is found, and the will does not come back [MQTT-3.1.2-10]",
  opts,
  () =>
    rolledBackAfter(async (bus) => {
      assert.equal(await bus.claim("c2", WILL), undefined);
    }, async (bus, redis) => {
      const will = await redis.hgetBuffer("test:wills", "c2");
      assert.ok(will !== null);
      await bus.dropWill("c2");
      assert.equal(await redis.hget("test:wills", "c2"), null);
      return async (redis) => {
        await redis.hset("test:wills", "c2", will);
      };
    }, async (redis) => {
      assert.equal(await redis.hget("test:wills", "c2"), null);
    }),
);

Deno.test(
  "ClusterBus counts a will it takes in its own counter: Redis gone back to before the take is found, and no other node gets that will again",
  opts,
  () =>
    rolledBackAfter(async (bus, redis) => {
      // A will of a session nobody owns (its node died and was reaped).
      assert.equal(await bus.claim("c3", WILL), undefined);
      await redis.hdel("test:owner", "c3");
      await redis.srem("test:owned:a", "c3");
    }, async (bus, redis) => {
      const will = await redis.hgetBuffer("test:wills", "c3");
      assert.ok(will !== null);
      const taken = await bus.takeWill("c3");
      assert.equal(taken?.topic, "w/c");
      return async (redis) => {
        await redis.hset("test:wills", "c3", will);
      };
    }, async (redis) => {
      assert.equal(await redis.hget("test:wills", "c3"), null);
    }),
);
