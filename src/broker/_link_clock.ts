/**
 * The times the core keeps in every link (its keepalive deadline, the deadline last announced)
 * as small integers: ms since a time base that moves forward every few days, not ms since the
 * epoch. V8 keeps a number field that only ever held small integers ("Smis", 31 bits at least)
 * in the object itself; a field that held `Date.now()` (about 2^40) or `Infinity` gets a 16-byte
 * box of its own in every object (memory per idle connection).
 *
 * @module
 */

/** A deadline that never comes (keepalive 0), as a time since the base. */
export const NEVER = -1;
/**
 * How far before `now` a new base is put: a clock set back by up to this much (3.1 days) still
 * gives exact times; one set back further counts from the base.
 */
const SLACK = 2 ** 28;
/**
 * Once `now` is this far past the base (6.2 days), the base moves forward: times kept since it
 * stay below 2^30 (a keepalive allowance is at most about a day).
 */
const REBASE_AT = 2 ** 29;

/** The core's time base. */
export class LinkClock {
  #base: number | undefined;

  /**
   * A time as ms since the base (set by the first call), never below 0.
   *
   * @param at ms since the epoch
   * @returns ms since the base
   */
  since(at: number): number {
    const r = at - (this.#base ??= at - SLACK);
    return r > 0 ? small(r) : 0;
  }

  /**
   * A deadline as kept in a link.
   *
   * @param at ms since the epoch; Infinity for never
   * @returns ms since the base, or {@linkcode NEVER}
   */
  deadline(at: number): number {
    return at === Infinity ? NEVER : this.since(at);
  }

  /**
   * A deadline kept in a link as ms since the epoch.
   *
   * @param kept ms since the base, or {@linkcode NEVER}
   * @returns ms since the epoch; Infinity for never
   */
  at(kept: number): number {
    return kept === NEVER || this.#base === undefined ? Infinity : this.#base + kept;
  }

  /**
   * Moves the base forward once `now` is far from it.
   *
   * @param now ms since the epoch
   * @returns how far it moved (0: not at all): every time kept must be moved back as much
   *   ({@linkcode shifted})
   */
  rebase(now: number): number {
    const base = this.#base;
    if (base === undefined || now - base < REBASE_AT) return 0;
    this.#base = now - SLACK;
    return now - SLACK - base;
  }
}

/**
 * A time kept since the base, after the base moved `by` forward; a time already before the new
 * base (long past) becomes the base itself.
 *
 * @param kept ms since the old base, or {@linkcode NEVER}
 * @param by what {@linkcode LinkClock.rebase} returned
 * @returns ms since the new base, or {@linkcode NEVER}
 */
export function shifted(kept: number, by: number): number {
  if (kept === NEVER) return NEVER;
  const r = kept - by;
  return r > 0 ? small(r) : 0;
}

/**
 * `n` tagged as a small integer when it is one: the difference of two times since the epoch is a
 * heap number to V8 whatever its value, and storing one turns the field into a boxed double in
 * every link. (`| 0` gives a small integer; a fraction or anything past 32 bits is left as is.)
 */
function small(n: number): number {
  const i = n | 0;
  return i === n ? i : n;
}
