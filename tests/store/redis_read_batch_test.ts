/**
 * The reads of concurrent logins batched into one script call share one part: at most
 * `READ_PART_BYTES` of message bodies and `READ_PART_ENTRIES` outbound entries in the call's
 * reply, whatever the number of sessions (16 logins of sessions over 1 MB were one reply of
 * 16 MB that the bus's heartbeats waited behind). A session with more entries than are left has
 * its entries read where they are after the read, a part at a time (`READ_ENTRIES_SCRIPT`: a
 * queue of 100,000 entries read in one script held Redis up to 1 s), never copied (`COPY` was one
 * O(entries) step). Each session read in parts is the session stored; a change between the parts
 * fails the read;
 * small sessions keep the single read. A real redis-server; commands counted with
 * `INFO commandstats` (a script's commands counted too).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import type { RedisStore } from "../../src/cluster/redis_store.ts";
import { CLAIM_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { READ_PART_BYTES, READ_PART_ENTRIES } from "../../src/cluster/_redis_store_scripts.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { commandCalls } from "../_helpers/redis_admin.ts";
import { openWithAdmin, readSessions, writeSession } from "./_queued_sessions.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const KB = 1024;

/** Asserts that `rows` (read whole) hold the session {@linkcode writeSession} wrote. */
function assertSession(
  store: RedisStore,
  rows: unknown[],
  clientId: string,
  { count, size, firstId }: { count: number; size: number; firstId: number },
): void {
  const { state } = store.sessionFrom(rows, 0);
  assert.equal(state.sessions.length, 1, clientId);
  const s = state.sessions[0]!;
  assert.equal(s.session.clientId, clientId);
  const ids = Array.from({ length: count }, (_, j) => firstId + j);
  assert.deepEqual(
    [...s.outbound].sort((a, b) => a.seq - b.seq).map((o) => [o.seq, o.messageId]),
    ids.map((id, j) => [j + 1, id]),
    clientId,
  );
  assert.equal(state.messages.size, count, clientId);
  for (const id of ids) {
    const m = state.messages.get(id)!;
    assert.equal(m.topic, `q/${id}`);
    assert.equal(m.payload.length, size);
    assert.ok(m.payload.every((b) => b === id % 251), `message ${id}`);
  }
}

/** Bytes of message bodies and the number of outbound entries in a batch's reply. */
function answered(batch: unknown[][]): { bodies: number; entries: number } {
  let bodies = 0, entries = 0;
  for (const rows of batch) {
    entries += (rows[2] as unknown[]).length / 2;
    (rows[4] as Buffer[]).forEach((b, i) => bodies += i % 2 === 1 ? b.length : 0);
  }
  return { bodies, entries };
}

Deno.test(
  "RedisStore: the reads of concurrent logins batched into one call answer one READ_PART_BYTES of bodies between them, each session read whole after",
  opts,
  async () => {
    const P = "rb:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    // Four sessions of 1.5 MB each (24 messages of 64 KB): each alone fills a part.
    const shape = (k: number) => ({ count: 24, size: 64 * KB, firstId: 1 + 100 * k });
    const ids = ["b0", "b1", "b2", "b3"];
    for (const [k, c] of ids.entries()) await writeSession(store, c, shape(k));

    const batch = await readSessions(admin, P, ids);
    const { bodies } = answered(batch);
    // One part for the four, not one each (4 × 1 MB before).
    assert.ok(bodies > 0 && bodies <= READ_PART_BYTES, `bodies ${bodies}`);
    for (const [k, c] of ids.entries()) {
      assertSession(store, await store.readRest(batch[k]!), c, shape(k));
    }

    // The same with the claims of concurrent logins (the bus's command connection).
    const claims = await admin.callBuffer(
      "EVAL",
      CLAIM_SCRIPT,
      "0",
      "rb:",
      "n",
      "inc-n",
      "",
      "0",
      ...ids.flatMap((c) => [c, "frame", "", "r"]),
    ) as unknown[];
    const rows = ids.map((_, k) => (claims[k] as [Buffer, number, unknown[]])[2]);
    assert.ok(answered(rows).bodies <= READ_PART_BYTES, `bodies ${answered(rows).bodies}`);
    for (const [k, c] of ids.entries()) {
      assertSession(store, await store.readRest(rows[k]!), c, shape(k));
    }

    // Through the store: concurrent loads (batched behind the first), every session whole.
    const states = await Promise.all(ids.map((c) => store.loadSession(c, 0)));
    states.forEach((state, k) => {
      assert.equal(state.messages.size, 24);
      assert.equal(state.messages.get(1 + 100 * k + 23)!.payload.length, 64 * KB);
    });
  },
);

Deno.test(
  "RedisStore: a queue of more than READ_PART_ENTRIES entries is read in place a part at a time, never copied, and comes back whole",
  opts,
  async () => {
    const P = "re:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    const shape = { count: 3 * READ_PART_ENTRIES + 100, size: 700, firstId: 1 };
    await writeSession(store, "long", shape);
    await admin.config("RESETSTAT");
    const [rows] = await readSessions(admin, P, ["long"]);
    // The read answers no entry and no body: it names the session's own entries and marks the
    // read (a store outside a cluster: no writer mark to rely on).
    assert.deepEqual(answered([rows!]), { bodies: 0, entries: 0 });
    const [key, count, clientId, byWriter, token] = rows![6] as [
      Buffer,
      number,
      Buffer,
      number,
      Buffer,
    ];
    assert.equal(key.toString(), `${P}out:long`);
    assert.equal(count, shape.count);
    assert.equal(clientId.toString(), "long");
    assert.equal(byWriter, 0);
    let counts = await commandCalls(admin);
    assert.equal(counts.get("copy") ?? 0, 0, "no O(entries) step");
    assert.equal(counts.get("hget"), 1, "the record only: no message read");
    assert.equal(await admin.hget(`${P}reading`, "long"), token.toString());

    await admin.config("RESETSTAT");
    const all = await store.readRest(rows!);
    counts = await commandCalls(admin);
    // About READ_PART_ENTRIES a call (a scan's count is a hint): four calls, give or take.
    const scans = counts.get("hscan") ?? 0;
    assert.ok(scans >= 3 && scans <= 8, `hscan calls ${scans}`);
    assertSession(store, all, "long", shape);
    assert.equal(await admin.hexists(`${P}reading`, "long"), 0, "the mark is deleted");
    assert.equal(await admin.keys(`${P}read:*`).then((k) => k.length), 0, "nothing copied");
  },
);

Deno.test(
  "RedisStore: a batch's reads share READ_PART_ENTRIES: a session past what is left is read in parts",
  opts,
  async () => {
    const P = "rq:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    const half = Math.floor(READ_PART_ENTRIES * 0.6);
    const shape = (k: number) => ({ count: half, size: 10, firstId: 1 + 10_000 * k });
    for (const k of [0, 1, 2]) await writeSession(store, `h${k}`, shape(k));
    const batch = await readSessions(admin, P, ["h0", "h1", "h2"]);
    // The first read whole; the next two past what is left: read in parts after it.
    assert.equal(answered(batch).entries, half);
    assert.equal(batch[0]![6], undefined);
    assert.ok(Array.isArray(batch[1]![6]) && Array.isArray(batch[2]![6]));
    for (const k of [0, 1, 2]) {
      assertSession(store, await store.readRest(batch[k]!), `h${k}`, shape(k));
    }
  },
);

Deno.test(
  "RedisStore: a session read in parts whose queue changed between the parts (a delivery and its message gone) fails the read",
  opts,
  async () => {
    const P = "rx:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    await writeSession(store, "long", { count: READ_PART_ENTRIES + 10, size: 10, firstId: 1 });
    const [rows] = await readSessions(admin, P, ["long"]);
    // Between the read and its parts: a delivery acknowledged elsewhere (another node that
    // took the session over, say), its message released with it.
    store.apply([{ type: "deleteOutbound", clientId: "long", seq: 7 }]);
    await store.commit();
    assert.equal(await admin.hexists(`${P}msg`, "7"), 0);
    await assert.rejects(
      () => store.readRest(rows!),
      (error: Error) =>
        error instanceof StoreError && error.kind === "io" &&
        /Cannot read a session in parts in .*: .*the session read in parts changed since its read began/
          .test(error.message),
    );
    // The mark is gone with the write; the session is there as it is now.
    assert.equal(await admin.hexists(`${P}reading`, "long"), 0);
    const state = await store.loadSession("long", 0);
    assert.equal(state.sessions[0]!.outbound.length, READ_PART_ENTRIES + 9);

    // The mark gone before the parts (Redis lost its data): fails too, nothing left out.
    const [again] = await readSessions(admin, P, ["long"]);
    await admin.flushall();
    await assert.rejects(
      () => store.readRest(again!),
      (error: Error) =>
        error instanceof StoreError && error.kind === "io" &&
        /the session read in parts changed since its read began/.test(error.message),
    );
  },
);

Deno.test(
  "RedisStore: a session read in parts with a message gone and its delivery still there leaves it out as a read whole does; entries missing past the mark fail the read",
  opts,
  async () => {
    const P = "ro:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    const count = READ_PART_ENTRIES + 10;
    await writeSession(store, "long", { count, size: 10, firstId: 1 });
    const read = async () => (await readSessions(admin, P, ["long"]))[0]!;
    // A message gone whose delivery stays (Redis evicted it, say): a read whole answers the
    // delivery without it, and the load-time expiry deletes the delivery; so do the parts.
    await admin.hdel(`${P}msg`, "9");
    const rows = await read();
    const { state } = store.sessionFrom(await store.readRest(rows), 0);
    assert.equal(state.messages.size, count - 1);
    assert.equal(state.messages.has(9), false);
    assert.equal(state.sessions[0]!.outbound.length, count - 1);
    assert.equal(state.sessions[0]!.outbound.some((o) => o.messageId === 9), false);
    await store.commit();

    // Entries gone between the parts behind the store's back (not through a write, which would
    // delete the mark): fewer read than counted, the read fails.
    const again = await read();
    await admin.hdel(`${P}out:long`, "20", "21");
    await assert.rejects(
      () => store.readRest(again),
      (error: Error) =>
        error instanceof StoreError && error.kind === "io" &&
        new RegExp(`outbound entries read in parts are ${count - 3}, not the ${count - 1} counted`)
          .test(error.message),
    );
  },
);

Deno.test(
  "RedisStore: small sessions read in one batch keep the single read: no mark, no part left",
  opts,
  async () => {
    const P = "rm:store:";
    await using opened = await openWithAdmin(P);
    const { store, admin } = opened;
    const shape = (k: number) => ({ count: 100, size: KB, firstId: 1 + 1000 * k });
    for (const k of [0, 1, 2, 3]) await writeSession(store, `s${k}`, shape(k));
    await admin.config("RESETSTAT");
    const batch = await readSessions(admin, P, ["s0", "s1", "s2", "s3"]);
    const counts = await commandCalls(admin);
    assert.equal(counts.get("copy") ?? 0, 0);
    assert.equal(counts.get("hstrlen") ?? 0, 0);
    // Each session's record and each message's body: the commands of a read whole.
    assert.equal(counts.get("hget"), 4 * (1 + 100));
    assert.equal(await admin.exists(`${P}reading`), 0);
    for (const k of [0, 1, 2, 3]) {
      const rows = batch[k]!;
      assert.equal(rows.length, 6);
      assert.deepEqual(rows[5], []);
      assert.equal(await store.readRest(rows), rows, "nothing left to read");
      assertSession(store, rows, `s${k}`, shape(k));
    }
  },
);
