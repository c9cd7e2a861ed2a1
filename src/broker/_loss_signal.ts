/**
 * Waits that end early when Redis is lost. A `Promise.race` with one long-lived promise (Redis
 * lost) would add a reaction to it per wait, kept, with the race's promise and its result, until
 * Redis is lost: on a cluster node, one per commit a connection waited for. Here a wait is an
 * entry in a set, removed once it settles.
 *
 * @module
 */

/** Ends the waits given to it at a loss; see the module doc. */
export class LossSignal {
  // The waits' resolvers; undefined while lost.
  #waits: Set<() => void> | undefined = new Set();

  /** The waits pending now (a figure for tests). */
  get waiting(): number {
    return this.#waits?.size ?? 0;
  }

  /**
   * `promise`, or `undefined` at once when the loss comes first (or is now).
   *
   * @param promise what is waited for
   * @returns its outcome, or undefined at a loss
   */
  wait<T>(promise: Promise<T>): Promise<T | undefined> {
    const waits = this.#waits;
    if (waits === undefined) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      const lost = () => resolve(undefined);
      waits.add(lost);
      promise.then((value) => {
        waits.delete(lost);
        resolve(value);
      }, (error) => {
        waits.delete(lost);
        reject(error);
      });
    });
  }

  /** The loss: every wait ends now, and later ones at once until {@linkcode LossSignal.back}. */
  lose(): void {
    const waits = this.#waits;
    this.#waits = undefined;
    for (const lost of waits ?? []) lost();
  }

  /** Back: waits last until their promise settles again. */
  back(): void {
    this.#waits ??= new Set();
  }
}
