/**
 * A real SQLite store that stops taking writes at a "crash": what was committed before stays,
 * everything after is lost, and commits after it never settle (nothing waiting for one goes out),
 * as when the process is killed. The broker is then stopped and started again on the file.
 *
 * @module
 */

import type { BrokerStore } from "../../src/store/broker_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";

/** See the module doc. */
export class CrashingStore implements BrokerStore {
  readonly #inner: SqliteStore;
  #crashed = false;
  #crashAt: ((mutation: StoreMutation) => boolean) | undefined;

  /**
   * @param path the SQLite file
   */
  constructor(path: string) {
    this.#inner = SqliteStore.open(path, { sync: "normal" });
  }

  get location(): string {
    return this.#inner.location;
  }

  /** Whether it crashed. */
  get crashed(): boolean {
    return this.#crashed;
  }

  /** From now on, nothing more is written. */
  async crash(): Promise<void> {
    await this.#inner.commit();
    this.#crashed = true;
  }

  /**
   * Crashes at the first batch with a mutation `test` returns true for: that batch is lost.
   *
   * @param test picks the mutation
   */
  crashAt(test: (mutation: StoreMutation) => boolean): void {
    this.#crashAt = test;
  }

  load(now: number): Promise<StoredState> {
    return this.#inner.load(now);
  }

  apply(batch: readonly StoreMutation[]): void {
    if (!this.#crashed && this.#crashAt !== undefined && batch.some(this.#crashAt)) {
      this.#crashed = true;
    }
    if (!this.#crashed) this.#inner.apply(batch);
  }

  commit(): Promise<void> {
    return this.#crashed ? new Promise(() => {}) : this.#inner.commit();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
