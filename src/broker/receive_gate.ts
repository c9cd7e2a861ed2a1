/**
 * Replies that wait for receive authorizations. A QoS 1/2 message whose delivery to a session
 * waits on a plugin's receive authorization (aMQTT's receive ACL, answered later) is in memory
 * only until the answer: the delivery is journaled, and then stored, once allowed. The
 * publisher's PUBACK/PUBREC says the message is safe, so with a store it waits until every
 * authorization its message asked for is answered (and then for the commit of what they
 * delivered; see `BrokerConnection.gate`). A plugin that does not answer is timed out by the
 * plugin host (a denial), so the wait is bounded.
 *
 * @module
 */

/** What the gate reads of the core: its numbering of receive authorizations. */
export interface ReceiveCounts {
  /** Receive authorizations asked so far (numbered from 1 in the order asked). */
  readonly receivesAsked: number;
  /** Every receive authorization numbered below this one was answered. */
  readonly receivesAnsweredBelow: number;
}

/** A reply waiting for the authorizations asked up to `asked`. */
interface Waiting {
  asked: number;
  resolve: () => void;
}

/**
 * Promises that settle once the receive authorizations asked up to a number are answered.
 *
 * @example
 * ```ts
 * import { ReceiveGate } from "./receive_gate.ts";
 * import assert from "node:assert/strict";
 *
 * const core = { receivesAsked: 2, receivesAnsweredBelow: 2 };
 * const gate = new ReceiveGate(core);
 * assert.equal(gate.answered(1), undefined);
 * const second = gate.answered(2)!;
 * core.receivesAnsweredBelow = 3;
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
   * Whether the authorizations asked up to `asked` are all answered.
   *
   * @param asked an ask's number (`core.receivesAsked` after it was asked)
   * @returns `undefined` when they are, else a promise that settles when they are
   */
  answered(asked: number): Promise<void> | undefined {
    if (this.#core.receivesAnsweredBelow > asked) return undefined;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push({ asked, resolve });
    return promise;
  }

  /** A receive authorization was answered (and its delivery run into the core). */
  settled(): void {
    if (this.#waiting.length === 0) return;
    const below = this.#core.receivesAnsweredBelow;
    const still: Waiting[] = [];
    for (const waiting of this.#waiting) {
      if (waiting.asked < below) waiting.resolve();
      else still.push(waiting);
    }
    this.#waiting = still;
  }
}
