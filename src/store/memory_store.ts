/**
 * The in-memory store: the default when persistence is off. State lasts as long as the process.
 *
 * @module
 */

import type { BrokerStore } from "./broker_store.ts";
import { copyMessage } from "./message_record.ts";
import { type StoreMutation, validateBatch } from "./mutation.ts";
import type { StoredState } from "./stored_state.ts";
import { expireAtLoad } from "./_load_expiry.ts";
import { StoreModel } from "./_store_model.ts";

/**
 * A {@linkcode BrokerStore} in memory. Batches are applied when `apply` is called, so `commit`
 * resolves at once; records are copied in and out, so callers may reuse their buffers.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * import assert from "node:assert/strict";
 *
 * await using store = new MemoryStore();
 * store.apply([{ type: "setCounter", name: "clients/maximum", value: 3 }]);
 * await store.commit();
 * const state = await store.load(Date.now());
 * assert.equal(state.counters.get("clients/maximum"), 3);
 * ```
 */
export class MemoryStore implements BrokerStore {
  /** Always `memory`. */
  readonly location = "memory";
  #model = new StoreModel({ own: copyMessage });
  #closed = false;

  /**
   * Applies the deletions of load-time expiry and returns copies of everything held.
   *
   * @param now wall-clock time, ms since the epoch
   * @returns the state after expiry
   */
  load(now: number): Promise<StoredState> {
    this.#open();
    const { state, mutations } = expireAtLoad(this.#model.raw(copyMessage), now);
    this.#model.applyBatch(mutations);
    return Promise.resolve(state);
  }

  /**
   * Applies a batch at once.
   *
   * @param batch the mutations
   * @throws {TypeError} If a mutation is malformed or the store is closed.
   * @throws {RangeError} If a value is out of range.
   */
  apply(batch: readonly StoreMutation[]): void {
    this.#open();
    validateBatch(batch);
    this.#model.applyBatch(batch);
  }

  /**
   * Resolves at once: applied batches are already in place.
   *
   * @returns a resolved promise
   */
  commit(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Drops everything held.
   *
   * @returns a resolved promise
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#model.drop();
    return Promise.resolve();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closed) throw new TypeError("Cannot use the memory store: it is closed");
  }
}
