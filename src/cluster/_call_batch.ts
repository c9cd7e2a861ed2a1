/**
 * Requests of concurrent callers sent to Redis as one call: while one call is unanswered, the
 * requests made meanwhile wait for it and go together, so under load a batch of logins costs one
 * script call, not one each, and alone a request goes at once. Used for the cluster's session
 * claims (`ClusterBus.claim`) and the store's session reads (`RedisStore.loadSession`).
 *
 * @module
 */

/** A request waiting to be sent, with its caller's promise. */
interface Waiting<T, R> {
  item: T;
  resolve: (reply: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Batches requests into calls of at most `max` items.
 *
 * @example
 * ```ts
 * import { CallBatch } from "./_call_batch.ts";
 * import assert from "node:assert/strict";
 *
 * const calls: number[][] = [];
 * const batch = new CallBatch<number, number>((items) => {
 *   calls.push(items);
 *   return Promise.resolve(items.map((n) => n * 2));
 * }, 10);
 * const replies = await Promise.all([batch.add(1), batch.add(2), batch.add(3)]);
 * assert.deepEqual(replies, [2, 4, 6]);
 * assert.deepEqual(calls, [[1], [2, 3]]);
 * ```
 */
export class CallBatch<T, R> {
  readonly #send: (items: T[]) => Promise<R[]>;
  readonly #max: number;
  #waiting: Waiting<T, R>[] = [];
  /** Calls unanswered. */
  #sent = 0;

  /**
   * @param send makes one call for the items, answering one reply per item in order (called
   *   synchronously by {@linkcode add} and {@linkcode flush})
   * @param max the most items in one call
   */
  constructor(send: (items: T[]) => Promise<R[]>, max: number) {
    this.#send = send;
    this.#max = max;
  }

  /**
   * Sends `item` now when no call is unanswered, else with the next call.
   *
   * @param item the request
   * @returns its reply; rejects with the call's error
   */
  add(item: T): Promise<R> {
    const { promise, resolve, reject } = Promise.withResolvers<R>();
    this.#waiting.push({ item, resolve, reject });
    if (this.#sent === 0) this.flush();
    return promise;
  }

  /** Sends every waiting request now (before a call that must come after them). */
  flush(): void {
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, this.#max);
      this.#sent++;
      this.#send(batch.map((w) => w.item)).then(
        (replies) => batch.forEach((w, i) => w.resolve(replies[i]!)),
        (error) => {
          for (const w of batch) w.reject(error);
        },
      ).finally(() => {
        this.#sent--;
        if (this.#sent === 0) this.flush();
      });
    }
  }
}
