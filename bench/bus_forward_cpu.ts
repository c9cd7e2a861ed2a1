/**
 * CPU per message forwarded from one cluster bus to another through a redis-server started here,
 * for A/B comparisons of the bus's hot path between two checkouts on a busy machine: the process's
 * own CPU time (user + system, from /proc) per message, which other load moves far less than
 * throughput, and redis-server's (its `INFO cpu`). Both buses run in this process (the sending
 * side's XADDs and the receiving side's XREAD); 64-byte QoS 0 messages are published in bursts of
 * `burst` (8192 by default: the XADD batches fill up to 256 KiB; 1: one XADD per message).
 *
 * Usage (alternate the checkouts, pin to one core):
 *
 *     taskset -c 0 deno run -A --config DIR/deno.json bench/bus_forward_cpu.ts DIR [messages] [burst]
 *
 * Prints one JSON line: CPU µs per message (this process, redis-server), wall time, messages
 * dropped.
 *
 * @module
 */

import { cpuSeconds, redisCpuSeconds } from "./_cpu.ts";
const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname;
const total = Number(Deno.args[1] ?? 400_000);
const burst = Number(Deno.args[2] ?? 8192);
const { ClusterBus } = await import(`${root}/src/cluster/cluster_bus.ts`);
const { RedisServer } = await import(`${root}/tests/_helpers/redis.ts`);
const { Redis } = await import("ioredis");

await using server = await RedisServer.start();
const probe = new Redis({ host: "127.0.0.1", port: server.port });
const timers = { setInterval: () => 0, clearInterval: () => {} };
await using a = await ClusterBus.start({ url: server.url, nodeId: "a", prefix: "ab:", timers });
await using b = await ClusterBus.start({ url: server.url, nodeId: "b", prefix: "ab:", timers });
await b.addInterest("x/#");
while (a.nodesFor("x/1").length === 0) await new Promise((r) => setTimeout(r, 5));
let received = 0;
b.on("message", () => received++);
const payload = new Uint8Array(64);
const redis0 = await redisCpuSeconds(probe);
const cpu0 = cpuSeconds();
const t0 = performance.now();
for (let sent = 0; sent < total;) {
  const n = Math.min(burst, total - sent);
  for (let i = 0; i < n; i++) a.publish({ topic: "x/1", payload, qos: 0, retain: false }, "p");
  sent += n;
  await new Promise((r) => setTimeout(r, 0));
}
// Messages beyond maxQueuedForwards (Redis behind) are dropped and counted, not waited for.
while (received + a.stats.dropped < total) await new Promise((r) => setTimeout(r, 20));
const cpu = cpuSeconds() - cpu0;
const redisCpu = await redisCpuSeconds(probe) - redis0;
await probe.quit();
console.log(JSON.stringify({
  root,
  burst,
  cpuUsPerMessage: Math.round(cpu * 1e6 / total * 1000) / 1000,
  redisCpuUsPerMessage: Math.round(redisCpu * 1e6 / total * 1000) / 1000,
  wallMs: Math.round(performance.now() - t0),
  dropped: a.stats.dropped,
}));
