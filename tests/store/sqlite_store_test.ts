// The store conformance suite on SQLite files, plus what only a file can show: reopening,
// kill -9 in the middle of commits, bad files refused without being touched, write errors,
// group commit and disk use.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from "../../src/store/_sqlite_schema.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { message, session, storeConformance } from "./_conformance.ts";
import {
  assertOpenFails,
  assertUntouched,
  assertWriterCommits,
  copyAsCrashed,
  killWriterAfter,
  withDir,
} from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;

for (const sync of ["full", "normal"] as const) {
  storeConformance(`SqliteStore (sync ${sync})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "amqtt_store_" });
    const path = `${dir}/state.db`;
    return {
      store: SqliteStore.open(path, { sync }),
      reopen: async (store) => {
        await store.close();
        return SqliteStore.open(path, { sync });
      },
      cleanup: async (store) => {
        await store.close().catch(() => {});
        await Deno.remove(dir, { recursive: true });
      },
    };
  });
}

// Folding at every commit: every change goes through the tables.
storeConformance("SqliteStore (folded at every commit)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_store_" });
  const path = `${dir}/state.db`;
  return {
    store: SqliteStore.open(path, { sync: "normal", compactBytes: 1 }),
    reopen: async (store) => {
      await store.close();
      return SqliteStore.open(path, { sync: "normal", compactBytes: 1 });
    },
    cleanup: async (store) => {
      await store.close().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
});

// Never folded while open, and reopened from a copy of the file as a crash leaves it: every
// change comes back by replaying log rows.
storeConformance("SqliteStore (replayed from the log after a crash)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_store_" });
  let generation = 0;
  let path = `${dir}/state-0.db`;
  const options = { sync: "normal", compactBytes: 1e12 } as const;
  return {
    store: SqliteStore.open(path, options),
    reopen: async (store) => {
      await store.commit().catch(() => {});
      const copy = `${dir}/state-${++generation}.db`;
      await copyAsCrashed(path, copy);
      await store.close();
      path = copy;
      return SqliteStore.open(path, options);
    },
    cleanup: async (store) => {
      await store.close().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
});

/** A store file with some data in it, closed. */
async function writeStore(path: string, messages = 50): Promise<void> {
  await using store = SqliteStore.open(path);
  const batch: StoreMutation[] = [{ type: "putSession", session: session("a") }];
  for (let i = 1; i <= messages; i++) {
    batch.push(
      { type: "putMessage", id: i, message: message(`t/${i}`, "x".repeat(2000)) },
      { type: "queueOutbound", clientId: "a", seq: i, messageId: i, qos: 1 },
    );
  }
  store.apply(batch);
  await store.commit();
}

Deno.test("SqliteStore.open refuses a file of random bytes without changing it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/random.db`;
    await Deno.writeFile(path, crypto.getRandomValues(new Uint8Array(16384)));
    await assertUntouched(path, () => assertOpenFails(path, "corrupt", /not a SQLite database/));
  });
});

Deno.test("SqliteStore.open refuses a truncated store file without changing it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await writeStore(path);
    const size = (await Deno.stat(path)).size;
    assert.ok(size > 64 * 1024, `enough pages to cut (${size} bytes)`);
    await Deno.truncate(path, Math.floor(size / 2));
    await assertUntouched(path, () => assertOpenFails(path, "corrupt", /damaged/));
    await Deno.truncate(path, 60);
    await assertUntouched(
      path,
      () => assertOpenFails(path, "corrupt", /not a SQLite database|damaged/),
    );
  });
});

Deno.test("SqliteStore.open refuses an empty file rather than starting with no state", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await Deno.writeFile(path, new Uint8Array(0));
    await assertUntouched(path, () => assertOpenFails(path, "corrupt", /empty/));
  });
});

Deno.test("SqliteStore.open refuses a store written by a newer schema without changing it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await writeStore(path, 1);
    const db = new DatabaseSync(path);
    db.exec("PRAGMA user_version = 99");
    db.close();
    await assertUntouched(
      path,
      () =>
        assertOpenFails(
          path,
          "newer-schema",
          new RegExp(
            `newer amqtt \\(schema version 99; this version reads up to ${SCHEMA_VERSION}\\)`,
          ),
        ),
    );
  });
});

Deno.test("SqliteStore.open refuses a store whose tables were dropped without changing it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await writeStore(path, 1);
    const db = new DatabaseSync(path);
    db.exec("DROP TABLE outbound");
    db.close();
    await assertUntouched(
      path,
      () =>
        assertOpenFails(
          path,
          "corrupt",
          /schema is damaged: outbound missing$/,
        ),
    );
  });
});

Deno.test("SqliteStore.open refuses another program's SQLite database without changing it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/other.db`;
    const db = new DatabaseSync(path);
    db.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY); INSERT INTO accounts VALUES (1)");
    db.close();
    await assertUntouched(path, () => assertOpenFails(path, "not-a-store", /another program/));
  });
});

Deno.test("SqliteStore.open refuses a file another store or process holds", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await writeStore(path, 1);
    {
      await using _first = SqliteStore.open(path);
      assertOpenFails(path, "locked", /locked by another process/);
    }
    // Another connection in an exclusive transaction.
    const other = new DatabaseSync(path);
    try {
      other.exec("BEGIN EXCLUSIVE");
      assertOpenFails(path, "locked", /locked by another process/);
      other.exec("COMMIT");
    } finally {
      other.close();
    }
    // Another process holding the store open.
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { SqliteStore } from ${
          JSON.stringify(new URL("../../src/store/sqlite_store.ts", import.meta.url).href)
        };
         const store = SqliteStore.open(${JSON.stringify(path)});
         console.log("open");
         for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
         await store.close();`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      assert.equal((await reader.read()).value?.trim(), "open");
      await assertUntouched(
        path,
        () => assertOpenFails(path, "locked", /locked by another process/),
      );
    } finally {
      await child.stdin.close();
      await reader.cancel();
      assert.equal((await child.status).code, 0);
    }
    // Released when the holder closes: the data is there.
    await using store = SqliteStore.open(path);
    assert.equal((await store.load(NOW)).sessions.length, 1);
  });
});

Deno.test("SqliteStore.open: a missing directory or a directory path is an io error; bad options throw", async () => {
  await withDir((dir) => {
    assertOpenFails(`${dir}/no/such/dir/state.db`, "io", /directory does not exist/);
    assertOpenFails(dir, "io", /not a regular file/);
    assert.throws(
      () => SqliteStore.open(`${dir}/x.db`, { sync: "off" as "full" }),
      TypeError,
    );
    assert.throws(() => SqliteStore.open(`${dir}/x.db`, { maxBytes: -1 }), RangeError);
    assert.throws(() => SqliteStore.open(`${dir}/x.db`, { maxBytes: NaN }), RangeError);
  });
});

Deno.test("SqliteStore.open takes over an empty SQLite database as a new store (migration from version 0)", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/empty.db`;
    const db = new DatabaseSync(path);
    db.exec("PRAGMA user_version = 0; VACUUM");
    db.close();
    assert.ok((await Deno.stat(path)).size > 0);
    {
      await using store = SqliteStore.open(path);
      store.apply([{ type: "putSession", session: session("a") }]);
    }
    const check = new DatabaseSync(path);
    try {
      assert.equal(check.prepare("PRAGMA user_version").get()?.user_version, SCHEMA_VERSION);
      assert.equal(check.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
      assert.equal(check.prepare("SELECT count(*) AS n FROM sessions").get()?.n, 1);
    } finally {
      check.close();
    }
  });
});

Deno.test("SqliteStore.open migrates a schema version 1 file, keeping its rows", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/v1.db`;
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    MIGRATIONS[0]!(db);
    db.exec("PRAGMA user_version = 1");
    db.exec(
      `INSERT INTO sessions (client_id, protocol_version, clean, expiry_interval)
       VALUES ('a', 4, 0, NULL)`,
    );
    db.exec(
      `INSERT INTO messages (id, topic, payload, qos, retain) VALUES (5, 't', x'6869', 1, 1)`,
    );
    db.exec(
      `INSERT INTO outbound (client_id, seq, message_id, qos, state) VALUES ('a', 1, 5, 1, 0)`,
    );
    db.close();
    {
      await using store = SqliteStore.open(path);
      const state = await store.load(Date.now());
      assert.deepEqual(state.messages.get(5), {
        topic: "t",
        payload: new TextEncoder().encode("hi"),
        qos: 1,
        retain: true,
      });
      assert.deepEqual(state.sessions[0]?.outbound.map((e) => e.messageId), [5]);
      store.apply([
        { type: "putMessage", id: 6, message: message("t", "x", { retainOut: true }) },
        { type: "queueOutbound", clientId: "a", seq: 2, messageId: 6, qos: 1 },
      ]);
    }
    const check = new DatabaseSync(path);
    try {
      assert.equal(check.prepare("PRAGMA user_version").get()?.user_version, SCHEMA_VERSION);
      assert.equal(
        check.prepare("SELECT retain_out FROM messages WHERE id = 6").get()?.retain_out,
        1,
      );
    } finally {
      check.close();
    }
  });
});

Deno.test("SqliteStore.open creates a new store file readable by its owner only", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await using store = SqliteStore.open(path);
    store.apply([{ type: "putSession", session: session("a") }]);
    await store.commit();
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(
      names.sort(),
      ["state.db", "state.db-log", "state.db-wal"],
      "no temporary file left",
    );
    for (const name of names) {
      assert.equal((await Deno.stat(`${dir}/${name}`)).mode! & 0o777, 0o600);
    }
  });
});

Deno.test("SqliteStore: close commits what is pending", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = SqliteStore.open(path);
    store.apply([{ type: "putSession", session: session("a") }]);
    await store.close();
    await using again = SqliteStore.open(path);
    assert.equal((await again.load(NOW)).sessions.length, 1);
  });
});

Deno.test("SqliteStore: batches applied in one event-loop turn are one transaction (group commit)", async () => {
  await withDir(async (dir) => {
    await using store = SqliteStore.open(`${dir}/state.db`);
    const before = store.transactions;
    for (let i = 0; i < 200; i++) store.apply([{ type: "putSession", session: session(`c${i}`) }]);
    await store.commit();
    assert.equal(store.transactions, before + 1);
    store.apply([{ type: "deleteSession", clientId: "c0" }]);
    await store.commit();
    assert.equal(store.transactions, before + 2);
  });
});

Deno.test("SqliteStore: a failed commit (store full) rejects with StoreError and keeps what was committed", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = SqliteStore.open(path, { maxBytes: 256 * 1024 });
    store.apply([
      { type: "putSession", session: session("a") },
      { type: "putRetained", message: message("kept", "before", { retain: true }) },
      { type: "setCounter", name: "clients/maximum", value: 3 },
    ]);
    await store.commit();
    // 1 MiB does not fit in 256 KiB.
    store.apply([
      { type: "deleteRetained", topic: "kept" },
      {
        type: "putMessage",
        id: 1,
        message: { ...message("big", ""), payload: new Uint8Array(1 << 20) },
      },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
    ]);
    await assert.rejects(store.commit(), (error) => {
      assert.ok(error instanceof StoreError);
      assert.equal(error.kind, "write");
      assert.match(
        error.message,
        /^Cannot write store ".*state\.db": the disk or the store's size limit is full; earlier commits are intact$/,
      );
      return true;
    });
    // Still reports the failure until something new is committed.
    await assert.rejects(store.commit(), StoreError);
    const check = (state: Awaited<ReturnType<SqliteStore["load"]>>) => {
      assert.deepEqual(state.retained.map((m) => m.topic), ["kept"]);
      assert.deepEqual(state.sessions[0]?.outbound, []);
      assert.equal(state.counters.get("clients/maximum"), 3);
    };
    check(await store.load(NOW));
    // Small writes still work.
    store.apply([{ type: "setCounter", name: "clients/maximum", value: 4 }]);
    await store.commit();
    await store.close();
    await using again = SqliteStore.open(path);
    const state = await again.load(NOW);
    check({ ...state, counters: new Map([["clients/maximum", 3]]) });
    assert.equal(state.counters.get("clients/maximum"), 4);
  });
});

Deno.test("SqliteStore: disk use follows what is held: delivered messages give their space back", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = SqliteStore.open(path, { sync: "normal" });
    const payload = new Uint8Array(4096).fill(1);
    const batch: StoreMutation[] = [{ type: "putSession", session: session("a") }];
    for (let i = 1; i <= 2000; i++) {
      batch.push(
        { type: "putMessage", id: i, message: { ...message(`t/${i}`, ""), payload } },
        { type: "queueOutbound", clientId: "a", seq: i, messageId: i, qos: 1 },
      );
    }
    store.apply(batch);
    await store.commit();
    await store.close();
    const full = (await Deno.stat(path)).size;
    assert.ok(full > 8_000_000, `holds 8 MB of payload (${full} bytes)`);

    const again = SqliteStore.open(path, { sync: "normal" });
    const acks: StoreMutation[] = [];
    for (let i = 1; i <= 2000; i++) acks.push({ type: "deleteOutbound", clientId: "a", seq: i });
    again.apply(acks);
    await again.commit();
    assert.equal((await again.load(NOW)).messages.size, 0);
    await again.close();
    const after = (await Deno.stat(path)).size;
    assert.ok(after < 1_000_000, `space given back: ${full} -> ${after} bytes`);
    const leftovers = [];
    for await (const entry of Deno.readDir(dir)) leftovers.push(entry.name);
    assert.deepEqual(leftovers, ["state.db"], "no WAL or temporary file left after close");
  });
});

for (const sync of ["full", "normal"] as const) {
  Deno.test(`SqliteStore (sync ${sync}): after kill -9 of a writer, every commit that resolved is there`, async () => {
    await withDir(async (dir) => {
      for (
        const atLeast of [
          30 + Math.floor(Math.random() * 100),
          200 + Math.floor(Math.random() * 300),
        ]
      ) {
        const path = `${dir}/state-${atLeast}.db`;
        const last = await killWriterAfter(path, sync, atLeast);
        await using store = SqliteStore.open(path, { sync });
        assertWriterCommits(await store.load(NOW), last);
      }
    });
  });
}
