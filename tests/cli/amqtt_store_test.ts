// amqtt with a bad or hostile store file: start-up stops with one clear error line and exit code
// 1, never a stack trace, never a broker silently starting empty, and the file stays as it was.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { freePort } from "../_helpers/peers.ts";
import { runCli, spawnCli, tempDir } from "./_helpers.ts";

async function configFor(dir: string, store: string): Promise<string> {
  const config = `${dir}/broker.yaml`;
  await Deno.writeTextFile(
    config,
    `listeners:\n  default:\n    bind: 127.0.0.1:${freePort()}\npersistence:\n  path: ${store}\n`,
  );
  return config;
}

async function writeStore(path: string): Promise<void> {
  await using store = SqliteStore.open(path);
  const batch = [];
  for (let i = 1; i <= 200; i++) {
    batch.push({
      type: "putRetained" as const,
      message: { topic: `r/${i}`, payload: new Uint8Array(1000), qos: 0 as const, retain: true },
    });
  }
  store.apply(batch);
  await store.commit();
}

/** Runs amqtt on the file and checks the one error line, the exit code and the file's bytes. */
async function assertRefused(dir: string, store: string, reason: RegExp): Promise<void> {
  const before = await Deno.readFile(store);
  const result = await runCli("amqtt.ts", ["-c", await configFor(dir, store)]);
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.split("\n").filter((l) => l !== "" && !/ INFO /.test(l));
  assert.equal(lines.length, 1, `one error line:\n${result.stderr}`);
  assert.match(lines[0]!, /Cannot start the broker: Cannot open store ".*"/);
  assert.match(lines[0]!, reason);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  assert.deepEqual(await Deno.readFile(store), before, "the file is unchanged");
}

Deno.test("amqtt refuses a store file of random bytes: one line, exit 1, file untouched", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/state.db`;
  await Deno.writeFile(store, crypto.getRandomValues(new Uint8Array(16384)));
  await assertRefused(dir.path, store, /not a SQLite database/);
});

Deno.test("amqtt refuses a truncated store file: one line, exit 1, file untouched", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/state.db`;
  await writeStore(store);
  await Deno.truncate(store, Math.floor((await Deno.stat(store)).size / 2));
  await assertRefused(dir.path, store, /damaged/);
});

Deno.test("amqtt refuses a store of a newer version and another program's database", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/state.db`;
  await writeStore(store);
  const db = new DatabaseSync(store);
  db.exec("PRAGMA user_version = 99");
  db.close();
  await assertRefused(dir.path, store, /newer amqtt \(schema version 99/);

  const other = `${dir.path}/other.db`;
  const foreign = new DatabaseSync(other);
  foreign.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY); INSERT INTO accounts VALUES (1)");
  foreign.close();
  await assertRefused(dir.path, other, /another program/);
});

Deno.test("a second amqtt on the same store file is refused while the first runs", async () => {
  await using dir = await tempDir();
  const store = `${dir.path}/state.db`;
  const first = `${dir.path}/first.yaml`;
  await Deno.writeTextFile(
    first,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\npersistence:\n  path: ${store}\n`,
  );
  await using running = spawnCli("amqtt.ts", ["-c", first], { timeoutMs: 60_000 });
  await running.waitForStderr(/amqtt \S+ started/, 30_000);
  const result = await runCli("amqtt.ts", ["-c", await configFor(dir.path, store)]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /Cannot open store ".*state\.db": .*locked by another process/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  // The first broker is unaffected and still stops cleanly.
  running.kill("SIGTERM");
  assert.equal((await running.done).code, 0);
});

Deno.test("amqtt refuses a store whose log has a damaged record length before its last record: one line, log untouched", async () => {
  await using dir = await tempDir();
  const live = `${dir.path}/live.db`;
  const store = `${dir.path}/state.db`;
  {
    // Three commits in the log file, copied as a crash leaves them.
    await using open = SqliteStore.open(live, { compactBytes: 1e9 });
    for (let i = 1; i <= 3; i++) {
      open.apply([{
        type: "putRetained",
        message: { topic: `r/${i}`, payload: new Uint8Array(10), qos: 0, retain: true },
      }]);
      await open.commit();
    }
    await Deno.copyFile(live, store);
    await Deno.copyFile(`${live}-wal`, `${store}-wal`).catch(() => {});
    await Deno.copyFile(`${live}-log`, `${store}-log`);
  }
  const db = new DatabaseSync(store);
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  // The second record's length grown past the end of the file (bit rot): not a torn tail.
  const log = await Deno.readFile(`${store}-log`);
  const view = new DataView(log.buffer);
  const second = 16 + 8 + view.getUint32(16, true);
  view.setUint32(second, view.getUint32(second, true) + (1 << 20), true);
  await Deno.writeFile(`${store}-log`, log);
  await assertRefused(dir.path, store, /its log ".*-log" is damaged: record 2's length/);
  assert.deepEqual(await Deno.readFile(`${store}-log`), log, "the log is unchanged");
});
