/**
 * The SQLite store's folds: by time, through its monotonic clock (`SqliteStoreOptions.now`,
 * driven by hand here: no waiting), and by size, which bounds what the messages held between two
 * folds keep alive of the log rows they were written in (`SqliteStore.logBytes`) under a long run
 * of QoS 1 traffic whose folds are few.
 *
 * @module
 */

import assert from "node:assert/strict";
import { COMPACT_AFTER_MS, SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { message, session } from "./_conformance.ts";
import { withDir } from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;

/** One QoS 1 message to "a", queued, and the one `ackLag` before it acknowledged. */
function delivery(i: number, ackLag: number, payload = 64): StoreMutation[] {
  const batch: StoreMutation[] = [
    {
      type: "putMessage",
      id: i,
      message: { ...message(`t/${i % 3}`, ""), payload: new Uint8Array(payload).fill(i % 251) },
    },
    { type: "queueOutbound", clientId: "a", seq: i, messageId: i, qos: 1, packetId: i },
  ];
  if (i > ackLag) batch.push({ type: "deleteOutbound", clientId: "a", seq: i - ackLag });
  return batch;
}

Deno.test("SqliteStore: a slow log folds at the first commit COMPACT_AFTER_MS after the last fold by the store's clock, not before", async () => {
  await withDir(async (dir) => {
    let t = 5_000;
    await using store = SqliteStore.open(`${dir}/state.db`, { sync: "normal", now: () => t });
    store.apply([{ type: "putSession", session: session("a") }]);
    await store.commit();
    let i = 0;
    t += COMPACT_AFTER_MS - 1;
    store.apply(delivery(++i, 10));
    await store.commit();
    assert.ok(store.logBytes > 0, "folded before its time");
    t += 1;
    store.apply(delivery(++i, 10));
    await store.commit();
    assert.equal(store.logBytes, 0, "not folded once its time came");
    // The next period counts from that fold.
    t += COMPACT_AFTER_MS - 1;
    store.apply(delivery(++i, 10));
    await store.commit();
    assert.ok(store.logBytes > 0, "folded before its time");
    t += 1;
    store.apply(delivery(++i, 10));
    await store.commit();
    assert.equal(store.logBytes, 0);
  });
});

Deno.test("SqliteStore: under a long run of QoS 1 traffic with few folds, the log rows the held messages keep alive stay under compactBytes", async () => {
  await withDir(async (dir) => {
    const compactBytes = 64 * 1024;
    const ackLag = 200;
    await using store = SqliteStore.open(`${dir}/state.db`, {
      sync: "normal",
      compactBytes,
      now: () => 0,
    });
    store.apply([
      { type: "putSession", session: session("a") },
      { type: "putSession", session: session("b") },
    ]);
    await store.commit();
    let folds = 0;
    let last = store.logBytes;
    let most = 0;
    for (let i = 1; i <= 3_000; i++) {
      // One message a turn, its payload small beside the other payloads of its turn: each
      // commit's row is held by the message that waits `ackLag` commits for its PUBACK.
      store.apply([
        ...delivery(i, ackLag, 16),
        { type: "putMessage", id: 1_000_000 + i, message: message("big", "x".repeat(1_000)) },
        {
          type: "queueOutbound",
          clientId: "b",
          seq: i,
          messageId: 1_000_000 + i,
          qos: 1,
          packetId: 1,
        },
        { type: "deleteOutbound", clientId: "b", seq: i },
      ]);
      await store.commit();
      if (store.logBytes < last) folds++;
      last = store.logBytes;
      assert.ok(last < compactBytes, `${last} bytes of log after commit ${i}`);
      if (i % 100 !== 0) continue;
      // What the held messages keep alive: their payloads' buffers (log rows until a fold gives
      // them bytes of their own).
      const state = await store.load(NOW);
      const buffers = new Set<ArrayBufferLike>();
      for (const m of state.messages.values()) buffers.add(m.payload.buffer);
      let alive = 0;
      for (const b of buffers) alive += b.byteLength;
      assert.equal(state.messages.size, Math.min(i, ackLag));
      most = Math.max(most, alive);
      // The rows since the last fold, and for each message held from before it at most twice its
      // payload and 256 bytes (`ownPayload`): not one row of 1 KB per held message.
      assert.ok(
        alive <= compactBytes + ackLag * (2 * 16 + 256),
        `${alive} bytes kept alive after commit ${i}`,
      );
    }
    // Few folds (the clock never moves): one per compactBytes of log.
    assert.ok(folds >= 10 && folds <= 100, `${folds} folds`);
    assert.ok(most > 0);
  });
});
