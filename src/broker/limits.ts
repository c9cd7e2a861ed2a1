/**
 * Limits on the state clients can make the broker hold (topic levels, subscriptions, sessions,
 * retained messages), the counters of what they refused, and the rate-limited log of refusals.
 * The core checks each limit before it spends the memory; `broker_config.ts` documents the
 * configuration keys and their defaults.
 *
 * @module
 */

import type { Logger } from "./policy.ts";

/** Limits of {@linkcode StateLimits}; 0 turns a limit off. */
export interface StateLimits {
  /** Levels of a topic name or filter (`max_topic_levels`). */
  maxTopicLevels: number;
  /** Subscriptions one session may hold (`max_subscriptions_per_client`). */
  maxSubscriptionsPerClient: number;
  /** Sessions in total, connected or offline (`max_sessions`). */
  maxSessions: number;
  /** Retained messages stored (`max_retained_messages`). */
  maxRetainedMessages: number;
  /** Bytes of retained topics and payloads stored (`max_retained_bytes`). */
  maxRetainedBytes: number;
}

/** What the limits refused since start, part of the broker's stats. */
export interface RefusalCounters {
  /** PUBLISH and will topics and SUBSCRIBE filters over `max_topic_levels`. */
  refusedTopicLevels: number;
  /** SUBSCRIBE filters over `max_subscriptions_per_client`. */
  refusedSubscriptions: number;
  /** CONNECTs refused with return code 3 for `max_sessions`. */
  refusedSessions: number;
  /** Retained messages not stored for `max_retained_messages` or `max_retained_bytes`. */
  refusedRetained: number;
  /**
   * New sessions, subscriptions and retained messages refused over `max_memory` (messages not
   * queued for it are counted as dropped).
   */
  refusedMemory: number;
}

/** The kinds of {@linkcode RefusalCounters}. */
export type RefusalKind = keyof RefusalCounters;

/**
 * Logs refusals without letting a flood of them flood the log: the first of each kind per sweep
 * is logged in full, the rest are counted and summarised in one line at the next sweep.
 */
export class RefusalLog {
  #log: Logger;
  #suppressed = new Map<RefusalKind, number>();

  /**
   * Creates the log.
   *
   * @param log where lines go
   */
  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Logs a refusal at warning level, or counts it when one of its kind was logged this sweep.
   *
   * @param kind the limit that refused
   * @param message the line to log
   */
  warn(kind: RefusalKind, message: string): void {
    const seen = this.#suppressed.get(kind);
    if (seen === undefined) {
      this.#log.warning(message);
      this.#suppressed.set(kind, 0);
    } else {
      this.#suppressed.set(kind, seen + 1);
    }
  }

  /** Writes the summary of what was suppressed and starts a new interval. */
  flush(): void {
    for (const [kind, count] of this.#suppressed) {
      if (count > 0) this.#log.warning(`${count} more refusals counted in ${kind}`);
    }
    this.#suppressed.clear();
  }
}
