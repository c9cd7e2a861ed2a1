/**
 * Warnings a client can cause at will (refused logins, authorization denials, limits reached): the
 * first lines of each interval are written in full, the rest are tallied by reason and source and
 * told in one summary line when the interval ends. A flood of bad logins then costs a few lines,
 * not one per attempt, and nothing goes unreported.
 *
 * @module
 */

import type { LogFields } from "../plugins/types.ts";
import { LogSummary } from "./log_summary.ts";
import type { Logger } from "./policy.ts";

/** Options of {@linkcode WarningLog}. */
export interface WarningLogOptions {
  /** What the summary line counts, plural (e.g. "logins refused"). */
  what: string;
  /** Lines written in full per interval; the rest are tallied. */
  lines: number;
}

/** One stream of similar warnings, budgeted per interval. */
export class WarningLog {
  readonly #log: Logger;
  readonly #lines: number;
  readonly #left: LogSummary;
  #used = 0;

  /**
   * @param log where lines go
   * @param options what is counted and how many lines an interval may have
   */
  constructor(log: Logger, options: WarningLogOptions) {
    this.#log = log;
    this.#lines = options.lines;
    this.#left = new LogSummary(`${options.what} beyond the ${options.lines} logged`);
  }

  /**
   * Writes a warning, or tallies it when this interval's lines are spent.
   *
   * @param message the line
   * @param tally its reason (and source) for the summary
   * @param fields structured fields of the line
   */
  warn(message: string, tally: { reason: string; source?: string }, fields?: LogFields): void {
    if (this.#used < this.#lines) {
      this.#used++;
      this.#log.warning(message, fields);
    } else {
      this.#left.add(tally.reason, tally.source);
    }
  }

  /**
   * Ends the interval: one line for what was tallied, and a fresh budget.
   *
   * @param seconds the interval's length, for the line
   */
  flush(seconds: number): void {
    const line = this.#left.take(seconds);
    if (line !== undefined) this.#log.warning(line, { event: "summary" });
    this.#used = 0;
  }
}
