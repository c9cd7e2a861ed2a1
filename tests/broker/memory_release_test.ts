// Memory given back after many connections close: the broker asks V8 for one full collection once a
// large share of its connections has gone (src/broker/_memory_release.ts).

import assert from "node:assert/strict";
import { exposedGc, MemoryRelease, RELEASE_MIN_DROP } from "../../src/broker/_memory_release.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";

/** A collector that counts its calls. */
function counting(): { collect: () => void; readonly calls: number } {
  let calls = 0;
  return {
    collect: () => void calls++,
    get calls() {
      return calls;
    },
  };
}

Deno.test("MemoryRelease collects once the count has stopped falling after half the peak and minDrop connections went", () => {
  const c = counting();
  const release = new MemoryRelease({ collect: c.collect, minDrop: 100, minInterval: 1000 });
  assert.equal(release.observe(0, 0), false);
  assert.equal(release.observe(400, 500), false);
  // Still closing: no collection while the count falls.
  assert.equal(release.observe(250, 1000), false);
  assert.equal(release.observe(150, 1500), false);
  assert.equal(c.calls, 0);
  // The count stopped falling: one collection for the whole drop.
  assert.equal(release.observe(150, 2000), true);
  assert.equal(c.calls, 1);
  // The peak starts again from what is left.
  assert.equal(release.observe(150, 5000), false);
  assert.equal(release.observe(100, 5500), false);
  assert.equal(release.observe(100, 6000), false);
  assert.equal(c.calls, 1);
});

Deno.test("MemoryRelease does not collect for a drop below minDrop or below half of the peak", () => {
  const c = counting();
  const release = new MemoryRelease({ collect: c.collect, minDrop: 100, minInterval: 0 });
  release.observe(150, 0);
  release.observe(60, 1); // 90 gone: fewer than minDrop
  assert.equal(release.observe(60, 2), false);
  release.observe(1000, 3);
  release.observe(600, 4); // 400 gone: fewer than half of 1000
  assert.equal(release.observe(600, 5), false);
  assert.equal(c.calls, 0);
  release.observe(499, 6);
  assert.equal(release.observe(499, 7), true);
  assert.equal(c.calls, 1);
});

Deno.test("MemoryRelease waits minInterval between two collections", () => {
  const c = counting();
  const release = new MemoryRelease({ collect: c.collect, minDrop: 10, minInterval: 1000 });
  release.observe(100, 0);
  release.observe(0, 100);
  assert.equal(release.observe(0, 200), true);
  release.observe(100, 300);
  release.observe(0, 400);
  assert.equal(release.observe(0, 500), false);
  assert.equal(release.observe(0, 1199), false);
  assert.equal(release.observe(0, 1200), true);
  assert.equal(c.calls, 2);
});

Deno.test("MemoryRelease trims after each collection and times the trim apart; no trim when only a collector is given", () => {
  const calls: string[] = [];
  const release = new MemoryRelease({
    collect: () => void calls.push("collect"),
    trim: () => calls.push("trim"),
    minDrop: 10,
    minInterval: 0,
  });
  assert.equal(release.lastTrimMs, undefined);
  release.observe(20, 0);
  release.observe(5, 1);
  assert.equal(release.observe(5, 2), true);
  assert.deepEqual(calls, ["collect", "trim"]);
  assert.equal(typeof release.lastTrimMs, "number");
  assert.ok(release.lastTrimMs! >= 0);
  const only = new MemoryRelease({ collect: () => void calls.push("only"), minDrop: 10 });
  only.observe(20, 0);
  only.observe(5, 1);
  assert.equal(only.observe(5, 2), true);
  assert.deepEqual(calls, ["collect", "trim", "only"]);
  assert.equal(only.lastTrimMs, undefined);
});

Deno.test("MemoryRelease defers the trim after a collection to the first quiet sweep, at most trimWaitMax", () => {
  const calls: string[] = [];
  const release = new MemoryRelease({
    collect: () => void calls.push("collect"),
    trim: () => calls.push("trim"),
    minDrop: 10,
    minInterval: 0,
    trimWaitMax: 1000,
  });
  release.observe(20, 0, false);
  release.observe(5, 500, false);
  // Busy: the collection runs, its trim waits.
  assert.equal(release.observe(5, 1000, false), true);
  assert.deepEqual(calls, ["collect"]);
  assert.equal(release.lastTrimMs, undefined);
  assert.equal(release.trimWaiting, true);
  assert.equal(release.observe(5, 1500, false), false);
  assert.deepEqual(calls, ["collect"]);
  // The first quiet sweep trims.
  assert.equal(release.observe(5, 1600, true), false);
  assert.deepEqual(calls, ["collect", "trim"]);
  assert.equal(typeof release.lastTrimMs, "number");
  assert.equal(release.trimWaiting, false);
  // Reported once: the next sweep ran none.
  release.observe(5, 1700, true);
  assert.equal(release.lastTrimMs, undefined);
  assert.deepEqual(calls, ["collect", "trim"]);
  // Never quiet: trimmed trimWaitMax after the collection, not before.
  release.observe(30, 2000, false);
  release.observe(5, 2500, false);
  assert.equal(release.observe(5, 3000, false), true);
  assert.equal(release.observe(5, 3999, false), false);
  assert.deepEqual(calls, ["collect", "trim", "collect"]);
  release.observe(5, 4000, false);
  assert.deepEqual(calls, ["collect", "trim", "collect", "trim"]);
});

Deno.test("MemoryRelease trims trimWaitMax after the first collection on a broker never quiet, however many collections follow", () => {
  const calls: string[] = [];
  const release = new MemoryRelease({
    collect: () => void calls.push("collect"),
    trim: () => calls.push("trim"),
    minDrop: 10,
    minInterval: 0,
    trimWaitMax: 1000,
  });
  // A storm of connections and closes every 400 ms, traffic never stops: a collection each time.
  let now = 0;
  for (let round = 0; round < 3; round++) {
    release.observe(30, now, false);
    release.observe(5, now + 100, false);
    assert.equal(release.observe(5, now + 200, false), true);
    now += 400;
  }
  // Collections at 200, 600 and 1000: the first one's trim is due at 1200, not 1000 after the last.
  assert.deepEqual(calls, ["collect", "collect", "collect"]);
  assert.equal(release.observe(5, 1199, false), false);
  assert.deepEqual(calls, ["collect", "collect", "collect"]);
  release.observe(5, 1200, false);
  assert.deepEqual(calls, ["collect", "collect", "collect", "trim"]);
  assert.equal(release.trimWaiting, false);
});

Deno.test("exposedGc is V8's full collection: an object nothing references is collected", async () => {
  const gc = exposedGc();
  assert.ok(gc !== undefined);
  const ref = (() => new WeakRef({ big: new Array(1000).fill(1) }))();
  // A WeakRef's target is kept until the end of the job that made it (or last dereferenced it).
  await delay(0);
  gc();
  assert.equal(ref.deref(), undefined);
});

/**
 * Runs `exposedGc` in a child Deno started with `--v8-flags=--expose-gc` (`globalThis.gc` is V8's
 * own then) after it made ~60 MB of objects in the old generation and dropped 19 in 20 of them, and
 * returns the heap it kept committed after the collection (MB).
 */
async function committedAfterCollect(): Promise<number> {
  const module = new URL("../../src/broker/_memory_release.ts", import.meta.url).href;
  const code = `
    import { exposedGc } from ${JSON.stringify(module)};
    let garbage = [];
    const kept = [];
    for (let i = 0; i < 8000; i++) {
      const conn = [];
      for (let k = 0; k < 40; k++) conn.push({ a: k, b: [k], c: "x" + k });
      garbage.push(conn);
      // One in 20 stays, spread over the heap's pages as the connections still open are.
      if (i % 20 === 0) kept.push(conn);
    }
    await new Promise((r) => setTimeout(r, 100));
    garbage = undefined;
    exposedGc()();
    console.log(Deno.memoryUsage().heapTotal / 2 ** 20, kept.length);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return Number(new TextDecoder().decode(out.stdout).trim().split(" ")[0]);
}

Deno.test("exposedGc gives the heap back also where globalThis.gc is V8's own (--expose-gc at start)", async () => {
  // V8's plain gc() frees the garbage but keeps the pages the survivors are spread over (~60 MB).
  const committed = await committedAfterCollect();
  assert.ok(committed < 20, `${committed.toFixed(1)} MB of heap still committed`);
});

/**
 * Connects `count` MQTT 3.1.1 clients (keepalive 600 s) to the broker at `port`, each answered by
 * CONNACK 0; their client ids are `prefix` and a number.
 */
async function connectMany(port: number, count: number, prefix = "m"): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < count; i += 50) {
      conns.push(
        ...await Promise.all(Array.from({ length: Math.min(50, count - i) }, async (_, k) => {
          const c = await Deno.connect({ hostname: "127.0.0.1", port });
          conns.push(c);
          const id = new TextEncoder().encode(`${prefix}${i + k}`);
          // CONNECT, MQTT 3.1.1, clean session, keepalive 600 s.
          await c.write(
            new Uint8Array([
              0x10,
              12 + id.length,
              0,
              4,
              77,
              81,
              84,
              84,
              4,
              2,
              2,
              88,
              0,
              id.length,
              ...id,
            ]),
          );
          const connack = new Uint8Array(4);
          for (let got = 0; got < 4;) got += (await c.read(connack.subarray(got)))!;
          assert.deepEqual([...connack], [0x20, 2, 0, 0]);
          return c;
        })),
      );
    }
  } catch (error) {
    for (const c of new Set(conns)) c.close();
    throw error;
  }
  return [...new Set(conns)];
}

/** Asserts that `conn` is still served: PINGREQ answered by PINGRESP. */
async function assertServed(conn: Deno.TcpConn): Promise<void> {
  await conn.write(new Uint8Array([0xc0, 0]));
  const pong = new Uint8Array(2);
  assert.equal(await conn.read(pong), 2);
  assert.deepEqual([...pong], [0xd0, 0]);
}

Deno.test("Broker collects the garbage once after most of its connections have closed", async () => {
  await using b = await startBroker();
  const count = RELEASE_MIN_DROP + 100;
  const conns = await connectMany(b.port, count);
  try {
    await waitFor(() => b.broker.stats.clientsConnected === count, 60_000, "every client");
    // The sweep (every 500 ms) samples the peak.
    await delay(1100);
    assert.equal(b.log.has("collected the garbage"), false);
    // All but 10 go; the broker's sweep notices when the count has stopped falling.
    for (const c of conns.splice(10)) c.close();
    await waitFor(() => b.log.has("collected the garbage"), 60_000, "the collection");
    assert.ok(b.log.has("10 connections left"));
    // Run with -A on Linux: glibc's trim followed, and its pause is told apart.
    if (Deno.build.os === "linux") {
      assert.ok(b.log.has("of it giving the C allocator's free pages back"), "the trim logged");
    }
    // The ones left are still served.
    await assertServed(conns[0]!);
  } finally {
    for (const c of conns) c.close();
  }
});

Deno.test("Broker with releaseMemory: false never asks V8 for a collection, however many connections close", async () => {
  await using b = await startBroker({}, { releaseMemory: false });
  const count = RELEASE_MIN_DROP + 100;
  const conns = await connectMany(b.port, count);
  try {
    await waitFor(() => b.broker.stats.clientsConnected === count, 60_000, "every client");
    await delay(1100);
    for (const c of conns.splice(10)) c.close();
    await waitFor(() => b.broker.stats.clientsConnected === 10, 60_000, "the closes");
    // Three sweeps with the count steady: the on case collects at the second.
    await delay(1600);
    assert.equal(b.log.has("collected the garbage"), false);
    // The ones left are still served.
    await assertServed(conns[0]!);
  } finally {
    for (const c of conns) c.close();
  }
});

Deno.test("Broker collects by a monotonic clock: after the wall clock steps back an hour, the next drop is still collected", async () => {
  // The wall clock as the broker reads it, stepped by hand below (NTP, a VM resumed).
  const wall = Date.now;
  let step = 0;
  Date.now = () => wall() + step;
  try {
    await using b = await startBroker();
    const collections = () =>
      b.log.lines.filter((l) => l.message.includes("collected the garbage"));
    const count = RELEASE_MIN_DROP + 100;
    let conns = await connectMany(b.port, count);
    try {
      await waitFor(() => b.broker.stats.clientsConnected === count, 60_000, "every client");
      await delay(1100);
      for (const c of conns.splice(10)) c.close();
      await waitFor(() => collections().length === 1, 60_000, "the first collection");
      step = -3_600_000;
      // A second storm: collected RELEASE_MIN_INTERVAL_MS (10 s) after the first by the broker's
      // clock, not an hour and 10 s later by the wall clock.
      const more = await connectMany(b.port, count, "n");
      conns = [...conns, ...more];
      await waitFor(() => b.broker.stats.clientsConnected === count + 10, 60_000, "every client");
      await delay(1100);
      for (const c of more) c.close();
      conns = conns.slice(0, 10);
      await waitFor(() => collections().length === 2, 60_000, "the second collection");
      await assertServed(conns[0]!);
    } finally {
      for (const c of conns) c.close();
    }
  } finally {
    Date.now = wall;
  }
});
