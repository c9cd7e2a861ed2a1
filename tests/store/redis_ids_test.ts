/**
 * Message ids of the Redis store after Redis lost its data (restarted without persistence): the
 * counter `reserveMessageIds` takes blocks from is gone then, so another node (or one started
 * since) may be given a block holding ids a node still holds in memory. The store notices the
 * loss (its epoch key is gone), its writes with the old ids change nothing, and `renewIds` gives
 * it a fresh block to renumber its messages from before it writes its state again. Also: the
 * sessions that ended on a node while Redis was away are not deleted by its rewrite after the
 * loss, since what Redis holds under their client ids now was written by the node holding them.
 * A real redis-server, restarted empty.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { StoreError } from "../../src/store/store_error.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { MemoryLogger } from "../_helpers/broker.ts";
import { StoreWriter } from "../../src/broker/store_writer.ts";
import { persistentSession } from "./_rewrite_states.ts";

const BLOCK = 1000;

/** A persistent session holding one queued message under `id`. */
function sessionWith(id: number, clientId = "held", text = `message of ${clientId}`) {
  const payload = new TextEncoder().encode(text);
  return [
    ...persistentSession(clientId),
    { type: "putMessage", id, message: { topic: "t", payload, qos: 1, retain: false } },
    { type: "queueOutbound", clientId, seq: 1, messageId: id, qos: 1 },
  ] satisfies StoreMutation[];
}

/** The payloads queued for the session `state` holds. */
function queued(state: StoredState): string[] {
  const [session] = state.sessions;
  assert.ok(session !== undefined, "the session is stored");
  return session.outbound.map((e) =>
    new TextDecoder().decode(state.messages.get(e.messageId!)?.payload)
  );
}

/** Waits until the store's connection is back (reads wait for it meanwhile). */
async function reconnected(store: RedisStore): Promise<void> {
  await store.counters(["none"]);
}

/** Until `check` holds, a turn of the event loop at a time (no wall-clock bound). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function withRestartedRedis(
  fn: (node: RedisStore, redis: RedisServer) => Promise<void>,
): Promise<void> {
  await using redis = await RedisServer.start();
  await using node = await RedisStore.open({ url: redis.url, prefix: "ids:" });
  assert.equal(await node.reserveMessageIds(BLOCK), 1);
  node.apply(sessionWith(5));
  await node.commit();
  await redis.restart();
  await reconnected(node);
  await fn(node, redis);
}

Deno.test("RedisStore ids: after Redis restarted empty, a node started since and an idle node that renews its ids never store two messages under one id", async () => {
  await withRestartedRedis(async (node, redis) => {
    // Idle across the restart: it learns of the loss from the reconnection, without a write.
    await until(() => node.dataLost);
    await using other = await RedisStore.open({ url: redis.url, prefix: "ids:" });
    const theirs = await other.reserveMessageIds(10);
    assert.equal(theirs, 1, "the counter started again: the block holds the node's id 5");
    other.apply(sessionWith(5, "other"));
    await other.commit();
    // The node's writes with its old ids change nothing...
    node.apply(sessionWith(5));
    await assert.rejects(node.commit(), StoreError);
    // ...until it renumbers what it holds from a fresh block and writes it again.
    let first = 0;
    await node.renewIds(BLOCK, (next) => first = next);
    assert.equal(node.dataLost, false);
    assert.ok(first > BLOCK, `the fresh block starts at ${first}, above every block before`);
    await node.rewrite(sessionWith(first));
    assert.deepEqual(queued(await other.loadSession("other", Date.now())), ["message of other"]);
    assert.deepEqual(queued(await other.loadSession("held", Date.now())), ["message of held"]);
    // Blocks reserved since do not overlap the node's.
    assert.ok(await other.reserveMessageIds(10) >= first + BLOCK);
  });
});

Deno.test("RedisStore ids: the loss of Redis's data is reported to the writer as a failed write", async () => {
  await using redis = await RedisServer.start();
  await using node = await RedisStore.open({ url: redis.url, prefix: "ids:" });
  const reported: unknown[] = [];
  node.reportFailures((error) => reported.push(error));
  await redis.restart();
  await until(() => reported.length > 0);
  assert.ok(reported[0] instanceof StoreError);
  assert.match((reported[0] as Error).message, /Redis lost its data/);
  assert.equal(node.dataLost, true);
});

Deno.test("RedisStore ids: the loss of Redis's data starts the store writer's outage without refusing replies that depend on what was committed before it", async () => {
  await using redis = await RedisServer.start();
  const store = await RedisStore.open({ url: redis.url, prefix: "ids:" });
  const log = new MemoryLogger();
  let rewrites = 0;
  const writer = new StoreWriter(store, log, { rewrite: () => rewrites++ });
  try {
    writer.write({ type: "setCounter", name: "c", value: 1 });
    await writer.committed(0);
    await redis.restart();
    await until(() => writer.failed);
    assert.match(log.lines.map((l) => l.message).join("\n"), /Redis lost its data/);
    // A connection whose reply depends on the counter (committed before the loss): not refused.
    const refused = writer.committed(0);
    refused?.catch(() => {});
    assert.equal(refused, undefined);
    assert.equal(rewrites, 0, "the rewrite comes with the outage's probe");
  } finally {
    await writer.close();
  }
});

Deno.test("RedisStore ids: a Redis restarted with its data is no loss", async () => {
  await using redis = await RedisServer.start({ persist: true });
  await using node = await RedisStore.open({ url: redis.url, prefix: "ids:" });
  node.apply(sessionWith(5));
  await node.commit();
  await redis.restart();
  await reconnected(node);
  node.apply([{ type: "setCounter", name: "c", value: 1 }]);
  await node.commit();
  assert.equal(node.dataLost, false);
  assert.deepEqual(await node.counters(["c"]), [1]);
});

Deno.test("RedisStore ids: after Redis restarted empty, the node's own next block starts above the ids it reserved before", async () => {
  await withRestartedRedis(async (node) => {
    let first = 0;
    await node.renewIds(10, (next) => first = next);
    assert.equal(first, BLOCK + 1, "the next block follows the node's previous one");
  });
});

Deno.test("RedisStore ids: a session that ended on a node while Redis was away is not deleted by its rewrite after Redis lost its data, when another node rewrote it first [MQTT-3.1.2-4]", async () => {
  await using redis = await RedisServer.start();
  const owner = (node: string) => ({ key: "race:owner", node });
  await using a = await RedisStore.open({ url: redis.url, prefix: "race:", owner: owner("a") });
  await using b = await RedisStore.open({ url: redis.url, prefix: "race:", owner: owner("b") });
  a.apply(sessionWith(1, "moving", "from a"));
  await a.commit();
  await redis.stop();
  // It ended on node a while Redis was away: its deletion fails.
  a.apply([{ type: "deleteSession", clientId: "moving" }]);
  await assert.rejects(a.commit(), StoreError);
  // Meanwhile its client connected to node b, which holds it now. Redis comes back empty: node b
  // writes it first, before its ownership is written again.
  await redis.resume();
  await reconnected(b);
  await until(() => a.dataLost && b.dataLost);
  await b.renewIds(BLOCK, () => {});
  await b.rewrite(sessionWith(2, "moving", "held by b"));
  await a.renewIds(BLOCK, () => {});
  await a.rewrite([]);
  assert.deepEqual(queued(await b.loadSession("moving", Date.now())), ["held by b"]);
});

Deno.test("RedisStore ids: a write made with the ids from before a renewal fails without taking Redis for lost again", async () => {
  await withRestartedRedis(async (node) => {
    await until(() => node.dataLost);
    const reported: unknown[] = [];
    node.reportFailures((error) => reported.push(error));
    // Prepared with the old ids (and epoch), written once the renewal is done.
    node.apply(sessionWith(5));
    const stale = node.commit();
    stale.catch(() => {});
    await node.renewIds(BLOCK, () => {});
    assert.equal(node.dataLost, false);
    await assert.rejects(stale, StoreError);
    // Redis kept what it holds since the renewal: no second renewal, nothing reported as lost.
    assert.equal(node.dataLost, false);
    assert.deepEqual(reported.map((e) => (e as StoreError).kind), ["lost"]);
    const late = (reported[0] as StoreError).message;
    assert.doesNotMatch(late, /restarted empty/, "told as a write from before the renewal");
    node.apply([{ type: "setCounter", name: "c", value: 1 }]);
    await node.commit();
    assert.deepEqual(await node.counters(["c"]), [1]);
  });
});
