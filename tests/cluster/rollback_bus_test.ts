/**
 * The bus's side of finding Redis gone back to older data (`P gen:ID`, the node's own counter):
 * which value of its counter a node keeps, and how the other nodes learn of the emptying that
 * follows. Real `ClusterBus` instances on a real redis-server, heartbeats driven by the test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { type BusFrame, decodeFrame, encodeFrame } from "../../src/cluster/bus_frame.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { collect, nextEvent, startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A plain connection to `server`, closed by `body`'s end. */
async function withRedis<T>(server: RedisServer, body: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    return await body(redis);
  } finally {
    await redis.quit();
  }
}

Deno.test(
  "ClusterBus keeps the highest value of its own counter: a heartbeat answer read after a later store write's does not lower it, so Redis gone back to a snapshot between the two is found",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using bus = await startBus(server, "a");
    const states = collect(bus, "state");
    await withRedis(server, async (redis) => {
      const key = "test:gen:a";
      const before = Number(await redis.get(key));
      const epoch = bus.incarnation.epoch;
      // A heartbeat runs in Redis (before + 1), then a store write on the store's connection
      // (before + 2); the write's answer is read first, the heartbeat's after it. (The write's
      // INCR is not made here: Redis went back to the snapshot taken between the two.)
      const beat = bus.heartbeat();
      bus.counted(before + 2, epoch);
      await beat;
      assert.equal(Number(await redis.get(key)), before + 1);
      assert.equal(bus.incarnation.nodeGen, before + 2, "the write's value is kept");
      // The write, acknowledged, is gone with the snapshot, and no write came after it: the next
      // heartbeat finds it.
      await bus.heartbeat();
      assert.notEqual(await redis.get("test:epoch"), epoch, "the cluster was emptied");
    });
    await bus.heartbeat();
    assert.ok(
      states.some((s) => s.state === "ready" && s.dataLost && s.rolledBack),
      JSON.stringify(states),
    );
  },
);

Deno.test(
  "ClusterBus takes its own counter's value as the registration after a data loss answers it, not raised by the old data's",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using bus = await startBus(server, "a");
    await withRedis(server, async (redis) => {
      // Counted far up under the old data (a counter started again at Redis's clock).
      await redis.set("test:gen:a", "5000000000000000");
      await bus.heartbeat();
      assert.equal(bus.incarnation.nodeGen, 5000000000000001);
      const ready = nextEvent(bus, "state", (s) => s.state === "ready" && s.dataLost);
      await redis.flushall();
      await bus.heartbeat();
      await ready;
      // The new data's counter, started at Redis's clock, above the value passed: no false
      // rollback at the next heartbeat, and the value is the new one.
      const now = Number(await redis.get("test:gen:a"));
      assert.equal(bus.incarnation.nodeGen, now);
      const epoch = await redis.get("test:epoch");
      await bus.heartbeat();
      assert.equal(await redis.get("test:epoch"), epoch, "nothing emptied");
      assert.equal(bus.incarnation.nodeGen, now + 1);
    });
  },
);

Deno.test(
  "ClusterBus: the node whose script emptied the cluster after Redis went back tells the others at once on the control channel, and they register again without waiting for their next heartbeat",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using a = await startBus(server, "a");
    await using b = await startBus(server, "b");
    await b.addInterest("t/#");
    const epoch = b.incarnation.epoch;
    const frames: BusFrame[] = [];
    const sub = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
    await sub.connect();
    try {
      sub.on("messageBuffer", (_, bytes: Uint8Array) => frames.push(decodeFrame(bytes)));
      await sub.subscribe("test:ctl");
      // B's heartbeat never runs here (the test drives them): only A's tells.
      const readyB = nextEvent(b, "state", (s) => s.state === "ready");
      const readyA = nextEvent(a, "state", (s) => s.state === "ready");
      await withRedis(server, async (redis) => {
        // Redis went back to before A's last script (a lagging replica promoted behind the same
        // address): A's own counter is below what A got.
        await redis.set("test:gen:a", "1");
      });
      await a.heartbeat();
      assert.deepEqual(await readyA, {
        state: "ready",
        reconnected: true,
        dataLost: true,
        rolledBack: true,
      });
      assert.deepEqual(await readyB, {
        state: "ready",
        reconnected: true,
        dataLost: true,
        rolledBack: false,
      });
      assert.ok(frames.some((f) => f.type === "emptied" && f.origin === "a"), "A told them");
    } finally {
      await sub.quit();
    }
    assert.notEqual(b.incarnation.epoch, epoch);
    assert.equal(b.incarnation.epoch, a.incarnation.epoch);
    // Registered again with its interest: A routes to it.
    assert.deepEqual(a.nodesFor("t/1"), ["b"]);
  },
);

Deno.test(
  "ClusterBus: a node told on the control channel that another emptied the cluster runs its heartbeat at once, which finds the epoch gone and registers it again (its stream kept, its reader sees nothing)",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using b = await startBus(server, "b");
    await b.addInterest("t/#");
    const ready = nextEvent(b, "state", (s) => s.state === "ready");
    await withRedis(server, async (redis) => {
      assert.equal(await redis.del("test:epoch"), 1);
      await redis.publish("test:ctl", Buffer.from(encodeFrame({ type: "emptied", origin: "a" })));
    });
    assert.deepEqual(await ready, {
      state: "ready",
      reconnected: true,
      dataLost: true,
      rolledBack: false,
    });
    assert.notEqual(b.incarnation.epoch, "");
    assert.ok(b.ready);
  },
);

Deno.test(
  "ClusterBus counts a claim in its own counter before the claim is answered: Redis gone back to before it, with no write or heartbeat after it, is found, and the node owns the session again in Redis [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using bus = await startBus(server, "a");
    await withRedis(server, async (redis) => {
      const before = Number(await redis.get("test:gen:a"));
      const epoch = await redis.get("test:epoch");
      assert.equal(await bus.claim("c1"), undefined);
      assert.equal(Number(await redis.get("test:gen:a")), before + 1);
      assert.equal(bus.incarnation.nodeGen, before + 1);
      // The snapshot Redis goes back to was taken before the claim.
      await redis.set("test:gen:a", String(before));
      await redis.hdel("test:owner", "c1");
      await redis.srem("test:owned:a", "c1");
      const ready = nextEvent(bus, "state", (s) => s.state === "ready" && s.rolledBack);
      await bus.heartbeat();
      await ready;
      assert.notEqual(await redis.get("test:epoch"), epoch, "the cluster was emptied");
      // Registered again, re-claiming what it owns: a login elsewhere takes it over from here.
      assert.equal(await redis.hget("test:owner", "c1"), "a");
    });
  },
);
