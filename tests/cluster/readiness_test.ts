/**
 * A cluster node's readiness (what `/readyz` answers): not ready while it cannot reach Redis (it
 * serves its local clients only meanwhile), ready again once Redis is back. A real redis-server,
 * an embedded broker.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";

Deno.test("cluster readiness: a node that cannot reach Redis is not ready, and is again once Redis is back", async () => {
  await using redis = await RedisServer.start();
  await using b = await startBroker({
    cluster: {
      node_id: "ready-a",
      redis: [redis.url],
      key_prefix: "ready:",
      heartbeat_interval: 0.2,
      node_timeout: 1,
    },
  });
  assert.deepEqual(b.broker.notReady, []);
  assert.equal(b.broker.ready, true);
  await redis.stop();
  await waitFor(() => !b.broker.ready, undefined, "the node to notice Redis is gone");
  assert.deepEqual(b.broker.notReady, ["the cluster cannot reach Redis"]);
  await redis.restart();
  await waitFor(() => b.broker.ready, undefined, "the node to be ready again");
});
