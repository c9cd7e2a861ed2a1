/**
 * Cluster bus benchmarks against a redis-server started here (loopback): the added latency of one
 * cross-node hop (node A publishes, node B receives through Redis), forwarding throughput with
 * pipelining, and RedisStore group commits.
 *
 * Run: deno bench -A bench/cluster_bus_bench.ts
 *
 * @module
 */

import { ClusterBus } from "../src/cluster/cluster_bus.ts";
import type { MessageFrame } from "../src/cluster/bus_frame.ts";
import { RedisStore } from "../src/cluster/redis_store.ts";
import type { StoreMutation } from "../src/store/mutation.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

const server = await RedisServer.start();
globalThis.addEventListener("unload", () => {
  void server.stop(); // kills at once; the exit does not wait for the promise
  Deno.removeSync(server.dir, { recursive: true });
});

const timers = { setInterval: () => 0, clearInterval: () => {} };
const a = await ClusterBus.start({ url: server.url, nodeId: "a", prefix: "bench:", timers });
const b = await ClusterBus.start({ url: server.url, nodeId: "b", prefix: "bench:", timers });
await b.addInterest("bench/#");
while (a.nodesFor("bench/x").length === 0) await new Promise((r) => setTimeout(r, 5));

let waiting: { left: number; done: () => void } | undefined;
b.on("message", (_frame: MessageFrame) => {
  if (waiting !== undefined && --waiting.left === 0) waiting.done();
});

function forward(count: number): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  waiting = { left: count, done: resolve };
  const payload = new Uint8Array(64);
  for (let i = 0; i < count; i++) {
    a.publish({ topic: "bench/x", payload, qos: 1, retain: false }, "publisher");
  }
  return promise;
}

Deno.bench("cross-node hop: one 64-byte message, A → Redis → B (latency)", async () => {
  await forward(1);
});

Deno.bench("cross-node forwarding: 1,000 messages pipelined (throughput)", async () => {
  await forward(1000);
});

Deno.bench("no interest: 1,000 publishes to a topic nobody subscribes to", () => {
  const payload = new Uint8Array(64);
  for (let i = 0; i < 1000; i++) a.publish({ topic: "nobody", payload, qos: 0, retain: false });
});

const store = await RedisStore.open({ url: server.url, prefix: "bench-store:" });
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
let next = 1;

Deno.bench("RedisStore: 100 QoS 1 messages per commit (store, queue, ack)", async () => {
  for (let i = 0; i < 100; i++) {
    const id = next++;
    const batch: StoreMutation[] = [
      {
        type: "putMessage",
        id,
        message: { topic: "t", payload: new Uint8Array(64), qos: 1, retain: false },
      },
      { type: "queueOutbound", clientId: "sub", seq: id, messageId: id, qos: 1, packetId: 1 },
    ];
    if (id > 1) batch.push({ type: "deleteOutbound", clientId: "sub", seq: id - 1 });
    store.apply(batch);
  }
  await store.commit();
});
