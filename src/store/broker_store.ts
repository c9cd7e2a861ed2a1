/**
 * The contract every broker state store fulfils (memory, SQLite, later others).
 *
 * @module
 */

import type { StoreMutation } from "./mutation.ts";
import type { StoredState } from "./stored_state.ts";

/**
 * Durable (or in-memory) broker state: sessions, their subscriptions, outbound and inbound QoS
 * state, retained messages and counters.
 *
 * Writes are batches of {@linkcode StoreMutation}s. `apply` takes a batch at once (each batch is
 * atomic: all of it or none of it is ever seen after a restart); batches applied during one
 * event-loop turn are written together, and {@linkcode commit} tells when they are safe. The
 * broker sends a PUBACK or PUBREC only after the commit covering the message has resolved.
 */
export interface BrokerStore extends AsyncDisposable {
  /** Where the state lives, for the start-up log: a file path, or `memory`. */
  readonly location: string;

  /**
   * Optional: whether a commit may be applied but for sessions another writer holds, and then
   * reject with a `StoreError` of kind `taken` naming them (a cluster node's store with an
   * owner check). The broker then keeps which session each mutation was for, to refuse only the
   * output that depended on those sessions.
   */
  readonly refusesTaken?: boolean;

  /**
   * Reads everything needed to rebuild the broker state at start-up. Sessions past their expiry
   * (see `sessionDeadline`) are deleted, with their wills returned as due; queued deliveries of
   * expired messages and expired retained messages are deleted [MQTT-3.3.2-5]. Deliveries
   * already in flight are kept: they must be completed.
   *
   * @param now wall-clock time, ms since the epoch
   * @returns the state, after expiry
   * @throws {StoreError} If the store cannot be read or the expiry cannot be written.
   */
  load(now: number): Promise<StoredState>;

  /**
   * Takes a batch of mutations to write with the next commit. The store keeps the records by
   * reference until then: do not modify them (or their payload bytes) afterwards; the broker only
   * points a message record's payload at a copy of the same bytes (`copyOutRecords`).
   *
   * @param batch the mutations, applied in order, atomically
   * @throws {TypeError} If a mutation is malformed, or the store is closed; nothing of the batch
   * is applied then.
   * @throws {RangeError} If a QoS, packet id or identifier is out of range.
   */
  apply(batch: readonly StoreMutation[]): void;

  /**
   * Resolves when every batch applied so far is committed (and, where the store syncs, on disk).
   *
   * @returns a promise settled by the write covering everything applied so far
   * @throws {StoreError} (as a rejection) If that write failed, e.g. disk full. The failed batches
   * are dropped; everything committed earlier is intact.
   */
  commit(): Promise<void>;

  /**
   * Optional: replaces the stored state with the one `batch` describes, a `clear` followed by the
   * whole state (the broker's rewrite after an outage), atomically, but written in pieces of
   * bounded size rather than as one batch as large as the state. Without it, the batch is applied
   * and committed as any other.
   *
   * @param batch a `clear` and the whole state
   * @returns a promise settled when the new state is committed
   * @throws {StoreError} (as a rejection) If a write failed; the state before stays.
   */
  rewrite?(batch: readonly StoreMutation[]): Promise<void>;

  /**
   * Optional: tells of every write that fails, whether or not a {@linkcode commit} waits for it.
   * A commit settles with the newest write only: a failed write followed by one that works
   * would otherwise go unnoticed when nothing waited for the first (the broker's writer then
   * starts its outage and writes the state again once writes work).
   *
   * @param listener called with the error of each failed write, before the commits waiting for
   *   that write settle
   */
  reportFailures?(listener: (error: unknown) => void): void;

  /**
   * Commits what is pending and releases the store. Idempotent.
   *
   * @throws {StoreError} If the final commit fails (the store is closed all the same).
   */
  close(): Promise<void>;
}
