/**
 * Store benchmarks: apply + commit throughput of the memory store and the SQLite store with
 * `sync: normal` and `sync: full`, for the writes a QoS 1 message to one persistent session costs
 * (store the message, queue it as sent, and the PUBACK of the one before).
 *
 * - "100 messages per commit": 100 publishers in one event-loop turn (group commit).
 * - "1 message per commit": one publisher waiting for each acknowledgement.
 *
 * Run: deno bench -A bench/store_bench.ts
 *
 * @module
 */

import type { BrokerStore } from "../src/store/broker_store.ts";
import { MemoryStore } from "../src/store/memory_store.ts";
import type { StoreMutation } from "../src/store/mutation.ts";
import { SqliteStore } from "../src/store/sqlite_store.ts";

const dir = Deno.makeTempDirSync({ prefix: "amqtt_store_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const PAYLOAD = new Uint8Array(256).fill(42);

/** A store with one persistent session, and a counter for message ids. */
function setUp(store: BrokerStore): { store: BrokerStore; next: number } {
  store.apply([{
    type: "putSession",
    session: {
      clientId: "sub",
      protocolVersion: 4,
      clean: false,
      expiryInterval: undefined,
      offlineSince: undefined,
    },
  }]);
  return { store, next: 1 };
}

const stores = {
  memory: setUp(new MemoryStore()),
  "sqlite normal": setUp(SqliteStore.open(`${dir}/normal.db`, { sync: "normal" })),
  "sqlite full": setUp(SqliteStore.open(`${dir}/full.db`, { sync: "full" })),
};

/** One message's writes: store it, queue it, and the previous one was acknowledged. */
function messageBatch(seq: number): StoreMutation[] {
  const batch: StoreMutation[] = [
    {
      type: "putMessage",
      id: seq,
      message: { topic: "sensors/1/temp", payload: PAYLOAD, qos: 1, retain: false },
    },
    // Sent at once: the subscriber is online with room in its window.
    {
      type: "queueOutbound",
      clientId: "sub",
      seq,
      messageId: seq,
      qos: 1,
      packetId: (seq % 65535) + 1,
    },
  ];
  if (seq > 1) batch.push({ type: "deleteOutbound", clientId: "sub", seq: seq - 1 });
  return batch;
}

for (const [name, target] of Object.entries(stores)) {
  Deno.bench({
    name: `${name}: 100 messages per commit`,
    group: "100 messages per commit",
    baseline: name === "memory",
    async fn() {
      for (let i = 0; i < 100; i++) target.store.apply(messageBatch(target.next++));
      await target.store.commit();
    },
  });
}

for (const [name, target] of Object.entries(stores)) {
  Deno.bench({
    name: `${name}: 1 message per commit`,
    group: "1 message per commit",
    baseline: name === "memory",
    async fn() {
      target.store.apply(messageBatch(target.next++));
      await target.store.commit();
    },
  });
}

globalThis.addEventListener("unload", () => {
  for (const target of Object.values(stores)) void target.store.close();
});
