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

/** Bytes read from clients between two samples of the process memory, besides the sweep's. */
export const SAMPLE_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * Bytes one delivery kept in memory costs (its record in a session's queue, or its in-flight
 * entry while the session is offline), measured on V8 (55 B each: 500,000 deliveries of 5,000
 * messages to 100 offline sessions, 75 KB read). One message read fans out to every subscriber:
 * a few bytes read can hold thousands of deliveries, so these are counted apart from the bytes
 * read, and sampled every {@linkcode SAMPLE_EVERY_BYTES} of them too.
 */
export const HELD_BYTES = 56;

/**
 * Sweeps (500 ms each) between two samples of the process memory while it is below half the
 * limit; within half of it, every sweep samples. Reading it (`Deno.memoryUsage()`, V8's heap
 * statistics) costs the main thread 0.2–1 ms when the sweep does it, cold, and every message
 * that arrives meanwhile waits that long. Far below the limit nothing is refused and memory grows
 * only as clients send and as deliveries are held for sessions, each sampled every
 * {@linkcode SAMPLE_EVERY_BYTES}: a rarer sample there changes no decision.
 */
export const SWEEPS_PER_SAMPLE = 10;

/**
 * Two views of memory against one limit: an estimate of the state clients made the broker hold,
 * kept by the core and exact at every decision, and the process's memory (V8 heap used plus
 * external buffers) from a probe the shell injects, which also sees what the estimate misses
 * (queued messages, buffers, garbage not yet collected). The probe is read by the sweep (see
 * {@linkcode SWEEPS_PER_SAMPLE}), after every {@linkcode SAMPLE_EVERY_BYTES} read from clients
 * and after every {@linkcode SAMPLE_EVERY_BYTES} of deliveries held ({@linkcode HELD_BYTES}
 * each): a flood between two sweeps overshoots the budget by about that much.
 */
export class MemoryBudget {
  /** The limit in bytes; 0 turns the budget off. */
  readonly max: number;
  /** Process memory in bytes at the last sample. */
  measured = 0;
  #estimate: () => number;
  #probe: (() => number) | undefined;
  #sampledAtInput = 0;
  // Bytes of deliveries held since the held count last sampled.
  #held = 0;
  // Sweeps since the last sample; the first sweep samples.
  #sweeps = SWEEPS_PER_SAMPLE;

  /**
   * Creates a budget.
   *
   * @param max the limit in bytes; 0 for none
   * @param estimate the bytes of state the broker holds now
   * @param probe reads the process memory, in bytes; without it only the estimate counts
   */
  constructor(max: number, estimate: () => number, probe?: () => number) {
    this.max = max;
    this.#estimate = estimate;
    this.#probe = probe;
  }

  /** Reads the probe into {@linkcode measured}. */
  sample(): void {
    if (this.#probe === undefined || this.max <= 0) return;
    this.#sweeps = 0;
    this.measured = this.#probe();
  }

  /**
   * The sweep's sample: every sweep while the last sample was above half the limit (to notice
   * crossing it, and coming back under it), else every {@linkcode SWEEPS_PER_SAMPLE} sweeps.
   */
  sweep(): void {
    if (++this.#sweeps >= SWEEPS_PER_SAMPLE || this.measured > this.max / 2) this.sample();
  }

  /**
   * Samples when another {@linkcode SAMPLE_EVERY_BYTES} have been read since the last time.
   *
   * @param bytesReceived bytes read from clients since start
   */
  noteInput(bytesReceived: number): void {
    if (bytesReceived - this.#sampledAtInput < SAMPLE_EVERY_BYTES) return;
    this.#sampledAtInput = bytesReceived;
    this.sample();
  }

  /**
   * Counts a delivery kept in memory (queued, or in flight to an offline session); samples when
   * another {@linkcode SAMPLE_EVERY_BYTES} of them have been counted since the last time.
   */
  noteHeld(): void {
    if ((this.#held += HELD_BYTES) < SAMPLE_EVERY_BYTES) return;
    this.#held = 0;
    this.sample();
  }

  /** Whether new work is to be refused. */
  get exceeded(): boolean {
    return this.max > 0 && (this.measured > this.max || this.#estimate() > this.max);
  }
}
