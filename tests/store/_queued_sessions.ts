/**
 * Sessions with long queues as the store tests write them, and what the Redis read tests share:
 * a queue written in batches of 1,000 (a commit each), a store
 * opened on a redis-server of its own with an admin connection beside it, and the session read
 * script called directly.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { LOAD_SESSION_SCRIPT } from "../../src/cluster/_redis_store_scripts.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { adminClient, poolShrunk } from "../_helpers/redis_admin.ts";
import { persistentSession } from "./_rewrite_states.ts";

/** The queue {@linkcode writeSession} writes. */
export interface QueueShape {
  /** Queued QoS 1 deliveries, seqs from 1. */
  count: number;
  /** Bytes of each payload. @default 1 */
  size?: number;
  /** The first message's id, the next ones following. @default 1 */
  firstId?: number;
  /** A subscription (QoS 1) the session holds. @default none */
  filter?: string;
  /** Message `j`'s (from 0) topic and payload. @default `q/<id>`, `size` bytes of `id % 251` */
  message?: (j: number, id: number) => { topic: string; payload: Uint8Array };
}

/**
 * Stores the persistent session `clientId` with the queue `shape` through `store`, in batches of
 * 1,000 deliveries (a commit each).
 */
export async function writeSession(
  store: RedisStore,
  clientId: string,
  shape: QueueShape,
): Promise<void> {
  const { count, size = 1, firstId = 1 } = shape;
  const message = shape.message ??
    ((_j: number, id: number) => ({
      topic: `q/${id}`,
      payload: new Uint8Array(size).fill(id % 251),
    }));
  store.apply(persistentSession(clientId, shape.filter));
  for (let i = 0; i < count; i += 1000) {
    const batch: StoreMutation[] = [];
    for (let j = i; j < Math.min(count, i + 1000); j++) {
      const id = firstId + j;
      batch.push(
        { type: "putMessage", id, message: { ...message(j, id), qos: 1, retain: false } },
        { type: "queueOutbound", clientId, seq: j + 1, messageId: id, qos: 1 },
      );
    }
    store.apply(batch);
    await store.commit();
  }
}

/** What {@linkcode openWithAdmin} opens; disposing it closes all of it. */
export interface StoreWithAdmin extends AsyncDisposable {
  redis: RedisServer;
  store: RedisStore;
  /** A connection of the test's own, to look at Redis with. */
  admin: Redis;
}

/**
 * Starts a redis-server and opens a {@linkcode RedisStore} on it under `prefix`, and an admin
 * connection; disposing closes them and waits for ioredis's reply buffer pool to shrink
 * ({@linkcode poolShrunk}: the tests read large replies).
 */
export async function openWithAdmin(prefix: string): Promise<StoreWithAdmin> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const store = stack.use(await RedisStore.open({ url: redis.url, prefix }));
  const admin = await adminClient(redis.port);
  stack.defer(() => admin.disconnect());
  const all = stack.move();
  return {
    redis,
    store,
    admin,
    [Symbol.asyncDispose]: async () => {
      await all.disposeAsync();
      await poolShrunk();
    },
  };
}

/**
 * The rows of `LOAD_SESSION_SCRIPT` for `clientIds` under store prefix `prefix`, called directly,
 * with the ownership key and node id given (none by default).
 */
export async function readSessions(
  admin: Redis,
  prefix: string,
  clientIds: string[],
  { owners = "", node = "" }: { owners?: string; node?: string } = {},
): Promise<unknown[][]> {
  return await admin.callBuffer(
    "EVAL",
    LOAD_SESSION_SCRIPT,
    "0",
    prefix,
    owners,
    node,
    ...clientIds,
  ) as unknown[][];
}

/**
 * The token of the mark a read in parts by a reader that is not the session's writer left
 * (`P reading`; its rows' seventh entry names it), or `undefined` for none.
 */
export function markOf(rows: unknown[]): string | undefined {
  return (rows[6] as Buffer[] | undefined)?.[4]?.toString();
}
