/**
 * Store benchmarks: apply + commit throughput of the memory store and the SQLite store (on the
 * broker's thread and on a worker) with `sync: normal` and `sync: full`, for the writes a QoS 1 message to one persistent session costs
 * (store the message, queue it as sent, and the PUBACK of the one before).
 *
 * - "100 messages per commit": 100 publishers in one event-loop turn (group commit).
 * - "1 message per commit": one publisher waiting for each acknowledgement.
 * - "1 message to 100 sessions": one message queued for 100 offline persistent sessions, stored
 *   once, then delivered to and acknowledged by all of them (the message goes with the last ack).
 *
 * Run: deno bench -A bench/store_bench.ts
 *
 * @module
 */

import type { BrokerStore } from "../src/store/broker_store.ts";
import { MemoryStore } from "../src/store/memory_store.ts";
import type { StoreMutation } from "../src/store/mutation.ts";
import { SqliteStore } from "../src/store/sqlite_store.ts";
import { SqliteWorkerStore } from "../src/store/sqlite_worker_store.ts";

const dir = Deno.makeTempDirSync({ prefix: "amqtt_store_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const PAYLOAD = new Uint8Array(256).fill(42);

const FAN_OUT = 100;

/** A store with one persistent session "sub" and 100 "fan-N", and a counter for message ids. */
function setUp(store: BrokerStore): { store: BrokerStore; next: number } {
  const ids = ["sub"];
  for (let i = 0; i < FAN_OUT; i++) ids.push(`fan-${i}`);
  store.apply(ids.map((clientId) => ({
    type: "putSession",
    session: {
      clientId,
      protocolVersion: 4,
      clean: false,
      expiryInterval: undefined,
      offlineSince: undefined,
    },
  })));
  return { store, next: 1 };
}

const stores = {
  memory: setUp(new MemoryStore()),
  "sqlite normal": setUp(SqliteStore.open(`${dir}/normal.db`, { sync: "normal" })),
  "sqlite full": setUp(SqliteStore.open(`${dir}/full.db`, { sync: "full" })),
  // Wall time includes the round trip to the worker; the broker's thread pays only apply and
  // the copy to the worker.
  "worker normal": setUp(await SqliteWorkerStore.open(`${dir}/w-normal.db`, { sync: "normal" })),
  "worker full": setUp(await SqliteWorkerStore.open(`${dir}/w-full.db`, { sync: "full" })),
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

for (const [name, target] of Object.entries(stores)) {
  Deno.bench({
    name: `${name}: 1 message to 100 sessions`,
    group: "1 message to 100 sessions",
    baseline: name === "memory",
    async fn() {
      const id = target.next++;
      const queue: StoreMutation[] = [{
        type: "putMessage",
        id,
        message: { topic: "alerts/all", payload: PAYLOAD, qos: 1, retain: false },
      }];
      const acks: StoreMutation[] = [];
      for (let i = 0; i < FAN_OUT; i++) {
        queue.push({ type: "queueOutbound", clientId: `fan-${i}`, seq: id, messageId: id, qos: 1 });
        acks.push({ type: "deleteOutbound", clientId: `fan-${i}`, seq: id });
      }
      target.store.apply(queue);
      await target.store.commit();
      target.store.apply(acks);
      await target.store.commit();
    },
  });
}

globalThis.addEventListener("unload", () => {
  for (const target of Object.values(stores)) void target.store.close();
});
