/**
 * Which QoS 1/2 messages forwarded to other nodes Redis has acknowledged: the bus numbers them
 * as they are queued and marks them acknowledged when the XADDs of the flush that carried them
 * have been answered, so that a PUBACK or PUBREC to their publisher can wait until the message
 * is in every interested node's stream.
 *
 * @module
 */

/**
 * What a connection needs to hold a reply until the cluster's forwards it depends on are
 * acknowledged by Redis (the counterpart of the store's `CommitGate`).
 */
export interface ForwardGate {
  /** QoS 1/2 forwards queued since start: a mark for {@linkcode acknowledged}. */
  readonly emitted: number;
  /**
   * Whether replies to what was forwarded up to now may be written: `undefined` when nothing
   * queued after `since` is still waiting, else a promise that resolves once it is acknowledged
   * by Redis, or no longer waited for (Redis was lost: see {@linkcode ForwardAcks.release}). It
   * never rejects.
   *
   * @param since the connection's mark at its previous write
   */
  acknowledged(since: number): Promise<void> | undefined;
}

/**
 * Counts forwards and their acknowledgements.
 *
 * @example
 * ```ts
 * import { ForwardAcks } from "./forward_acks.ts";
 * import assert from "node:assert/strict";
 *
 * const acks = new ForwardAcks();
 * acks.queued();
 * const waiting = acks.acknowledged(0);
 * assert.ok(waiting !== undefined);
 * acks.settle(acks.emitted);
 * await waiting;
 * assert.equal(acks.acknowledged(0), undefined);
 * ```
 */
export class ForwardAcks implements ForwardGate {
  #emitted = 0;
  #acked = 0;
  /** Waiters, their targets ascending (marks only grow). */
  #waiters: { target: number; resolve: () => void; done: Promise<void> }[] = [];

  /** QoS 1/2 forwards queued since start. */
  get emitted(): number {
    return this.#emitted;
  }

  /** Counts one QoS 1/2 forward queued (to any number of nodes). */
  queued(): void {
    this.#emitted++;
  }

  /**
   * See {@linkcode ForwardGate.acknowledged}.
   *
   * @param since the caller's mark at its previous write
   * @returns `undefined`, or a promise settled when the forwards queued until now are acknowledged
   */
  acknowledged(since: number): Promise<void> | undefined {
    const target = this.#emitted;
    if (this.#acked >= target || since >= target) return undefined;
    const last = this.#waiters.at(-1);
    if (last !== undefined && last.target === target) return last.done;
    let resolve!: () => void;
    const done = new Promise<void>((r) => resolve = r);
    this.#waiters.push({ target, resolve, done });
    return done;
  }

  /**
   * Marks every forward queued up to `mark` as settled: acknowledged by Redis, or given up (it
   * left for a node that left meanwhile, or its XADD failed: then it is counted as dropped).
   * Flushes are answered in order on one connection, so marks arrive in order.
   *
   * @param mark {@linkcode emitted} when the flush was sent
   */
  settle(mark: number): void {
    if (mark <= this.#acked) return;
    this.#acked = mark;
    let i = 0;
    while (i < this.#waiters.length && this.#waiters[i]!.target <= mark) {
      this.#waiters[i++]!.resolve();
    }
    if (i > 0) this.#waiters.splice(0, i);
  }

  /**
   * Stops every wait: Redis was lost, or the bus is closing. What was queued stays queued (sent
   * when Redis is back), but no reply waits for it.
   */
  release(): void {
    this.settle(this.#emitted);
  }
}
