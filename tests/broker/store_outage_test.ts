/**
 * The store writer's failure state over a real SQLite file at its size limit, with a made-up
 * clock: one outage per failure, logged once, probes spaced by a growing back-off, left once
 * when a write as large as the failed message works again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { StoreOutage } from "../../src/broker/store_outage.ts";
import { StoreWriter } from "../../src/broker/store_writer.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { MemoryLogger } from "../_helpers/broker.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

function count(log: MemoryLogger, needle: string): number {
  return log.lines.filter((l) => l.message.includes(needle)).length;
}

test("StoreOutage: entered once, probes back off from 1 s doubling to 10 s, left once", () => {
  const outage = new StoreOutage();
  assert.equal(outage.recovered(), false, "no outage to leave");
  assert.equal(outage.failed(100, 500), true);
  assert.equal(outage.failed(200, 16_384), false, "the same outage");
  assert.equal(outage.failed(300, 10), false);
  assert.equal(outage.probeBytes, 16_384, "the largest message that failed");
  const waits: number[] = [];
  let now = 100;
  let last = 100;
  for (let i = 0; i < 8; i++) {
    while (!outage.probeDue(now)) now++;
    waits.push(now - last);
    outage.probeFailed(now);
    last = now;
  }
  assert.deepEqual(waits, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000, 10_000]);
  assert.equal(outage.recovered(), true);
  assert.equal(outage.recovered(), false, "left once");
  assert.equal(outage.down, false);
  assert.equal(outage.probeDue(now + 1e9), false, "no probe while the store works");
  assert.equal(outage.failed(now, 1), true, "a new outage");
  assert.equal(outage.episodes, 2);
  assert.equal(outage.probeBytes, 1, "sized by the new outage's messages");
});

test("StoreWriter: a full file is one outage; small writes that work do not end it; a probe as large as the failed message does, once", async () => {
  await using dir = await tempDir("amqtt-outage-");
  let now = 1_000_000;
  const log = new MemoryLogger();
  const store = SqliteStore.open(`${dir.path}/state.db`, { maxBytes: 256 * 1024, sync: "normal" });
  const writer = new StoreWriter(store, log, { now: () => now });
  const big = new Uint8Array(16 * 1024).fill(0x2e);
  let stored = 0;
  for (let i = 1; i <= 100 && !writer.failed; i++) {
    const mark = writer.emitted;
    writer.write({
      type: "putRetained",
      message: { topic: `r/${i}`, payload: big, qos: 0, retain: true },
    });
    try {
      await writer.committed(mark);
      stored = i;
    } catch {
      // The file is full.
    }
  }
  assert.ok(writer.failed, "the file filled up");
  assert.ok(stored > 3, `some messages fit first (${stored})`);
  assert.equal(count(log, "Cannot write to the store"), 1);

  // A small write still fits, and works: the outage goes on all the same.
  const mark = writer.emitted;
  writer.write({ type: "setCounter", name: "clients/maximum", value: 7 });
  await writer.committed(mark);
  assert.equal(writer.failed, true, "a small write that works does not end the outage");
  // Big writes fail again: counted, not logged again.
  const failuresBefore = writer.failures;
  for (let i = 0; i < 3; i++) {
    const m = writer.emitted;
    writer.write({
      type: "putRetained",
      message: { topic: `again/${i}`, payload: big, qos: 0, retain: true },
    });
    await assert.rejects(Promise.resolve(writer.committed(m)));
  }
  assert.equal(writer.failures, failuresBefore + 3);

  // Probes: none before the back-off; one that finds no room waits twice as long next time.
  assert.equal(writer.probe(now + 999), undefined, "no probe before 1 s");
  now += 1_000;
  assert.equal(await writer.probe(now), false, "no room for 16 KiB yet");
  assert.equal(writer.probe(now + 1_999), undefined, "back-off: 2 s");
  assert.equal(writer.failed, true);

  // Room is made (the retained messages are cleared): the next due probe ends the outage.
  const m = writer.emitted;
  for (let i = 1; i <= stored; i++) writer.write({ type: "deleteRetained", topic: `r/${i}` });
  await writer.committed(m)?.catch(() => {});
  now += 2_000;
  assert.equal(await writer.probe(now), true, "a 16 KiB write fits again");
  assert.equal(writer.failed, false);
  assert.equal(writer.probe(now + 1e9), undefined, "no probe while writes work");
  assert.equal(count(log, "Cannot write to the store"), 1, "one failure line");
  assert.equal(count(log, "Writes to the store"), 1, "one recovery line");
  assert.equal(writer.outages, 1);
  await writer.close();

  // The probe left nothing behind; what was committed is there.
  await using reopened = SqliteStore.open(`${dir.path}/state.db`);
  const state = await reopened.load(Date.now());
  assert.equal(state.messages.size, 0, "no probe message kept");
  assert.equal(state.counters.get("clients/maximum"), 7);
  assert.deepEqual(state.retained.map((r) => r.topic), [], "the cleared retained messages");
});

test("StoreWriter: after an outage the store is rewritten before writes count as working again; a QoS 2 id whose write failed is stored only then", async () => {
  await using dir = await tempDir("amqtt-rewrite-");
  let now = 1_000_000;
  const log = new MemoryLogger();
  const store = SqliteStore.open(`${dir.path}/state.db`, { maxBytes: 256 * 1024, sync: "normal" });
  const big = new Uint8Array(16 * 1024).fill(0x2e);
  let rewrites = 0;
  const writer: StoreWriter = new StoreWriter(store, log, {
    now: () => now,
    rewrite: () => {
      rewrites++;
      writer.write({ type: "clear" });
      // The first rewrite is larger than the file: it fails like a probe.
      const payload = rewrites === 1 ? new Uint8Array(300 * 1024) : new Uint8Array([1]);
      writer.write({
        type: "putRetained",
        message: { topic: "kept", payload, qos: 0, retain: true },
      });
    },
  });
  const session = {
    clientId: "c",
    protocolVersion: 4,
    clean: false,
    expiryInterval: undefined,
    offlineSince: undefined,
  } as const;
  let mark = writer.emitted;
  writer.write({ type: "putSession", session });
  writer.write({ type: "putInbound", clientId: "c", packetId: 8 });
  await writer.committed(mark);
  let stored = 0;
  for (let i = 1; i <= 100 && !writer.failed; i++) {
    mark = writer.emitted;
    writer.write({
      type: "putRetained",
      message: { topic: `r/${i}`, payload: big, qos: 0, retain: true },
    });
    await writer.committed(mark)?.then(() => stored = i, () => {});
  }
  assert.ok(writer.failed, "the file filled up");
  // QoS 2 ids in writes that failed; one of them released by a PUBREL later.
  for (const packetId of [9, 10]) {
    mark = writer.emitted;
    writer.write({ type: "putInbound", clientId: "c", packetId });
    writer.write({
      type: "putRetained",
      message: { topic: `q/${packetId}`, payload: big, qos: 0, retain: true },
    });
    await assert.rejects(Promise.resolve(writer.committed(mark)));
  }
  writer.write({ type: "deleteInbound", clientId: "c", packetId: 10 });
  assert.equal(writer.stored("c", 8), undefined, "committed before the outage");
  assert.equal(writer.stored("c", 10), undefined, "released: a PUBLISH with it is new work");
  let settled = false;
  const waiting = writer.stored("c", 9);
  assert.ok(waiting !== undefined, "its write failed");
  waiting.then(() => settled = true);

  // Room is made; the probe works, but the first rewrite does not fit: still in the outage.
  mark = writer.emitted;
  for (let i = 1; i <= stored; i++) writer.write({ type: "deleteRetained", topic: `r/${i}` });
  await writer.committed(mark)?.catch(() => {});
  now += 1_000;
  assert.equal(await writer.probe(now), false, "the rewrite failed");
  assert.deepEqual([rewrites, writer.failed, settled], [1, true, false]);
  assert.equal(count(log, "Writes to the store"), 0);
  now += 2_000;
  assert.equal(await writer.probe(now), true, "the second rewrite fits");
  await waiting;
  assert.deepEqual([rewrites, writer.failed, settled], [2, false, true]);
  assert.equal(writer.stored("c", 9), undefined);
  assert.equal(count(log, "Writes to the store"), 1, "one recovery line, after the rewrite");
  await writer.close();

  // The file holds what the rewrite wrote, nothing of before but the counters.
  await using reopened = SqliteStore.open(`${dir.path}/state.db`);
  const state = await reopened.load(Date.now());
  assert.deepEqual(state.retained.map((r) => r.topic), ["kept"]);
  assert.deepEqual(state.sessions, []);
});

test("StoreWriter: by default its probes go by a monotonic clock, so a step back of the wall clock during an outage does not put them off", async () => {
  // The wall clock as the writer would read it, stepped by hand below (NTP, a VM resumed).
  const wall = Date.now;
  let step = 0;
  Date.now = () => wall() + step;
  try {
    await using dir = await tempDir("amqtt-outage-");
    const log = new MemoryLogger();
    const store = SqliteStore.open(`${dir.path}/state.db`, {
      maxBytes: 256 * 1024,
      sync: "normal",
    });
    // The default clock; a short back-off so that the test waits a few ms of real time.
    const writer = new StoreWriter(store, log, { outage: { firstProbeMs: 20, maxProbeMs: 20 } });
    const big = new Uint8Array(16 * 1024).fill(0x2e);
    let stored = 0;
    for (let i = 1; i <= 100 && !writer.failed; i++) {
      const mark = writer.emitted;
      writer.write({
        type: "putRetained",
        message: { topic: `r/${i}`, payload: big, qos: 0, retain: true },
      });
      try {
        await writer.committed(mark);
        stored = i;
      } catch {
        // The file is full.
      }
    }
    assert.ok(writer.failed, "the file filled up");
    const m = writer.emitted;
    for (let i = 1; i <= stored; i++) writer.write({ type: "deleteRetained", topic: `r/${i}` });
    await writer.committed(m)?.catch(() => {});
    // The wall clock steps back an hour; the back-off passes meanwhile.
    step = -3_600_000;
    await new Promise((resolve) => setTimeout(resolve, 40));
    const probe = writer.probe();
    assert.ok(
      probe !== undefined,
      "the probe is due 20 ms after the failure, whatever the wall clock",
    );
    assert.equal(await probe, true, "a 16 KiB write fits again");
    assert.equal(writer.failed, false);
    await writer.close();
  } finally {
    Date.now = wall;
  }
});
