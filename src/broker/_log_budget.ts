/**
 * A budget for log lines that a client can cause at will (refused logins): past a number of lines
 * per interval the rest are counted, not written, and one line tells how many were left out. A
 * wrong-password flood then costs a few lines a second instead of filling the disk.
 *
 * @module
 */

/** Options of {@linkcode LogBudget}. */
export interface LogBudgetOptions {
  /** Lines written per interval. */
  lines: number;
  /** The interval, ms. */
  intervalMs: number;
}

/** Decides which of a stream of similar log lines are written. */
export class LogBudget {
  readonly #lines: number;
  readonly #intervalMs: number;
  #windowStart = -Infinity;
  #used = 0;
  #suppressed = 0;

  /** @param options lines per interval */
  constructor(options: LogBudgetOptions) {
    this.#lines = options.lines;
    this.#intervalMs = options.intervalMs;
  }

  /**
   * Asks to write one line.
   *
   * @param now the clock, ms
   * @returns `write` whether to write it, and `suppressed` the lines left out in the interval
   *   before (to be reported once, with this line)
   */
  take(now: number): { write: boolean; suppressed: number } {
    let suppressed = 0;
    if (now - this.#windowStart >= this.#intervalMs) {
      suppressed = this.#suppressed;
      this.#windowStart = now;
      this.#used = 0;
      this.#suppressed = 0;
    }
    if (this.#used < this.#lines) {
      this.#used++;
      return { write: true, suppressed };
    }
    this.#suppressed++;
    return { write: false, suppressed };
  }
}
