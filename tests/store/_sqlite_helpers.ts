/**
 * Helpers for the SQLite store tests: temporary directories, and the kill -9 writer child.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { StoredState } from "../../src/store/stored_state.ts";
import { SqliteStore, type SqliteStoreOptions } from "../../src/store/sqlite_store.ts";
import { StoreError, type StoreErrorKind } from "../../src/store/store_error.ts";

/** Runs `body` with a fresh temporary directory, removed afterwards. */
export async function withDir(body: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_store_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Copies a store file, its WAL and its log while the store is open and idle: the copy is the file as a
 * crash at that moment leaves it (what was committed, log rows not yet folded included).
 */
export async function copyAsCrashed(path: string, to: string): Promise<void> {
  await Deno.copyFile(path, to);
  for (const suffix of ["-wal", "-log"]) {
    try {
      await Deno.copyFile(`${path}${suffix}`, `${to}${suffix}`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

/**
 * The log of a closed (or copied) store file, in order: the rows of its `log` table (where earlier
 * versions kept it), then the records of its log file not yet folded into the tables.
 */
export function logBodies(path: string): Uint8Array[] {
  const db = new DatabaseSync(path, { readOnly: true });
  const bodies: Uint8Array[] = [];
  let folded: number;
  try {
    for (const row of db.prepare("SELECT body FROM log ORDER BY id").all()) {
      bodies.push(row.body as Uint8Array);
    }
    folded = (db.prepare("SELECT value FROM counters WHERE name = '$amqtt/log-folded'").get()
      ?.value ?? 0) as number;
  } finally {
    db.close();
  }
  let file: Uint8Array;
  try {
    file = Deno.readFileSync(`${path}-log`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return bodies;
    throw error;
  }
  if (file.length < 16) return bodies;
  const view = new DataView(file.buffer);
  if (view.getUint32(12, true) <= folded) return bodies;
  // Format 1: a length per record; format 2: a length and its complement.
  const head = view.getUint32(8, true) === 1 ? 4 : 8;
  for (let at = 16; at + head <= file.length;) {
    const length = view.getUint32(at, true);
    if (at + head + length > file.length) break;
    bodies.push(file.subarray(at + head, at + head + length));
    at += head + length;
  }
  return bodies;
}

/** How many rows and bytes {@linkcode logBodies} finds. */
export function logRows(path: string): { rows: number; bytes: number } {
  const bodies = logBodies(path);
  return { rows: bodies.length, bytes: bodies.reduce((n, b) => n + b.length, 0) };
}

/** Runs the writer child until it has printed at least `atLeast` commits, then kills it. */
export async function killWriterAfter(
  path: string,
  sync: string,
  atLeast: number,
  worker = false,
  compactBytes?: number,
): Promise<number> {
  const script = new URL("./_sqlite_writer_child.ts", import.meta.url).pathname;
  const where = worker ? "worker" : "thread";
  const compact = compactBytes === undefined ? [] : [String(compactBytes)];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, path, sync, where, ...compact],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let last = 0;
  let buffered = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (last < atLeast) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the writer exited early");
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) last = Number(line);
    }
    child.kill("SIGKILL");
    // Anything printed before the kill was committed too.
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) last = Number(line);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL");
  return last;
}

/**
 * Asserts what the writer child leaves after a kill: its counter covers the last commit it saw
 * resolve, and exactly the 50 entries behind the last committed one are there, in order.
 */
export function assertWriterCommits(state: StoredState, last: number): void {
  const seqs = state.sessions[0]!.outbound.map((e) => e.seq);
  const stored = state.counters.get("last")!;
  assert.ok(stored >= last, `counter ${stored} covers the last resolved commit ${last}`);
  const expected = [];
  for (let i = Math.max(1, stored - 49); i <= stored; i++) expected.push(i);
  assert.deepEqual(seqs, expected);
  assert.deepEqual([...state.messages.keys()].sort((a, b) => a - b), expected);
  assert.equal(state.messages.get(stored)?.payload.length, 512);
}

/** Asserts that opening `path` fails with one StoreError of `kind`, on one line naming the file. */
export function assertOpenFails(
  path: string,
  kind: StoreErrorKind,
  reason: RegExp,
  options?: SqliteStoreOptions,
): void {
  assert.throws(() => SqliteStore.open(path, options), (error) => {
    assert.ok(error instanceof StoreError, `a StoreError, got ${error}`);
    assert.equal(error.kind, kind);
    assert.equal(error.path, path);
    assert.ok(
      error.message.startsWith(`Cannot open store ${JSON.stringify(path)}: `),
      error.message,
    );
    assert.match(error.message, reason);
    assert.ok(!error.message.includes("\n"), "one line");
    return true;
  });
}

/** Opening must not change the file: compares its bytes and the files beside it. */
export async function assertUntouched(path: string, open: () => void): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const names = async () => {
    const out: string[] = [];
    for await (const entry of Deno.readDir(dir)) out.push(entry.name);
    return out.sort();
  };
  const before = await Deno.readFile(path);
  const files = await names();
  open();
  assert.deepEqual(await Deno.readFile(path), before, "the file is unchanged");
  assert.deepEqual(await names(), files, "no file created or removed beside it");
}
