/**
 * Queue-full drops told per session, as they happen: a persistent session offline (or moving to
 * another cluster node) under a fast publisher drops its oldest queued messages past
 * `max_queued_messages`, and the periodic summary's total ("N queue full") names nobody. Each
 * session that drops gets a warning at its first drop, at most one more line per interval while
 * it goes on dropping, and a summary when its client is back (or when the session ends here). The
 * lines are budgeted like the other warnings a client can cause (a publisher filling ten thousand
 * offline sessions at once writes a few lines and one summary, not ten thousand).
 *
 * @module
 */

import type { Logger } from "./policy.ts";
import { WarningLog } from "./warning_log.ts";

/** What the log needs of a session: its client id and whether a connection is attached. */
export interface DroppingSession {
  /** The client identifier. */
  readonly clientId: string;
  /** The connection attached, undefined while offline. */
  readonly link: unknown;
}

/** Options of {@linkcode QueueDropLog}. */
export interface QueueDropLogOptions {
  /** The bound that made the drops, `max_queued_messages`, for the lines. */
  maxQueued: number;
  /** Milliseconds between two lines of one session while it goes on dropping. */
  intervalMs: number;
  /** Lines written in full per summary interval, all sessions together; the rest are tallied. */
  lines?: number;
}

/** The drops of one session since its first one here, and how many were told. */
interface Tally {
  /** Dropped since the first drop (of this episode). */
  total: number;
  /** How many of them a line told. */
  told: number;
  /** When the session may have its next line, ms. */
  next: number;
  /** When the first drop was, ms. */
  since: number;
}

/** Drops past each session's queue bound, told per session and rate-limited. */
export class QueueDropLog {
  readonly #lines: WarningLog;
  readonly #maxQueued: number;
  readonly #intervalMs: number;
  readonly #tallies = new Map<DroppingSession, Tally>();

  /**
   * @param log where lines go
   * @param options the queue bound and the interval between a session's lines
   */
  constructor(log: Logger, options: QueueDropLogOptions) {
    this.#lines = new WarningLog(log, { what: "queue-full warnings", lines: options.lines ?? 20 });
    this.#maxQueued = options.maxQueued;
    this.#intervalMs = options.intervalMs;
  }

  /**
   * A session dropped its oldest queued messages: the first drop is told at once, the next ones
   * at the session's next line.
   *
   * @param session the session
   * @param n how many were dropped
   * @param now the clock, ms
   */
  dropped(session: DroppingSession, n: number, now: number): void {
    const tally = this.#tallies.get(session);
    if (tally !== undefined) {
      tally.total += n;
      return;
    }
    this.#tallies.set(session, { total: n, told: n, next: now + this.#intervalMs, since: now });
    this.#warn(
      session,
      `Queue of ${quoted(session)} (${state(session)}) full at max_queued_messages ` +
        `${this.#bound()}: dropping its oldest messages, ${n} so far`,
    );
  }

  /**
   * The clock moved: one line for each session that dropped more since its last line and whose
   * interval has passed. A connected session that dropped nothing for an interval is forgotten
   * (its next drop is a first one again); an offline one is kept for its client's return.
   *
   * @param now the clock, ms
   */
  tick(now: number): void {
    for (const [session, tally] of this.#tallies) {
      if (now < tally.next) continue;
      if (tally.total === tally.told) {
        if (session.link !== undefined) this.#tallies.delete(session);
        continue;
      }
      const more = tally.total - tally.told;
      tally.told = tally.total;
      tally.next = now + this.#intervalMs;
      this.#warn(
        session,
        `Queue of ${quoted(session)} (${state(session)}) still full: ${more} more of its ` +
          `oldest messages were dropped, ${tally.total} since ${iso(tally.since)}`,
      );
    }
  }

  /**
   * The session's client is connected again and its queue is being delivered: one line with
   * what was dropped for it.
   *
   * @param session the session
   */
  back(session: DroppingSession): void {
    const tally = this.#tallies.get(session);
    if (tally === undefined) return;
    this.#tallies.delete(session);
    this.#warn(
      session,
      `${quoted(session)} is connected again: ${tally.total} of its queued messages were ` +
        `dropped since ${iso(tally.since)} (queue full at max_queued_messages ${this.#bound()})`,
    );
  }

  /**
   * The session ended here (expired, discarded, or gone on to another cluster node): what was not
   * told yet is, and it is forgotten.
   *
   * @param session the session
   * @param how why it ended, for the line ("moved to another node", "ended")
   */
  ended(session: DroppingSession, how: string): void {
    const tally = this.#tallies.get(session);
    if (tally === undefined) return;
    this.#tallies.delete(session);
    this.#warn(
      session,
      `Session of ${quoted(session)} ${how}: ${tally.total} of its queued messages were ` +
        `dropped here since ${
          iso(tally.since)
        } (queue full at max_queued_messages ${this.#bound()})`,
    );
  }

  /**
   * Ends the summary interval: one line for the lines over the budget, and a fresh budget.
   *
   * @param seconds the interval's length, for the line
   */
  flush(seconds: number): void {
    this.#lines.flush(seconds);
  }

  #warn(session: DroppingSession, line: string): void {
    this.#lines.warn(line, { reason: "queue full", source: session.clientId }, {
      event: "queue_full",
      clientId: session.clientId,
      reason: "queue full",
    });
  }

  #bound(): string {
    return this.#maxQueued >= Number.MAX_SAFE_INTEGER ? "unbounded" : String(this.#maxQueued);
  }
}

function quoted(session: DroppingSession): string {
  return JSON.stringify(session.clientId);
}

function state(session: DroppingSession): string {
  return session.link === undefined ? "offline" : "connected";
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
