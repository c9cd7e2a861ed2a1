/**
 * Counts of one kind of event (refused logins, dropped messages) by reason and by source over an
 * interval, told in one log line per interval instead of one line per event: a flood must not
 * turn into a flood of log lines.
 *
 * @module
 */

/** A tally of events, emptied by {@linkcode LogSummary.take}. */
export class LogSummary {
  readonly #what: string;
  #reasons = new Map<string, number>();
  #sources = new Map<string, number>();
  #total = 0;

  /**
   * @param what the events counted, plural, e.g. "refused logins"
   */
  constructor(what: string) {
    this.#what = what;
  }

  /** Events counted since the last {@linkcode take}. */
  get total(): number {
    return this.#total;
  }

  /**
   * Counts events.
   *
   * @param reason why they happened
   * @param source where they came from, if that matters
   * @param n how many
   */
  add(reason: string, source?: string, n = 1): void {
    if (n <= 0) return;
    this.#total += n;
    this.#reasons.set(reason, (this.#reasons.get(reason) ?? 0) + n);
    if (source !== undefined) {
      // Bounded: past 1000 distinct sources only the ones already seen are counted apart.
      if (this.#sources.size < 1000 || this.#sources.has(source)) {
        this.#sources.set(source, (this.#sources.get(source) ?? 0) + n);
      }
    }
  }

  /**
   * The summary line of what was counted, and a fresh start.
   *
   * @param seconds the interval the counts cover, for the line
   * @returns the line, or undefined when nothing was counted
   */
  take(seconds: number): string | undefined {
    if (this.#total === 0) return undefined;
    const reasons = [...this.#reasons].sort((a, b) => b[1] - a[1])
      .map(([reason, n]) => `${n} ${reason}`).join(", ");
    let line = `${this.#total} ${this.#what} in the last ${seconds} s: ${reasons}`;
    if (this.#sources.size > 0) {
      const top = [...this.#sources].sort((a, b) => b[1] - a[1]).slice(0, 3)
        .map(([source, n]) => `${source} (${n})`).join(", ");
      line += `; ${this.#sources.size} source(s), most from ${top}`;
    }
    this.#reasons = new Map();
    this.#sources = new Map();
    this.#total = 0;
    return line;
  }
}
