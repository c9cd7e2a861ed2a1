/**
 * The store's failure state: entered once when a write fails, left once when a probe write as
 * large as the writes that failed works again, with probes spaced by a growing back-off. No clock:
 * time comes in as `now` arguments.
 *
 * @module
 */

/** The first probe after a failure waits this long. */
const FIRST_PROBE_MS = 1_000;
/** Probes never wait longer than this between two tries. */
const MAX_PROBE_MS = 10_000;

/** Options of {@linkcode StoreOutage}. */
export interface StoreOutageOptions {
  /**
   * Wait before the first probe, in ms; doubled after each probe that fails.
   *
   * @default {1000}
   */
  firstProbeMs?: number;
  /**
   * Longest wait between two probes, in ms.
   *
   * @default {10000}
   */
  maxProbeMs?: number;
}

/**
 * Whether the store can be written, as the broker tells its clients, its log and its readiness.
 *
 * A write that fails while the store was fine starts an outage ({@linkcode failed} returns
 * `true`: the caller logs it). Later failures, of writes or probes, are part of the same outage,
 * and so are writes that happen to work meanwhile: a full file or disk often still takes a small
 * write (a subscriber's acknowledgement) while it has no room for a message, so only a probe of
 * the size of the largest message that failed ends it ({@linkcode recovered} returns `true`
 * once). Without that, readiness and the log would flip at every write while publishers keep
 * trying.
 *
 * @example
 * ```ts
 * import { StoreOutage } from "./store_outage.ts";
 * import assert from "node:assert/strict";
 *
 * const outage = new StoreOutage();
 * assert.equal(outage.failed(0, 16_384), true); // log it
 * assert.equal(outage.failed(10, 100), false); // same outage
 * assert.equal(outage.probeDue(999), false);
 * assert.equal(outage.probeDue(1_000), true);
 * assert.equal(outage.probeBytes, 16_384);
 * outage.probeFailed(1_000);
 * assert.equal(outage.probeDue(2_999), false); // back-off: 2 s
 * assert.equal(outage.recovered(), true); // log it
 * assert.equal(outage.down, false);
 * ```
 */
export class StoreOutage {
  readonly #firstMs: number;
  readonly #maxMs: number;
  #down = false;
  #probeAt = 0;
  #waitMs = 0;
  #probeBytes = 0;
  #episodes = 0;

  /** @param options probe back-off */
  constructor(options: StoreOutageOptions = {}) {
    this.#firstMs = options.firstProbeMs ?? FIRST_PROBE_MS;
    this.#maxMs = options.maxProbeMs ?? MAX_PROBE_MS;
  }

  /** Whether the store is failing: QoS 1/2 publishes are refused, the broker is not ready. */
  get down(): boolean {
    return this.#down;
  }

  /** Outages since start. */
  get episodes(): number {
    return this.#episodes;
  }

  /** Payload bytes a probe must write: the largest message a failed write held. */
  get probeBytes(): number {
    return this.#probeBytes;
  }

  /**
   * A write failed.
   *
   * @param now the time, ms
   * @param bytes the largest message payload the failed write held (0 for none)
   * @returns `true` when this starts an outage (to be logged), `false` within one
   */
  failed(now: number, bytes: number): boolean {
    if (bytes > this.#probeBytes) this.#probeBytes = bytes;
    if (this.#down) return false;
    this.#down = true;
    this.#episodes++;
    this.#waitMs = this.#firstMs;
    this.#probeAt = now + this.#waitMs;
    return true;
  }

  /**
   * Whether a probe should be tried now.
   *
   * @param now the time, ms
   * @returns `true` during an outage once the back-off has passed
   */
  probeDue(now: number): boolean {
    return this.#down && now >= this.#probeAt;
  }

  /**
   * A probe failed: the next waits twice as long, up to the maximum.
   *
   * @param now the time, ms
   */
  probeFailed(now: number): void {
    this.#waitMs = Math.min(this.#waitMs * 2, this.#maxMs);
    this.#probeAt = now + this.#waitMs;
  }

  /**
   * A probe worked: the outage ends.
   *
   * @returns `true` when an outage ended (to be logged), `false` when none was going on
   */
  recovered(): boolean {
    if (!this.#down) return false;
    this.#down = false;
    this.#probeBytes = 0;
    return true;
  }
}
