/**
 * A long queue read in parts by a reader that is not the session's writer (a store outside a
 * cluster, or a node reading a session another node owns): its entries are read where they are
 * (`P out:ID`), never copied (`COPY` was one O(entries) step that held Redis for every client:
 * 1,000,000 entries, seconds), and the read marks itself (`P reading`, `READ_SESSION_LUA`): every
 * write of the session's entries deletes the mark and each part checks it, so the parts are the
 * queue as the read found it or the read fails. A mark nobody needs goes: at the read's end, with
 * rows nobody reads (`RedisStore.discardRead`), with the session, and after `READ_MARK_TTL_S`
 * (a reader that died). A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import {
  READ_ENTRIES_SCRIPT,
  READ_MARK_TTL_S,
  READ_PART_ENTRIES,
} from "../../src/cluster/_redis_store_scripts.ts";
import { StoreError } from "../../src/store/store_error.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { commandCalls } from "../_helpers/redis_admin.ts";
import { markOf, openWithAdmin, readSessions, writeSession } from "./_queued_sessions.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A read in parts whose mark a write deleted, as `readRest` reports it. */
const changed = (error: Error) =>
  error instanceof StoreError && error.kind === "io" &&
  /the session read in parts changed since its read began/.test(error.message);

Deno.test(
  "RedisStore: a read in parts by a reader that is not the writer fails when the session's entries are written between its parts, even with their number unchanged",
  opts,
  async () => {
    const P = "rs:store:";
    const count = 2 * READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count });
    const part = (cursor: string, token: string) =>
      admin.callBuffer(
        "EVAL",
        READ_ENTRIES_SCRIPT,
        "0",
        P,
        `${P}out:long`,
        cursor,
        "long",
        "",
        token,
      );
    const rows = (await readSessions(admin, P, ["long"]))[0]!;
    const token = markOf(rows)!;
    assert.ok(token !== undefined, "marked");
    const [next, first] = await part("0", token) as [Buffer, Buffer[]];
    assert.notEqual(next.toString(), "0");
    // One of the entries the first part read is sent (packet id given), as the session's node
    // does: same count, same messages, one entry's state changed. Read on, the parts would mix
    // the queue before and after that write.
    const seq = Number(first[0]!.toString());
    store.apply([{ type: "sendOutbound", clientId: "long", seq, packetId: 7 }]);
    await store.commit();
    assert.equal(await admin.hexists(`${P}reading`, "long"), 0, "the write deleted the mark");
    await assert.rejects(
      () => part(next.toString(), token),
      /the session read in parts changed since its read began/,
    );
    // Through the store: a write between the read and its parts fails the read.
    const again = (await readSessions(admin, P, ["long"]))[0]!;
    store.apply([{ type: "sendOutbound", clientId: "long", seq, packetId: 8 }]);
    await store.commit();
    await assert.rejects(() => store.readRest(again), changed);
    // Read with nothing written meanwhile: whole, the write included, and the mark gone.
    const state = await store.loadSession("long", 0);
    assert.equal(state.sessions[0]!.outbound.length, count);
    assert.equal(state.sessions[0]!.outbound.find((o) => o.seq === seq)!.packetId, 8);
    assert.equal(await admin.exists(`${P}reading`), 0);
    // Nothing of the session changed by the reads.
    assert.equal(await admin.hlen(`${P}out:long`), count);
  },
);

Deno.test(
  "RedisStore: a second read in parts of the same session replaces the first's mark; the first fails at its next part, the second reads the session whole",
  opts,
  async () => {
    const P = "r2:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count });
    const first = (await readSessions(admin, P, ["long"]))[0]!;
    const second = (await readSessions(admin, P, ["long"]))[0]!;
    assert.notEqual(markOf(first), markOf(second));
    await assert.rejects(() => store.readRest(first), changed);
    // The first's failure leaves the second's mark (it deletes only its own).
    assert.equal(await admin.hget(`${P}reading`, "long"), markOf(second));
    const { state } = store.sessionFrom(await store.readRest(second), 0);
    assert.equal(state.sessions[0]!.outbound.length, count);
    assert.equal(state.messages.size, count);
    assert.equal(await admin.exists(`${P}reading`), 0);
  },
);

Deno.test(
  "RedisStore: the token of a read's mark is unique even with its counter gone, so a mark deleted by a write is never taken for a later read's",
  opts,
  async () => {
    const P = "rt:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count: READ_PART_ENTRIES + 10 });
    const first = (await readSessions(admin, P, ["long"]))[0]!;
    store.apply([{ type: "deleteOutbound", clientId: "long", seq: 3 }]);
    await store.commit();
    // The counter gone (evicted, or deleted), the next read numbers from 1 again.
    await admin.del(`${P}reads`);
    await readSessions(admin, P, ["long"]);
    await admin.del(`${P}reads`);
    const later = (await readSessions(admin, P, ["long"]))[0]!;
    assert.notEqual(markOf(later), markOf(first));
    // The first read, whose session changed, fails, although a mark is there again.
    await assert.rejects(() => store.readRest(first), changed);
  },
);

Deno.test(
  "RedisStore: the mark of a read in parts goes with rows nobody reads, with its session, with a store cleared, and expires after READ_MARK_TTL_S",
  opts,
  async () => {
    const P = "rg:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "gone", { count });
    await writeSession(store, "kept", { count, firstId: count + 1 });
    await writeSession(store, "short", { count: 10, firstId: 3 * count });
    const read = async (clientId: string) => (await readSessions(admin, P, [clientId]))[0]!;
    // Rows nobody reads (a claim answered after its login gave up): their mark deleted.
    const unread = await read("kept");
    const ttl = await admin.ttl(`${P}reading`);
    assert.ok(ttl > 0 && ttl <= READ_MARK_TTL_S, `ttl ${ttl}`);
    await store.discardRead(unread);
    assert.equal(await admin.exists(`${P}reading`), 0);
    // A session read whole has no mark: the store's keys stay as they are.
    const before = (await admin.keys(`${P}*`)).sort();
    await store.discardRead(await read("short"));
    assert.deepEqual((await admin.keys(`${P}*`)).sort(), before);
    // Readers that died mid-read: their marks stay until one of the below.
    await read("gone");
    await read("kept");
    assert.deepEqual((await admin.hkeys(`${P}reading`)).sort(), ["gone", "kept"]);
    store.apply([{ type: "deleteSession", clientId: "gone" }]);
    await store.commit();
    assert.deepEqual(await admin.hkeys(`${P}reading`), ["kept"], "gone with its session");
    store.apply([{ type: "clear" }]);
    await store.commit();
    assert.equal(await admin.exists(`${P}reading`), 0, "gone with the store's keys");
  },
);

Deno.test(
  "RedisStore: writes while no read in parts is under way look for marks once a run, and delete none",
  opts,
  async () => {
    const P = "rn:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "s", { count: 10 });
    await admin.config("RESETSTAT");
    await writeSession(store, "t", { count: 2000, firstId: 100 });
    const counts = await commandCalls(admin);
    // Two runs (1,000 deliveries each): one EXISTS each, no HDEL of a mark.
    assert.equal(counts.get("exists"), 2);
    assert.equal(counts.get("hdel") ?? 0, 0);
  },
);

Deno.test(
  "RedisStore: a long queue read by its owner and writer is read in place without a mark, a part read after the session changed hands fails, and another node's read is marked",
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
    const [key, n, clientId, byWriter] = rows[6] as [Buffer, number, Buffer, number];
    assert.equal(key.toString(), `${P}out:long`, "its own entries");
    assert.deepEqual([n, clientId.toString(), byWriter], [count, "long", 1]);
    assert.equal(markOf(rows), undefined);
    assert.equal((await commandCalls(admin)).get("copy") ?? 0, 0);
    assert.equal(await admin.exists(`${P}reading`), 0);
    const part = (cursor: string, node: string) =>
      admin.callBuffer(
        "EVAL",
        READ_ENTRIES_SCRIPT,
        "0",
        P,
        `${P}out:long`,
        cursor,
        "long",
        node,
        "",
      );
    const [next, entries] = await part("0", "n1") as [Buffer, Buffer[]];
    assert.ok(entries.length > 0);
    // Another node adopts the session (took n1 for dead) and reads it: its writes may change the
    // entries between n1's parts, so n1's next part fails.
    await admin.hset(`${P}writer`, "long", "n2");
    await assert.rejects(
      () => part(next.toString(), "n1"),
      /the session read in parts changed hands since its read/,
    );
    assert.equal(await admin.hlen(`${P}out:long`), count);
    // A node that neither owns nor writes the session (n3) reads it with a mark, in place too.
    const other = (await readSessions(admin, P, ["long"], { owners: K, node: "n3" }))[0]!;
    assert.equal((other[6] as Buffer[])[0]!.toString(), `${P}out:long`);
    assert.equal(await admin.hget(`${P}reading`, "long"), markOf(other));
    assert.equal(await admin.hget(`${P}writer`, "long"), "n2", "the writer mark left as it was");
  },
);

Deno.test(
  "RedisStore: every write of a session's entries, whatever its kind, fails a read in parts under way by a reader that is not the writer; writes of other rows or sessions do not",
  opts,
  async () => {
    const P = "rk:store:";
    const count = READ_PART_ENTRIES + 10;
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count });
    await writeSession(store, "other", { count: 3, firstId: 10 * count });
    // One more message, QoS 2 sent (for its PUBREL), beside the queue.
    const extra = count + 1;
    store.apply([
      {
        type: "putMessage",
        id: 5 * count,
        message: { topic: "q/x", payload: new Uint8Array([1]), qos: 2, retain: false },
      },
      { type: "queueOutbound", clientId: "long", seq: extra, messageId: 5 * count, qos: 2 },
      { type: "sendOutbound", clientId: "long", seq: extra, packetId: 9 },
    ]);
    await store.commit();
    // The session as it is, for a rewrite of it (the broker's after an outage: deleted and put
    // back whole, in one script), read before any read under test.
    const loaded = await store.loadSession("long", 0);
    const rewritten: StoreMutation[] = [{
      type: "putSession",
      session: loaded.sessions[0]!.session,
    }];
    for (const o of loaded.sessions[0]!.outbound) {
      if (o.messageId === undefined) continue;
      rewritten.push(
        { type: "putMessage", id: o.messageId, message: loaded.messages.get(o.messageId)! },
        { type: "queueOutbound", clientId: "long", seq: o.seq, messageId: o.messageId, qos: o.qos },
      );
    }
    let seq = count + 2;
    const writes: [string, () => Promise<void>][] = [
      ["queueOutbound", () => {
        const at = seq++;
        store.apply([
          {
            type: "putMessage",
            id: 6 * count + at,
            message: { topic: "q/n", payload: new Uint8Array([2]), qos: 1, retain: false },
          },
          { type: "queueOutbound", clientId: "long", seq: at, messageId: 6 * count + at, qos: 1 },
        ]);
        return store.commit();
      }],
      ["sendOutbound", () => {
        store.apply([{ type: "sendOutbound", clientId: "long", seq: 1, packetId: 3 }]);
        return store.commit();
      }],
      ["pubrelOutbound", () => {
        store.apply([{ type: "pubrelOutbound", clientId: "long", seq: extra }]);
        return store.commit();
      }],
      ["deleteOutbound", () => {
        store.apply([{ type: "deleteOutbound", clientId: "long", seq: 2 }]);
        return store.commit();
      }],
      ["rewrite", () => store.rewrite(rewritten)],
      ["deleteSession", () => {
        store.apply([{ type: "deleteSession", clientId: "long" }]);
        return store.commit();
      }],
    ];
    for (const [kind, write] of writes) {
      const rows = (await readSessions(admin, P, ["long"]))[0]!;
      assert.ok(markOf(rows) !== undefined, `${kind}: marked`);
      // Writes beside the entries: another session's entries, this session's subscriptions.
      store.apply([
        { type: "deleteOutbound", clientId: "other", seq: 1 },
        { type: "putInbound", clientId: "long", packetId: 77 },
      ]);
      await store.commit();
      assert.equal(await admin.hget(`${P}reading`, "long"), markOf(rows), `${kind}: kept`);
      await write();
      assert.equal(await admin.hexists(`${P}reading`, "long"), 0, `${kind} deleted the mark`);
      await assert.rejects(() => store.readRest(rows), changed, kind);
      if (kind === "deleteSession") break;
    }
  },
);

Deno.test(
  "RedisStore: a reader that is not the writer, under a steady writer of the session (a write every few ms), fails its read once rather than trying for ever, and reads it whole once the writes stop",
  opts,
  async () => {
    const P = "rp:store:";
    const count = 3 * READ_PART_ENTRIES;
    await using opened = await openWithAdmin(P);
    const { store, redis } = opened;
    await writeSession(store, "long", { count });
    await using reader = await RedisStore.open({ url: redis.url, prefix: P });
    let seq = count;
    let writing = true;
    const publisher = (async () => {
      while (writing) {
        seq++;
        store.apply([
          {
            type: "putMessage",
            id: seq,
            message: { topic: "q/p", payload: new Uint8Array([1]), qos: 1, retain: false },
          },
          { type: "queueOutbound", clientId: "long", seq, messageId: seq, qos: 1 },
        ]);
        await store.commit();
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    let parts = 0;
    try {
      // Until the publisher wrote at least once: then the read fails, at its next part.
      while (seq === count) await new Promise((resolve) => setTimeout(resolve, 2));
      await assert.rejects(
        () => reader.loadSession("long", 0, { onPart: () => parts++ }),
        changed,
      );
    } finally {
      writing = false;
      await publisher;
    }
    // Failed within the parts of one read (no retry loop: the caller decides; a cluster login
    // is refused as busy, and its next claim makes its node the writer, which reads unmarked).
    assert.ok(parts <= count / READ_PART_ENTRIES + 2, `${parts} parts`);
    const state = await reader.loadSession("long", 0);
    assert.equal(state.sessions[0]!.outbound.length, seq, "every write kept");
  },
);
