/**
 * Compaction of the SQLite store: folds the net changes since the last fold into the tables and
 * deletes the log rows they came from, in one transaction. What was put and deleted between two
 * folds (a message delivered and acknowledged meanwhile) never reaches a table.
 *
 * @module
 */

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type { MessageRecord } from "./message_record.ts";
import type { StoreModel } from "./_store_model.ts";
import { GONE, type StateChanges } from "./_key_changes.ts";
import { OUTBOUND_STATE } from "./_sqlite_schema.ts";

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function orNull<T>(value: T | undefined): T | null {
  return value === undefined ? null : value;
}

/** The row values of a message record, in column order after the key. */
function messageValues(message: MessageRecord): SQLInputValue[] {
  return [
    message.topic,
    message.payload,
    message.qos,
    message.retain ? 1 : 0,
    json(message.properties),
    orNull(message.origin),
    orNull(message.expiresAt),
  ];
}

/** A table write of a fold: the index of its statement, and its arguments. */
export type RecordedWrite = [statement: number, args: SQLInputValue[]];

function runNow(statement: StatementSync, ...args: SQLInputValue[]): void {
  statement.run(...args);
}

/** Prepared statements writing a model's changes into the tables. */
export class SqliteFold {
  readonly #db: DatabaseSync;
  readonly #putSession: StatementSync;
  readonly #deleteSession: StatementSync;
  readonly #putSubscription: StatementSync;
  readonly #deleteSubscription: StatementSync;
  readonly #putOutbound: StatementSync;
  readonly #deleteOutbound: StatementSync;
  readonly #putInbound: StatementSync;
  readonly #deleteInbound: StatementSync;
  readonly #putMessage: StatementSync;
  readonly #deleteMessage: StatementSync;
  readonly #putRetained: StatementSync;
  readonly #deleteRetained: StatementSync;
  readonly #setCounter: StatementSync;
  readonly #deleteLog: StatementSync;
  readonly #clear: StatementSync[];
  /** The statements `#write` runs, by index (`record`, `runRecorded`). */
  readonly #statements: StatementSync[];
  readonly #indexOf = new Map<StatementSync, number>();
  /** How `#write` runs a statement: at once, or recorded (`record`). */
  #run: (statement: StatementSync, ...args: SQLInputValue[]) => void = runNow;

  /**
   * Prepares the statements.
   *
   * @param db an open store database at the current schema version
   */
  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#putSession = db.prepare(
      `INSERT OR REPLACE INTO sessions (client_id, protocol_version, clean, expiry_interval,
        offline_since, username, will_topic, will_payload, will_qos, will_retain,
        will_properties, will_origin, will_expires_at, will_delay)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteSession = db.prepare("DELETE FROM sessions WHERE client_id = ?");
    this.#putSubscription = db.prepare(
      `INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local,
        retain_as_published, retain_handling, identifier) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteSubscription = db.prepare(
      "DELETE FROM subscriptions WHERE client_id = ? AND filter = ?",
    );
    this.#putOutbound = db.prepare(
      `INSERT OR REPLACE INTO outbound (client_id, seq, message_id, qos, state, packet_id)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteOutbound = db.prepare("DELETE FROM outbound WHERE client_id = ? AND seq = ?");
    this.#putInbound = db.prepare(
      "INSERT OR IGNORE INTO inbound (client_id, packet_id) VALUES (?, ?)",
    );
    this.#deleteInbound = db.prepare("DELETE FROM inbound WHERE client_id = ? AND packet_id = ?");
    this.#putMessage = db.prepare(
      `INSERT OR REPLACE INTO messages (id, topic, payload, qos, retain, properties, origin,
        expires_at, retain_out, subscription_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteMessage = db.prepare("DELETE FROM messages WHERE id = ?");
    this.#putRetained = db.prepare(
      `INSERT OR REPLACE INTO retained (topic, payload, qos, properties, origin, expires_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteRetained = db.prepare("DELETE FROM retained WHERE topic = ?");
    this.#setCounter = db.prepare("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)");
    this.#deleteLog = db.prepare("DELETE FROM log WHERE id <= ?");
    this.#clear = ["outbound", "subscriptions", "inbound", "sessions", "messages", "retained"].map(
      (table) => db.prepare(`DELETE FROM ${table}`),
    );
    this.#statements = [
      this.#putSession,
      this.#deleteSession,
      this.#putSubscription,
      this.#deleteSubscription,
      this.#putOutbound,
      this.#deleteOutbound,
      this.#putInbound,
      this.#deleteInbound,
      this.#putMessage,
      this.#deleteMessage,
      this.#putRetained,
      this.#deleteRetained,
      this.#setCounter,
      ...this.#clear,
    ];
    this.#statements.forEach((statement, i) => this.#indexOf.set(statement, i));
  }

  /**
   * The table writes a fold of `changes` would run, in order, without running them: each
   * absolute (a row put or deleted whole), so running them again changes nothing
   * (`_sqlite_staged_fold.ts`). `changes` is kept.
   *
   * @param model the state now
   * @param changes its changes since the last fold
   * @returns the writes, as a statement index and its arguments
   */
  record(model: StoreModel, changes: StateChanges): RecordedWrite[] {
    const out: RecordedWrite[] = [];
    this.#run = (statement, ...args) => out.push([this.#indexOf.get(statement)!, args]);
    try {
      this.#write(model, changes);
    } finally {
      this.#run = runNow;
    }
    return out;
  }

  /**
   * Runs writes from {@linkcode record}, in the caller's transaction.
   *
   * @param writes the writes
   * @throws {Error} SQLite's error, or a `RangeError` for an unknown statement index
   */
  runRecorded(writes: readonly RecordedWrite[]): void {
    for (const [index, args] of writes) {
      const statement = this.#statements[index];
      if (statement === undefined) throw new RangeError(`Unknown fold statement ${index}`);
      statement.run(...args);
    }
  }

  /**
   * In one transaction: deletes the log rows up to `lastRow`, and writes every change they made
   * into the tables. Either all of it is written or none: a crash at
   * any point leaves the tables and the log rows as they were, which replay to the same state.
   *
   * @param model the state now
   * @param changes its changes since the last fold; reset when written
   * @param lastRow the id of the last log row the changes cover
   * @throws {Error} SQLite's error; nothing is written then, and `changes` is kept
   */
  fold(model: StoreModel, changes: StateChanges, lastRow: number): void {
    const db = this.#db;
    db.exec("BEGIN IMMEDIATE");
    try {
      // The log rows first: their pages are free for the table rows then (a full file).
      this.#deleteLog.run(lastRow);
      this.#write(model, changes);
      db.exec("COMMIT");
    } catch (error) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw error;
    }
    changes.reset();
  }

  #write(model: StoreModel, changes: StateChanges): void {
    if (changes.cleared) { for (const statement of this.#clear) this.#run(statement); }
    for (const [clientId, change] of changes.sessions.entries()) {
      if (change === GONE) {
        this.#run(this.#deleteSession, clientId);
        continue;
      }
      const s = model.sessions.get(clientId)!.session;
      const will = s.will;
      this.#run(
        this.#putSession,
        clientId,
        s.protocolVersion,
        s.clean ? 1 : 0,
        orNull(s.expiryInterval),
        orNull(s.offlineSince),
        orNull(s.username),
        ...(will === undefined
          ? [null, null, null, null, null, null, null, null]
          : [...messageValues(will.message), will.delayInterval]),
      );
    }
    for (const [clientId, subs] of changes.subscriptions.entries()) {
      const held = model.sessions.get(clientId)?.subscriptions;
      for (const [filter, change] of subs.entries()) {
        if (change === GONE) {
          this.#run(this.#deleteSubscription, clientId, filter);
          continue;
        }
        const sub = held!.get(filter)!;
        this.#run(
          this.#putSubscription,
          clientId,
          filter,
          sub.qos,
          sub.noLocal ? 1 : 0,
          sub.retainAsPublished ? 1 : 0,
          sub.retainHandling,
          orNull(sub.identifier),
        );
      }
    }
    for (const [clientId, entries] of changes.outbound.entries()) {
      const held = model.sessions.get(clientId)?.outbound;
      for (const [seq, change] of entries.entries()) {
        if (change === GONE) {
          this.#run(this.#deleteOutbound, clientId, seq);
          continue;
        }
        const e = held!.get(seq)!;
        this.#run(
          this.#putOutbound,
          clientId,
          seq,
          orNull(e.messageId),
          e.qos,
          OUTBOUND_STATE[e.state],
          orNull(e.packetId),
        );
      }
    }
    for (const [clientId, ids] of changes.inbound.entries()) {
      for (const [packetId, change] of ids.entries()) {
        if (change === GONE) this.#run(this.#deleteInbound, clientId, packetId);
        else this.#run(this.#putInbound, clientId, packetId);
      }
    }
    for (const [id, change] of changes.messages.entries()) {
      if (change === GONE) {
        this.#run(this.#deleteMessage, id);
        continue;
      }
      const m = model.messages.get(id)!.record;
      this.#run(
        this.#putMessage,
        id,
        ...messageValues(m),
        m.retainOut ? 1 : 0,
        json(m.subscriptionIdentifiers),
      );
    }
    for (const [topic, change] of changes.retained.entries()) {
      if (change === GONE) {
        this.#run(this.#deleteRetained, topic);
        continue;
      }
      const [, payload, qos, , properties, origin, expiresAt] = messageValues(
        model.retained.get(topic)!,
      );
      this.#run(this.#putRetained, topic, payload!, qos!, properties!, origin!, expiresAt!);
    }
    for (const name of changes.counters) {
      this.#run(this.#setCounter, name, model.counters.get(name)!);
    }
  }
}
