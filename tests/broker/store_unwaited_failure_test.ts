/**
 * A store write that fails while nothing waits for it, over a real SQLite file at its size limit:
 * the store reports it (`BrokerStore.reportFailures`), and the store writer treats it as a failed
 * commit, although the commit of a later write works. Without that, the later commit would count
 * the lost batch as stored: no outage, no rewrite, and acknowledgements for state not stored.
 *
 * @module
 */

import assert from "node:assert/strict";
import { StoreWriter } from "../../src/broker/store_writer.ts";
import type { MessageRecord } from "../../src/store/message_record.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { SqliteWorkerStore } from "../../src/store/sqlite_worker_store.ts";
import { MemoryLogger } from "../_helpers/broker.ts";
import { tempDir } from "../_helpers/temp_dir.ts";
import { afterImmediates } from "../_helpers/immediates.ts";

const test = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

// Once the store has started the write of what was applied before (the writer hands it over in
// a microtask, the store writes at an immediate). A `setTimeout(0)` ran before that write once a
// millisecond had passed, as on a loaded machine: the next batch then joined the failing write,
// and its commit failed with "the disk or the store's size limit is full".
const turn = afterImmediates;

function count(log: MemoryLogger, needle: string): number {
  return log.lines.filter((l) => l.message.includes(needle)).length;
}

function retained(topic: string, bytes: number): MessageRecord {
  return { topic, payload: new Uint8Array(bytes).fill(0x2e), qos: 0, retain: true };
}

/**
 * A writer over a SQLite file of 256 KiB whose rewrite journals `memory` (the retained messages
 * and counters the broker holds), as `BrokerCore.rewriteStore` journals the broker's state.
 */
async function setUp(dir: string) {
  let now = 1_000_000;
  const log = new MemoryLogger();
  const store = SqliteStore.open(`${dir}/state.db`, { maxBytes: 256 * 1024, sync: "normal" });
  const memory = new Map<string, MessageRecord>();
  let rewrites = 0;
  const writer: StoreWriter = new StoreWriter(store, log, {
    now: () => now,
    rewrite: () => {
      rewrites++;
      writer.write({ type: "clear" });
      for (const message of memory.values()) writer.write({ type: "putRetained", message });
    },
  });
  /** Journals a retained message, as the core does, and keeps it in `memory`. */
  const retain = (message: MessageRecord) => {
    memory.set(message.topic, message);
    writer.write({ type: "putRetained", message });
  };
  const forget = (topic: string) => {
    memory.delete(topic);
    writer.write({ type: "deleteRetained", topic });
  };
  // Most of the file is taken by what is committed first.
  for (let i = 1; i <= 10; i++) {
    const mark = writer.emitted;
    retain(retained(`r/${i}`, 16 * 1024));
    await writer.committed(mark);
  }
  assert.equal(writer.failed, false);
  return {
    log,
    writer,
    memory,
    retain,
    forget,
    rewrites: () => rewrites,
    advance: (ms: number) => now += ms,
  };
}

test("SqliteStore.reportFailures tells of a failed write nobody waits for, and of a waited one before its commit settles", async () => {
  await using dir = await tempDir("amqtt-unwaited-");
  await using store = SqliteStore.open(`${dir.path}/state.db`, { maxBytes: 64 * 1024 });
  const events: string[] = [];
  store.reportFailures((error) => events.push(`listener: ${(error as Error).name}`));
  const put = (topic: string, bytes: number): StoreMutation[] => [
    { type: "putRetained", message: retained(topic, bytes) },
  ];
  // Nobody waits for this write; the next one works and its commit resolves.
  store.apply(put("big", 128 * 1024));
  await turn();
  store.apply(put("small", 10));
  await store.commit();
  assert.deepEqual(events, ["listener: StoreError"]);
  // A waited write: the listener first, then the commit's waiters.
  store.apply(put("big2", 128 * 1024));
  const waited = store.commit().catch(() => events.push("waiter"));
  await waited;
  assert.deepEqual(events, ["listener: StoreError", "listener: StoreError", "waiter"]);
  await store.close();
  await using reopened = SqliteStore.open(`${dir.path}/state.db`);
  const state = await reopened.load(Date.now());
  assert.deepEqual(state.retained.map((r) => r.topic), ["small"]);
});

test("StoreWriter: a failed write nobody waited for, then one that works, starts the outage, refuses what depended on it, and the rewrite stores it", async () => {
  await using dir = await tempDir("amqtt-unwaited-");
  const { log, writer, retain, forget, rewrites, advance } = await setUp(dir.path);
  // A batch whose write fails (no room for 120 KiB) and nothing waits for (a cluster node's
  // replay, a batch held back), then a batch whose write works, in the next turn.
  const lostFrom = writer.emitted;
  retain(retained("lost", 120 * 1024));
  await turn();
  const keptFrom = writer.emitted;
  writer.write({ type: "setCounter", name: "clients/maximum", value: 4 });
  await writer.committed(keptFrom);

  assert.equal(writer.failed, true, "the outage started");
  assert.equal(writer.failures, 1, "the failure counts, once");
  assert.equal(writer.outages, 1);
  assert.equal(count(log, "Cannot write to the store"), 1, "logged");
  // A reply depending on the lost batch (its PUBACK, say) is refused, even asked for now.
  await assert.rejects(Promise.resolve(writer.committed(lostFrom)), { name: "StoreError" });
  assert.equal(writer.committed(keptFrom), undefined, "what came after it is stored");

  // Room is made; the probe (as large as the lost message) works and the rewrite stores the
  // state held in memory, the lost message with it.
  const mark = writer.emitted;
  for (let i = 1; i <= 9; i++) forget(`r/${i}`);
  await writer.committed(mark)?.catch(() => {});
  advance(1_000);
  assert.equal(await writer.probe(), true);
  assert.equal(rewrites(), 1);
  assert.equal(writer.failed, false);
  assert.equal(count(log, "Writes to the store"), 1);
  // Once the state is written again, what the failure lost is stored: not refused any more.
  assert.equal(writer.committed(lostFrom), undefined);
  await writer.close();

  await using reopened = SqliteStore.open(`${dir.path}/state.db`);
  const state = await reopened.load(Date.now());
  assert.deepEqual(state.retained.map((r) => r.topic).sort(), ["lost", "r/10"]);
  assert.equal(state.retained.find((r) => r.topic === "lost")?.payload.length, 120 * 1024);
});

test("StoreWriter: a commit asked for after an unwaited write failed is refused for what that write held, though the write it waits for works", async () => {
  await using dir = await tempDir("amqtt-unwaited-");
  const { writer, retain } = await setUp(dir.path);
  // What a connection whose reply waits on other answers (receive authorizations) does: its
  // batch is written in one turn, its commit is asked for in a later one.
  const from = writer.emitted;
  retain(retained("lost", 120 * 1024));
  await turn();
  writer.write({ type: "setCounter", name: "clients/maximum", value: 4 });
  await assert.rejects(Promise.resolve(writer.committed(from)), { name: "StoreError" });
  assert.equal(writer.failures, 1, "counted once");
  await writer.close();
});

test("StoreWriter: a waited write that fails counts once, though the store reports it too", async () => {
  await using dir = await tempDir("amqtt-unwaited-");
  const { log, writer, retain } = await setUp(dir.path);
  for (let i = 0; i < 3; i++) {
    const from = writer.emitted;
    retain(retained(`big/${i}`, 120 * 1024));
    await assert.rejects(Promise.resolve(writer.committed(from)), { name: "StoreError" });
  }
  assert.equal(writer.failures, 3);
  assert.equal(writer.outages, 1);
  assert.equal(count(log, "Cannot write to the store"), 1);
  await writer.close();
});

test("StoreWriter over a store writing in a worker: a commit whose write works is refused when an earlier write failed meanwhile", async () => {
  await using dir = await tempDir("amqtt-unwaited-");
  const store = await SqliteWorkerStore.open(`${dir.path}/state.db`, { maxBytes: 64 * 1024 });
  const writer = new StoreWriter(store, new MemoryLogger());
  // A batch whose write fails goes to the worker at the end of this turn, nobody waiting.
  const from = writer.emitted;
  writer.write({ type: "putRetained", message: retained("lost", 128 * 1024) });
  await turn();
  // A read makes the worker write it before what comes next (which then has a write of its
  // own, that works): the commit asked for now, while the failed write is under way, covers
  // the lost batch.
  // (The read fails when it is what writes the failed batch.)
  const read = store.load(Date.now()).catch(() => undefined);
  writer.write({ type: "setCounter", name: "clients/maximum", value: 4 });
  const pending = writer.committed(from);
  assert.ok(pending !== undefined);
  await assert.rejects(pending, { name: "StoreError" });
  assert.equal((await read)?.retained.length ?? 0, 0, "the lost batch is not stored");
  assert.equal(writer.failed, true);
  assert.equal(writer.failures, 1);
  await writer.close();
  await using reopened = SqliteStore.open(`${dir.path}/state.db`);
  const state = await reopened.load(Date.now());
  assert.equal(state.counters.get("clients/maximum"), 4, "the later write worked");
});
