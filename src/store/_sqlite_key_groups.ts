/**
 * Deferred per-key writes of one SQLite transaction, run as one statement per client and kind.
 *
 * A call into `node:sqlite` costs a few microseconds whatever the statement does, which is most
 * of what a small mutation costs; a QoS 2 message takes six of them. The mutations that only
 * change or delete one row by its key (an acknowledged or released outbound entry, an inbound
 * QoS 2 id put or released) are gathered during the transaction and run as one statement per
 * client per kind (`seq IN (SELECT value FROM json_each(?))`) before it commits. The transaction
 * ends in the same state as if each had run in place, because:
 *
 * - two kinds touching the same row never wait together: adding one runs the other first;
 * - a mutation that runs in place on a row a waiting one touches (`queueOutbound`,
 *   `sendOutbound`) runs the waiting ones first ({@linkcode KeyGroups.touch});
 * - every other mutation (sessions, subscriptions, retained, counters, clear) runs them all first
 *   ({@linkcode KeyGroups.flush}), so that a session deleted and created again in one transaction
 *   (its delivery numbers start over) never has an old key applied to its new rows;
 * - a deferred release deletes a message only when no entry references it any more, so putting
 *   one needs no flush; a `queueOutbound` that references a message not put again since the
 *   last release was deferred runs the waiting releases first (the caller's part, see
 *   `SqliteWriter`), so that an entry for a message whose last reference went is ignored as in
 *   place.
 *
 * @module
 */

import type { DatabaseSync, StatementSync } from "node:sqlite";
import { OUTBOUND_STATE } from "./_sqlite_schema.ts";

/** The mutations that may wait until the end of the transaction. */
export type GroupKind = "deleteOutbound" | "pubrelOutbound" | "putInbound" | "deleteInbound";

/** The table each kind writes. */
const TABLE = {
  deleteOutbound: "outbound",
  pubrelOutbound: "outbound",
  putInbound: "inbound",
  deleteInbound: "inbound",
} as const;

const KINDS: Record<"outbound" | "inbound", readonly GroupKind[]> = {
  outbound: ["pubrelOutbound", "deleteOutbound"],
  inbound: ["putInbound", "deleteInbound"],
};

const KEYS = "(SELECT value FROM json_each(?2))";

/** Deferred per-key mutations of one transaction, by kind and client. */
export class KeyGroups {
  readonly #statements: Record<GroupKind, StatementSync>;
  readonly #groups: Record<GroupKind, Map<string, Set<number>>> = {
    deleteOutbound: new Map(),
    pubrelOutbound: new Map(),
    putInbound: new Map(),
    deleteInbound: new Map(),
  };
  #waiting = 0;
  readonly #beforeOutbound: () => void;

  /**
   * Prepares the statements.
   *
   * @param db an open store database at the current schema version
   * @param beforeOutbound called before waiting outbound mutations run
   */
  constructor(db: DatabaseSync, beforeOutbound: () => void = () => {}) {
    this.#beforeOutbound = beforeOutbound;
    this.#statements = {
      deleteOutbound: db.prepare(`DELETE FROM outbound WHERE client_id = ?1 AND seq IN ${KEYS}`),
      pubrelOutbound: db.prepare(
        `UPDATE outbound SET state = ${OUTBOUND_STATE.pubrel}, message_id = NULL
         WHERE client_id = ?1 AND seq IN ${KEYS} AND qos = 2
           AND state = ${OUTBOUND_STATE.publish}`,
      ),
      putInbound: db.prepare(
        `INSERT OR IGNORE INTO inbound (client_id, packet_id) SELECT ?1, value FROM json_each(?2)
         WHERE EXISTS (SELECT 1 FROM sessions WHERE client_id = ?1)`,
      ),
      deleteInbound: db.prepare(
        `DELETE FROM inbound WHERE client_id = ?1 AND packet_id IN ${KEYS}`,
      ),
    };
  }

  /**
   * Defers one mutation, first running a waiting one of another kind on the same row.
   *
   * @param kind what it does
   * @param clientId its session
   * @param key its `seq` (outbound) or packet id (inbound)
   */
  add(kind: GroupKind, clientId: string, key: number): void {
    for (const other of KINDS[TABLE[kind]]) {
      if (other !== kind && this.#groups[other].get(clientId)?.has(key)) this.#run(other);
    }
    const groups = this.#groups[kind];
    let keys = groups.get(clientId);
    if (keys === undefined) groups.set(clientId, keys = new Set());
    if (!keys.has(key)) {
      keys.add(key);
      this.#waiting++;
    }
  }

  /**
   * Runs the waiting mutations on a row that a mutation is about to change in place.
   *
   * @param table the row's table
   * @param clientId its session
   * @param key its `seq` or packet id
   */
  touch(table: "outbound" | "inbound", clientId: string, key: number): void {
    if (this.#waiting === 0) return;
    for (const kind of KINDS[table]) {
      if (this.#groups[kind].get(clientId)?.has(key)) this.#run(kind);
    }
  }

  /**
   * Runs the waiting mutations of one table.
   *
   * @param table the table
   */
  flushTable(table: "outbound" | "inbound"): void {
    if (this.#waiting === 0) return;
    for (const kind of KINDS[table]) this.#run(kind);
  }

  /** Runs everything waiting. */
  flush(): void {
    if (this.#waiting === 0) return;
    for (const kind of Object.keys(TABLE) as GroupKind[]) this.#run(kind);
    this.#waiting = 0;
  }

  /** Forgets everything waiting (the transaction was rolled back). */
  discard(): void {
    for (const kind of Object.keys(TABLE) as GroupKind[]) this.#groups[kind].clear();
    this.#waiting = 0;
  }

  #run(kind: GroupKind): void {
    const groups = this.#groups[kind];
    if (groups.size === 0) return;
    if (TABLE[kind] === "outbound") this.#beforeOutbound();
    const statement = this.#statements[kind];
    for (const [clientId, keys] of groups) {
      statement.run(clientId, JSON.stringify([...keys]));
      this.#waiting -= keys.size;
    }
    groups.clear();
  }
}
