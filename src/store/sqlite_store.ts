/**
 * The durable store: one SQLite file (`node:sqlite`), WAL journal, group commit.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { BrokerStore } from "./broker_store.ts";
import type { StoreMutation } from "./mutation.ts";
import type { StoredState } from "./stored_state.ts";
import { StoreError } from "./store_error.ts";
import { GroupCommitStore } from "./_group_commit.ts";
import { expireAtLoad } from "./_load_expiry.ts";
import {
  checkFile,
  describeOpenError,
  ensureStoreFile,
  type OpenFailure,
  writeError,
} from "./_sqlite_file.ts";
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

/**
 * A {@linkcode BrokerStore} in one SQLite file.
 *
 * The file is opened in WAL mode with an exclusive lock held while it is open, so a second
 * broker cannot use the same file. Batches applied during one event-loop turn are written in one
 * transaction at the end of the turn (group commit): many messages cost one fsync. `commit()`
 * settles when that transaction is written (and with sync `full`, fsynced).
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
export class SqliteStore extends GroupCommitStore<readonly StoreMutation[]> implements BrokerStore {
  /** The file path. */
  readonly location: string;
  #db: DatabaseSync;
  #writer: SqliteWriter;
  #transactions = 0;

  private constructor(path: string, db: DatabaseSync) {
    super(JSON.stringify(path));
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
   * @throws {TypeError} If `sync` is not `full` or `normal`.
   * @throws {RangeError} If `maxBytes` is not a positive number.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const sync = options.sync ?? "full";
    if (sync !== "full" && sync !== "normal") {
      throw new TypeError(`Invalid sync mode ${JSON.stringify(sync)}: expected "full" or "normal"`);
    }
    const maxBytes = options.maxBytes;
    if (maxBytes !== undefined && !(Number.isFinite(maxBytes) && maxBytes > 0)) {
      throw new RangeError(`Invalid maxBytes ${maxBytes}: expected a positive number of bytes`);
    }
    const fail: OpenFailure = (kind, what, cause) => {
      throw new StoreError(`Cannot open store ${JSON.stringify(path)}: ${what}`, {
        kind,
        path,
        cause,
      });
    };
    ensureStoreFile(path, fail);

    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: 0 });
      // Held from the first read until close, so no other process can use the file meanwhile;
      // set before the first access so that WAL uses no shared memory.
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      checkFile(db, fail);
      db.exec(`PRAGMA synchronous = ${sync === "full" ? "FULL" : "NORMAL"}`);
      db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
      if (maxBytes !== undefined) {
        const pageSize = db.prepare("PRAGMA page_size").get()!.page_size as number;
        const pages = Math.max(1, Math.floor(maxBytes / pageSize));
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
    this.assertOpen();
    const written = this.flush();
    if (written !== undefined) await written;
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

  /** Batches are kept as they are: the caller leaves the records alone until the commit. */
  protected prepare(batch: readonly StoreMutation[]): readonly StoreMutation[] {
    return batch;
  }

  /** One transaction for the batches of a turn. */
  protected writeBatches(pending: (readonly StoreMutation[])[]): void {
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
        this.#writer.finish();
        db.exec("COMMIT");
      } catch (error) {
        this.#writer.discard();
        if (db.isTransaction) db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      throw writeError(this.location, error);
    }
    if (++this.#transactions % VACUUM_CHECK_EVERY === 0) this.#vacuum();
  }

  /** Closes the file and releases its lock, after the last write. */
  protected async shutdown(written: Promise<void> | undefined): Promise<void> {
    try {
      if (written !== undefined) await written;
    } finally {
      this.#vacuum();
      this.#db.close();
    }
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
