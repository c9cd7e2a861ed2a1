/**
 * Group commit, as every store that writes somewhere slow does it: the batches applied during one
 * event-loop turn are written together at the end of the turn, `commit()` settles with that write,
 * and `close()` writes what is pending before the store lets go of what it holds.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { type StoreMutation, validateBatch } from "./mutation.ts";

/**
 * The write path shared by the SQLite, SQLite-on-a-worker and Redis stores. A subclass says how a
 * batch is kept until the end of the turn ({@linkcode prepare}), how the batches of one turn are
 * written ({@linkcode writeBatches}), and what closing releases ({@linkcode shutdown}).
 *
 * @typeParam T what one applied batch is kept as until it is written
 */
export abstract class GroupCommitStore<T> {
  /** How error messages name the store. */
  readonly #label: string;
  #pending: T[] = [];
  #tick: PromiseWithResolvers<void> | undefined;
  #last: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #onFailure: ((error: unknown) => void) | undefined;

  /** @param label how error messages name the store, e.g. its quoted file path */
  protected constructor(label: string) {
    this.#label = label;
  }

  /**
   * Takes a batch for the write at the end of this event-loop turn.
   *
   * @param batch the mutations
   * @throws {TypeError} If a mutation is malformed or the store is closed.
   * @throws {RangeError} If a value is out of range.
   */
  apply(batch: readonly StoreMutation[]): void {
    this.assertOpen();
    validateBatch(batch);
    if (batch.length === 0) return;
    const item = this.prepare(batch);
    if (this.#tick === undefined) {
      this.#tick = Promise.withResolvers<void>();
      // A failed commit nobody waits for must not end the process: the failure listener
      // (`reportFailures`) learns of it all the same.
      this.#tick.promise.catch(() => {});
      this.#last = this.#tick.promise;
      setImmediate(() => this.flush());
    }
    this.#pending.push(item);
  }

  /**
   * Settles when the write covering every batch applied so far is done.
   *
   * @returns the outcome of that write
   */
  commit(): Promise<void> {
    return this.#last;
  }

  /**
   * See `BrokerStore.reportFailures`: `listener` learns of every write that fails, before the
   * commits waiting for it settle.
   *
   * @param listener called with the error of each failed write
   */
  reportFailures(listener: (error: unknown) => void): void {
    this.#onFailure = listener;
  }

  /**
   * Writes what is pending, then releases the store. Idempotent.
   *
   * @throws {StoreError} If writing what was pending fails; the store is closed all the same.
   */
  close(): Promise<void> {
    this.#closing ??= this.shutdown(this.flush());
    return this.#closing;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Keeps a checked, non-empty batch until the end of the turn.
   *
   * @param batch the mutations, valid
   * @returns what {@linkcode writeBatches} gets for it
   */
  protected abstract prepare(batch: readonly StoreMutation[]): T;

  /**
   * Writes the batches of one turn (or more), all or nothing.
   *
   * @param batches in the order they were applied
   * @returns nothing when written synchronously, or a promise of the write
   * @throws {StoreError} (or rejects with it) If the write fails.
   */
  protected abstract writeBatches(batches: T[]): Promise<unknown> | void;

  /**
   * Releases the store, once, after the pending batches were handed to {@linkcode writeBatches}.
   *
   * @param written that write, or `undefined` when nothing was pending
   */
  protected abstract shutdown(written: Promise<void> | undefined): Promise<void>;

  /**
   * @throws {TypeError} If the store is closed (or closing).
   */
  protected assertOpen(): void {
    if (this.#closing !== undefined) {
      throw new TypeError(`Cannot use store ${this.#label}: it is closed`);
    }
  }

  /**
   * Writes what is pending now rather than at the end of the turn.
   *
   * @returns the outcome of that write, or `undefined` when nothing was pending
   */
  protected flush(): Promise<void> | undefined {
    const tick = this.#tick;
    if (tick === undefined) return undefined;
    this.#tick = undefined;
    const batches = this.#pending;
    this.#pending = [];
    const failed = (error: unknown) => {
      // Before the waiters: once a later write resolves, nothing else would tell of this one.
      try {
        this.#onFailure?.(error);
      } finally {
        tick.reject(error);
      }
    };
    try {
      const written = this.writeBatches(batches);
      if (written === undefined) tick.resolve();
      else written.then(() => tick.resolve(), failed);
    } catch (error) {
      failed(error);
    }
    return tick.promise;
  }
}
