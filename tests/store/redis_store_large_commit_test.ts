// A turn's commit on Redis is one script run whatever its size: a node that adopts a session
// routes everything the dead node had not stored to it in one turn (16,000 QoS 1 messages in a
// busy cluster test), and that commit must be written whole. Sent as arguments spread into one
// JavaScript call, a commit of that size threw "Maximum call stack size exceeded" and was lost.
import assert from "node:assert/strict";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { message, session } from "./_conformance.ts";

const DELIVERIES = 20_000;

Deno.test(
  `RedisStore commits a turn of ${DELIVERIES} queued deliveries whole, and loads them all [MQTT-3.1.2-4]`,
  async () => {
    await using redis = await RedisServer.start();
    await using store = await RedisStore.open({ url: redis.url, prefix: "big:" });
    store.apply([{ type: "putSession", session: session("adopted") }]);
    await store.commit();
    const batch: StoreMutation[] = [];
    for (let i = 1; i <= DELIVERIES; i++) {
      batch.push({ type: "putMessage", id: i, message: message("t", String(i)) });
      batch.push({ type: "queueOutbound", clientId: "adopted", seq: i, messageId: i, qos: 1 });
    }
    store.apply(batch);
    await store.commit();
    const loaded = await store.loadSession("adopted", Date.now());
    const outbound = loaded.sessions[0]!.outbound;
    assert.equal(outbound.length, DELIVERIES);
    assert.equal(loaded.messages.size, DELIVERIES);
    assert.deepEqual(
      outbound.map((o) => o.seq).sort((a, b) => a - b),
      Array.from({ length: DELIVERIES }, (_, i) => i + 1),
    );
  },
);
