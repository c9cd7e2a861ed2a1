/**
 * Helpers of the cluster bus tests: buses on a test's redis-server with a heartbeat driven by
 * the test, event waits, and a look at Redis's own command counters.
 *
 * @module
 */

import { Redis } from "ioredis";
import {
  type BusTimers,
  ClusterBus,
  type ClusterBusEventMap,
  type ClusterBusOptions,
} from "../../src/cluster/cluster_bus.ts";
import { waitFor } from "../_helpers/broker.ts";
import type { RedisServer } from "../_helpers/redis.ts";

/** Timers that never fire: the test calls `heartbeat()` itself. */
export const MANUAL_TIMERS: BusTimers = {
  setInterval: () => 0,
  clearInterval: () => {},
};

/** Starts a bus on `server` with a manual heartbeat and a short, constant reconnect delay. */
export function startBus(
  server: RedisServer,
  nodeId: string,
  options: Partial<ClusterBusOptions> = {},
): Promise<ClusterBus> {
  return ClusterBus.start({
    url: server.url,
    nodeId,
    prefix: "test:",
    timers: MANUAL_TIMERS,
    retryDelay: () => 50,
    ...options,
  });
}

/**
 * Resolves with the next event of `type` for which `match` holds. Rejects after 30 s so a broken
 * test fails instead of hanging (a guard against a stuck test, not a speed requirement).
 */
export function nextEvent<K extends keyof ClusterBusEventMap>(
  bus: ClusterBus,
  type: K,
  match: (event: ClusterBusEventMap[K]) => boolean = () => true,
): Promise<ClusterBusEventMap[K]> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      off();
      reject(new Error(`No ${type} event arrived at node ${bus.nodeId}`));
    }, 30_000);
    const off = bus.on(type, (event) => {
      if (!match(event)) return;
      off();
      clearTimeout(guard);
      resolve(event);
    });
  });
}

/** Collects every event of `type`. */
export function collect<K extends keyof ClusterBusEventMap>(
  bus: ClusterBus,
  type: K,
): ClusterBusEventMap[K][] {
  const out: ClusterBusEventMap[K][] = [];
  bus.on(type, (event) => out.push(event));
  return out;
}

/**
 * Waits until `condition` holds ({@linkcode waitFor}, polling every 10 ms); fails after about
 * `attempts` polls' time, `attempts` × 10 ms (a stuck test, not a speed requirement).
 */
export function until(
  condition: () => boolean | Promise<boolean>,
  attempts = 1000,
): Promise<void> {
  return waitFor(condition, attempts * 10, "a condition on the bus");
}

/** A plain Redis client for looking at the server, closed by `body`'s end. */
export async function inspect<T>(server: RedisServer, body: (r: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    return await body(redis);
  } finally {
    await redis.quit();
  }
}

/** How many PUBLISH and XADD commands the server has executed so far (`INFO commandstats`). */
export async function publishCount(server: RedisServer): Promise<number> {
  const info = await inspect(server, (r) => r.info("commandstats"));
  // Messages go to a node's stream (XADD); control frames are published (PUBLISH).
  let calls = 0;
  for (const command of ["publish", "xadd"]) {
    const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
    if (match !== null) calls += Number(match[1]);
  }
  return calls;
}
