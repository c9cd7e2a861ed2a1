/**
 * A node cut off from Redis by the {@linkcode StallProxy} between them, and given Redis back:
 * what the cluster tests of outages share.
 *
 * @module
 */

import { type Node, until } from "./_nodes.ts";
import type { StallProxy } from "./_stall_proxy.ts";

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
