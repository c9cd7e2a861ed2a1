// The store conformance suite on SQLite files written by a worker thread, plus what crosses the
// thread boundary: open errors with their kind and path, a failed commit, the file lock, and
// kill -9 of a process whose worker is writing.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { SqliteWorkerStore } from "../../src/store/sqlite_worker_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { message, session, storeConformance } from "./_conformance.ts";
import { assertWriterCommits, killWriterAfter, withDir } from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;

for (const sync of ["full", "normal"] as const) {
  storeConformance(`SqliteWorkerStore (sync ${sync})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "amqtt_store_" });
    const path = `${dir}/state.db`;
    return {
      store: await SqliteWorkerStore.open(path, { sync }),
      reopen: async (store) => {
        await store.close();
        return await SqliteWorkerStore.open(path, { sync });
      },
      cleanup: async (store) => {
        await store.close().catch(() => {});
        await Deno.remove(dir, { recursive: true });
      },
    };
  });
}

Deno.test("SqliteWorkerStore.open rejects bad files with the StoreError SqliteStore gives", async () => {
  await withDir(async (dir) => {
    const random = `${dir}/random.db`;
    const bytes = crypto.getRandomValues(new Uint8Array(8192));
    await Deno.writeFile(random, bytes);
    await assert.rejects(SqliteWorkerStore.open(random), (error) => {
      assert.ok(error instanceof StoreError);
      assert.equal(error.kind, "corrupt");
      assert.equal(error.path, random);
      assert.equal(
        error.message,
        `Cannot open store ${JSON.stringify(random)}: the file is not a SQLite database ` +
          "(corrupt or not a store file)",
      );
      return true;
    });
    assert.deepEqual(await Deno.readFile(random), bytes, "the file is unchanged");

    const newer = `${dir}/newer.db`;
    await SqliteStore.open(newer).close();
    const db = new DatabaseSync(newer);
    db.exec("PRAGMA user_version = 7");
    db.close();
    await assert.rejects(SqliteWorkerStore.open(newer), (error) => {
      assert.ok(error instanceof StoreError && error.kind === "newer-schema", String(error));
      return true;
    });
    await assert.rejects(
      SqliteWorkerStore.open(`${dir}/x.db`, { sync: "off" as "full" }),
      TypeError,
    );
  });
});

Deno.test("SqliteWorkerStore holds the file lock while open", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = await SqliteWorkerStore.open(path);
    try {
      assert.throws(() => SqliteStore.open(path), (error) => {
        assert.ok(error instanceof StoreError && error.kind === "locked", String(error));
        return true;
      });
    } finally {
      await store.close();
    }
    await SqliteStore.open(path).close();
  });
});

Deno.test("SqliteWorkerStore: a failed commit rejects with StoreError and keeps what was committed", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = await SqliteWorkerStore.open(path, { maxBytes: 256 * 1024 });
    try {
      store.apply([
        { type: "putSession", session: session("a") },
        { type: "putRetained", message: message("kept", "before", { retain: true }) },
      ]);
      await store.commit();
      store.apply([
        { type: "deleteRetained", topic: "kept" },
        {
          type: "putRetained",
          message: { ...message("big", "", { retain: true }), payload: new Uint8Array(1 << 20) },
        },
      ]);
      await assert.rejects(store.commit(), (error) => {
        assert.ok(error instanceof StoreError && error.kind === "write", String(error));
        assert.match(error.message, /size limit is full; earlier commits are intact$/);
        return true;
      });
      assert.deepEqual((await store.load(NOW)).retained.map((m) => m.topic), ["kept"]);
    } finally {
      await store.close();
    }
  });
});

Deno.test("SqliteWorkerStore: batches of one turn reach the worker as one write", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = await SqliteWorkerStore.open(path);
    try {
      for (let i = 0; i < 300; i++) {
        store.apply([{ type: "putSession", session: session(`c${i}`) }]);
      }
      await store.commit();
      assert.equal((await store.load(NOW)).sessions.length, 300);
    } finally {
      await store.close();
    }
  });
});

for (const sync of ["full", "normal"] as const) {
  Deno.test(`SqliteWorkerStore (sync ${sync}): after kill -9 of a writer, every commit that resolved is there`, async () => {
    await withDir(async (dir) => {
      const path = `${dir}/state.db`;
      const last = await killWriterAfter(path, sync, 50 + Math.floor(Math.random() * 300), true);
      await using store = SqliteStore.open(path, { sync });
      assertWriterCommits(await store.load(NOW), last);
    });
  });
}
