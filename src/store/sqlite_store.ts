/**
 * The durable store: one SQLite file (`node:sqlite`), WAL journal, group commit.
 *
 * @module
 */

import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import type { BrokerStore } from "./broker_store.ts";
import { type StoreMutation, validateBatch } from "./mutation.ts";
import type { StoredState } from "./stored_state.ts";
import { StoreError, type StoreErrorKind } from "./store_error.ts";
import { type CommitTick, newCommitTick } from "./_commit_tick.ts";
import { expireAtLoad } from "./_load_expiry.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_OBJECTS, SCHEMA_VERSION } from "./_sqlite_schema.ts";
import { readRawState } from "./_sqlite_reader.ts";
import { SqliteWriter } from "./_sqlite_writer.ts";

/**
 * How far a commit goes before it resolves: `full` fsyncs the WAL on every commit (an
 * acknowledged message survives a power loss); `normal` leaves syncing to checkpoints (it
 * survives a crash or kill of the broker, not of the machine).
 */
export type SyncMode = "full" | "normal";

/** Options of {@linkcode SqliteStore.open}. */
export interface SqliteStoreOptions {
  /**
   * Durability of each commit.
   *
   * @default {"full"}
   */
  sync?: SyncMode;
  /**
   * Largest size of the file in bytes; a commit that would grow it further fails with a
   * `StoreError` of kind `write`, as on a full disk. `undefined` = no limit but the disk's.
   *
   * @default {undefined}
   */
  maxBytes?: number;
}

// Keep the WAL file small after checkpoints, and give free pages back to the file system when
// more than a quarter of the file is free.
const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;
const VACUUM_CHECK_EVERY = 32;
const VACUUM_MIN_FREE_PAGES = 256;

function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown })?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

function describeOpenError(error: unknown): { kind: StoreErrorKind; what: string } {
  switch (sqliteCode(error)) {
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
      return { kind: "locked", what: "it is locked by another process (is a broker using it?)" };
    case 11: // SQLITE_CORRUPT
      return { kind: "corrupt", what: "the file is damaged (truncated or overwritten)" };
    case 26: // SQLITE_NOTADB
      return {
        kind: "corrupt",
        what: "the file is not a SQLite database (corrupt or not a store file)",
      };
    default:
      return { kind: "io", what: (error as Error)?.message ?? String(error) };
  }
}

function writeError(path: string, error: unknown): StoreError {
  const code = sqliteCode(error);
  const what = code === 13 // SQLITE_FULL
    ? "the disk or the store's size limit is full"
    : (error as Error)?.message ?? String(error);
  return new StoreError(
    `Cannot write store ${JSON.stringify(path)}: ${what}; earlier commits are intact`,
    { kind: "write", path, cause: error },
  );
}

/**
 * A {@linkcode BrokerStore} in one SQLite file.
 *
 * The file is opened in WAL mode with an exclusive lock held while it is open, so a second
 * broker cannot use the same file. Batches applied during one event-loop turn are written in one
 * transaction at the end of the turn (group commit): many messages cost one fsync.
 *
 * Opening refuses, with one {@linkcode StoreError}, a file that is not a SQLite database, is
 * damaged or truncated, belongs to another program, was written by a newer schema, or is locked;
 * it never writes to such a file.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "./sqlite_store.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/state.db`;
 * {
 *   await using store = SqliteStore.open(path, { sync: "normal" });
 *   store.apply([{ type: "setCounter", name: "clients/maximum", value: 12 }]);
 *   await store.commit();
 * }
 * {
 *   await using store = SqliteStore.open(path);
 *   const state = await store.load(Date.now());
 *   assert.equal(state.counters.get("clients/maximum"), 12);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class SqliteStore implements BrokerStore {
  /** The file path. */
  readonly location: string;
  #db: DatabaseSync;
  #writer: SqliteWriter;
  #pending: (readonly StoreMutation[])[] = [];
  #tick: CommitTick | undefined;
  #last: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #transactions = 0;

  private constructor(path: string, db: DatabaseSync) {
    this.location = path;
    this.#db = db;
    this.#writer = new SqliteWriter(db);
  }

  /** Transactions written so far: with group commit, fewer than the batches applied. */
  get transactions(): number {
    return this.#transactions;
  }

  /**
   * Opens (or creates) a store file.
   *
   * @param path the file; its directory must exist
   * @param options sync mode and size limit
   * @returns the open store
   * @throws {StoreError} If the file cannot be created or read, is not a store, is damaged,
   * truncated or locked, or has a newer schema.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const sync = options.sync ?? "full";
    if (sync !== "full" && sync !== "normal") {
      throw new TypeError(`Invalid sync mode ${JSON.stringify(sync)}: expected "full" or "normal"`);
    }
    const fail = (kind: StoreErrorKind, what: string, cause?: unknown): never => {
      throw new StoreError(`Cannot open store ${JSON.stringify(path)}: ${what}`, {
        kind,
        path,
        cause,
      });
    };
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.statSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) fail("io", (error as Error).message, error);
    }
    if (info === undefined) {
      const dir = dirname(path);
      try {
        if (!Deno.statSync(dir).isDirectory) {
          fail("io", `${JSON.stringify(dir)} is not a directory`);
        }
      } catch (error) {
        if (error instanceof StoreError) throw error;
        if (error instanceof Deno.errors.NotFound) fail("io", "its directory does not exist");
        fail("io", (error as Error).message, error);
      }
      createStoreFile(path, fail);
    } else if (!info.isFile) {
      fail("io", "it is not a regular file");
    } else if (info.size === 0) {
      // SQLite would take an empty file for a new database: a store file cut to nothing must
      // not start the broker with no state.
      fail("corrupt", "the file is empty (truncated?); remove it to start with no state");
    }

    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: 0 });
      // Held from the first read until close, so no other process can use the file meanwhile;
      // set before the first access so that WAL uses no shared memory.
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      checkFile(db, fail);
      db.exec(`PRAGMA synchronous = ${sync === "full" ? "FULL" : "NORMAL"}`);
      db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
      if (options.maxBytes !== undefined) {
        const pageSize = db.prepare("PRAGMA page_size").get()!.page_size as number;
        const pages = Math.max(1, Math.floor(options.maxBytes / pageSize));
        db.exec(`PRAGMA max_page_count = ${pages}`);
      }
      return new SqliteStore(path, db);
    } catch (error) {
      try {
        db?.close();
      } catch {
        // Already failing: the first error is the one to report.
      }
      if (error instanceof StoreError) throw error;
      const { kind, what } = describeOpenError(error);
      return fail(kind, what, error);
    }
  }

  /**
   * Applies load-time expiry, writing the deletions, and reads everything held.
   *
   * @param now wall-clock time, ms since the epoch
   * @returns the state after expiry
   * @throws {StoreError} (as a rejection) If the file cannot be read or written.
   */
  async load(now: number): Promise<StoredState> {
    this.#open();
    if (this.#tick !== undefined) {
      this.#flush();
      await this.#last;
    }
    let raw;
    try {
      raw = readRawState(this.#db);
    } catch (error) {
      const { kind, what } = describeOpenError(error);
      throw new StoreError(`Cannot read store ${JSON.stringify(this.location)}: ${what}`, {
        kind,
        path: this.location,
        cause: error,
      });
    }
    const { state, mutations } = expireAtLoad(raw, now);
    if (mutations.length > 0) {
      this.apply(mutations);
      await this.commit();
    }
    return state;
  }

  /**
   * Takes a batch for the transaction at the end of this event-loop turn.
   *
   * @param batch the mutations
   * @throws {TypeError} If a mutation is malformed or the store is closed.
   * @throws {RangeError} If a value is out of range.
   */
  apply(batch: readonly StoreMutation[]): void {
    this.#open();
    validateBatch(batch);
    if (batch.length === 0) return;
    if (this.#tick === undefined) {
      this.#tick = newCommitTick();
      this.#last = this.#tick.promise;
      setImmediate(() => this.#flush());
    }
    this.#pending.push(batch);
  }

  /**
   * Settles when the transaction covering every batch applied so far is written (and with sync
   * `full`, fsynced).
   *
   * @returns the outcome of that transaction
   */
  commit(): Promise<void> {
    return this.#last;
  }

  /**
   * Writes what is pending, then closes the file and releases its lock. Idempotent.
   *
   * @throws {StoreError} If writing what was pending fails; the file is closed all the same.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const pending = this.#tick !== undefined;
    this.#flush();
    try {
      if (pending) await this.#last;
    } finally {
      this.#vacuum();
      this.#db.close();
    }
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closing !== undefined) {
      throw new TypeError(`Cannot use store ${JSON.stringify(this.location)}: it is closed`);
    }
  }

  #flush(): void {
    const tick = this.#tick;
    if (tick === undefined) return;
    this.#tick = undefined;
    const pending = this.#pending;
    this.#pending = [];
    const db = this.#db;
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        const candidates = new Set<number>();
        for (const batch of pending) {
          for (const m of batch) this.#writer.write(m, candidates);
          // Messages put and not referenced go at the end of each batch, as in every store.
          this.#writer.collect(candidates);
          candidates.clear();
        }
        db.exec("COMMIT");
      } catch (error) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      tick.reject(writeError(this.location, error));
      return;
    }
    tick.resolve();
    if (++this.#transactions % VACUUM_CHECK_EVERY === 0) this.#vacuum();
  }

  #vacuum(): void {
    try {
      const free = this.#db.prepare("PRAGMA freelist_count").get()!.freelist_count as number;
      const pages = this.#db.prepare("PRAGMA page_count").get()!.page_count as number;
      if (free >= VACUUM_MIN_FREE_PAGES && free * 4 >= pages) {
        // Each step frees one page: run the statement to its end.
        this.#db.prepare("PRAGMA incremental_vacuum").all();
      }
    } catch {
      // Only space reclamation: the next check tries again.
    }
  }
}

/** Creates a new store file atomically: a crash half-way leaves no file, not an empty one. */
function createStoreFile(
  path: string,
  fail: (kind: StoreErrorKind, what: string, cause?: unknown) => never,
): void {
  const temp = `${path}.new-${crypto.randomUUID().slice(0, 8)}`;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(temp);
    db.exec("PRAGMA auto_vacuum = INCREMENTAL");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    migrate(db, 0);
    db.close();
    db = undefined;
    // It holds message payloads and user names: readable by the broker's user only (the WAL
    // file SQLite creates beside it takes the same mode).
    if (Deno.build.os !== "windows") Deno.chmodSync(temp, 0o600);
    // link, not rename: fails rather than replace a file another process created meanwhile.
    try {
      Deno.linkSync(temp, path);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists || error instanceof Deno.errors.NotFound) {
        throw error;
      }
      // A file system without hard links: rename, after a last check that the name is free.
      if (existsSync(path)) return;
      Deno.renameSync(temp, path);
    }
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return;
    const message = error instanceof Deno.errors.NotFound
      ? "its directory does not exist"
      : `cannot create it: ${(error as Error).message}`;
    fail("io", message, error);
  } finally {
    try {
      db?.close();
    } catch {
      // Closing after a failure: nothing more to do.
    }
    for (const leftover of [temp, `${temp}-wal`, `${temp}-shm`]) {
      try {
        Deno.removeSync(leftover);
      } catch {
        // Not there.
      }
    }
  }
}

function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs the migrations from `version` to the current schema in one transaction. */
function migrate(db: DatabaseSync, version: number): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    for (let v = version; v < SCHEMA_VERSION; v++) MIGRATIONS[v]!(db);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

/**
 * Checks an existing file before anything is written to it: a SQLite database, ours, not newer
 * than this code, undamaged. Then migrates an older schema.
 */
function checkFile(
  db: DatabaseSync,
  fail: (kind: StoreErrorKind, what: string, cause?: unknown) => never,
): void {
  const get = (pragma: string) => Object.values(db.prepare(`PRAGMA ${pragma}`).get()!)[0];
  const appId = get("application_id") as number;
  const version = get("user_version") as number;
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema").get()!.n as number;
  if (appId !== APPLICATION_ID && (appId !== 0 || tables > 0 || version > 0)) {
    fail("not-a-store", "it is a SQLite database of another program, not an amqtt store");
  }
  if (version > SCHEMA_VERSION) {
    fail(
      "newer-schema",
      `it was written by a newer amqtt (schema version ${version}; this version reads up to ` +
        `${SCHEMA_VERSION})`,
    );
  }
  const problems = db.prepare("PRAGMA quick_check(3)").all().map((row) =>
    Object.values(row)[0] as string
  );
  if (problems.length !== 1 || problems[0] !== "ok") {
    fail("corrupt", `the file is damaged (truncated or overwritten): ${problems.join("; ")}`);
  }
  if (version === SCHEMA_VERSION) {
    const present = new Set(
      db.prepare("SELECT name FROM sqlite_schema").all().map((row) => row.name as string),
    );
    const missing = SCHEMA_OBJECTS.filter((name) => !present.has(name));
    if (missing.length > 0) {
      fail("corrupt", `the store's schema is damaged: ${missing.join(", ")} missing`);
    }
  }
  if (db.prepare("PRAGMA journal_mode").get()!.journal_mode !== "wal") {
    db.exec("PRAGMA journal_mode = WAL");
  }
  if (version < SCHEMA_VERSION) {
    if (version === 0) {
      // An empty database: take it over as a new store.
      db.exec("PRAGMA auto_vacuum = INCREMENTAL");
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    }
    migrate(db, version);
  }
}
