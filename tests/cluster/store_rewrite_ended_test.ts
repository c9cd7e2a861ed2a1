/**
 * A cluster node's persistent session that ends while Redis is away (its client comes back with
 * a clean session): the deletion cannot be written, which starts a store outage. Redis comes back
 * with its data (an append-only file), so it still holds the old session; the rewrite after the
 * outage deletes it, and keeps the node's other sessions. A real redis-server, stopped and
 * started again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { MemoryLogger, startBroker, waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { count, FAILURE_LINE, GUARD_MS, next, RECOVERY_LINE } from "../_helpers/store_full.ts";

Deno.test("cluster store rewrite: a session ended on the node while Redis was away is gone from Redis after the rewrite, which keeps the node's other sessions [MQTT-3.1.2-6]", async () => {
  await using redis = await RedisServer.start({ persist: true });
  const log = new MemoryLogger();
  await using b = await startBroker({
    cluster: {
      node_id: "ended-a",
      redis: [redis.url],
      key_prefix: "end:",
      heartbeat_interval: 0.2,
      node_timeout: 1,
    },
  }, { logger: log });
  for (const [clientId, filter] of [["gone", "gone/#"], ["keeper", "keep/#"]]) {
    const c = await TestClient.connect(b.port, { clientId, clean: false });
    await c.subscribe({ [filter]: 1 });
    await c.disconnect();
  }
  {
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await pub.send(publishPacket("gone/a", "queued", { qos: 1, packetId: 1 }));
    assert.equal((await next(pub, PacketType.PUBACK)).packetId, 1);
  }
  await using store = await RedisStore.open({ url: redis.url, prefix: "end:store:" });
  assert.equal((await store.loadSession("gone", Date.now())).sessions.length, 1);

  await redis.stop();
  await waitFor(() => !b.broker.ready, GUARD_MS, "the node to notice Redis is gone");
  // The client comes back with a clean session: its stored session ends [MQTT-3.1.2-6].
  {
    const gone = await TestClient.connect(b.port, { clientId: "gone", clean: true });
    await gone.disconnect();
  }
  await waitFor(() => count(log, FAILURE_LINE) === 1, GUARD_MS, "the store outage");

  await redis.resume();
  await waitFor(() => count(log, RECOVERY_LINE) === 1, GUARD_MS, "the end of the outage");
  await waitFor(() => b.broker.ready, GUARD_MS, "the node to be ready again");

  const gone = await store.loadSession("gone", Date.now());
  assert.deepEqual(gone.sessions, [], "the ended session is not in Redis");
  assert.equal(gone.messages.size, 0);
  const keeper = await store.loadSession("keeper", Date.now());
  assert.deepEqual(keeper.sessions[0]?.subscriptions.map((s) => s.filter), ["keep/#"]);
  assert.equal(count(log, FAILURE_LINE), 1, "one outage");
});
