/**
 * The promise a group commit settles: one per transaction, shared by every batch in it.
 *
 * @module
 */

import type { StoreError } from "./store_error.ts";

/** One pending transaction's outcome. */
export interface CommitTick {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: StoreError) => void;
}

/** A new tick whose rejection, if nobody waits for it, is not an unhandled rejection. */
export function newCommitTick(): CommitTick {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // A failed commit nobody waits for must not end the process: the next commit() reports it.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
