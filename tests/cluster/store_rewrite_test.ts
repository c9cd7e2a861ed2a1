/**
 * A cluster node writes its persistent sessions to the shared Redis store again from memory after
 * a store outage, as a broker does with its SQLite file (`store_rewrite.ts`). A real redis-server
 * is stopped: the node serves its local clients from memory (a QoS 1 message acknowledged, a
 * persistent session connected and subscribed) and the writes fail, which starts the outage. It
 * is restarted without its data: the probe works, the node rewrites its sessions, and Redis holds
 * them again, with what changed while it was away.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { MemoryLogger, startBroker, waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { count, FAILURE_LINE, GUARD_MS, next, RECOVERY_LINE } from "../_helpers/store_full.ts";

function queued(state: StoredState): string[] {
  const [session] = state.sessions;
  assert.ok(session !== undefined, "the session is stored");
  return session.outbound.map((e) =>
    new TextDecoder().decode(state.messages.get(e.messageId!)?.payload)
  );
}

Deno.test("cluster store rewrite: after Redis comes back without its data, the node writes its persistent sessions again from memory, with the QoS 1 message it acknowledged meanwhile [MQTT-3.1.2-4]", async () => {
  await using redis = await RedisServer.start();
  const log = new MemoryLogger();
  await using b = await startBroker({
    cluster: {
      node_id: "rewrite-a",
      redis: [redis.url],
      key_prefix: "rw:",
      heartbeat_interval: 0.2,
      node_timeout: 1,
    },
  }, { logger: log });
  {
    const keeper = await TestClient.connect(b.port, { clientId: "keeper", clean: false });
    await keeper.subscribe({ "keep/#": 1 });
    await keeper.disconnect();
  }
  // A persistent session this node holds, offline when Redis goes away.
  await (await TestClient.connect(b.port, { clientId: "newsub", clean: false })).disconnect();
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("keep/a", "before", { qos: 1, packetId: 1 }));
  assert.equal((await next(pub, PacketType.PUBACK)).packetId, 1);

  await redis.stop();
  await waitFor(() => !b.broker.ready, GUARD_MS, "the node to notice Redis is gone");
  // Served from memory meanwhile: the node's local clients are not held up by Redis.
  await pub.send(publishPacket("keep/a", "during", { qos: 1, packetId: 2 }));
  assert.equal((await next(pub, PacketType.PUBACK)).packetId, 2);
  // Its client comes back meanwhile (the node holds its session: a login resuming one it does
  // not hold is refused while Redis is away, `move_redis_away_test.ts`) and subscribes.
  await using newsub = await TestClient.connect(b.port, { clientId: "newsub", clean: false });
  await newsub.subscribe({ "new/#": 1 });
  await waitFor(() => count(log, FAILURE_LINE) === 1, GUARD_MS, "the store outage");

  await redis.restart();
  await waitFor(() => count(log, RECOVERY_LINE) === 1, GUARD_MS, "the end of the outage");
  await waitFor(() => b.broker.ready, GUARD_MS, "the node to be ready again");
  assert.equal(count(log, FAILURE_LINE), 1, "one outage, logged once");

  // Redis holds the node's sessions again, as memory had them.
  await using store = await RedisStore.open({ url: redis.url, prefix: "rw:store:" });
  const keeper = await store.loadSession("keeper", Date.now());
  assert.deepEqual(keeper.sessions[0]?.subscriptions.map((s) => s.filter), ["keep/#"]);
  assert.deepEqual(queued(keeper), ["before", "during"]);
  const stored = await store.loadSession("newsub", Date.now());
  assert.deepEqual(stored.sessions[0]?.subscriptions.map((s) => s.filter), ["new/#"]);
  // Work goes on in the new state: a QoS 1 message after the outage is stored for keeper too.
  await pub.send(publishPacket("keep/a", "after", { qos: 1, packetId: 3 }));
  const ack = await next(pub, PacketType.PUBACK);
  assert.deepEqual([ack.packetId, ack.reasonCode ?? 0], [3, 0]);
  assert.deepEqual(queued(await store.loadSession("keeper", Date.now())), [
    "before",
    "during",
    "after",
  ]);
  await newsub.close();
});
