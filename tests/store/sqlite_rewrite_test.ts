/**
 * `SqliteStore.rewrite`: the state written again after an outage, in log rows of bounded size,
 * only what differs from the state held, atomic as a whole. A crash in the middle (a failed
 * piece, the file copied as a crash leaves it, a kill -9) leaves the state before it, whole.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { copyAsCrashed, withDir } from "./_sqlite_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const KIB = 1024;

/** A payload of `bytes` bytes that starts with its message id. */
function payload(id: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes).fill(0x2e);
  out.set(new TextEncoder().encode(`${id}:`));
  return out;
}

/**
 * A whole state as the broker journals it for a rewrite: a `clear`, session `s` with a queued
 * delivery of each message (delivery numbers from `seq`), and a retained message on `r/<tag>`.
 */
function state(messages: [id: number, bytes: number][], seq: number, tag: string): StoreMutation[] {
  const out: StoreMutation[] = [
    { type: "clear" },
    {
      type: "putSession",
      session: {
        clientId: "s",
        protocolVersion: 4,
        clean: false,
        expiryInterval: undefined,
        offlineSince: 0,
      },
    },
    {
      type: "putSubscription",
      clientId: "s",
      subscription: {
        filter: `f/${tag}`,
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      },
    },
  ];
  for (const [id, bytes] of messages) {
    out.push(
      {
        type: "putMessage",
        id,
        message: { topic: `t/${id}`, payload: payload(id, bytes), qos: 1, retain: false },
      },
      { type: "queueOutbound", clientId: "s", seq: seq++, messageId: id, qos: 1 },
    );
  }
  out.push({
    type: "putRetained",
    message: { topic: `r/${tag}`, payload: payload(0, 100), qos: 0, retain: true },
  });
  return out;
}

function range(from: number, to: number, bytes: number): [number, number][] {
  const out: [number, number][] = [];
  for (let id = from; id <= to; id++) out.push([id, bytes]);
  return out;
}

/** What a loaded state holds, in a form to compare: ids queued in order, filters, retained. */
function summary(loaded: StoredState): { queued: number[]; filters: string[]; retained: string[] } {
  assert.equal(loaded.sessions.length, 1);
  const s = loaded.sessions[0]!;
  const queued = s.outbound.map((e) => e.messageId!);
  for (const e of s.outbound) {
    const m = loaded.messages.get(e.messageId!)!;
    assert.ok(m !== undefined, `message ${e.messageId} is there`);
    const head = new TextDecoder().decode(m.payload.subarray(0, 8)).split(":")[0];
    assert.equal(head, String(e.messageId), "each message's own bytes");
  }
  return {
    queued,
    filters: s.subscriptions.map((sub) => sub.filter),
    retained: loaded.retained.map((m) => m.topic),
  };
}

function ids(from: number, to: number): number[] {
  return range(from, to, 0).map(([id]) => id);
}

async function loadCopy(path: string, copy: string): Promise<StoredState> {
  await copyAsCrashed(path, copy);
  await using store = SqliteStore.open(copy);
  return await store.load(0);
}

function logRows(path: string): { rows: number; bytes: number } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS b FROM log")
      .get()!;
    return { rows: row.n as number, bytes: row.b as number };
  } finally {
    db.close();
  }
}

const OLD = state(range(1, 40, 4 * KIB), 1, "old");

test("SqliteStore.rewrite writes only what differs from the state held (a message held is not written again), in several rows of about pieceBytes; a crash after its last row keeps the new state", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await using store = SqliteStore.open(path, { sync: "normal", pieceBytes: 16 * KIB });
    store.apply(OLD);
    await store.commit();
    const before = store.transactions;
    // Keeps messages 21..40 (80 KiB), adds 5 of 16 KiB: a new state of 160 KiB.
    const next = state([...range(21, 40, 4 * KIB), ...range(101, 105, 16 * KIB)], 41, "new");
    await store.rewrite(next);
    assert.ok(store.transactions - before >= 5, `several rows: ${store.transactions - before}`);

    // The file as a crash now leaves it: the rewrite's rows are its log, and replay to the new
    // state. They hold the new messages, not the 80 KiB of messages held already.
    await copyAsCrashed(path, `${dir}/crashed.db`);
    const log = logRows(`${dir}/crashed.db`);
    assert.ok(log.bytes > 80 * KIB && log.bytes < 100 * KIB, `log bytes ${log.bytes}`);
    const expected = {
      queued: [...ids(21, 40), ...ids(101, 105)],
      filters: ["f/new"],
      retained: ["r/new"],
    };
    assert.deepEqual(summary(await loadCopy(`${dir}/crashed.db`, `${dir}/copy.db`)), expected);
    // And the store itself goes on from the new state.
    assert.deepEqual(summary(await store.load(0)), expected);
  });
});

test("SqliteStore.rewrite that fails in the middle (no room for a piece) leaves the state before it, whole, also as a crash then leaves the file; the store goes on", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const oldState = { queued: ids(1, 40), filters: ["f/old"], retained: ["r/old"] };
    {
      await using store = SqliteStore.open(path, {
        sync: "normal",
        maxBytes: 512 * KIB,
        pieceBytes: 64 * KIB,
      });
      store.apply(OLD);
      await store.commit();
      // 640 KiB of new messages do not fit in 512 KiB: the first pieces do, a later one fails.
      const next = state([...range(1, 40, 4 * KIB), ...range(101, 110, 64 * KIB)], 41, "new");
      await assert.rejects(store.rewrite(next), StoreError);

      await copyAsCrashed(path, `${dir}/crashed.db`);
      assert.ok(logRows(`${dir}/crashed.db`).rows > 0, "the pieces written are in the log");
      assert.deepEqual(
        summary(await loadCopy(`${dir}/crashed.db`, `${dir}/copy.db`)),
        oldState,
        "a crash after a failed piece: the state before the rewrite",
      );
      assert.deepEqual(summary(await store.load(0)), oldState);
      // The store goes on: a later change is written after the rows cut short, and kept.
      store.apply([{ type: "deleteOutbound", clientId: "s", seq: 1 }]);
      await store.commit();
      await copyAsCrashed(path, `${dir}/crashed2.db`);
      assert.deepEqual(
        summary(await loadCopy(`${dir}/crashed2.db`, `${dir}/copy2.db`)).queued,
        ids(2, 40),
      );
    }
    await using reopened = SqliteStore.open(path);
    assert.deepEqual(summary(await reopened.load(0)).queued, ids(2, 40));
  });
});
