/**
 * The broker-wide memory budget (`max_memory`): past it, new work (sessions, subscriptions,
 * retained and queued messages) is refused while existing sessions keep working.
 *
 * @module
 */

/** Bytes one trie level costs (subscription tree or retained store), measured on V8. */
export const NODE_BYTES = 340;
/** Bytes one subscription costs beyond its trie nodes, measured on V8. */
export const SUBSCRIPTION_BYTES = 600;
/** Bytes one idle session costs, measured on V8 (an offline persistent one held 10.3 KB). */
export const SESSION_BYTES = 10 * 1024;

/**
 * Two views of memory against one limit: an estimate of the state clients made the broker hold,
 * kept by the core and exact at every decision, and the process's memory (V8 heap used plus
 * external buffers) sampled by the shell at each sweep, which also sees what the estimate misses
 * (queues, buffers, garbage not yet collected).
 */
export class MemoryBudget {
  /** The limit in bytes; 0 turns the budget off. */
  readonly max: number;
  /** Process memory in bytes at the last sample; the shell sets it. */
  measured = 0;
  #estimate: () => number;

  /**
   * Creates a budget.
   *
   * @param max the limit in bytes; 0 for none
   * @param estimate the bytes of state the broker holds now
   */
  constructor(max: number, estimate: () => number) {
    this.max = max;
    this.#estimate = estimate;
  }

  /** Whether new work is to be refused. */
  get exceeded(): boolean {
    return this.max > 0 && (this.measured > this.max || this.#estimate() > this.max);
  }
}
