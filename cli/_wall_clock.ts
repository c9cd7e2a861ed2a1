/**
 * The wall clock with better than millisecond resolution, for `amqtt_sub -F`'s `@N` and `%U`
 * (mosquitto_sub reads `clock_gettime(CLOCK_REALTIME)`, in nanoseconds). A `Date` holds
 * milliseconds; `performance.timeOrigin + performance.now()` has microseconds or better here.
 *
 * @module
 */

/** A `Date` that also knows the nanoseconds within its second. */
export class PreciseDate extends Date {
  /** Nanoseconds since the start of the second, 0 to 999,999,999. */
  readonly nanosecond: number;

  /**
   * @param epochMs milliseconds since the epoch, with a fraction
   */
  constructor(epochMs: number) {
    const ms = Math.floor(epochMs);
    super(ms);
    const second = Math.floor(ms / 1000) * 1000;
    this.nanosecond = Math.min(999_999_999, Math.floor((epochMs - second) * 1_000_000));
  }
}

/**
 * Now, to the nanosecond as far as the runtime tells it. The monotonic clock does not follow a
 * change of the system time: when it is more than a second away from `Date.now()`, the
 * millisecond clock is used.
 *
 * @returns the time
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nanosecondOf, wallClock } from "./_wall_clock.ts";
 *
 * const d = wallClock();
 * assert.ok(Math.abs(d.getTime() - Date.now()) < 1000);
 * assert.equal(Math.floor(nanosecondOf(d) / 1_000_000), d.getMilliseconds());
 * ```
 */
export function wallClock(): PreciseDate {
  const precise = performance.timeOrigin + performance.now();
  const coarse = Date.now();
  return new PreciseDate(Math.abs(precise - coarse) > 1000 ? coarse : precise);
}

/**
 * The nanoseconds within the second of `d`: exact for a {@linkcode PreciseDate}, from the
 * milliseconds for any other `Date`.
 *
 * @param d the time
 * @returns 0 to 999,999,999
 */
export function nanosecondOf(d: Date): number {
  return d instanceof PreciseDate ? d.nanosecond : d.getMilliseconds() * 1_000_000;
}
