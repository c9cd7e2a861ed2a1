/**
 * CPU per shared-group QoS 1 message that crosses from one cluster node to another, for A/B
 * comparisons between two checkouts on a busy machine: a publisher on node A, the only member of
 * `$share/g/s/#` (a clean session) on node B, so that every message goes through B's stream to a
 * clean member and is acknowledged. Both nodes and both clients run in this process, on a
 * redis-server started here; the process's own CPU time (user + system, from /proc) and
 * redis-server's (`INFO cpu`) are divided by the messages delivered. `window` publishes are
 * kept in flight, at `qos` (1, or 2: the member subscribed at QoS 2, each message taken in Redis
 * before its first PUBLISH, see `ClusterBus.take`); a window of 1 measures the latency of one
 * message from the publisher's send to its PUBACK or PUBCOMP. With `own`, the member also
 * subscribes to `s/#` itself (two copies of each message, one PUBACK each) and B queues up to
 * 100,000 messages per session, so that a wide window (say 8000) builds a deep queue behind the
 * member's in-flight window: what a PUBACK costs with a deep queue.
 *
 * Usage (alternate the checkouts):
 *
 *     deno run -A --config DIR/deno.json bench/shared_ack_cpu.ts DIR [messages] [window] [qos] [own]
 *
 * Prints one JSON line: CPU µs per message (this process, redis-server), wall time, rate.
 *
 * @module
 */

import { cpuSeconds, redisCpuSeconds } from "./_cpu.ts";
const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname;
const total = Number(Deno.args[1] ?? 40_000);
const window = Number(Deno.args[2] ?? 64);
const qos = Number(Deno.args[3] ?? 1) as 1 | 2;
const own = Deno.args[4] === "own";
/** Copies of each message the member gets. */
const copies = own ? 2 : 1;
const { Broker } = await import(`${root}/broker.ts`);
const { MQTTClient } = await import(`${root}/client.ts`);
const { RedisServer } = await import(`${root}/tests/_helpers/redis.ts`);
const { Redis } = await import("ioredis");

await using server = await RedisServer.start();
const probe = new Redis({ host: "127.0.0.1", port: server.port });

const quiet = { debug() {}, info() {}, warning() {}, error() {} };
function node(id: string) {
  return new Broker({
    listeners: { default: { bind: "127.0.0.1:0" } },
    ...(own ? { max_queued_messages: 100_000 } : {}),
    cluster: { redis: [server.url], node_id: id, key_prefix: "sack:" },
  }, { logger: quiet });
}
const a = node("a");
const b = node("b");
await a.start();
await b.start();
const url = (broker: typeof a) => `mqtt://127.0.0.1:${broker.listeners[0]!.port}`;
const member = new MQTTClient({ clientId: "member", config: { auto_reconnect: false } });
await member.connect(url(b));
await member.subscribe([["$share/g/s/#", qos]]);
const publisher = new MQTTClient({
  clientId: "pub",
  config: { auto_reconnect: false },
  ...(own ? { maxQueued: 100_000, maxInflight: 65_535 } : {}),
});
await publisher.connect(url(a));

let received = 0;
let wake: (() => void) | undefined;
const reading = (async () => {
  for await (const _ of member.messages()) {
    received++;
    wake?.();
  }
})();
/** Resolves once `n` messages in all arrived. */
async function arrived(n: number): Promise<void> {
  while (received < n) await new Promise<void>((resolve) => wake = resolve);
}

// A learns of B's group a moment after the SUBACK.
while (received === 0) {
  await publisher.publish("s/probe", "probe", { qos: 0 });
  await new Promise((resolve) => setTimeout(resolve, 50));
}
// After the group is known (the probe came through it), and once A forwards to B for it too.
if (own) {
  await member.subscribe([["s/#", qos]]);
  const had = received;
  while (received < had + 2) {
    await publisher.publish("s/probe", "probe", { qos: 0 });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
const payload = new Uint8Array(64);
/** Publishes `n` messages, `window` at a time, and waits for them to arrive. */
async function run(n: number): Promise<void> {
  const start = received;
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < n; i++) {
    const sent = publisher.publish("s/x", payload, { qos });
    inflight.add(sent);
    sent.finally(() => inflight.delete(sent));
    if (inflight.size >= window) await Promise.race(inflight);
    // One at a time: each waits for its arrival too (publish to delivery).
    if (window === 1) await arrived(start + (i + 1) * copies);
  }
  await Promise.all(inflight);
  await arrived(start + n * copies);
}

await run(Math.min(5000, total)); // warm-up
const cpu0 = cpuSeconds();
const redis0 = await redisCpuSeconds(probe);
const t0 = performance.now();
const before = received;
await run(total);
const wall = (performance.now() - t0) / 1000;
const delivered = (received - before) / copies;
const cpu = cpuSeconds() - cpu0;
const redis = await redisCpuSeconds(probe) - redis0;
console.log(JSON.stringify({
  root,
  qos,
  window,
  own,
  messages: delivered,
  processUsPerMsg: +(cpu * 1e6 / delivered).toFixed(2),
  redisUsPerMsg: +(redis * 1e6 / delivered).toFixed(2),
  wallSeconds: +wall.toFixed(2),
  msgPerSecond: Math.round(delivered / wall),
}));
await publisher.disconnect();
await member.disconnect();
await reading;
await a.shutdown();
await b.shutdown();
probe.disconnect();
