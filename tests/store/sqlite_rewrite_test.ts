/**
 * `SqliteStore.rewrite`: the state written again after an outage, in log rows of bounded size,
 * only what differs from the state held, atomic as a whole. A crash in the middle (a failed
 * piece, the file copied as a crash leaves it, a kill -9) leaves the state before it, whole.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { SqliteWorkerStore } from "../../src/store/sqlite_worker_store.ts";
import { copyAsCrashed, logRows, withDir } from "./_sqlite_helpers.ts";
import { generationSummary, ids, range, state, summary } from "./_rewrite_states.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const KIB = 1024;

async function loadCopy(path: string, copy: string): Promise<StoredState> {
  await copyAsCrashed(path, copy);
  await using store = SqliteStore.open(copy);
  return await store.load(0);
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

test("SqliteStore.rewrite of a session made again while writes failed (its new deliveries numbered from 1 again, as the stored ones) keeps the new deliveries with their messages' own bytes, also as a crash then leaves the file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await using store = SqliteStore.open(path, { sync: "normal", pieceBytes: 16 * KIB });
    store.apply(OLD);
    await store.commit();
    // Deliveries 1..6: three messages held already (under stored deliveries 38..40), three new.
    await store.rewrite(state([...range(38, 40, 4 * KIB), ...range(101, 103, 4 * KIB)], 1, "new"));
    const expected = {
      queued: [...ids(38, 40), ...ids(101, 103)],
      filters: ["f/new"],
      retained: ["r/new"],
    };
    assert.deepEqual(summary(await loadCopy(path, `${dir}/crashed.db`)), expected);
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

test("SqliteWorkerStore.rewrite (sync full) writes the new state on its worker", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    {
      await using store = await SqliteWorkerStore.open(path, { pieceBytes: 16 * KIB });
      store.apply(OLD);
      await store.commit();
      await store.rewrite(
        state([...range(21, 40, 4 * KIB), ...range(101, 105, 16 * KIB)], 41, "new"),
      );
    }
    await using reopened = SqliteStore.open(path);
    assert.deepEqual(summary(await reopened.load(0)), {
      queued: [...ids(21, 40), ...ids(101, 105)],
      filters: ["f/new"],
      retained: ["r/new"],
    });
  });
});

test("SqliteStore.rewrite: a kill -9 at a random point of repeated rewrites leaves one whole generation, the last one that resolved or the next", async () => {
  await withDir(async (dir) => {
    for (let round = 0; round < 4; round++) {
      const path = `${dir}/state-${round}.db`;
      const script = new URL("./_sqlite_rewrite_child.ts", import.meta.url).pathname;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, path],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      let last = 0;
      let buffered = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const read = async () => {
        const { value, done } = await reader.read();
        if (done) return false;
        buffered += value;
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        for (const line of lines) last = Number(line);
        return true;
      };
      try {
        while (last < 2 + round) assert.ok(await read(), "the child runs");
        // A random point of the rewrites that follow.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        child.kill("SIGKILL");
        while (await read());
      } finally {
        await reader.cancel().catch(() => {});
      }
      assert.equal((await child.status).signal, "SIGKILL");
      await using store = SqliteStore.open(path);
      const got = summary(await store.load(0));
      const g = Number(got.retained[0]?.slice("r/g".length));
      assert.ok(g === last || g === last + 1, `generation ${g} after ${last} resolved`);
      assert.deepEqual(got, generationSummary(g), "one whole generation");
    }
  });
});
