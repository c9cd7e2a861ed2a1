/**
 * Message ids of the Redis store after Redis lost its data (restarted without persistence): the
 * counter `reserveMessageIds` takes blocks from is gone then, and the ids a node still holds in
 * memory, or may still give from its block, must not be handed out again, to it or to another
 * node. A real redis-server, restarted empty.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { RedisServer } from "../_helpers/redis.ts";

const BLOCK = 1000;

/** A persistent session holding one queued message under `id`. */
function sessionWith(id: number): StoreMutation[] {
  const payload = new TextEncoder().encode(`message ${id}`);
  return [
    {
      type: "putSession",
      session: {
        clientId: "held",
        protocolVersion: 4,
        clean: false,
        expiryInterval: undefined,
        offlineSince: 1,
      },
    },
    { type: "putMessage", id, message: { topic: "t", payload, qos: 1, retain: false } },
    { type: "queueOutbound", clientId: "held", seq: 1, messageId: id, qos: 1 },
  ];
}

/** Waits until the store's connection is back (commands wait for it meanwhile). */
async function reconnected(store: RedisStore): Promise<void> {
  await store.counters(["none"]);
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

Deno.test("RedisStore ids: after Redis restarted empty, the node's rewrite keeps the ids of its block from another node's reservation", async () => {
  await withRestartedRedis(async (node, redis) => {
    await node.rewrite(sessionWith(5));
    await using other = await RedisStore.open({ url: redis.url, prefix: "ids:" });
    const first = await other.reserveMessageIds(10);
    assert.ok(first > BLOCK, `another node's block starts at ${first}, above the node's block`);
    const loaded = await other.loadSession("held", Date.now());
    assert.equal(
      new TextDecoder().decode(loaded.messages.get(5)?.payload),
      "message 5",
      "the node's message is stored under its id",
    );
  });
});

Deno.test("RedisStore ids: after Redis restarted empty, any write of the node raises the id counter above its block", async () => {
  await withRestartedRedis(async (node, redis) => {
    node.apply([{ type: "setCounter", name: "c", value: 1 }]);
    await node.commit();
    await using other = await RedisStore.open({ url: redis.url, prefix: "ids:" });
    const first = await other.reserveMessageIds(10);
    assert.ok(first > BLOCK, `another node's block starts at ${first}, above the node's block`);
  });
});

Deno.test("RedisStore ids: after Redis restarted empty, the node's own next block starts above the ids it reserved before", async () => {
  await withRestartedRedis(async (node) => {
    const first = await node.reserveMessageIds(10);
    assert.equal(first, BLOCK + 1, "the next block follows the node's previous one");
  });
});
