/**
 * Writes store mutations into the SQLite schema with prepared statements. Runs inside a
 * transaction the caller opens; knows nothing of when or how often it is called.
 *
 * @module
 */

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type { MessageRecord } from "./message_record.ts";
import type { StoreMutation } from "./mutation.ts";
import { OUTBOUND_STATE } from "./_sqlite_schema.ts";
import { KeyGroups } from "./_sqlite_key_groups.ts";
import { InsertGroups } from "./_sqlite_insert_groups.ts";

const SESSION_EXISTS = "EXISTS (SELECT 1 FROM sessions WHERE client_id = ?1)";

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function orNull<T>(value: T | undefined): T | null {
  return value === undefined ? null : value;
}

/** The row values of a message record, in column order after the key. */
export function messageValues(message: MessageRecord): SQLInputValue[] {
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

/** Prepared statements for every mutation. */
export class SqliteWriter {
  #putSession: StatementSync;
  #deleteSessionRows: StatementSync[];
  #putSubscription: StatementSync;
  #deleteSubscription: StatementSync;
  #queueOutbound: StatementSync;
  /** Messages and their entries put in this transaction, written as multi-row statements. */
  #inserts: InsertGroups;
  /** Message ids put in the current batch: entries for them may wait with them. */
  #batchPuts = new Set<number>();
  /** The current batch's candidates for collection (see {@linkcode write}). */
  #candidates = new Set<number>();
  #sendOutbound: StatementSync;
  /** Acknowledgements and inbound ids, run once per client and kind at the end. */
  #groups: KeyGroups;
  /** Writes so far in this transaction, as a clock for the two below. */
  #tick = 0;
  /** When the last outbound release (acknowledgement, PUBREL stage) was deferred. */
  #releasedAt = -1;
  /** When each message was last put in this transaction. */
  #putAt = new Map<number, number>();
  #putRetained: StatementSync;
  #deleteRetained: StatementSync;
  #setCounter: StatementSync;
  #clear: StatementSync[];

  /**
   * Prepares the statements.
   *
   * @param db an open store database at the current schema version
   */
  constructor(db: DatabaseSync) {
    this.#putSession = db.prepare(
      `INSERT OR REPLACE INTO sessions (client_id, protocol_version, clean, expiry_interval,
        offline_since, username, will_topic, will_payload, will_qos, will_retain,
        will_properties, will_origin, will_expires_at, will_delay)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteSessionRows = ["outbound", "subscriptions", "inbound", "sessions"].map((table) =>
      db.prepare(`DELETE FROM ${table} WHERE client_id = ?`)
    );
    this.#putSubscription = db.prepare(
      `INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local,
        retain_as_published, retain_handling, identifier)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE ${SESSION_EXISTS}`,
    );
    this.#deleteSubscription = db.prepare(
      "DELETE FROM subscriptions WHERE client_id = ? AND filter = ?",
    );
    this.#inserts = new InsertGroups(db);
    this.#queueOutbound = db.prepare(
      `INSERT OR IGNORE INTO outbound (client_id, seq, message_id, qos, state, packet_id)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6
       WHERE ${SESSION_EXISTS} AND EXISTS (SELECT 1 FROM messages WHERE id = ?3)`,
    );
    this.#sendOutbound = db.prepare(
      `UPDATE outbound SET state = ${OUTBOUND_STATE.publish}, packet_id = ?3
       WHERE client_id = ?1 AND seq = ?2 AND qos > 0 AND state < ${OUTBOUND_STATE.pubrel}`,
    );
    // Waiting releases may take a message's last reference: the inserts waiting go first.
    this.#groups = new KeyGroups(db, () => this.#flushInserts());
    this.#putRetained = db.prepare(
      `INSERT OR REPLACE INTO retained (topic, payload, qos, properties, origin, expires_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteRetained = db.prepare("DELETE FROM retained WHERE topic = ?");
    this.#setCounter = db.prepare("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)");
    this.#clear = ["outbound", "subscriptions", "inbound", "sessions", "messages", "retained"].map(
      (table) => db.prepare(`DELETE FROM ${table}`),
    );
  }

  /**
   * Writes one mutation. Released messages are deleted by triggers; messages put are collected
   * at the end of the batch unless an entry took them.
   *
   * @param m the mutation
   * @param candidates message ids put in this batch: {@linkcode collect} them at its end
   */
  write(m: StoreMutation, candidates: Set<number>): void {
    const tick = ++this.#tick;
    this.#candidates = candidates;
    switch (m.type) {
      case "putMessage":
        this.#putAt.set(m.id, tick);
        this.#inserts.putMessage(m.id, [
          ...messageValues(m.message),
          m.message.retainOut ? 1 : 0,
          json(m.message.subscriptionIdentifiers),
        ]);
        this.#batchPuts.add(m.id);
        candidates.add(m.id);
        return;
      case "queueOutbound": {
        this.#groups.touch("outbound", m.clientId, m.seq);
        // A deferred release may take the last reference of a message not put since: as in
        // place, the entry is then ignored (the journal always puts a message again first).
        if ((this.#putAt.get(m.messageId) ?? -1) < this.#releasedAt) {
          this.#groups.flushTable("outbound");
          this.#releasedAt = -1;
        }
        const sent = m.packetId !== undefined;
        const values: SQLInputValue[] = [
          m.clientId,
          m.seq,
          m.messageId,
          m.qos,
          sent ? OUTBOUND_STATE.publish : OUTBOUND_STATE.queued,
          sent ? m.packetId! : null,
        ];
        if (this.#batchPuts.has(m.messageId)) {
          // Waits with its message; if the flush ignores it, the message is checked then.
          this.#inserts.queueOutbound(m.clientId, m.seq, values);
          candidates.delete(m.messageId);
          return;
        }
        this.#flushInserts();
        const { changes } = this.#queueOutbound.run(...values);
        // Referenced now: no need to check it at the end of the batch.
        if (changes === 1) candidates.delete(m.messageId);
        return;
      }
      case "sendOutbound":
        if (this.#inserts.has(m.clientId, m.seq)) this.#flushInserts();
        this.#groups.touch("outbound", m.clientId, m.seq);
        this.#sendOutbound.run(m.clientId, m.seq, m.packetId);
        return;
      case "pubrelOutbound":
      case "deleteOutbound":
        if (this.#inserts.has(m.clientId, m.seq)) this.#flushInserts();
        this.#groups.add(m.type, m.clientId, m.seq);
        this.#releasedAt = tick;
        return;
      case "putInbound":
      case "deleteInbound":
        this.#groups.add(m.type, m.clientId, m.packetId);
        return;
    }
    // Rare writes (sessions, subscriptions, retained, counters): what waits goes first.
    this.#flushInserts();
    this.#groups.flush();
    switch (m.type) {
      case "putSession": {
        const s = m.session;
        const will = s.will;
        const values: SQLInputValue[] = will === undefined
          ? [null, null, null, null, null, null, null, null]
          : [...messageValues(will.message), will.delayInterval];
        this.#putSession.run(
          s.clientId,
          s.protocolVersion,
          s.clean ? 1 : 0,
          orNull(s.expiryInterval),
          orNull(s.offlineSince),
          orNull(s.username),
          ...values,
        );
        return;
      }
      case "deleteSession":
        for (const statement of this.#deleteSessionRows) statement.run(m.clientId);
        return;
      case "putSubscription": {
        const sub = m.subscription;
        this.#putSubscription.run(
          m.clientId,
          sub.filter,
          sub.qos,
          sub.noLocal ? 1 : 0,
          sub.retainAsPublished ? 1 : 0,
          sub.retainHandling,
          orNull(sub.identifier),
        );
        return;
      }
      case "deleteSubscription":
        this.#deleteSubscription.run(m.clientId, m.filter);
        return;
      case "putRetained": {
        const [topic, payload, qos, _retain, properties, origin, expiresAt] = messageValues(
          m.message,
        );
        this.#putRetained.run(topic!, payload!, qos!, properties!, origin!, expiresAt!);
        return;
      }
      case "deleteRetained":
        this.#deleteRetained.run(m.topic);
        return;
      case "setCounter":
        this.#setCounter.run(m.name, m.value);
        return;
      case "clear":
        for (const statement of this.#clear) statement.run();
        candidates.clear();
        return;
    }
  }

  /** Runs the writes that wait for the end of the transaction: call it before COMMIT. */
  finish(): void {
    this.#flushInserts();
    this.#groups.flush();
    this.#reset();
  }

  /** Forgets the writes that wait (the transaction was rolled back). */
  discard(): void {
    this.#inserts.discard();
    this.#groups.discard();
    this.#reset();
  }

  #reset(): void {
    this.#tick = 0;
    this.#releasedAt = -1;
    this.#putAt.clear();
    this.#batchPuts.clear();
    this.#candidates = new Set();
  }

  /**
   * Writes the waiting inserts. Messages of an ignored entry are collected at the end of their
   * batch (the current one), or at once when their batch has ended.
   */
  #flushInserts(): void {
    const check = this.#inserts.flush();
    if (check.length === 0) return;
    const now: number[] = [];
    for (const id of check) {
      if (this.#batchPuts.has(id)) this.#candidates.add(id);
      else now.push(id);
    }
    if (now.length > 0) this.#inserts.collect(now);
  }

  /**
   * Deletes the candidate messages no outbound entry references.
   *
   * @param candidates message ids put during the batch and not taken by an entry
   */
  collect(candidates: Set<number>): void {
    if (candidates.size > 0) {
      this.#flushInserts();
      this.#inserts.collect(candidates);
    }
    this.#batchPuts.clear();
  }
}
