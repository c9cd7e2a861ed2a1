// The SQLite store's log file (`<path>-log`): a record per commit, a last record cut short by a
// crash dropped at open, damage before it refused with one error line (the files untouched), and
// records a fold already took never applied twice.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { message, session } from "./_conformance.ts";
import {
  assertOpenFails,
  assertUntouched,
  copyAsCrashed,
  logRows,
  withDir,
} from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;

/** Message `i` queued for "a", and the one `ackLag` before it acknowledged. */
function delivery(i: number, ackLag = 1000): StoreMutation[] {
  const batch: StoreMutation[] = [
    { type: "putMessage", id: i, message: message(`t/${i}`, `m${i}`) },
    { type: "queueOutbound", clientId: "a", seq: i, messageId: i, qos: 2, packetId: i },
  ];
  if (i > ackLag) batch.push({ type: "deleteOutbound", clientId: "a", seq: i - ackLag });
  return batch;
}

/** A crashed copy of a store with a session and messages 1..n, each its own commit. */
async function crashedWith(dir: string, n: number): Promise<string> {
  const path = `${dir}/live.db`;
  const copy = `${dir}/crashed.db`;
  await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
  store.apply([{ type: "putSession", session: session("a") }]);
  await store.commit();
  for (let i = 1; i <= n; i++) {
    store.apply(delivery(i));
    await store.commit();
  }
  await copyAsCrashed(path, copy);
  return copy;
}

async function seqs(path: string): Promise<number[]> {
  await using store = SqliteStore.open(path);
  const state = await store.load(NOW);
  const outbound = state.sessions[0]!.outbound;
  for (const e of outbound) {
    assert.equal(new TextDecoder().decode(state.messages.get(e.messageId!)!.payload), `m${e.seq}`);
  }
  return outbound.map((e) => e.seq);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

Deno.test("SqliteStore log file: each commit is one record, replayed after a crash", async () => {
  await withDir(async (dir) => {
    const copy = await crashedWith(dir, 20);
    assert.equal(logRows(copy).rows, 21);
    assert.deepEqual(await seqs(copy), range(1, 20));
    // Opening folded the records: the tables hold them, the log none.
    assert.equal(logRows(copy).rows, 0);
  });
});

Deno.test("SqliteStore log file: a last record cut short by a crash is dropped, and the commits after it are kept", async () => {
  await withDir(async (dir) => {
    const copy = await crashedWith(dir, 10);
    const log = await Deno.readFile(`${copy}-log`);
    const cases: [string, Uint8Array][] = [
      // Its length written, part of its bytes not.
      ["short", log.subarray(0, log.length - 9)],
      // Part of its length only.
      ["length", Uint8Array.from([...log, 0x20, 0x01])],
      // Its bytes there but not what was written (zeros, as a file system may leave them).
      [
        "zeros",
        (() => {
          const bad = log.slice();
          bad.fill(0, bad.length - 9);
          return bad;
        })(),
      ], // The last two records zeros, their lengths too (a power loss after the file grew, before
      // its pages were written): a run of empty records, none of them acknowledged.
      [
        "zeros2",
        (() => {
          const starts: number[] = [];
          const view = new DataView(log.buffer, log.byteOffset);
          for (let at = 16; at < log.length; at += 8 + view.getUint32(at, true)) starts.push(at);
          const bad = log.slice();
          bad.fill(0, starts[starts.length - 2]);
          return bad;
        })(),
      ],
    ];
    for (const [name, bytes] of cases) {
      const path = `${dir}/${name}.db`;
      await Deno.copyFile(copy, path);
      await Deno.copyFile(`${copy}-wal`, `${path}-wal`).catch(() => {});
      await Deno.writeFile(`${path}-log`, bytes);
      const expected = name === "length"
        ? range(1, 10)
        : name === "zeros2"
        ? range(1, 8)
        : range(1, 9);
      {
        await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
        const state = await store.load(NOW);
        assert.deepEqual(state.sessions[0]!.outbound.map((e) => e.seq), expected, name);
        // Appended after the whole records, not after the damage.
        store.apply(delivery(11));
        await store.commit();
        await copyAsCrashed(path, `${path}.again`);
      }
      assert.deepEqual(await seqs(`${path}.again`), [...expected, 11], name);
      assert.deepEqual(await seqs(path), [...expected, 11], name);
    }
  });
});

Deno.test("SqliteStore log file: damage before the last record, a foreign or newer file stops opening with one error line, files untouched", async () => {
  await withDir(async (dir) => {
    const copy = await crashedWith(dir, 10);
    // The WAL into the file: what is checked untouched is the file and its log.
    const db = new DatabaseSync(copy);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    db.close();
    const log = await Deno.readFile(`${copy}-log`);
    const flipped = log.slice();
    // Inside the second record (after the 16-byte header and the first, the session's).
    const second = 16 + 8 + new DataView(log.buffer).getUint32(16, true);
    flipped[second + 8 + 10] ^= 0x08;
    const foreign = log.slice();
    foreign[0] = 0x58;
    const newer = log.slice();
    newer[8] = 3;
    const newerRow = log.slice();
    newerRow[16 + 8] = 9;
    // The second record's length damaged (bit rot, a stray write): its check fails, and the
    // records after it are not taken for a last record cut short.
    const withLength = (change: (length: number) => number, at = second) => {
      const bytes = log.slice();
      const view = new DataView(bytes.buffer);
      view.setUint32(at, change(view.getUint32(at, true)), true);
      return bytes;
    };
    const lengthError =
      /its log ".*-log" is damaged: record 2's length at byte \d+ fails its check$/;
    const cases: [string, Uint8Array, "corrupt" | "newer-schema", RegExp][] = [
      ["flipped", flipped, "corrupt", /its log ".*-log" is damaged: record 2 cannot be read \(/],
      ["length-past-end", withLength((n) => n + (1 << 20)), "corrupt", lengthError],
      ["length-smaller", withLength((n) => n - 7), "corrupt", lengthError],
      ["length-zero", withLength(() => 0), "corrupt", lengthError],
      ["length-check", withLength((n) => n ^ 0x100, second + 4), "corrupt", lengthError],
      ["foreign", foreign, "corrupt", /its log ".*-log" cannot be read \(/],
      ["newer", newer, "newer-schema", /its log ".*-log" was written by a newer amqtt/],
      ["newer-row", newerRow, "newer-schema", /written by a newer amqtt \(log record 1: /],
    ];
    for (const [name, bytes, kind, pattern] of cases) {
      const path = `${dir}/${name}.db`;
      await Deno.copyFile(copy, path);
      await Deno.writeFile(`${path}-log`, bytes);
      await assertUntouched(path, () => assertOpenFails(path, kind, pattern));
      assert.deepEqual(await Deno.readFile(`${path}-log`), bytes, `${name}: log untouched`);
    }
  });
});

Deno.test("SqliteStore log file: records a fold took are not applied again after a crash before the file starts again", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const before = `${dir}/before.db`;
    {
      await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
      store.apply([{ type: "putSession", session: session("a") }]);
      await store.commit();
      for (let i = 1; i <= 30; i++) {
        store.apply(delivery(i, 10));
        await store.commit();
      }
      await copyAsCrashed(path, before);
    }
    // The tables after the fold at close, with the log file as it was before the fold: a crash
    // between the fold's commit and the file's new start.
    await Deno.copyFile(`${before}-log`, `${path}-log`);
    assert.equal(logRows(path).rows, 0, "the records are folded already");
    assert.deepEqual(await seqs(path), range(21, 30));
    {
      // And the store goes on in a new generation: its commits are replayed after a crash.
      await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
      store.apply(delivery(31, 10));
      await store.commit();
      await copyAsCrashed(path, `${dir}/after.db`);
    }
    assert.deepEqual(await seqs(`${dir}/after.db`), range(22, 31));
  });
});

Deno.test("SqliteStore log file: a clean close leaves no log file; counters never show the store's own", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    {
      await using store = SqliteStore.open(path, { sync: "normal" });
      store.apply([{ type: "putSession", session: session("a") }, ...delivery(1)]);
      store.apply([{ type: "setCounter", name: "clients/maximum", value: 2 }]);
      await store.commit();
    }
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["state.db"]);
    await using store = SqliteStore.open(path, { sync: "full" });
    const state = await store.load(NOW);
    assert.deepEqual([...state.counters], [["clients/maximum", 2]]);
    assert.deepEqual(state.sessions[0]!.outbound.map((e) => e.seq), [1]);
  });
});

Deno.test("SqliteStore log file: a file cut short in its header (a crash as it started again) holds no record", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    {
      await using store = SqliteStore.open(path, { sync: "normal" });
      store.apply([{ type: "putSession", session: session("a") }, ...delivery(1)]);
      await store.commit();
    }
    for (const length of [0, 5, 12]) {
      const header = new TextEncoder().encode("AMQTTLOG\x01\x00\x00\x00\x09\x00\x00\x00");
      await Deno.writeFile(`${path}-log`, header.subarray(0, length));
      {
        await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
        assert.deepEqual((await store.load(NOW)).sessions[0]!.outbound.map((e) => e.seq), [1]);
        store.apply(delivery(10 + length));
        await store.commit();
        await copyAsCrashed(path, `${dir}/crashed-${length}.db`);
      }
      assert.deepEqual(await seqs(`${dir}/crashed-${length}.db`), [1, 10 + length]);
      await using store = SqliteStore.open(path, { sync: "normal" });
      store.apply([{ type: "deleteOutbound", clientId: "a", seq: 10 + length }]);
    }
  });
});

Deno.test("SqliteStore log file: with sync normal, a fold is in the database file before the log file starts again (a power loss that drops the WAL keeps a whole prefix)", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/live.db`;
    const copy = `${dir}/lost-wal.db`;
    {
      await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 300 });
      store.apply([{ type: "putSession", session: session("a") }]);
      await store.commit();
      for (let i = 1; i <= 40; i++) {
        store.apply(delivery(i));
        await store.commit();
      }
      // Folds happened, and the log file started again after the last one.
      const header = await Deno.readFile(`${path}-log`);
      assert.ok(new DataView(header.buffer).getUint32(12, true) > 1, "generation after folds");
      // The WAL's frames not synced are gone (a power loss with sync normal); the log file's
      // new generation reached the disk.
      await Deno.copyFile(path, copy);
      await Deno.copyFile(`${path}-log`, `${copy}-log`);
    }
    assert.deepEqual(await seqs(copy), range(1, 40));
  });
});

Deno.test("SqliteStore log file: a file of zeros (a power loss after it started again and grew, before its pages were written) holds no record", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    {
      await using store = SqliteStore.open(path, { sync: "normal" });
      store.apply([{ type: "putSession", session: session("a") }, ...delivery(1)]);
      await store.commit();
    }
    for (const length of [16, 100, 5000]) {
      await Deno.writeFile(`${path}-log`, new Uint8Array(length));
      {
        await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
        assert.deepEqual((await store.load(NOW)).sessions[0]!.outbound.map((e) => e.seq), [1]);
        store.apply(delivery(10));
        await store.commit();
        await copyAsCrashed(path, `${dir}/crashed-${length}.db`);
      }
      assert.deepEqual(await seqs(`${dir}/crashed-${length}.db`), [1, 10]);
      await using store = SqliteStore.open(path, { sync: "normal" });
      store.apply([{ type: "deleteOutbound", clientId: "a", seq: 10 }]);
    }
  });
});

Deno.test("SqliteStore log file: a format 1 file (a length alone per record) is read the old way; the records after it go to a format 2 file", async () => {
  await withDir(async (dir) => {
    const copy = await crashedWith(dir, 10);
    const log = await Deno.readFile(`${copy}-log`);
    const view = new DataView(log.buffer);
    const v1: number[] = [...log.subarray(0, 16)];
    v1[8] = 1;
    for (let at = 16; at < log.length;) {
      const length = view.getUint32(at, true);
      v1.push(...log.subarray(at, at + 4), ...log.subarray(at + 8, at + 8 + length));
      at += 8 + length;
    }
    const path = `${dir}/v1.db`;
    await Deno.copyFile(copy, path);
    await Deno.copyFile(`${copy}-wal`, `${path}-wal`).catch(() => {});
    // Its last record cut short by a crash, as format 1 tells it (a length past the end).
    await Deno.writeFile(`${path}-log`, Uint8Array.from(v1.slice(0, -9)));
    const format = async (file: string) => (await Deno.readFile(file))[8];
    {
      await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
      const state = await store.load(NOW);
      assert.deepEqual(state.sessions[0]!.outbound.map((e) => e.seq), range(1, 9));
      store.apply(delivery(11));
      await store.commit();
      await copyAsCrashed(path, `${path}.again`);
    }
    // Opening folded its records and started the file again, in the current format.
    assert.equal(await format(`${path}.again-log`), 2, "the file started again is format 2");
    assert.deepEqual(await seqs(`${path}.again`), [...range(1, 9), 11]);
    assert.deepEqual(await seqs(path), [...range(1, 9), 11]);
  });
});
