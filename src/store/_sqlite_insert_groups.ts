/**
 * Deferred inserts of one SQLite transaction: messages and the outbound entries that reference
 * them, written as one multi-row statement each instead of one statement per row.
 *
 * A call into `node:sqlite` costs a few microseconds whatever it does, so a message stored with
 * its delivery costs mostly the number of statements. A `putMessage` waits here, and so does a
 * `queueOutbound` for a message put in the same batch (the journal's pattern: a message and its
 * deliveries are one batch). {@linkcode InsertGroups.flush} writes every waiting message
 * (`INSERT OR REPLACE … VALUES (…), (…)`), then every waiting entry (`INSERT OR IGNORE … SELECT
 * … FROM (VALUES …)` with the same session and message conditions as in place). The transaction
 * ends in the same state as if each had run in place, because the caller (`SqliteWriter`)
 * flushes before anything that could see the difference:
 *
 * - a mutation on a waiting entry's key (`sendOutbound`, `pubrelOutbound`, `deleteOutbound`);
 * - deferred acknowledgements running ({@linkcode KeyGroups}), and every rare write (sessions,
 *   subscriptions, retained, counters, clear);
 * - a `queueOutbound` for a message not put in its own batch (it runs in place, so it must see
 *   the messages put before it);
 * - the end of a batch that put a message no waiting entry took (it is collected there, as in
 *   every store).
 *
 * Two waiting entries with one key: the first wins, as `INSERT OR IGNORE` in place. An entry
 * that the flush ignores (its session is gone, or its key was taken) may leave its message
 * unreferenced: the flush then names the messages involved, and the writer collects those that
 * nothing references at the end of their batch, as in place (at once for a batch already ended:
 * nothing in between could see them, since the rules above flush first).
 *
 * @module
 */

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";

/** Rows per statement: larger groups run as several statements. */
const CHUNK = 64;

const MESSAGE_COLUMNS = 10;
const ENTRY_COLUMNS = 6;

/** One statement per row count, prepared when first needed. */
class ChunkedStatement {
  readonly #db: DatabaseSync;
  readonly #sql: (rows: number) => string;
  readonly #columns: number;
  readonly #bySize = new Map<number, StatementSync>();

  constructor(db: DatabaseSync, columns: number, sql: (rows: number) => string) {
    this.#db = db;
    this.#columns = columns;
    this.#sql = sql;
  }

  /** Runs the rows (flat values, `columns` per row); returns the rows changed. */
  run(values: SQLInputValue[]): number {
    let changes = 0;
    const perChunk = CHUNK * this.#columns;
    for (let start = 0; start < values.length; start += perChunk) {
      const part = values.length <= perChunk ? values : values.slice(start, start + perChunk);
      const rows = part.length / this.#columns;
      let statement = this.#bySize.get(rows);
      if (statement === undefined) {
        statement = this.#db.prepare(this.#sql(rows));
        this.#bySize.set(rows, statement);
      }
      changes += Number(statement.run(...part).changes);
    }
    return changes;
  }
}

function placeholders(rows: number, columns: number): string {
  const row = `(${Array(columns).fill("?").join(", ")})`;
  return Array(rows).fill(row).join(", ");
}

/** Waiting message and outbound-entry inserts of one transaction. */
export class InsertGroups {
  readonly #putMessages: ChunkedStatement;
  readonly #queueOutbound: ChunkedStatement;
  readonly #collect: StatementSync;
  /** Waiting messages by id: a later put of the same id replaces the values, as in place. */
  readonly #messages = new Map<number, SQLInputValue[]>();
  /** Waiting entries by client, then `seq`: row values. */
  readonly #entries = new Map<string, Map<number, SQLInputValue[]>>();
  #entryCount = 0;
  /** Message ids put since the last flush, to collect when an entry was ignored. */
  readonly #putSinceFlush = new Set<number>();

  /**
   * Prepares the statements.
   *
   * @param db an open store database at the current schema version
   */
  constructor(db: DatabaseSync) {
    this.#putMessages = new ChunkedStatement(
      db,
      MESSAGE_COLUMNS,
      (rows) =>
        `INSERT OR REPLACE INTO messages (id, topic, payload, qos, retain, properties, origin,
          expires_at, retain_out, subscription_ids) VALUES ${placeholders(rows, MESSAGE_COLUMNS)}`,
    );
    this.#queueOutbound = new ChunkedStatement(
      db,
      ENTRY_COLUMNS,
      (rows) =>
        `INSERT OR IGNORE INTO outbound (client_id, seq, message_id, qos, state, packet_id)
         SELECT column1, column2, column3, column4, column5, column6
         FROM (VALUES ${placeholders(rows, ENTRY_COLUMNS)}) AS v
         WHERE EXISTS (SELECT 1 FROM sessions WHERE client_id = v.column1)
           AND EXISTS (SELECT 1 FROM messages WHERE id = v.column3)`,
    );
    this.#collect = db.prepare(
      `DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?1))
       AND NOT EXISTS (SELECT 1 FROM outbound WHERE message_id = messages.id)`,
    );
  }

  /**
   * Defers a message put.
   *
   * @param id its id
   * @param values its row values after the id, in column order
   */
  putMessage(id: number, values: SQLInputValue[]): void {
    this.#messages.set(id, [id, ...values]);
    this.#putSinceFlush.add(id);
  }

  /**
   * Defers an outbound entry for a message waiting here.
   *
   * @param values `client_id, seq, message_id, qos, state, packet_id`
   */
  queueOutbound(clientId: string, seq: number, values: SQLInputValue[]): void {
    let bySeq = this.#entries.get(clientId);
    if (bySeq === undefined) this.#entries.set(clientId, bySeq = new Map());
    if (bySeq.has(seq)) return;
    bySeq.set(seq, values);
    this.#entryCount++;
  }

  /**
   * Whether an entry with this key waits.
   *
   * @param clientId its session
   * @param seq its delivery number
   */
  has(clientId: string, seq: number): boolean {
    return this.#entryCount > 0 && this.#entries.get(clientId)?.has(seq) === true;
  }

  /**
   * Writes everything waiting.
   *
   * @returns the messages to collect if nothing references them, when an entry was ignored:
   * those put since the last flush and those the waiting entries referenced (empty otherwise)
   */
  flush(): number[] {
    if (this.#messages.size > 0) this.#putMessages.run([...this.#messages.values()].flat());
    let check: number[] = [];
    if (this.#entryCount > 0) {
      const rows: SQLInputValue[] = [];
      for (const bySeq of this.#entries.values()) {
        for (const values of bySeq.values()) rows.push(...values);
      }
      if (this.#queueOutbound.run(rows) < this.#entryCount) {
        const ids = new Set(this.#putSinceFlush);
        for (let i = 2; i < rows.length; i += ENTRY_COLUMNS) ids.add(rows[i] as number);
        check = [...ids];
      }
    }
    this.discard();
    return check;
  }

  /**
   * Collects the given messages if nothing references them.
   *
   * @param ids message ids
   */
  collect(ids: Iterable<number>): void {
    this.#collect.run(JSON.stringify([...ids]));
  }

  /** Forgets everything waiting. */
  discard(): void {
    this.#messages.clear();
    this.#entries.clear();
    this.#entryCount = 0;
    this.#putSinceFlush.clear();
  }
}
