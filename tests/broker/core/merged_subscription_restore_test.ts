/**
 * A subscription merged into a session (`BrokerCore.mergeSubscriptions`, what a provisional
 * session's client was granted before it gave way) is journaled as one a SUBSCRIBE grants: the same
 * `putSubscription` row, so that a broker restarted on a SQLite file or on Redis restores it as it
 * restores a subscribed one, and routes to it [MQTT-3.8.4-3] [MQTT-3.1.2-5].
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { BrokerStore } from "../../../src/store/broker_store.ts";
import { SqliteStore } from "../../../src/store/sqlite_store.ts";
import { RedisStore } from "../../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../../src/store/mutation.ts";
import { connect, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket, publishPacket } from "../../_helpers/test_client.ts";
import { RedisServer } from "../../_helpers/redis.ts";
import { tempDir } from "../../_helpers/temp_dir.ts";

const resume = () =>
  connectPacket({
    clientId: "c",
    clean: false,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: 300 },
  });

/**
 * Journals a subscription granted by a SUBSCRIBE (`sub/#`) and one merged (`merged/#`) with the
 * same options into `open()`'s store, opens the store again (a restart), restores a core from it,
 * and checks both rows alike and both filters routed.
 */
async function mergedRestored(open: () => Promise<BrokerStore>): Promise<void> {
  const pending: StoreMutation[] = [];
  const first = testCore({}, { journal: (m) => pending.push(m) });
  const options = {
    qos: 1 as const,
    noLocal: true,
    retainAsPublished: true,
    retainHandling: 2,
  } as const;
  const c = connect(first, resume());
  first.handle(c, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "sub/#", ...options }],
    properties: { subscriptionIdentifier: [7] },
  }, T0);
  first.run();
  assert.equal(
    first.core.mergeSubscriptions("c", [{ topic: "merged/#", ...options, identifier: 7 }]),
    1,
  );
  first.run();
  {
    const store = await open();
    store.apply(pending.splice(0));
    await store.commit();
    await store.close();
  }
  const store = await open();
  try {
    const state = await store.load(T0 + 1000);
    const stored = state.sessions.find((s) => s.session.clientId === "c")?.subscriptions;
    const byFilter = new Map(stored?.map((s) => [s.filter, s]));
    const row = {
      qos: 1,
      noLocal: true,
      retainAsPublished: true,
      retainHandling: 2,
      identifier: 7,
    };
    // The same row for both: the merged one is no other shape than the subscribed one.
    assert.deepEqual(byFilter.get("sub/#"), { filter: "sub/#", ...row });
    assert.deepEqual(byFilter.get("merged/#"), { filter: "merged/#", ...row });
    const second = testCore({}, { journal: () => {} });
    second.restore(state, T0 + 1000);
    const back = connect(second, resume(), T0 + 1000);
    assert.equal(back.sent[0]?.type === PacketType.CONNACK && back.sent[0].sessionPresent, true);
    const pub = connect(second, connectPacket({ clientId: "p" }), T0 + 1000);
    second.handle(pub, publishPacket("sub/1", "s", { qos: 1, packetId: 1 }), T0 + 1001);
    second.handle(pub, publishPacket("merged/1", "m", { qos: 1, packetId: 2 }), T0 + 1002);
    second.run();
    assert.deepEqual(back.published.map((p) => [p.topic, p.qos]), [["sub/1", 1], ["merged/1", 1]]);
  } finally {
    await store.close();
  }
}

Deno.test("core mergeSubscriptions journals the row a SUBSCRIBE does: restored from a SQLite file after a restart and routed [MQTT-3.8.4-3] [MQTT-3.1.2-5]", async () => {
  await using dir = await tempDir("amqtt-merged-");
  await mergedRestored(() => Promise.resolve(SqliteStore.open(`${dir.path}/state.db`)));
});

Deno.test("core mergeSubscriptions journals the row a SUBSCRIBE does: restored from Redis after a restart and routed [MQTT-3.8.4-3] [MQTT-3.1.2-5]", async () => {
  await using redis = await RedisServer.start();
  await mergedRestored(() => RedisStore.open({ url: redis.url, prefix: "amqtt:" }));
});
