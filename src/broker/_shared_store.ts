/**
 * What a cluster node writes to the store the nodes share: its persistent sessions only. The
 * retained set lives in the cluster's own Redis keys (every node holds all of it), and counters
 * are per node; writing them to the shared store too would make local traffic (a retained
 * PUBLISH, a CONNACK raising `clients/maximum`) wait for Redis for nothing.
 *
 * @module
 */

import type { StoreMutation } from "../store/mutation.ts";

/**
 * Whether a cluster node writes this mutation to the shared store.
 *
 * @param mutation a mutation of the core's journal
 * @returns true for the state of a persistent session (and the messages queued for it)
 */
export function sharedByNodes(mutation: StoreMutation): boolean {
  switch (mutation.type) {
    case "putRetained":
    case "deleteRetained":
    case "setCounter":
    case "clear":
      return false;
    default:
      return true;
  }
}
