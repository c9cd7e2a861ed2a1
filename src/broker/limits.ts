/**
 * Limits on the state clients can make the broker hold (topic levels, subscriptions, sessions,
 * retained messages) and the counters of what they refused.
 * The core checks each limit before it spends the memory; `broker_config.ts` documents the
 * configuration keys and their defaults.
 *
 * @module
 */

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

/** Each refusal counter's name as a `$SYS` topic level and a metric label. */
export const REFUSAL_NAMES: Readonly<Record<RefusalKind, string>> = {
  refusedTopicLevels: "topic-levels",
  refusedSubscriptions: "subscriptions",
  refusedSessions: "sessions",
  refusedRetained: "retained",
  refusedMemory: "memory",
};

/**
 * The refusal counters of `stats` by name.
 *
 * @param stats counters holding the refusal counters
 * @returns counts keyed by {@linkcode REFUSAL_NAMES}
 */
export function refusalsByName(stats: Readonly<RefusalCounters>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, name] of Object.entries(REFUSAL_NAMES)) {
    out[name] = stats[kind as RefusalKind];
  }
  return out;
}
