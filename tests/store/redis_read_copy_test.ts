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
  READ_COPY_ENTRIES,
  READ_ENTRIES_SCRIPT,
  READ_PART_ENTRIES,
} from "../../src/cluster/_redis_store_scripts.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { commandCalls } from "../_helpers/redis_admin.ts";
import { copyOf, openWithAdmin, readSessions, writeSession } from "./_queued_sessions.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "RedisStore: a session read in parts whose copy counter is gone takes a name no live copy has, and reads the session whole",
  opts,
  async () => {
    const P = "rc:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count });
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
  },
);

Deno.test(
  "RedisStore.discardRead deletes the copy of rows nobody reads, and nothing for rows without one",
  opts,
  async () => {
    const P = "rd:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count: READ_PART_ENTRIES + 10 });
    await writeSession(store, "short", { count: 10 });
    const read = async (clientId: string) => (await readSessions(admin, P, [clientId]))[0]!;
    const rows = await read("long");
    const copy = copyOf(rows);
    assert.equal(await admin.hlen(copy), READ_PART_ENTRIES + 10);
    await store.discardRead(rows);
    assert.equal(await admin.exists(copy), 0);
    // A session read whole names no copy: the store's keys stay as they are.
    const before = (await admin.keys(`${P}*`)).sort();
    await store.discardRead(await read("short"));
    assert.deepEqual((await admin.keys(`${P}*`)).sort(), before);
  },
);

Deno.test(
  "RedisStore: a read in parts whose copy went with Redis's data fails, never reading another session's copy made since",
  opts,
  async () => {
    const P = "rl:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { redis, store, admin } = opened;
    await writeSession(store, "long", { count });
    const read = async (clientId: string) => (await readSessions(admin, P, [clientId]))[0]!;
    const rows = await read("long");
    // Redis restarted empty before the parts are read; another session of as many entries,
    // written since (by a node that opened the store again), is read in parts too.
    await admin.flushall();
    {
      await using other = await RedisStore.open({ url: redis.url, prefix: P });
      await writeSession(other, "other", { count, firstId: count + 1 });
    }
    const others = await read("other");
    assert.equal(await admin.hlen(copyOf(others)), count);
    await assert.rejects(
      () => store.readRest(rows),
      (error: Error) =>
        error instanceof StoreError && error.kind === "io" &&
        /the copy of the session read in parts is gone/.test(error.message),
    );
  },
);

Deno.test(
  "RedisStore: one call's reads copy at most READ_COPY_ENTRIES entries between them; a session past it is read again alone and comes back whole",
  opts,
  async () => {
    const P = "rb:store:";
    const count = READ_COPY_ENTRIES / 2 + 1;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    for (const [i, c] of ["a", "b", "c"].entries()) {
      await writeSession(store, c, { count, firstId: 1 + i * count });
    }
    const batch = await readSessions(admin, P, ["a", "b", "c"]);
    // The first copied whatever its size; the others, past what is left to copy, neither read
    // nor copied: named with no copy, to be read again.
    const copies = batch.map((rows) => copyOf(rows));
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
  },
);

Deno.test(
  "RedisStore: a copy left by a reader that died mid-read is deleted by the session's next read, which reads the session whole",
  opts,
  async () => {
    const P = "rx:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count });
    // A reader that copies the entries and dies before reading the copy (or loses Redis
    // before deleting it): the copy would stay READ_COPY_TTL_S, 8 MB for 100,000 entries.
    const rows = (await readSessions(admin, P, ["long"]))[0]!;
    const left = copyOf(rows);
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
    await readSessions(admin, P, ["long"]);
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
  },
);

Deno.test(
  "RedisStore: a copy left by a reader that died mid-read is deleted with its session, and no longer listed, when the session is deleted unread",
  opts,
  async () => {
    const P = "rd:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    const copy = async (clientId: string) => {
      const rows = (await readSessions(admin, P, [clientId]))[0]!;
      return copyOf(rows);
    };
    await writeSession(store, "gone", { count });
    await writeSession(store, "kept", { count, firstId: count + 1 });
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
  },
);

Deno.test(
  "RedisStore: a long queue read by its owner and writer is read in place, no copy made, and a part read after the session changed hands fails",
  opts,
  async () => {
    const P = "rw:store:";
    const K = "rw:owner";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count });
    // Owned by node n1, whose read makes it the writer (LOAD_SESSION_SCRIPT).
    await admin.hset(K, "long", "n1");
    await admin.config("RESETSTAT");
    const rows = (await readSessions(admin, P, ["long"], { owners: K, node: "n1" }))[0]!;
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
  },
);
