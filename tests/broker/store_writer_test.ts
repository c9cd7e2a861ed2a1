// StoreWriter: what it hands to the store and when. With `holdMs`, batches nothing waits for are
// held back until a commit is asked for (then they go first, in order, in the same write) or
// until the hold ends; close writes them.
import assert from "node:assert/strict";
import { StoreWriter } from "../../src/broker/store_writer.ts";
import { MemoryStore } from "../../src/store/memory_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { StoreError } from "../../src/store/store_error.ts";

const log = { debug() {}, info() {}, warning() {}, error() {} };

/** A memory store that records the batches it was given. */
class RecordingStore extends MemoryStore {
  readonly batches: StoreMutation[][] = [];
  override apply(batch: readonly StoreMutation[]): void {
    this.batches.push([...batch]);
    super.apply(batch);
  }
}

const counter = (value: number): StoreMutation => ({
  type: "setCounter",
  name: "n",
  value,
});

// One macrotask: enough, as the writer hands a turn's batch to the store in a microtask
// (`queueMicrotask`), and every microtask runs before the next macrotask. (The recording store's
// `apply` records the batch at once; no store write at an immediate is waited for here.)
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test({
  name: "StoreWriter without holdMs hands each turn's batch to the store in that turn",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new RecordingStore();
    const writer = new StoreWriter(store, log);
    writer.write(counter(1));
    await turn();
    assert.deepEqual(store.batches, [[counter(1)]]);
    await writer.close();
  },
});

Deno.test({
  name:
    "StoreWriter with holdMs holds batches nothing waits for until a commit is asked for, then hands them over first and in order",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new RecordingStore();
    const writer = new StoreWriter(store, log, { holdMs: 60_000 });
    writer.write(counter(1));
    await turn();
    writer.write(counter(2));
    await turn();
    assert.deepEqual(store.batches, [], "held: nothing waits for them");
    writer.write(counter(3));
    const committed = writer.committed(0);
    assert.ok(committed !== undefined);
    // The batches stay apart (a message is kept only when a delivery of its own batch holds it).
    assert.deepEqual(store.batches, [[counter(1)], [counter(2)], [counter(3)]]);
    await committed;
    assert.equal(writer.committed(writer.emitted), undefined, "everything is committed");
    await writer.close();
  },
});

Deno.test({
  name:
    "StoreWriter with holdMs hands held batches over when the hold ends, and close writes what is held",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new RecordingStore();
    const writer = new StoreWriter(store, log, { holdMs: 1 });
    writer.write(counter(1));
    for (let i = 0; i < 200 && store.batches.length === 0; i++) await turn();
    assert.deepEqual(store.batches, [[counter(1)]]);

    const store2 = new RecordingStore();
    const writer2 = new StoreWriter(store2, log, { holdMs: 60_000 });
    writer2.write(counter(2));
    await turn();
    assert.deepEqual(store2.batches, []);
    await writer2.close();
    assert.deepEqual(store2.batches, [[counter(2)]]);
    await writer.close();
  },
});

Deno.test({
  name:
    "StoreWriter with holdMs hands held batches over with the first batch that comes after the hold ends, without waiting for its timer",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new RecordingStore();
    let now = 1_000;
    const writer = new StoreWriter(store, log, { holdMs: 10, now: () => now });
    writer.write(counter(1));
    await turn();
    now += 9;
    writer.write(counter(2));
    await turn();
    assert.deepEqual(store.batches, [], "held for less than holdMs");
    now += 1;
    writer.write(counter(3));
    await turn();
    // The clock is made up: no timer ran (it would fire after 10 × holdMs of real time).
    assert.deepEqual(store.batches, [[counter(1)], [counter(2)], [counter(3)]]);
    await store.commit();
    assert.equal(writer.committed(writer.emitted), undefined, "everything is committed");
    await writer.close();
  },
});

Deno.test({
  name:
    "StoreWriter with holdMs: a commit asked for after the hold ran out is one write, and its failure one failed write (a SQLite file without room)",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "amqtt-hold-" });
    try {
      const store = SqliteStore.open(`${dir}/state.db`, { maxBytes: 64 * 1024, sync: "normal" });
      let now = 1_000;
      const writer = new StoreWriter(store, log, { holdMs: 10, now: () => now });
      writer.write(counter(1));
      await turn();
      now += 10;
      const mark = writer.emitted;
      writer.write({
        type: "putRetained",
        message: { topic: "big", payload: new Uint8Array(256 * 1024), qos: 0, retain: true },
      });
      await assert.rejects(Promise.resolve(writer.committed(mark)));
      assert.equal(writer.failed, true, "an outage");
      assert.equal(writer.failures, 1, "one write failed");
      await writer.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A memory store whose next commit is applied but for a session another cluster node writes, as
 * `RedisStore` answers it (`StoreError` kind `taken`).
 */
class TakingStore extends MemoryStore {
  readonly refusesTaken = true;
  takeNext = false;
  /** @param sessions the sessions the refusal names (none: not said) */
  constructor(readonly sessions?: readonly string[]) {
    super();
  }
  override commit(): Promise<void> {
    const done = super.commit();
    if (!this.takeNext) return done;
    this.takeNext = false;
    return done.then(() => {
      throw new StoreError('Cannot write store x: the sessions of "s" are written by other nodes', {
        kind: "taken",
        sessions: this.sessions,
      });
    });
  }
}

Deno.test({
  name:
    "StoreWriter refuses what a commit applied but for a session another node writes covered, to its waiters and to later callers whose mark is older, without an outage",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new TakingStore();
    const writer = new StoreWriter(store, log);
    writer.write(counter(1));
    store.takeNext = true;
    const isTaken = (e: unknown) => e instanceof StoreError && e.kind === "taken";
    await assert.rejects(writer.committed(0)!, isTaken, "its waiter is refused");
    await assert.rejects(writer.committed(0)!, isTaken, "and a caller asking later with mark 0");
    assert.equal(writer.failed, false, "no outage: the rest of the write is stored");
    const mark = writer.emitted;
    assert.equal(writer.committed(mark), undefined, "the rest is committed");
    writer.write(counter(2));
    await writer.committed(mark);
    await writer.close();
  },
});

Deno.test({
  name:
    "StoreWriter refuses, of a commit applied but for a session another node writes, only the waiters whose mark is older than that session's last mutation, not every waiter of the commit",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new TakingStore(["moved"]);
    const writer = new StoreWriter(store, log);
    const session = (clientId: string): StoreMutation => ({
      type: "putInbound",
      clientId,
      packetId: 1,
    });
    // One commit: a publisher's message for the moved session, then another's for a session
    // of this node, each waiter with its mark from before its own mutation.
    const before = writer.emitted;
    writer.write(session("moved"));
    const innocent = writer.emitted;
    writer.write(session("here"));
    store.takeNext = true;
    const isTaken = (e: unknown) => e instanceof StoreError && e.kind === "taken";
    const refused = writer.committed(before)!;
    const stored = writer.committed(innocent)!;
    await assert.rejects(refused, isTaken, "the waiter whose part covers the moved session");
    await stored; // before: refused too (a 3.1.1 publisher closed for another's message)
    await assert.rejects(writer.committed(before)!, isTaken, "and a later caller that old");
    assert.equal(writer.committed(innocent), undefined, "not one newer");
    assert.equal(writer.failed, false);
    await writer.close();
  },
});

Deno.test({
  name:
    "StoreWriter keeps a bounded record of which session each mutation was for: past it, a commit refused for a session another node writes refuses every waiter it covered",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const store = new TakingStore(["moved"]);
    const writer = new StoreWriter(store, log);
    writer.write({ type: "putInbound", clientId: "moved", packetId: 1 });
    const later = writer.emitted;
    // More mutations than the record keeps, with no commit asked for meanwhile.
    for (let i = 0; i < 70_000; i++) {
      writer.write({ type: "putInbound", clientId: "here", packetId: 1 + (i % 60_000) });
    }
    store.takeNext = true;
    const isTaken = (e: unknown) => e instanceof StoreError && e.kind === "taken";
    // The moved session's mutation is forgotten: refused to be safe, though journaled earlier.
    await assert.rejects(writer.committed(later)!, isTaken);
    await writer.close();
  },
});
