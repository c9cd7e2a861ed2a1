/**
 * The shell between the core's journal and a store: it gathers the mutations the core makes
 * while handling packets into one batch per turn of the event loop, applies it to the store, and
 * tells connections when what they are about to write is covered by a commit, so that a PUBACK
 * or PUBREC never goes out before the message it acknowledges is stored.
 *
 * @module
 */

import type { BrokerStore } from "../store/broker_store.ts";
import type { StoreMutation } from "../store/mutation.ts";
import { errorText } from "./_error_text.ts";
import type { Logger } from "./policy.ts";

/** What a connection needs to hold its output until the store has committed. */
export interface CommitGate {
  /** Mutations journaled since start: a mark for {@linkcode committed}. */
  readonly emitted: number;
  /** Whether the last write to the store failed: new QoS 1/2 work is refused until one works. */
  readonly failed: boolean;
  /**
   * Whether output produced now may be written: `undefined` when every mutation journaled so far
   * is committed, else a promise that settles with the commit covering them. It rejects when a
   * write that failed covered mutations journaled after `since`.
   *
   * @param since the connection's mark at its previous write
   */
  committed(since: number): Promise<void> | undefined;
}

/** The counter a probe writes while writes fail, to learn when they work again. */
const PROBE = "store/probe";

/** Options of {@linkcode StoreWriter}. */
export interface StoreWriterOptions {
  /**
   * How long, in ms, batches that nothing waits for may be held back before they go to the store,
   * so that they join the next commit something waits for (one log row, not two). Only what no
   * reply depends on is held: a subscriber's PUBACK deleting a delivery, say; a crash in that time
   * loses only such changes (the delivery then comes again, as QoS 1 allows). `0` hands every
   * batch to the store in its own turn.
   *
   * @default {0}
   */
  holdMs?: number;
}

/**
 * Batches the core's mutations into a {@linkcode BrokerStore} and tracks what is committed.
 *
 * @example
 * ```ts
 * import { StoreWriter } from "./store_writer.ts";
 * import { MemoryStore } from "../store/memory_store.ts";
 * import assert from "node:assert/strict";
 *
 * const log = { debug() {}, info() {}, warning() {}, error() {} };
 * const writer = new StoreWriter(new MemoryStore(), log);
 * writer.write({ type: "setCounter", name: "clients/maximum", value: 3 });
 * await writer.committed(0);
 * assert.equal(writer.committed(0), undefined);
 * await writer.close();
 * ```
 */
export class StoreWriter implements CommitGate {
  readonly #store: BrokerStore;
  readonly #log: Logger;
  #batch: StoreMutation[] = [];
  #scheduled = false;
  #emitted = 0;
  #committed = 0;
  #pending: Promise<void> | undefined;
  #pendingFor = 0;
  #failed = false;
  /** The end mark of the last failed write, and its error. */
  #failedUpTo = 0;
  #failure: unknown;
  #probing = false;
  #failures = 0;
  readonly #applyBound = () => this.#apply();
  readonly #holdMs: number;
  /** Batches held back (see {@linkcode StoreWriterOptions.holdMs}), in order. */
  #held: StoreMutation[][] = [];
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #releaseBound = () => {
    this.#holdTimer = undefined;
    this.#release();
  };

  /**
   * @param store the store, opened and loaded
   * @param logger where failures are logged
   * @param options holding back batches nothing waits for
   */
  constructor(store: BrokerStore, logger: Logger, options: StoreWriterOptions = {}) {
    this.#store = store;
    this.#log = logger;
    this.#holdMs = options.holdMs ?? 0;
  }

  /** Where the state lives, for the log. */
  get location(): string {
    return this.#store.location;
  }

  /** Mutations journaled since start. */
  get emitted(): number {
    return this.#emitted;
  }

  /** Whether the last write failed. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Commits that failed since start. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Takes one mutation from the core's journal, for the batch of this turn.
   *
   * @param mutation the mutation (kept by reference until written)
   */
  write(mutation: StoreMutation): void {
    this.#batch.push(mutation);
    this.#emitted++;
    if (!this.#scheduled) {
      this.#scheduled = true;
      // The core's changes for one packet (a message and its deliveries) are one batch: the
      // store keeps a message only when a delivery in its batch refers to it.
      queueMicrotask(this.#applyBound);
    }
  }

  /**
   * See {@linkcode CommitGate.committed}.
   *
   * @param since the caller's mark at its previous write
   * @returns `undefined` when nothing is left to commit, else the commit's promise
   */
  committed(since: number): Promise<void> | undefined {
    if (this.#failedUpTo > since) {
      // Something the caller's output may depend on was lost: it must not be acknowledged.
      return Promise.reject(this.#failure);
    }
    if (this.#committed >= this.#emitted) return undefined;
    const target = this.#emitted;
    if (this.#pending !== undefined && this.#pendingFor >= target) return this.#pending;
    this.#apply();
    this.#release();
    const pending = this.#store.commit().then(() => {
      if (target > this.#committed) this.#committed = target;
      if (this.#failed && target > this.#failedUpTo) this.#recovered();
    }, (error) => {
      this.#fail(error, target);
      throw error;
    });
    // A caller may have gone (its connection aborted) by the time it settles.
    pending.catch(() => {});
    this.#pending = pending;
    this.#pendingFor = target;
    return pending;
  }

  /**
   * While writes fail, tries a small write to learn when they work again. The broker's sweep
   * calls it.
   */
  probe(): void {
    if (!this.#failed || this.#probing) return;
    this.#probing = true;
    this.write({ type: "setCounter", name: PROBE, value: Date.now() });
    this.committed(this.#emitted)?.catch(() => {}).finally(() => this.#probing = false);
  }

  /**
   * Writes what is pending and closes the store. Failures are logged.
   */
  async close(): Promise<void> {
    this.#apply();
    this.#release();
    try {
      await this.#store.close();
    } catch (error) {
      this.#log.error(`Cannot write the last changes to the store: ${errorText(error)}`);
    }
  }

  #apply(): void {
    this.#scheduled = false;
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    if (this.#holdMs > 0) {
      // Until a commit is asked for (the batches stay apart: a message is kept only when a
      // delivery in its own batch refers to it).
      this.#held.push(batch);
      this.#holdTimer ??= setTimeout(this.#releaseBound, this.#holdMs);
      return;
    }
    this.#applyToStore(batch);
  }

  /** Hands the held batches to the store, for the write at the end of this turn. */
  #release(): void {
    if (this.#holdTimer !== undefined) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = undefined;
    }
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const batch of held) this.#applyToStore(batch);
  }

  #applyToStore(batch: StoreMutation[]): void {
    try {
      this.#store.apply(batch);
    } catch (error) {
      // A malformed mutation is a bug; the batch is not applied, so nothing it covers may be
      // acknowledged.
      this.#fail(error, this.#emitted);
    }
  }

  #fail(error: unknown, to: number): void {
    this.#failures++;
    this.#failure = error;
    if (to > this.#failedUpTo) this.#failedUpTo = to;
    if (this.#failed) return;
    this.#failed = true;
    this.#log.error(
      `Cannot write to the store ${this.#store.location}: ${errorText(error)}; ` +
        "refusing QoS 1 and 2 publishes until writes work again",
    );
  }

  #recovered(): void {
    this.#failed = false;
    this.#log.warning(`Writes to the store ${this.#store.location} work again`);
  }
}
