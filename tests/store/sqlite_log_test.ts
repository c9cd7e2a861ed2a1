// The SQLite store's log: one row per commit, replayed at start-up, folded into the tables by
// compaction (atomically, also when a fold fails or the process is killed around one), and a
// damaged or newer log row refused at start-up with one error line.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { decodeLogRow, LOG_FORMAT, LogEncoder, LogRowError } from "../../src/store/_log_codec.ts";
import { message, session } from "./_conformance.ts";
import {
  assertOpenFails,
  assertUntouched,
  assertWriterCommits,
  copyAsCrashed,
  killWriterAfter,
  logRows,
  withDir,
} from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;

/** Row counts of a (closed or copied) store file. */
function counts(path: string): { log: number; messages: number; outbound: number } {
  const db = new DatabaseSync(path);
  try {
    const n = (table: string) =>
      db.prepare(`SELECT count(*) AS n FROM ${table}`).get()!.n as number;
    return { log: logRows(path).rows, messages: n("messages"), outbound: n("outbound") };
  } finally {
    db.close();
  }
}

/** One QoS 1 message to "a": stored, queued as sent, and the one `ackLag` before acknowledged. */
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

Deno.test("SqliteStore log: a commit is one log row; messages acknowledged before a fold never reach the tables", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const copy = `${dir}/copy.db`;
    await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
    store.apply([{ type: "putSession", session: session("a") }]);
    await store.commit();
    const before = store.transactions;
    for (let i = 1; i <= 100; i++) {
      // Two publishers in one turn: one commit.
      store.apply(delivery(2 * i - 1, 10));
      store.apply(delivery(2 * i, 10));
      await store.commit();
    }
    assert.equal(store.transactions - before, 100);
    await copyAsCrashed(path, copy);
    assert.deepEqual(counts(copy), { log: 101, messages: 0, outbound: 0 });

    // Opening replays the log over the tables, then folds it: only what is held is written.
    {
      await using replayed = SqliteStore.open(copy);
      const state = await replayed.load(NOW);
      const seqs = state.sessions[0]!.outbound.map((e) => e.seq);
      assert.deepEqual(seqs, Array.from({ length: 10 }, (_, k) => 191 + k));
      assert.deepEqual(state.sessions[0]!.outbound[0], {
        seq: 191,
        qos: 1,
        state: "publish",
        packetId: 191,
        messageId: 191,
      });
      assert.deepEqual(state.messages.get(200)?.payload, new Uint8Array(64).fill(200 % 251));
    }
    assert.deepEqual(counts(copy), { log: 0, messages: 10, outbound: 10 });
  });
});

Deno.test("SqliteStore log: compaction folds the log into the tables once it reaches compactBytes", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const copy = `${dir}/copy.db`;
    await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 8192 });
    store.apply([{ type: "putSession", session: session("a") }]);
    await store.commit();
    let i = 0;
    // Past several folds (about every 35 commits): the log never holds more than compactBytes.
    while (i < 300) {
      store.apply(delivery(++i, 20, 200));
      await store.commit();
      if (i % 7 !== 0) continue;
      await copyAsCrashed(path, copy);
      const logBytes = logRows(copy).bytes;
      await Deno.remove(copy);
      await Deno.remove(`${copy}-wal`).catch(() => {});
      await Deno.remove(`${copy}-log`).catch(() => {});
      assert.ok(logBytes < 8192, `log ${logBytes} bytes after commit ${i}`);
    }
    await copyAsCrashed(path, copy);
    const after = counts(copy);
    assert.ok(after.log < 40, `${after.log} log rows after the last fold`);
    // The tables hold at most the entries live at the last fold.
    assert.ok(after.outbound <= 20 && after.messages === after.outbound, JSON.stringify(after));
    await using reopened = SqliteStore.open(copy);
    const seqs = (await reopened.load(NOW)).sessions[0]!.outbound.map((e) => e.seq);
    assert.deepEqual(seqs, Array.from({ length: 20 }, (_, k) => 281 + k));
  });
});

Deno.test("SqliteStore log: a fold that fails half-way writes nothing of itself; the log keeps every commit", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const copy = `${dir}/copy.db`;
    {
      await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
      store.apply([{ type: "putSession", session: session("a") }]);
      await store.commit();
      for (let i = 1; i <= 30; i++) {
        store.apply(delivery(i, 1000, 1000));
        await store.commit();
      }
      await copyAsCrashed(path, copy);
    }
    // The fold fails at its first outbound row, after it deleted the log rows and wrote the
    // session and messages.
    const db = new DatabaseSync(copy);
    db.exec(
      "CREATE TRIGGER fail_fold BEFORE INSERT ON outbound BEGIN SELECT RAISE(ABORT, 'no'); END",
    );
    db.close();
    const check = async () => {
      await using store = SqliteStore.open(copy);
      const state = await store.load(NOW);
      const seqs = state.sessions[0]!.outbound.map((e) => e.seq);
      assert.deepEqual(seqs, Array.from({ length: 30 }, (_, k) => k + 1));
      assert.equal(state.messages.get(30)?.payload.length, 1000);
    };
    // Opening (and closing) folds: it fails, and the file keeps the log, as before the fold.
    await check();
    assert.deepEqual(counts(copy), { log: 31, messages: 0, outbound: 0 });
    const fixed = new DatabaseSync(copy);
    fixed.exec("DROP TRIGGER fail_fold");
    fixed.close();
    await check();
    assert.deepEqual(counts(copy), { log: 0, messages: 30, outbound: 30 });
  });
});

Deno.test("SqliteStore log: a full file folds its log to make room before it refuses a commit", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    // The log alone would outgrow the file long before compactBytes; what is held stays small.
    await using store = SqliteStore.open(path, {
      sync: "normal",
      maxBytes: 256 * 1024,
      compactBytes: 1e9,
    });
    store.apply([{ type: "putSession", session: session("a") }]);
    await store.commit();
    for (let i = 1; i <= 400; i++) {
      store.apply(delivery(i, 5, 1000));
      await store.commit();
    }
    const seqs = (await store.load(NOW)).sessions[0]!.outbound.map((e) => e.seq);
    assert.deepEqual(seqs, [396, 397, 398, 399, 400]);
  });
});

for (const sync of ["normal", "full"] as const) {
  Deno.test(`SqliteStore log (sync ${sync}): kill -9 around folds (every few commits) loses no resolved commit`, async () => {
    await withDir(async (dir) => {
      for (let round = 0; round < 3; round++) {
        const path = `${dir}/state-${round}.db`;
        const atLeast = 20 + Math.floor(Math.random() * 400);
        // About 3 KB of log per commit: a fold every third commit or so.
        const last = await killWriterAfter(path, sync, atLeast, false, 8192);
        await using store = SqliteStore.open(path, { sync });
        assertWriterCommits(await store.load(NOW), last);
      }
    });
  });
}

/** A closed store file with a session, and `row` appended to its log as a crash would leave it. */
async function withLogRow(path: string, row: Uint8Array): Promise<void> {
  {
    await using store = SqliteStore.open(path);
    store.apply([{ type: "putSession", session: session("a") }]);
  }
  const db = new DatabaseSync(path);
  db.prepare("INSERT INTO log (body) VALUES (?)").run(row);
  db.close();
}

function validRow(): Uint8Array {
  return new LogEncoder().encode([
    [
      { type: "putMessage", id: 1, message: message("t/é", "kept") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 2 },
    ],
    [{ type: "putRetained", message: message("r", "x", { retain: true, expiresAt: NOW + 1 }) }],
  ]);
}

Deno.test("SqliteStore log: a log row left by a crash is replayed at open", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    await withLogRow(path, validRow());
    {
      await using store = SqliteStore.open(path);
      const state = await store.load(NOW);
      assert.deepEqual(state.sessions[0]!.outbound.map((e) => [e.seq, e.state]), [[1, "queued"]]);
      assert.equal(new TextDecoder().decode(state.messages.get(1)!.payload), "kept");
      assert.equal(state.messages.get(1)!.topic, "t/é");
      assert.deepEqual(state.retained.map((m) => m.topic), ["r"]);
    }
    assert.deepEqual(counts(path), { log: 0, messages: 1, outbound: 1 });
  });
});

Deno.test("SqliteStore log: a damaged, truncated or empty log row stops opening with one error line, file untouched", async () => {
  await withDir(async (dir) => {
    const good = validRow();
    const flipped = good.slice();
    flipped[12] ^= 0x20;
    const cases: [string, Uint8Array][] = [
      ["flipped", flipped],
      ["truncated", good.subarray(0, good.length - 7)],
      ["empty", new Uint8Array(0)],
    ];
    for (const [name, row] of cases) {
      const path = `${dir}/${name}.db`;
      await withLogRow(path, row);
      await assertUntouched(
        path,
        () => assertOpenFails(path, "corrupt", /the file is damaged: log row 1 cannot be read \(/),
      );
    }
  });
});

Deno.test("SqliteStore log: a log row of a newer format stops opening as a newer-schema file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const row = validRow();
    row[0] = LOG_FORMAT + 1;
    await withLogRow(path, row);
    await assertUntouched(
      path,
      () => assertOpenFails(path, "newer-schema", /written by a newer amqtt \(log row 1: /),
    );
  });
});

Deno.test("decodeLogRow: every mutation round-trips; any single flipped byte is refused", () => {
  const batches: StoreMutation[][] = [
    [
      {
        type: "putSession",
        session: session("c-é", {
          username: "u",
          offlineSince: NOW,
          will: {
            message: message("w", "bye", { properties: { contentType: "t" }, origin: "c-é" }),
            delayInterval: 5,
          },
        }),
      },
      {
        type: "putSubscription",
        clientId: "c-é",
        subscription: {
          filter: "a/#",
          qos: 2,
          noLocal: true,
          retainAsPublished: true,
          retainHandling: 2,
          identifier: 268_435_455,
        },
      },
      { type: "deleteSubscription", clientId: "c-é", filter: "a/#" },
      {
        type: "putMessage",
        id: 2 ** 40,
        message: message("x".repeat(300), "p", {
          qos: 2,
          retain: true,
          retainOut: true,
          subscriptionIdentifiers: [1, 300],
          expiresAt: NOW + 0.5,
          origin: "c-é",
        }),
      },
      { type: "queueOutbound", clientId: "c-é", seq: 9, messageId: 2 ** 40, qos: 0 },
      { type: "sendOutbound", clientId: "c-é", seq: 9, packetId: 65535 },
      { type: "pubrelOutbound", clientId: "c-é", seq: 9 },
      { type: "deleteOutbound", clientId: "c-é", seq: 9 },
    ],
    [],
    [
      { type: "putInbound", clientId: "c-é", packetId: 1 },
      { type: "deleteInbound", clientId: "c-é", packetId: 1 },
      { type: "deleteRetained", topic: "r" },
      { type: "setCounter", name: "clients/maximum", value: -1.5 },
      { type: "deleteSession", clientId: "c-é" },
      { type: "clear" },
    ],
  ];
  const row = new LogEncoder().encode(batches);
  assert.deepEqual(decodeLogRow(row), batches);
  for (let i = 0; i < row.length; i++) {
    const bad = row.slice();
    bad[i] ^= 1 << (i % 8);
    assert.throws(() => decodeLogRow(bad), LogRowError, `byte ${i}`);
  }
});

/** Log format 1 as amqtt wrote it before the log codec was built on `record_codec.ts`. */
const FORMAT_1_ROW =
  "01010004632dc3a9051e3c4278bcfe568000000001751900017701137b22636f6e74656e7454797065223a2274227d" +
  "036279650503010003612f236effffff7f05808080808020f64278bcfe56800800001e78787878787878787878787878" +
  "7878787878787878787878787878787878010201ac0201700601098080808080200107070109ffff0309010900000e00" +
  "0f636c69656e74732f6d6178696d756dbff80000000000000f007a45d1fb";
const FORMAT_1_NOW = 1_700_000_000_000;
const FORMAT_1_BATCHES: StoreMutation[][] = [
  [
    {
      type: "putSession",
      session: {
        clientId: "c-é",
        protocolVersion: 5,
        clean: false,
        expiryInterval: 60,
        offlineSince: FORMAT_1_NOW,
        username: "u",
        will: {
          message: {
            topic: "w",
            payload: new TextEncoder().encode("bye"),
            qos: 1,
            retain: false,
            properties: { contentType: "t" },
            origin: "c-é",
          },
          delayInterval: 5,
        },
      },
    },
    {
      type: "putSubscription",
      clientId: "c-é",
      subscription: {
        filter: "a/#",
        qos: 2,
        noLocal: true,
        retainAsPublished: true,
        retainHandling: 2,
        identifier: 268_435_455,
      },
    },
    {
      type: "putMessage",
      id: 2 ** 40,
      message: {
        topic: "x".repeat(30),
        payload: new TextEncoder().encode("p"),
        qos: 2,
        retain: true,
        retainOut: true,
        subscriptionIdentifiers: [1, 300],
        expiresAt: FORMAT_1_NOW + 0.5,
        origin: "c-é",
      },
    },
    { type: "queueOutbound", clientId: "c-é", seq: 9, messageId: 2 ** 40, qos: 1, packetId: 7 },
    { type: "sendOutbound", clientId: "c-é", seq: 9, packetId: 65535 },
    { type: "deleteOutbound", clientId: "c-é", seq: 9 },
  ],
  [],
  [{ type: "setCounter", name: "clients/maximum", value: -1.5 }, { type: "clear" }],
];

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

Deno.test("decodeLogRow: a format-1 row (golden bytes of the earlier encoder) decodes to its batches", () => {
  assert.deepEqual(decodeLogRow(fromHex(FORMAT_1_ROW)), FORMAT_1_BATCHES);
});

Deno.test("LogEncoder on record_codec writes the golden format-1 bytes", () => {
  assert.equal(LOG_FORMAT, 1);
  assert.deepEqual(new LogEncoder().encode(FORMAT_1_BATCHES), fromHex(FORMAT_1_ROW));
});
