/**
 * Why the broker did not deliver a message, counted per reason for `$SYS` and for the periodic
 * log summary: drops are normal under load, but they must be visible.
 *
 * @module
 */

/** Why a message (or one delivery of it) was dropped: a key of `BrokerStats.droppedBy`. */
export type DropReason =
  | "queueFull"
  | "outboundFull"
  | "notAuthorized"
  | "sessionExpired"
  | "expired"
  | "tooLarge"
  | "noShareMember";

/** Each reason a message (or one delivery of it) is dropped, with the words the log uses. */
export const DROP_REASONS: Readonly<Record<DropReason, string>> = {
  /** A QoS 1/2 message past a session's `max_queued_messages`: the oldest queued is dropped. */
  queueFull: "queue full",
  /** A QoS 0 delivery while the connection holds `max_outbound_bytes` unsent. */
  outboundFull: "outbound full",
  /** A PUBLISH or a delivery a plugin (or `$SYS`'s read-only rule) did not allow. */
  notAuthorized: "not authorized",
  /** Messages still queued for an offline session when it expired. */
  sessionExpired: "session expired",
  /** MQTT 5.0: a queued copy whose Message Expiry Interval passed before it could go out. */
  expired: "message expired",
  tooLarge: "over the client's maximum packet size",
  /**
   * On a cluster node: a message passed on for a shared group that reached no member of it (no
   * node with members known for a while, or passed on too often).
   */
  noShareMember: "no member of its shared group",
};

/** Drops so far, per reason. */
export type DropCounts = Record<DropReason, number>;

/**
 * Fresh counters, all zero.
 *
 * @returns one counter per reason
 */
export function emptyDropCounts(): DropCounts {
  const counts = {} as DropCounts;
  for (const reason of Object.keys(DROP_REASONS) as DropReason[]) counts[reason] = 0;
  return counts;
}

/**
 * Counts drops under `reason` and in the total.
 *
 * @param counters the total and the per-reason counts
 * @param reason why
 * @param n how many
 */
export function countDrop(
  counters: { dropped: number; droppedBy: DropCounts },
  reason: DropReason,
  n = 1,
): void {
  counters.dropped += n;
  counters.droppedBy[reason] += n;
}

/**
 * The `$SYS` topic level of a reason: `queueFull` is published on
 * `$SYS/broker/publish/messages/dropped/queue-full`.
 *
 * @param reason the reason
 * @returns its topic level
 */
export function dropTopicLevel(reason: string): string {
  return reason.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
