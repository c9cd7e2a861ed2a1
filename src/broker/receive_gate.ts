/**
 * Replies that wait for receive authorizations. A QoS 1/2 message whose delivery to a session
 * waits on a plugin's receive authorization (aMQTT's receive ACL, answered later) is in memory
 * only until the answer: the delivery is journaled, and then stored, once allowed. The
 * publisher's PUBACK/PUBREC says the message is safe, so with a store it waits until the
 * authorizations its message asked for are answered and their deliveries decided (a delivery
 * answered behind an earlier one of its session that is not still waits), and then for the
 * commit of what they delivered; see `BrokerConnection.gate`. Only those: another publisher's
 * reply does not wait behind a slow answer it did not ask for. A plugin that does not answer is
 * timed out by the plugin host (a denial), so the wait is bounded.
 *
 * @module
 */

/** What the gate reads of the core: its numbering of receive authorizations. */
export interface ReceiveCounts {
  /**
   * Whether a delivery whose receive authorization is numbered after `after` up to `upTo`
   * (numbered from 1 in the order asked) still waits in memory.
   */
  receivesWaiting(after: number, upTo: number): boolean;
}

/** A reply waiting for the authorizations numbered after `after` up to `upTo`. */
interface Waiting {
  after: number;
  upTo: number;
  resolve: () => void;
}

/**
 * Promises that settle once the deliveries of a range of receive authorizations are decided.
 *
 * @example
 * ```ts
 * import { ReceiveGate } from "./receive_gate.ts";
 * import assert from "node:assert/strict";
 *
 * const pending = new Set([1, 2]);
 * const core = {
 *   receivesWaiting: (after: number, upTo: number) =>
 *     [...pending].some((ask) => ask > after && ask <= upTo),
 * };
 * const gate = new ReceiveGate(core);
 * assert.equal(gate.answered(2, 3), undefined);
 * const second = gate.answered(1, 2)!;
 * pending.delete(2);
 * gate.settled();
 * await second;
 * ```
 */
export class ReceiveGate {
  readonly #core: ReceiveCounts;
  #waiting: Waiting[] = [];

  /**
   * @param core the broker's core
   */
  constructor(core: ReceiveCounts) {
    this.#core = core;
  }

  /**
   * Whether the deliveries of the authorizations numbered after `after` up to `upTo` are all
   * decided.
   *
   * @param after `core.receivesAsked` before the first of them was asked
   * @param upTo `core.receivesAsked` after the last of them was asked
   * @returns `undefined` when they are, else a promise that settles when they are
   */
  answered(after: number, upTo: number): Promise<void> | undefined {
    if (!this.#core.receivesWaiting(after, upTo)) return undefined;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push({ after, upTo, resolve });
    return promise;
  }

  /** A receive authorization was answered (and its delivery run into the core). */
  settled(): void {
    if (this.#waiting.length === 0) return;
    const still: Waiting[] = [];
    for (const waiting of this.#waiting) {
      if (this.#core.receivesWaiting(waiting.after, waiting.upTo)) still.push(waiting);
      else waiting.resolve();
    }
    this.#waiting = still;
  }
}
