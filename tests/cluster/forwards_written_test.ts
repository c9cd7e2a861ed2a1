// A node whose XADD connection Redis closed (idle clients closed by a server `timeout`, a
// CLIENT KILL) hands a session over, or leaves, only once the forwards it queued before are in
// Redis, on a connection opened again for them: the new owner must read them before the handoff
// (else a message the old owner had routed into the session comes again after the move), and a
// leaving node's forwards must not be dropped. Real redis-server, buses in this process.
import assert from "node:assert/strict";
import type { MessageRecord } from "../../src/store/message_record.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { inspect, nextEvent, startBus, until } from "./_bus_helpers.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function msg(topic: string, body: string): MessageRecord {
  return { topic, payload: new TextEncoder().encode(body), qos: 1, retain: false };
}

/** Redis closes `node`'s XADD connection; the node has read that close when this returns. */
async function closeWriter(server: RedisServer, node: string): Promise<void> {
  await inspect(server, async (redis) => {
    const list = (await redis.client("LIST") as string).trim().split("\n");
    const line = list.find((l) => l.includes(` name=test:${node}:xadd `));
    assert.ok(line !== undefined, `no XADD connection of ${node} in ${list.join("\n")}`);
    await redis.client("KILL", "ID", /\bid=(\d+)/.exec(line)![1]!);
    // The kill is answered after the socket was closed: one more round trip, and a moment, and
    // this process (the node's) has read the close too.
    await redis.ping();
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
}

Deno.test("ClusterBus: with its XADD connection closed by Redis, a node hands a session over only after the forwards queued before it are in Redis (read before the handoff)", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b");
  await b.addInterest("x/#");
  await until(() => a.nodesFor("x/1").length === 1);
  await closeWriter(server, "a");
  const seen: string[] = [];
  b.on("message", (frame) => seen.push(text(frame.message.payload)));
  b.on("handoff", (handoff) => seen.push(`handoff of ${handoff.clientId}`));
  assert.equal(a.publish(msg("x/1", "routed before the handoff"), "p"), 1);
  await a.handOver("c1", "b");
  await until(() => seen.length === 2);
  assert.deepEqual(seen, ["routed before the handoff", "handoff of c1"]);
  assert.equal(a.stats.dropped, 0);
  // And the connection opened for them stays in use.
  const next = nextEvent(b, "message");
  a.publish(msg("x/1", "after"), "p");
  assert.equal(text((await next).message.payload), "after");
});

Deno.test("ClusterBus: with its XADD connection closed by Redis, a leaving node writes the forwards queued before it leaves", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b");
  await b.addInterest("x/#");
  await until(() => a.nodesFor("x/1").length === 1);
  await closeWriter(server, "a");
  const arrived = nextEvent(b, "message");
  assert.equal(a.publish(msg("x/1", "queued at the leave"), "p"), 1);
  await a.close();
  assert.equal(text((await arrived).message.payload), "queued at the leave");
  assert.equal(a.stats.dropped, 0);
});
