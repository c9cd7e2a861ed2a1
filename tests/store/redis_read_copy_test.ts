/**
 * The copy a session read makes of a long queue's entries (`P read:N`, `READ_SESSION_LUA`): it
 * takes a name no other copy has, also when its counter (`P reads`) is gone while copies live
 * (deleted, or evicted by an `allkeys` policy), rather than fail the read or overwrite another
 * reader's copy mid-read; and rows nobody reads (a claim answered after its login gave up) have
 * their copy deleted (`RedisStore.discardRead`), not kept until it expires. A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import {
  LOAD_SESSION_SCRIPT,
  READ_COPY_ENTRIES,
  READ_ENTRIES_SCRIPT,
  READ_PART_ENTRIES,
} from "../../src/cluster/_redis_store_scripts.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { adminClient, commandCalls, poolShrunk } from "../_helpers/redis_admin.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A persistent session queued `count` small messages (ids and seqs from 1). */
async function writeSession(
  store: RedisStore,
  clientId: string,
  count: number,
  firstId = 1,
): Promise<void> {
  store.apply([{
    type: "putSession",
    session: {
      clientId,
      protocolVersion: 4,
      clean: false,
      expiryInterval: undefined,
      offlineSince: 1,
    },
  }]);
  for (let i = 0; i < count; i += 1000) {
    const batch: StoreMutation[] = [];
    for (let j = i; j < Math.min(count, i + 1000); j++) {
      const message = {
        topic: `q/${j + 1}`,
        payload: new Uint8Array([j % 251]),
        qos: 1 as const,
        retain: false,
      };
      batch.push(
        { type: "putMessage", id: firstId + j, message },
        { type: "queueOutbound", clientId, seq: j + 1, messageId: firstId + j, qos: 1 },
      );
    }
    store.apply(batch);
    await store.commit();
  }
}

Deno.test(
  "RedisStore: a session read in parts whose copy counter is gone takes a name no live copy has, and reads the session whole",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rc:store:";
    const count = READ_PART_ENTRIES + 10;
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      await writeSession(store, "long", count);
      // Another reader's copies, mid-read, and their counter gone (evicted, or deleted).
      await admin.hset(`${P}read:1:long`, "1", "another reader's entry");
      await admin.hset(`${P}read:2:long`, "1", "another reader's entry");
      assert.equal(await admin.exists(`${P}reads`), 0);
      const state = await store.loadSession("long", 0);
      assert.equal(state.sessions.length, 1);
      assert.deepEqual(
        state.sessions[0]!.outbound.map((o) => o.seq).sort((a, b) => a - b),
        Array.from({ length: count }, (_, i) => i + 1),
      );
      assert.equal(state.messages.size, count);
      // The other copies as they were; this read's own (read:3:long) deleted once read.
      assert.deepEqual(await admin.hgetall(`${P}read:1:long`), { "1": "another reader's entry" });
      assert.deepEqual(await admin.hgetall(`${P}read:2:long`), { "1": "another reader's entry" });
      assert.equal(await admin.get(`${P}reads`), "3");
      assert.equal(await admin.exists(`${P}read:3:long`), 0);
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore.discardRead deletes the copy of rows nobody reads, and nothing for rows without one",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rd:store:";
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      await writeSession(store, "long", READ_PART_ENTRIES + 10);
      await writeSession(store, "short", 10);
      const read = async (clientId: string) =>
        (await admin.callBuffer(
          "EVAL",
          LOAD_SESSION_SCRIPT,
          "0",
          P,
          "",
          "",
          clientId,
        ) as unknown[][])[0]!;
      const rows = await read("long");
      const copy = (rows[6] as Buffer[])[0]!.toString();
      assert.equal(await admin.hlen(copy), READ_PART_ENTRIES + 10);
      await store.discardRead(rows);
      assert.equal(await admin.exists(copy), 0);
      // A session read whole names no copy: the store's keys stay as they are.
      const before = (await admin.keys(`${P}*`)).sort();
      await store.discardRead(await read("short"));
      assert.deepEqual((await admin.keys(`${P}*`)).sort(), before);
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: a read in parts whose copy went with Redis's data fails, never reading another session's copy made since",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rl:store:";
    const count = READ_PART_ENTRIES + 10;
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      await writeSession(store, "long", count);
      const read = async (clientId: string) =>
        (await admin.callBuffer(
          "EVAL",
          LOAD_SESSION_SCRIPT,
          "0",
          P,
          "",
          "",
          clientId,
        ) as unknown[][])[0]!;
      const rows = await read("long");
      // Redis restarted empty before the parts are read; another session of as many entries,
      // written since (by a node that opened the store again), is read in parts too.
      await admin.flushall();
      {
        await using other = await RedisStore.open({ url: redis.url, prefix: P });
        await writeSession(other, "other", count, count + 1);
      }
      const others = await read("other");
      assert.equal(await admin.hlen((others[6] as Buffer[])[0]!.toString()), count);
      await assert.rejects(
        () => store.readRest(rows),
        (error: Error) =>
          error instanceof StoreError && error.kind === "io" &&
          /the copy of the session read in parts is gone/.test(error.message),
      );
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: one call's reads copy at most READ_COPY_ENTRIES entries between them; a session past it is read again alone and comes back whole",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rb:store:";
    const count = READ_COPY_ENTRIES / 2 + 1;
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      for (const [i, c] of ["a", "b", "c"].entries()) {
        await writeSession(store, c, count, 1 + i * count);
      }
      const batch = await admin.callBuffer(
        "EVAL",
        LOAD_SESSION_SCRIPT,
        "0",
        P,
        "",
        "",
        "a",
        "b",
        "c",
      ) as unknown[][];
      // The first copied whatever its size; the others, past what is left to copy, neither read
      // nor copied: named with no copy, to be read again.
      const copies = batch.map((rows) => (rows[6] as Buffer[])[0]!.toString());
      assert.deepEqual(copies, [`${P}read:1:a`, "", ""]);
      assert.deepEqual(await admin.keys(`${P}read:*`), [`${P}read:1:a`]);
      for (const [i, c] of ["a", "b", "c"].entries()) {
        const { state } = store.sessionFrom(await store.readRest(batch[i]!), 0);
        assert.deepEqual(
          state.sessions[0]!.outbound.map((o) => o.messageId!).sort((x, y) => x - y),
          Array.from({ length: count }, (_, j) => 1 + i * count + j),
          c,
        );
        assert.equal(state.messages.size, count, c);
      }
      assert.deepEqual(await admin.keys(`${P}read:*`), [], "every copy deleted once read");
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: a copy left by a reader that died mid-read is deleted by the session's next read, which reads the session whole",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rx:store:";
    const count = READ_PART_ENTRIES + 10;
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      await writeSession(store, "long", count);
      // A reader that copies the entries and dies before reading the copy (or loses Redis
      // before deleting it): the copy would stay READ_COPY_TTL_S, 8 MB for 100,000 entries.
      const rows = (await admin.callBuffer(
        "EVAL",
        LOAD_SESSION_SCRIPT,
        "0",
        P,
        "",
        "",
        "long",
      ) as unknown[][])[0]!;
      const left = (rows[6] as Buffer[])[0]!.toString();
      assert.equal(await admin.hlen(left), count);
      // The session's next reader deletes it, and reads the session from a copy of its own.
      const state = await store.loadSession("long", 0);
      assert.equal(await admin.exists(left), 0, "the copy left behind is deleted");
      assert.equal(state.sessions.length, 1);
      assert.equal(state.sessions[0]!.outbound.length, count);
      // Its own copy, read to its end, is deleted and no longer listed as left.
      assert.deepEqual(await admin.keys(`${P}read:*`), []);
      assert.equal(await admin.exists(`${P}copies`), 0);
      // A copy left by a reader of a session since shrunk under a part is deleted all the same.
      await admin.callBuffer("EVAL", LOAD_SESSION_SCRIPT, "0", P, "", "", "long");
      const second = (await admin.keys(`${P}read:*`))[0]!;
      store.apply(
        [...Array(count - 5).keys()].map((i) => ({
          type: "deleteOutbound" as const,
          clientId: "long",
          seq: i + 1,
        })),
      );
      await store.commit();
      const shrunk = await store.loadSession("long", 0);
      assert.equal(shrunk.sessions[0]!.outbound.length, 5);
      assert.equal(await admin.exists(second), 0, "the copy left behind is deleted");
      assert.equal(await admin.exists(`${P}copies`), 0);
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: a copy left by a reader that died mid-read is deleted with its session, and no longer listed, when the session is deleted unread",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rd:store:";
    const count = READ_PART_ENTRIES + 10;
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      const copy = async (clientId: string) => {
        const rows = (await admin.callBuffer(
          "EVAL",
          LOAD_SESSION_SCRIPT,
          "0",
          P,
          "",
          "",
          clientId,
        ) as unknown[][])[0]!;
        return (rows[6] as Buffer[])[0]!.toString();
      };
      await writeSession(store, "gone", count);
      await writeSession(store, "kept", count, count + 1);
      // Readers that copy the entries and die before reading the copies to their end.
      const [gone, kept] = [await copy("gone"), await copy("kept")];
      assert.deepEqual(await admin.hkeys(`${P}copies`), ["gone", "kept"]);
      // The session deleted, never read again (a clean start, its expiry): nothing reads its
      // copy any more, nor clears its listing (a field per such client id, kept for ever).
      store.apply([{ type: "deleteSession", clientId: "gone" }]);
      await store.commit();
      assert.equal(await admin.exists(gone), 0, "the copy left behind is deleted");
      assert.deepEqual(await admin.hkeys(`${P}copies`), ["kept"], "and no longer listed");
      assert.equal(await admin.hlen(kept), count, "another session's copy is left as it is");
      // A store cleared (a rewrite of the whole store) keeps neither the copies nor their list.
      store.apply([{ type: "clear" }]);
      await store.commit();
      assert.equal(await admin.exists(kept), 0, "the copy left behind is deleted");
      assert.equal(await admin.exists(`${P}copies`), 0, "and no longer listed");
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: a long queue read by its owner and writer is read in place, no copy made, and a part read after the session changed hands fails",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rw:store:";
    const K = "rw:owner";
    const count = READ_PART_ENTRIES + 10;
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = await adminClient(redis.port);
    try {
      await writeSession(store, "long", count);
      // Owned by node n1, whose read makes it the writer (LOAD_SESSION_SCRIPT).
      await admin.hset(K, "long", "n1");
      await admin.config("RESETSTAT");
      const rows = (await admin.callBuffer(
        "EVAL",
        LOAD_SESSION_SCRIPT,
        "0",
        P,
        K,
        "n1",
        "long",
      ) as unknown[][])[0]!;
      const [key, n, clientId, inPlace] = rows[6] as [Buffer, number, Buffer, number];
      assert.equal(key.toString(), `${P}out:long`, "its own entries");
      assert.deepEqual([n, clientId.toString(), inPlace], [count, "long", 1]);
      // No copy: no O(entries) step.
      assert.equal((await commandCalls(admin)).get("copy") ?? 0, 0);
      assert.deepEqual(await admin.keys(`${P}read:*`), []);
      const part = (cursor: string, node: string) =>
        admin.callBuffer("EVAL", READ_ENTRIES_SCRIPT, "0", P, `${P}out:long`, cursor, "long", node);
      const [next, entries] = await part("0", "n1") as [Buffer, Buffer[]];
      assert.ok(entries.length > 0);
      // Another node adopts the session (took n1 for dead) and reads it: its writes may change the
      // entries between n1's parts, so n1's next part fails.
      await admin.hset(`${P}writer`, "long", "n2");
      await assert.rejects(
        () => part(next.toString(), "n1"),
        /the session read in parts changed hands since its read/,
      );
      // Nothing of the session deleted by the reads.
      assert.equal(await admin.hlen(`${P}out:long`), count);
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);
