/**
 * Internal: flow control from subscribers' queues back to publishers' reads, top-level keys of the
 * broker configuration (our addition).
 *
 * @module
 */

import { type Entry, type ReadContext, readNumber } from "./_reader.ts";

/** The top-level keys this reader resolves. */
export const FLOW_CONTROL_KEYS = [
  "flow_control_high_water",
  "flow_control_low_water",
  "flow_control_timeout",
] as const;

/** Default of `flow_control_timeout`: seconds a publisher may stay paused. */
export const DEFAULT_FLOW_CONTROL_TIMEOUT = 1;

/** The resolved flow control settings, as {@linkcode BrokerConfig} holds them. */
export interface FlowControlConfig {
  /**
   * Messages queued behind a connected subscriber's in-flight window at which the publishers of
   * what is routed to it stop being read (their packets wait in TCP buffers). 0 turns flow
   * control off. Default: half of `max_queued_messages` (500 with its default of 1000, and when
   * it is unlimited); never above it.
   */
  flowControlHighWater: number;
  /** Queued messages at or below which those publishers are read again. Default: half the high water. */
  flowControlLowWater: number;
  /**
   * Seconds a publisher stays paused at most; then the queues it waited for drop their oldest
   * messages (counted as `queue-full`) until they drain to the low water. Default 1.
   */
  flowControlTimeout: number;
}

/**
 * Reads the flow control keys, with defaults derived from `max_queued_messages`.
 *
 * @param ctx the read context (errors with key paths and lines)
 * @param top the top-level keys
 * @param maxQueued the resolved `max_queued_messages` (0: unlimited)
 * @returns the resolved settings
 */
export function readFlowControl(
  ctx: ReadContext,
  top: Map<string, Entry>,
  maxQueued: number,
): FlowControlConfig {
  const high = top.get("flow_control_high_water");
  const low = top.get("flow_control_low_water");
  const timeout = top.get("flow_control_timeout");
  // A queue that drops before its high water would never pause anybody.
  const queueMax = maxQueued > 0 ? maxQueued : Number.MAX_SAFE_INTEGER;
  const highWater = high === undefined
    ? (maxQueued > 0 ? Math.max(1, Math.floor(maxQueued / 2)) : 500)
    : Math.min(readNumber(ctx, high, { min: 0, integer: true }), queueMax);
  const lowWater = low === undefined
    ? Math.floor(highWater / 2)
    : Math.min(readNumber(ctx, low, { min: 0, integer: true }), highWater);
  return {
    flowControlHighWater: highWater,
    flowControlLowWater: lowWater,
    flowControlTimeout: timeout === undefined
      ? DEFAULT_FLOW_CONTROL_TIMEOUT
      : readNumber(ctx, timeout, { min: 0, positive: true, unit: "seconds" }),
  };
}
