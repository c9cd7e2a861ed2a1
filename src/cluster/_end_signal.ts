/**
 * Waits that end early at an end (Redis lost, a connection closed). A `Promise.race` with one
 * long-lived promise that settles at the end would add a reaction to it per wait, kept, with the
 * race's promise and the winner's result, until the end: on a cluster node, one per store write
 * and per commit a connection waited for. Here a wait is an entry in a set, removed once it
 * settles.
 *
 * @module
 */

/** Ends the waits given to it; see the module doc. */
export class EndSignal {
  // How each pending wait ends early; undefined after an end, until renew().
  #waits: Set<(error: unknown) => void> | undefined = new Set();
  // What waits started after an end get.
  #error: unknown;

  /** The waits pending now (a figure for tests). */
  get waiting(): number {
    return this.#waits?.size ?? 0;
  }

  /**
   * `promise`, or, when the end comes first (or has come), `undefined` or the end's error.
   *
   * @param promise what is waited for
   * @returns its outcome, or the end's
   */
  wait<T>(promise: Promise<T>): Promise<T | undefined> {
    const waits = this.#waits;
    if (waits === undefined) {
      return this.#error === undefined ? Promise.resolve(undefined) : Promise.reject(this.#error);
    }
    return new Promise<T | undefined>((resolve, reject) => {
      const ended = (error: unknown) => error === undefined ? resolve(undefined) : reject(error);
      waits.add(ended);
      promise.then((value) => {
        waits.delete(ended);
        resolve(value);
      }, (error) => {
        waits.delete(ended);
        reject(error);
      });
    });
  }

  /**
   * The end: every pending wait ends now, resolved with `undefined` or rejected with `error`, and
   * later ones at once until {@linkcode EndSignal.renew}.
   *
   * @param error what the waits reject with; none to resolve them
   */
  end(error?: unknown): void {
    const waits = this.#waits;
    this.#waits = undefined;
    this.#error = error;
    for (const ended of waits ?? []) ended(error);
  }

  /** Waits last until their promise settles again. */
  renew(): void {
    this.#waits ??= new Set();
    this.#error = undefined;
  }
}
