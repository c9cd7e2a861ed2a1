/**
 * A node cut off from Redis by the {@linkcode StallProxy} between them, and given Redis back:
 * what the cluster tests of outages share; and their set-up, node B behind the proxy beside
 * node A ({@linkcode startAway}).
 *
 * @module
 */

import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

/**
 * Cuts `node`'s Redis connections through `proxy` (new ones are never answered) and waits until
 * the node says it lost Redis.
 *
 * @param proxy the proxy between `node` and Redis
 * @param node the node cut off
 */
export async function cutOff(proxy: StallProxy, node: Node): Promise<void> {
  proxy.mode = "stall";
  proxy.cut();
  await until(() => /Cluster: lost Redis/.test(node.log()), "the node losing Redis");
}

/**
 * Lets `node`'s connections through `proxy` again (its stalled ones cut) and waits until the
 * node says Redis is back.
 *
 * @param proxy the proxy between `node` and Redis
 * @param node the node given Redis back
 */
export async function bringBack(proxy: StallProxy, node: Node): Promise<void> {
  proxy.mode = "forward";
  proxy.cut();
  await until(() => /Cluster: Redis is back/.test(node.log()), "the node reconnecting to Redis");
}

/** What {@linkcode startAway} starts; disposing it stops all of it, the last started first. */
export interface AwayNodes extends AsyncDisposable {
  redis: RedisServer;
  /** The proxy node B reaches Redis through ({@linkcode cutOff}, {@linkcode bringBack}). */
  proxy: StallProxy;
  a: Node;
  b: Node;
  /** A connection of the test's own to Redis, for looking at the keys. */
  admin: Redis;
}

/**
 * Starts a redis-server, node A on it and node B behind a proxy, under `prefix`, and a connection
 * of the test's own to Redis: the set-up of the tests of provisional sessions.
 *
 * @param prefix the cluster's key prefix
 * @returns the nodes, Redis, the proxy and the connection
 */
export async function startAway(prefix: string): Promise<AwayNodes> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const proxy = stack.use(new StallProxy(redis.port));
  const a = stack.use(await Node.start(redis, { nodeId: "a", prefix }));
  const b = stack.use(await Node.start(proxy, { nodeId: "b", prefix }));
  const admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
  stack.defer(() => void admin.disconnect());
  const rest = stack.move();
  return { redis, proxy, a, b, admin, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}
