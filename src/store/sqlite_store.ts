/**
 * The durable store: one SQLite file (`node:sqlite`), WAL journal, group commit.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { BrokerStore } from "./broker_store.ts";
import type { MessageRecord } from "./message_record.ts";
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
import { SqliteFold } from "./_sqlite_fold.ts";
import { StagedFold } from "./_sqlite_staged_fold.ts";
import { decodeLogRow, LogEncoder, LogRowError } from "./_log_codec.ts";
import { StoreModel } from "./_store_model.ts";
import { GONE, StateChanges } from "./_key_changes.ts";
import { GROUP_COUNTER, PieceReader, splitPieces } from "./_rewrite_pieces.ts";
import { rewriteDiff } from "./_rewrite_diff.ts";
import { validateBatch } from "./mutation.ts";
import { ownPayload, plainMessage, RowMessage } from "./_row_message.ts";
import { LOG_HEADER_BYTES, LogFile, LogFileError, LogFullError } from "./_log_file.ts";

/**
 * The counter, kept in the tables, of the last log file generation folded into them
 * (`_log_file.ts`): never a broker counter; `load` leaves it out.
 */
const LOG_FOLDED = "$amqtt/log-folded";

/** The default clock of the time-based fold: monotonic. */
function monotonicNow(): number {
  return performance.now();
}

/** Whether a write failed for lack of room (SQLITE_FULL: the disk or `max_page_count`). */
function isFull(error: unknown): boolean {
  if (error instanceof LogFullError) return true;
  if ((error as { code?: unknown })?.code === "ENOSPC") return true;
  const code = (error as { errcode?: unknown })?.errcode;
  return typeof code === "number" && (code & 0xff) === 13;
}

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
   * `StoreError` of kind `write`, as on a full disk. The log file beside it may take what the
   * tables leave of it, and at least 8 KiB. `undefined` = no limit but the disk's.
   *
   * @default {undefined}
   */
  maxBytes?: number;
  /**
   * Bytes of log rows after which the next commit folds them into the tables (compaction); also
   * how much log a start-up replays at most.
   *
   * @default {4194304}
   */
  compactBytes?: number;
  /**
   * Bytes a log row of a rewrite (`rewrite`) stays under when it can: the rewrite is written in
   * pieces of this size, atomic as a whole.
   *
   * @default {compactBytes / 4}
   */
  pieceBytes?: number;
  /**
   * The clock of the fold after {@linkcode COMPACT_AFTER_MS}: monotonic milliseconds, so that a
   * jump of the wall clock neither folds at once nor puts the next fold off (a clock set back an
   * hour would leave a slow log unfolded that long). Tests drive it by hand. Not passed to a
   * worker (`SqliteWorkerStore` keeps the default).
   *
   * @default {performance.now}
   */
  now?: () => number;
}

// Keep the WAL file small after checkpoints, and give free pages back to the file system when
// more than a quarter of the file is free.
const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;
const VACUUM_MIN_FREE_PAGES = 256;
const COMPACT_BYTES = 4 * 1024 * 1024;
/** Bytes the log file may always take, even when the tables fill the size limit. */
const LOG_MIN_ROOM = 8 * 1024;
/**
 * A log that grows slowly is folded at the first commit after this long (by the store's monotonic
 * clock, `SqliteStoreOptions.now`): however little traffic, a start-up replays at most this much
 * of it, and the rows held messages keep alive are given up this often.
 */
export const COMPACT_AFTER_MS = 60_000;

/**
 * A {@linkcode BrokerStore} in one SQLite file, with its log in a file beside it.
 *
 * The file is opened in WAL mode with an exclusive lock held while it is open, so a second
 * broker cannot use the same file. Batches applied during one event-loop turn are written at the
 * end of the turn as one record of an append-only log file beside it (`<path>-log`, group
 * commit): one write of a few bytes per operation, however many messages, sessions and
 * acknowledgements the turn had. `commit()` settles when that record is written (and with sync
 * `full`, fsynced). The store keeps the live state in memory; once the log holds `compactBytes`,
 * a commit folds the net changes into the tables (sessions, subscriptions, outbound, inbound,
 * messages, retained, counters) in one transaction and starts the log file again, so a message
 * delivered and acknowledged between two folds never touches a table. A clean close folds the
 * log and removes its file. Opening reads the tables, replays the log records in order and
 * folds them.
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
  /**
   * The log: one record per commit (`_log_file.ts`), opened once the tables and the rows of the
   * `log` table (where earlier versions kept it) are read.
   */
  #log!: LogFile;
  readonly #sync: boolean;
  readonly #maxBytes: number | undefined;
  /** The last log file generation folded into the tables (`LOG_FOLDED`). */
  #folded = 0;
  #encoder = new LogEncoder();
  #fold: SqliteFold;
  #staged: StagedFold;
  /** The live state: the tables with the log rows replayed. */
  #changes = new StateChanges();
  #model = new StoreModel({ own: (m) => this.#own(m), changes: this.#changes });
  /** While a commit is applied to the model: its row, where its payloads are, the next one's. */
  #row: Uint8Array | undefined;
  #payloadAt: readonly number[] = [];
  #nextPayload = 0;
  /** While a rewrite is applied: the rows after `#row`, each with where its payloads are. */
  #nextRows: [Uint8Array, readonly number[]][] = [];
  #transactions = 0;
  /** The id of the last log row, and the bytes of log rows since the last fold. */
  #lastRow = 0;
  #logBytes = 0;
  #foldAtBytes: number;
  readonly #compactBytes: number;
  readonly #now: () => number;
  #foldedAt: number;
  readonly #vacuumFreePages: number;
  #pieceBytes: number;
  /** The last rewrite group id given (`GROUP_COUNTER`): group ids are unique in a file's life. */
  #lastGroup = 0;

  private constructor(
    path: string,
    db: DatabaseSync,
    compactBytes: number,
    log: { sync: boolean; maxBytes: number | undefined; now: () => number },
  ) {
    super(JSON.stringify(path));
    this.location = path;
    this.#db = db;
    this.#maxBytes = log.maxBytes;
    this.#sync = log.sync;
    this.#now = log.now;
    this.#foldedAt = log.now();
    this.#fold = new SqliteFold(db);
    this.#staged = new StagedFold(db, this.#fold);
    this.#compactBytes = compactBytes;
    this.#foldAtBytes = compactBytes;
    this.#pieceBytes = compactBytes / 4;
    // Pages freed by a fold are taken again by the next log rows: give back only a surplus.
    this.#vacuumFreePages = Math.max(VACUUM_MIN_FREE_PAGES, Math.ceil((2 * compactBytes) / 4096));
  }

  /**
   * Bytes of log rows written since the last fold. The messages committed since then and still
   * held keep their payloads as ranges of these rows, so this is also what they may keep alive of
   * them beyond their own bytes: under `compactBytes` after every commit (the commit that reaches
   * it folds, and the fold gives each held message whose row is much larger than its payload a
   * copy of its own), unless a fold failed (a full disk: it is tried again each `compactBytes / 4`
   * more, and after {@linkcode COMPACT_AFTER_MS}).
   */
  get logBytes(): number {
    return this.#logBytes;
  }

  /** Log rows written so far: with group commit, fewer than the batches applied. */
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
    const compactBytes = options.compactBytes ?? COMPACT_BYTES;
    if (!(Number.isFinite(compactBytes) && compactBytes > 0)) {
      throw new RangeError(
        `Invalid compactBytes ${compactBytes}: expected a positive number of bytes`,
      );
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
      const store = new SqliteStore(path, db, compactBytes, {
        sync: sync === "full",
        maxBytes,
        now: options.now ?? monotonicNow,
      });
      if (options.pieceBytes !== undefined) store.#pieceBytes = options.pieceBytes;
      store.#replay(fail);
      return store;
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
    const { state, mutations } = expireAtLoad(this.#model.raw(plainMessage), now);
    state.counters.delete(GROUP_COUNTER);
    state.counters.delete(LOG_FOLDED);
    if (mutations.length > 0) {
      this.apply(mutations);
      await this.commit();
    }
    return state;
  }

  /**
   * Reads the tables, replays the log rows over them in order, and folds what they changed.
   *
   * @throws {StoreError} (through `fail`) If a log row is damaged or of a newer format.
   */
  #replay(fail: OpenFailure): void {
    // A fold in pieces cut short by a crash is finished (or dropped) first.
    this.#staged.finish();
    this.#model.adopt(readRawState(this.#db));
    const rows = this.#db.prepare("SELECT id, body FROM log ORDER BY id").iterate();
    // The pieces of a rewrite apply once its last one is read; one cut short is dropped.
    const pieces = new PieceReader();
    for (const row of rows) {
      const id = row.id as number;
      const body = row.body;
      let batches;
      try {
        if (!(body instanceof Uint8Array)) throw new LogRowError("it holds no bytes");
        batches = decodeLogRow(body);
      } catch (error) {
        const why = (error as Error).message;
        if (error instanceof LogRowError && error.newer) {
          fail("newer-schema", `it was written by a newer amqtt (log row ${id}: ${why})`, error);
        }
        fail("corrupt", `the file is damaged: log row ${id} cannot be read (${why})`, error);
      }
      for (const batch of pieces.read(batches)) this.#model.applyBatch(batch);
      this.#lastRow = id;
      this.#logBytes += body.length;
    }
    this.#replayFile(pieces, fail);
    this.#lastGroup = Math.max(this.#model.counters.get(GROUP_COUNTER) ?? 0, pieces.highestGroup);
    // The fold deletes every row read, the pieces of a rewrite cut short too.
    this.#compact();
  }

  /**
   * Replays the records of the log file after the rows of the `log` table, unless a fold took
   * them already (a crash between the fold's commit and the file's new start). A last record cut
   * short by a crash is dropped; damage before it stops opening.
   *
   * @throws {StoreError} (through `fail`) If the file is foreign, newer, or damaged.
   */
  #replayFile(pieces: PieceReader, fail: OpenFailure): void {
    this.#folded = this.#model.counters.get(LOG_FOLDED) ?? 0;
    const log = this.#log = new LogFile(`${this.location}-log`, this.#sync);
    try {
      for (const { batches, bytes } of log.replay(this.#folded)) {
        for (const batch of pieces.read(batches)) this.#model.applyBatch(batch);
        this.#lastRow++;
        this.#logBytes += bytes;
      }
    } catch (error) {
      log.close();
      if (!(error instanceof LogFileError)) throw error;
      fail(error.newer ? "newer-schema" : "corrupt", error.message, error);
    }
    this.#setLogLimit();
  }

  /**
   * The log file may take what the size limit leaves beside the tables' pages in use, and at
   * least `LOG_MIN_ROOM`: a full store must still take the small writes that make room
   * (acknowledgements, deletions), as they fitted in the pages' free space when the log was a
   * table.
   */
  #setLogLimit(): void {
    if (this.#maxBytes === undefined) return;
    const db = this.#db;
    const pages = db.prepare("PRAGMA page_count").get()!.page_count as number;
    const free = db.prepare("PRAGMA freelist_count").get()!.freelist_count as number;
    const pageSize = db.prepare("PRAGMA page_size").get()!.page_size as number;
    this.#log.limit = Math.max(this.#maxBytes - (pages - free) * pageSize, LOG_MIN_ROOM);
  }

  /**
   * Starts the log file again after a fold. With sync `normal` the fold's commit is only in the
   * WAL, not yet on the disk, while the file's new start may reach it first: a power loss would
   * then keep the records after the fold without those it folded. A checkpoint first puts the
   * fold in the database file, synced (with sync `full` the commit was synced already).
   */
  #restartLog(): void {
    if (!this.#sync) this.#db.exec("PRAGMA wal_checkpoint(PASSIVE)");
    this.#log.reset(this.#folded + 1);
  }

  /** Appends a log record, after the file was started again if a fold took its records. */
  #append(row: Uint8Array): void {
    if (this.#log.generation <= this.#folded) this.#restartLog();
    this.#log.append(row);
    this.#lastRow++;
  }

  /** Batches are kept as they are: the caller leaves the records alone until the commit. */
  protected prepare(batch: readonly StoreMutation[]): readonly StoreMutation[] {
    return batch;
  }

  /** One log row for the batches of a turn; then a fold, when the log has grown enough. */
  protected writeBatches(pending: (readonly StoreMutation[])[]): void {
    const row = this.#encoder.encode(pending);
    try {
      this.#append(row);
    } catch (error) {
      // A full file may have room once the log is folded (its pages are then free): try once.
      if (!(isFull(error) && this.#logBytes > 0 && this.#compact())) {
        throw writeError(this.location, error);
      }
      try {
        this.#append(row);
      } catch (again) {
        throw writeError(this.location, again);
      }
    }
    this.#transactions++;
    this.#logBytes += row.length;
    // The live state follows what is committed, keeping the row's copy of each payload rather
    // than the caller's bytes (a view into a read buffer, for a message received).
    this.#row = row;
    this.#payloadAt = this.#encoder.payloadAt;
    this.#nextPayload = 0;
    try {
      for (const batch of pending) this.#model.applyBatch(batch);
    } finally {
      this.#row = undefined;
    }
    if (
      this.#logBytes >= this.#foldAtBytes || this.#now() - this.#foldedAt >= COMPACT_AFTER_MS
    ) {
      this.#compact();
    }
  }

  /**
   * Replaces the stored state with the one `batch` describes (a `clear` and the whole state, as
   * the broker journals it after an outage), in pieces atomic as a whole: only what differs from
   * the state held is written (`_rewrite_diff.ts`: a message held already stays), as log rows of
   * about `pieceBytes` each (`_rewrite_pieces.ts`). Until its last row is written the rewrite is
   * not part of the state: a failure or a crash in the middle leaves the state before it, whole.
   * What was applied earlier is written first.
   *
   * @param batch a `clear` and the whole state
   * @throws {StoreError} (as a rejection) If a write fails (the state before the rewrite stays).
   * @throws {TypeError} If a mutation is malformed, or the store is closed.
   */
  async rewrite(batch: readonly StoreMutation[]): Promise<void> {
    this.assertOpen();
    validateBatch(batch);
    const written = this.flush();
    if (written !== undefined) await written;
    this.assertOpen();
    // The log folded first: its rows' pages take the pieces.
    this.#compact();
    // The group's id is kept with the state it writes, and with the fold of its rows if it is
    // cut short: never given again (`GROUP_COUNTER`).
    const group = ++this.#lastGroup;
    const counter: StoreMutation = { type: "setCounter", name: GROUP_COUNTER, value: group };
    const pieces = splitPieces(
      [...rewriteDiff(this.#model, batch), counter],
      this.#pieceBytes,
      group,
    );
    const rows: [Uint8Array, readonly number[]][] = [];
    const whole: StoreMutation[] = [];
    for (const piece of pieces) {
      const row = this.#encoder.encode([piece]);
      try {
        this.#append(row);
      } catch (error) {
        if (rows.length > 0) this.#model.applyBatch([counter]);
        throw writeError(this.location, error);
      }
      this.#transactions++;
      this.#logBytes += row.length;
      rows.push([row, [...this.#encoder.payloadAt]]);
      for (let i = 1; i < piece.length; i++) whole.push(piece[i]!);
    }
    // One batch for the model (a message put in one piece may be referenced in a later one); its
    // payloads are taken from the rows in turn.
    if (rows.length > 0) {
      [this.#row, this.#payloadAt] = rows[0]!;
      this.#nextRows = rows.slice(1);
      this.#nextPayload = 0;
    }
    try {
      this.#model.applyBatch(whole);
    } finally {
      this.#row = undefined;
      this.#nextRows = [];
    }
    if (this.#logBytes >= this.#foldAtBytes) this.#compact();
  }

  /** What the model keeps of a record put: at replay the decoded record, else the row's bytes. */
  #own(message: MessageRecord): MessageRecord {
    if (this.#row === undefined) return message;
    while (this.#nextPayload >= this.#payloadAt.length && this.#nextRows.length > 0) {
      [this.#row, this.#payloadAt] = this.#nextRows.shift()!;
      this.#nextPayload = 0;
    }
    const at = this.#payloadAt[this.#nextPayload]!;
    this.#nextPayload += 2;
    return new RowMessage(message, this.#row, at);
  }

  /**
   * Folds the changes since the last fold into the tables and deletes the log rows. A failure
   * (e.g. a full disk) leaves the log as it was, and is tried again after more log.
   *
   * @param always also when no log row was written since the last fold (at open: the tables
   *   may hold messages nothing references)
   * @returns whether it worked
   */
  #compact(always = false): boolean {
    this.#foldedAt = this.#now();
    if (this.#logBytes === 0 && !always) return true;
    this.#ownPayloads();
    // The tables say, in the fold's transaction, that the file's records are in them.
    const generation = this.#log.generation;
    this.#model.applyBatch([{ type: "setCounter", name: LOG_FOLDED, value: generation }]);
    try {
      // A log much larger than usual (after a rewrite) is folded in pieces of bounded size.
      this.#staged.finish();
      const staged = this.#logBytes > 2 * this.#compactBytes &&
        this.#staged.fold(this.#model, this.#changes, this.#lastRow, this.#pieceBytes);
      if (!staged) this.#fold.fold(this.#model, this.#changes, this.#lastRow);
    } catch {
      // A fold in pieces that failed after its switch (`_sqlite_staged_fold.ts`) reset the changes:
      // its stage holds them, this generation included, and the rest is applied later. The file
      // must start again then, or the records appended next would be taken as folded.
      if (this.#changes.counters.has(LOG_FOLDED)) {
        this.#foldAtBytes = this.#logBytes + this.#compactBytes / 4;
        return false;
      }
    }
    this.#folded = generation;
    this.#logBytes = 0;
    this.#foldAtBytes = this.#compactBytes;
    this.#vacuum(this.#vacuumFreePages);
    try {
      // Else the next append does it, or fails.
      this.#restartLog();
      this.#setLogLimit();
    } catch {
      // See #append.
    }
    return true;
  }

  /**
   * Gives the records put since the last fold that are still held a payload of their own when
   * their log row (or the log file read at start-up) is much larger than it
   * ({@linkcode ownPayload}): a message that waits past a fold (an offline session's queue, a
   * retained message, a will) keeps its bytes only, not the other payloads of its turn. The
   * messages acknowledged before the fold (most) are gone by then: no copy for them. Until the
   * fold, what waiting messages keep alive is bounded by the log rows since the last fold.
   */
  #ownPayloads(): void {
    const model = this.#model;
    const changes = this.#changes;
    for (const [id, change] of changes.messages.entries()) {
      if (change === GONE) continue;
      const held = model.messages.get(id);
      if (held !== undefined) held.record = ownPayload(held.record);
    }
    for (const [topic, change] of changes.retained.entries()) {
      if (change === GONE) continue;
      const held = model.retained.get(topic);
      if (held !== undefined) model.retained.set(topic, ownPayload(held));
    }
    for (const [clientId, change] of changes.sessions.entries()) {
      if (change === GONE) continue;
      const held = model.sessions.get(clientId);
      const will = held?.session.will;
      if (will === undefined) continue;
      const message = ownPayload(will.message);
      if (message !== will.message) {
        held!.session = { ...held!.session, will: { ...will, message } };
      }
    }
  }

  /** Closes the file and releases its lock, after the last write. */
  protected async shutdown(written: Promise<void> | undefined): Promise<void> {
    try {
      if (written !== undefined) await written;
    } finally {
      // The next start reads tables only.
      // A log whose records are all in the tables is left out of the closed file.
      const folded = this.#compact() && this.#log.generation <= this.#folded + 1 &&
        this.#log.bytes <= LOG_HEADER_BYTES;
      this.#vacuum(VACUUM_MIN_FREE_PAGES);
      this.#log.close(folded);
      this.#db.close();
    }
  }

  #vacuum(minFreePages: number): void {
    try {
      const free = this.#db.prepare("PRAGMA freelist_count").get()!.freelist_count as number;
      const pages = this.#db.prepare("PRAGMA page_count").get()!.page_count as number;
      if (free >= minFreePages && free * 4 >= pages) {
        // Each step frees one page: run the statement to its end.
        this.#db.prepare("PRAGMA incremental_vacuum").all();
      }
    } catch {
      // Only space reclamation: the next check tries again.
    }
  }
}
