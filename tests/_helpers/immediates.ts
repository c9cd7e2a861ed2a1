/**
 * Waiting for work the code under test queued with `setImmediate` (the stores' group commit in
 * `src/store/_group_commit.ts`, the cluster bus's flush): `await afterImmediates()` in place of a
 * `setTimeout(0)`, which on a loaded machine may run before those immediates (once a millisecond
 * has passed, the timer is due first).
 *
 * @module
 */

import { setImmediate } from "node:timers";

/**
 * Settles after every immediate queued before the call, and after those queued by the microtasks
 * pending at the call (a `StoreWriter` hands its batch to the store in a microtask, and the store
 * queues its write then): immediates run in the order queued, and one queued from an immediate
 * runs after every one queued before.
 *
 * @returns a promise settled two immediates later
 */
export function afterImmediates(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}
