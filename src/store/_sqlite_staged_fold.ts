/**
 * A fold in pieces, for a log much larger than usual (the rewrite after an outage writes as much
 * log as the state changed). One transaction as large as the change would grow the WAL to that
 * size before a checkpoint could start; here no transaction writes more than about `pieceBytes`
 * of table rows.
 *
 * Replaying log rows over tables that already hold part of their changes is not idempotent
 * (`_sqlite_fold.ts`), so the tables may change only once the log rows are gone. The fold's table
 * writes, each absolute (a row put or deleted whole), are therefore staged first:
 *
 * 1. **Stage**: the writes go to the `fold_stage` table, a row of about `pieceBytes` per
 *    transaction. Nothing else changes: a crash leaves the log and the tables as they were, and
 *    opening drops the stage.
 * 2. **Switch**: one transaction deletes the log rows folded and writes the stage's mark (row 0).
 *    From then on the stage holds what those rows changed.
 * 3. **Apply**: each staged row's writes run and the row is deleted, in one transaction per row.
 *    A crash leaves the rows not yet applied; opening applies them before it reads the tables.
 *
 * When the stage does not fit in the file (a full disk), the caller folds in one transaction as
 * before: its log rows' pages then take the table rows. Internal to src/store.
 *
 * @module
 */

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type { RecordedWrite, SqliteFold } from "./_sqlite_fold.ts";
import type { StoreModel } from "./_store_model.ts";
import type { StateChanges } from "./_key_changes.ts";

/** The stage's mark: written with the deletion of the log rows. */
const MARK = new Uint8Array([0x4d]);

const NULL = 0;
const NUMBER = 1;
const TEXT = 2;
const BYTES = 3;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The bytes a write takes in a staged row, roughly. */
function sizeOf([, args]: RecordedWrite): number {
  let size = 2;
  for (const arg of args) {
    size += 9;
    if (typeof arg === "string") size += arg.length * 3;
    else if (arg instanceof Uint8Array) size += arg.byteLength;
  }
  return size;
}

/** Encodes writes into one staged row: per write its statement, argument count and arguments. */
function encodeWrites(writes: readonly RecordedWrite[]): Uint8Array {
  let size = 0;
  for (const w of writes) size += sizeOf(w);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [statement, args] of writes) {
    out[at++] = statement;
    out[at++] = args.length;
    for (const arg of args) {
      if (arg === null) {
        out[at++] = NULL;
      } else if (typeof arg === "number") {
        out[at++] = NUMBER;
        view.setFloat64(at, arg);
        at += 8;
      } else if (typeof arg === "string") {
        out[at++] = TEXT;
        const { written } = encoder.encodeInto(arg, out.subarray(at + 4));
        view.setUint32(at, written);
        at += 4 + written;
      } else if (arg instanceof Uint8Array) {
        out[at++] = BYTES;
        view.setUint32(at, arg.byteLength);
        out.set(arg, at + 4);
        at += 4 + arg.byteLength;
      } else {
        throw new TypeError(`Cannot stage a fold write: unexpected ${typeof arg} argument`);
      }
    }
  }
  return out.subarray(0, at);
}

/** Decodes a staged row (see {@linkcode encodeWrites}). */
function decodeWrites(body: Uint8Array): RecordedWrite[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: RecordedWrite[] = [];
  let at = 0;
  while (at < body.length) {
    const statement = body[at++]!;
    const count = body[at++]!;
    const args: SQLInputValue[] = [];
    for (let i = 0; i < count; i++) {
      const tag = body[at++];
      if (tag === NULL) {
        args.push(null);
      } else if (tag === NUMBER) {
        args.push(view.getFloat64(at));
        at += 8;
      } else if (tag === TEXT || tag === BYTES) {
        const length = view.getUint32(at);
        const bytes = body.subarray(at + 4, at + 4 + length);
        if (bytes.length !== length) throw new RangeError("Truncated staged fold row");
        args.push(tag === TEXT ? decoder.decode(bytes) : bytes.slice());
        at += 4 + length;
      } else {
        throw new RangeError(`Unknown staged fold argument tag ${tag}`);
      }
    }
    out.push([statement, args]);
  }
  return out;
}

/** The staged fold of one store file. */
export class StagedFold {
  readonly #db: DatabaseSync;
  readonly #fold: SqliteFold;
  readonly #insert: StatementSync;
  readonly #deleteRow: StatementSync;
  readonly #deleteAll: StatementSync;
  readonly #rows: StatementSync;
  readonly #deleteLog: StatementSync;

  /**
   * @param db an open store database at the current schema version
   * @param fold the file's fold, whose writes are staged
   */
  constructor(db: DatabaseSync, fold: SqliteFold) {
    this.#db = db;
    this.#fold = fold;
    this.#insert = db.prepare("INSERT INTO fold_stage (seq, body) VALUES (?, ?)");
    this.#deleteRow = db.prepare("DELETE FROM fold_stage WHERE seq = ?");
    this.#deleteAll = db.prepare("DELETE FROM fold_stage");
    this.#rows = db.prepare("SELECT seq, body FROM fold_stage ORDER BY seq");
    this.#deleteLog = db.prepare("DELETE FROM log WHERE id <= ?");
  }

  /**
   * Folds in pieces of about `pieceBytes` when the writes take more than one piece and the stage
   * fits in the file.
   *
   * @param model the state now
   * @param changes its changes since the last fold; reset once the stage holds them
   * @param lastRow the id of the last log row the changes cover
   * @param pieceBytes the table rows one transaction writes at most, when it can
   * @returns whether it folded; `false` when the caller must fold in one transaction
   * @throws {Error} SQLite's error when the log rows could not be switched for the stage (nothing
   *   changed then) or a staged row could not be applied (the rest is applied by the next fold,
   *   or at open)
   */
  fold(model: StoreModel, changes: StateChanges, lastRow: number, pieceBytes: number): boolean {
    const writes = this.#fold.record(model, changes);
    const bodies: Uint8Array[] = [];
    let from = 0;
    let bytes = 0;
    for (let i = 0; i < writes.length; i++) {
      bytes += sizeOf(writes[i]!);
      if (bytes >= pieceBytes) {
        bodies.push(encodeWrites(writes.slice(from, i + 1)));
        from = i + 1;
        bytes = 0;
      }
    }
    if (from < writes.length) bodies.push(encodeWrites(writes.slice(from)));
    if (bodies.length < 2) return false;
    try {
      for (let i = 0; i < bodies.length; i++) {
        this.#transaction(() => this.#insert.run(i + 1, bodies[i]!));
      }
      this.#transaction(() => {
        this.#deleteLog.run(lastRow);
        this.#insert.run(0, MARK);
      });
    } catch {
      // No room for the stage: it goes, and the fold is done in one transaction.
      this.#drop();
      return false;
    }
    changes.reset();
    this.finish();
    return true;
  }

  /**
   * Applies what a staged fold left (a crash, a failure in its last step), one transaction per
   * staged row; drops a stage whose log rows were not deleted yet (they are still the truth).
   * Call it before the tables are read, and before another fold.
   *
   * @throws {Error} SQLite's error, or a `RangeError` for a damaged staged row; what was not
   *   applied stays staged
   */
  finish(): void {
    const rows = this.#rows.all();
    if (rows.length === 0) return;
    if (rows[0]!.seq !== 0) {
      this.#drop();
      return;
    }
    for (const row of rows.slice(1)) {
      const writes = decodeWrites(row.body as Uint8Array);
      this.#transaction(() => {
        this.#fold.runRecorded(writes);
        this.#deleteRow.run(row.seq as number);
      });
    }
    this.#transaction(() => this.#deleteRow.run(0));
  }

  #drop(): void {
    try {
      this.#transaction(() => this.#deleteAll.run());
    } catch {
      // Dropped at the next open.
    }
  }

  #transaction(fn: () => void): void {
    const db = this.#db;
    db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      db.exec("COMMIT");
    } catch (error) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw error;
    }
  }
}
