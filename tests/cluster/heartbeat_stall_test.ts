// The bus's heartbeat timer starts one heartbeat at a time: while Redis stalls (a real
// redis-server paused with `CLIENT PAUSE … WRITE`, which holds scripts), its ticks do not pile
// heartbeat scripts up in Redis; the next one starts as soon as the unanswered one settled, also
// when its connection closed instead of answering. Heartbeat scripts are counted by `P count`, which
// each one INCRs. The test drives the timer (its ticks are the test's).
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { BusTimers } from "../../src/cluster/cluster_bus.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { nextEvent, startBus, until } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Timers whose one interval (the heartbeat's) fires when the test calls `tick`. */
function manualTicks(): { timers: BusTimers; tick: () => void } {
  let callback: (() => void) | undefined;
  return {
    timers: {
      setInterval: (fire) => {
        callback = fire;
        return 1;
      },
      clearInterval: () => callback = undefined,
    },
    tick: () => callback?.(),
  };
}

async function admin(server: RedisServer): Promise<Redis> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  return redis;
}

/** How many registration and heartbeat scripts ran (`P count`, prefix `test:`). */
async function gen(redis: Redis): Promise<number> {
  return Number(await redis.get("test:count") ?? "0");
}

Deno.test(
  "cluster bus: ticks while a heartbeat is unanswered start none, the next starts once it settled",
  opts,
  async () => {
    await using server = await RedisServer.start();
    const { timers, tick } = manualTicks();
    await using bus = await startBus(server, "a", { timers });
    const redis = await admin(server);
    try {
      // Runs the heartbeat script once, loaded from now on (EVALSHA).
      await bus.heartbeat();
      const before = await gen(redis);
      assert.equal(await redis.call("CLIENT", "PAUSE", "600000", "WRITE"), "OK");
      try {
        // Four ticks: the first one's script waits in Redis; the others find it unanswered.
        for (let i = 0; i < 4; i++) {
          tick();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(await gen(redis), before, "no script ran while Redis was paused");
      } finally {
        await redis.call("CLIENT", "UNPAUSE");
      }
      // The first, then the one the later ticks asked for, once the first settled.
      await until(async () => await gen(redis) >= before + 2);
      // A command on the bus's connection after both: every heartbeat sent before it ran first.
      assert.equal(await bus.ownerOf("nobody"), undefined);
      assert.equal(await gen(redis), before + 2, "two heartbeats for four ticks, not four");
      // The timer goes on.
      tick();
      await until(async () => await gen(redis) === before + 3);
      assert.equal(await redis.exists("test:alive:a"), 1);
    } finally {
      await redis.quit();
    }
  },
);

Deno.test(
  "cluster bus: a heartbeat unanswered when its connection closes settles, and the timer's heartbeats go on after the reconnection",
  opts,
  async () => {
    await using server = await RedisServer.start();
    const { timers, tick } = manualTicks();
    await using bus = await startBus(server, "a", { timers });
    const redis = await admin(server);
    try {
      await bus.heartbeat();
      const back = nextEvent(bus, "state", (event) => event.state === "ready" && event.reconnected);
      assert.equal(await redis.call("CLIENT", "PAUSE", "600000", "WRITE"), "OK");
      try {
        tick();
        await new Promise((resolve) => setTimeout(resolve, 20));
        // Every connection of the bus closes with the heartbeat unanswered.
        assert.ok(
          Number(await redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")) > 0,
        );
        await redis.call("CLIENT", "KILL", "TYPE", "pubsub");
      } finally {
        await redis.call("CLIENT", "UNPAUSE");
      }
      // The bus registers again; a tick's heartbeat then runs: the one that was unanswered settled
      // with its connection's close, and does not hold the timer back.
      await back;
      const registered = await gen(redis);
      tick();
      await until(async () => await gen(redis) > registered);
      assert.equal(await redis.exists("test:alive:a"), 1);
    } finally {
      await redis.quit();
    }
  },
);
