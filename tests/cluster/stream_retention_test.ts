// How long a node's stream keeps what the node has not read: long enough that a node that died
// and is not reaped yet loses nothing other nodes sent it (its adopter, or the node its client
// reaches, replays it), however much that is; and no longer than the retention, so that a node
// that does not read leaves Redis a bounded stream. Real redis-server, buses in this process.
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { HEARTBEAT_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import type { MessageRecord } from "../../src/store/message_record.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { inspect, nextEvent, startBus, until } from "./_bus_helpers.ts";

function msg(topic: string, body: string): MessageRecord {
  return { topic, payload: new TextEncoder().encode(body), qos: 1, retain: false };
}

Deno.test("ClusterBus: a dead node's stream keeps every entry written to it before its reap, over 10,000 of them (trimmed by count, acknowledged messages of its sessions were lost)", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a");
  // Dead (it reads nothing more) and not reaped: its liveness key outlives the test.
  const b = await startBus(server, "b", { livenessTtl: 60_000 });
  await using _b = { [Symbol.asyncDispose]: () => b.abandon() };
  await b.addInterest("r/#");
  await until(() => a.nodesFor("r/1").length === 1);
  await b.abandon();
  // About one stream entry each (a QoS 1 forward is flushed in its own turn, a few share one).
  const count = 12_000;
  for (let i = 0; i < count; i++) {
    assert.equal(a.publish(msg("r/1", `m${i}`)), 1);
    await new Promise((resolve) => setImmediate(resolve));
  }
  // What a publisher's PUBACK waits for: Redis answered every XADD.
  await a.forwards.acknowledged(0);
  assert.equal(a.stats.dropped, 0);
  // What the node that takes its sessions reads (`deadStream`): every message, in order.
  const payloads = (await a.deadStream("b", true)).map((e) =>
    new TextDecoder().decode(e.frame.message.payload)
  );
  assert.equal(payloads.length, count, "messages trimmed from the stream");
  assert.deepEqual(payloads, Array.from({ length: count }, (_, i) => `m${i}`));
  const entries = await inspect(server, (r) => r.xlen("test:s:b"));
  assert.ok(entries > 10_500, `${entries} entries`);
});

Deno.test("ClusterBus: a node's stream that is not read keeps entries only for the retention, by Redis's clock", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a", { streamRetention: 100 });
  const b = await startBus(server, "b", { livenessTtl: 60_000 });
  await using _b = { [Symbol.asyncDispose]: () => b.abandon() };
  await b.addInterest("r/#");
  await until(() => a.nodesFor("r/1").length === 1);
  await b.abandon();
  const count = 300;
  for (let i = 0; i < count; i++) {
    assert.equal(a.publish(msg("r/1", `old${i}`)), 1);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await a.forwards.acknowledged(0);
  // Past the retention: the next writes trim what is older (whole blocks of entries: Redis's
  // approximate trim keeps the block the new entries share).
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const body of ["new0", "new1"]) {
    a.publish(msg("r/1", body));
    await a.forwards.acknowledged(0);
  }
  const entries = await inspect(server, (r) => r.xlen("test:s:b"));
  assert.ok(entries <= 102, `${entries} entries left`);
  const payloads = (await a.deadStream("b", true)).map((e) =>
    new TextDecoder().decode(e.frame.message.payload)
  );
  assert.deepEqual(payloads.slice(-2), ["new0", "new1"]);
});

Deno.test("ClusterBus: a dead node's stream written to after its reap by a node that had not heard of it keeps a lifetime, though the writer stops before it hears of the reap", async () => {
  await using server = await RedisServer.start();
  const a = await startBus(server, "a", { livenessTtl: 60_000 });
  await using _a = a;
  const b = await startBus(server, "b", { livenessTtl: 60_000 });
  await using _b = { [Symbol.asyncDispose]: () => b.abandon() };
  await b.addInterest("r/#");
  await until(() => a.nodesFor("r/1").length === 1);
  await b.abandon();
  // Reaped by a node whose announcement A never hears (its liveness key gone, the script run).
  await inspect(server, async (r) => {
    await r.del("test:alive:b");
    await r.eval(HEARTBEAT_SCRIPT, 0, "test:", "m", "1000", "m1");
  });
  // Renamed by the reap, an empty one left in its place.
  assert.equal(await inspect(server, (r) => r.xlen("test:s:b")), 0);
  // A still forwards to B: the XADD writes to B's stream, for nobody.
  assert.equal(a.publish(msg("r/1", "late")), 1);
  await a.forwards.acknowledged(0);
  assert.ok(a.ready);
  // A stops now, without a heartbeat: it never hears that B is gone.
  await a.close();
  assert.equal(await inspect(server, (r) => r.xlen("test:s:b")), 1);
  const ttl = await inspect(server, (r) => r.pttl("test:s:b"));
  assert.ok(ttl > 0 && ttl <= 600_000, `B's recreated stream lives ${ttl} ms`);
});

Deno.test("ClusterBus: a registered node's stream written to by other nodes keeps no lifetime", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b");
  await b.addInterest("r/#");
  await until(() => a.nodesFor("r/1").length === 1);
  const got = nextEvent(b, "message");
  assert.equal(a.publish(msg("r/1", "live")), 1);
  await a.forwards.acknowledged(0);
  await got;
  assert.equal(await inspect(server, (r) => r.exists("test:s:b")), 1);
  assert.equal(await inspect(server, (r) => r.pttl("test:s:b")), -1);
  assert.ok(a.ready && b.ready);
});
