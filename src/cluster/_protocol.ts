/**
 * The cluster protocol version: what the nodes of one cluster must agree on to share a Redis.
 * Every node registers it (`P versions`, `_bus_scripts.ts`) and, before it registers and again in
 * the script that registers it, looks for live nodes of another one (`VERSIONS_SCRIPT`,
 * `REGISTER_SCRIPT`): while there are any it does not join.
 *
 * Bump {@linkcode CLUSTER_PROTOCOL} with any change another release's node would misread: a key
 * of the table in `_bus_scripts.ts` added, removed or given another meaning or format; a script's
 * rule that other nodes' scripts rely on (what a reap, claim, take or pass writes and checks);
 * the bus frame's version (`bus_frame.ts`) or a frame type; the shared store's keys or rows
 * (`_redis_store_scripts.ts`). A change inside one node (its own timing, its logs, a script's
 * arguments and replies, which only its own release calls) keeps it.
 *
 * @module
 */

/**
 * This release's cluster protocol version. 1 is the first release that registers one; nodes of
 * the releases before it register none, read as {@linkcode UNVERSIONED}. 2 (session 14): a
 * handoff made while nobody owns the session (its new owner was reaped) passes the writer mark on
 * (`HAND_OFF_SCRIPT`), and the node adopting a session whose single move's new owner died waits
 * while the mark is with the previous owner (a node of 1 loads at once, and takes the mark);
 * `P gaveway` (a delayed will of a provisional session that gave way, dropped by any claim); a
 * session's read deletes a copy of its entries left by an earlier reader (`P copies`), and the
 * session's deletion (`ds`, `cl`) deletes that copy and its listing too; the cluster counter
 * moved from `P gen` to `P count`, and `P gen` holds a text that fails the scripts of the
 * releases before versions (`PRE_VERSION_BARRIER`, `_bus_scripts.ts`), which do not check; a
 * node reaped or leaving (a restart retiring its previous run too) passes the writer marks it
 * holds in chains of moves on (`release_all`), so that an adopter does not wait for a node
 * restarted under its id; the `subscribed` frame (the subscriptions of a provisional session
 * that gave way, sent to the node holding the client's session, which the give-way no longer
 * takes from it).
 *
 * Version 3 (session 15): the subscriptions of a provisional session that gave way are
 * left in Redis for the session that exists (`P pendsub:ID`, `P pendsubs`), added and dropped by
 * whichever node holds or loads it; the `subscribed` frame only tells its holder to look; a
 * claim that begins a session (a clean start, the read of `!`, or one finding none) notes when
 * in `P born` and drops what was left for an older one; the heartbeat answers Redis's clock.
 * Also in version 3: a long queue read by a reader that is not the session's writer (a
 * store outside a cluster, a node reading a session another node owns) is read in place with a
 * mark (`P reading`, client id → the read's token), which every write of the session's entries
 * deletes (`qo`, `so`, `pr`, `do`, `ds`, `de`, `cl`), instead of copied to `P read:N:ID` (`COPY`,
 * one O(entries) step: 1,000,000 entries held Redis 0.6 to 2 s); `P copies` and `P read:N:ID` are
 * gone. A node of 2 writing the session would not delete a node of 3's mark (its read could mix
 * the queue before and after the write), and a node of 3 would not delete a node of 2's copies.
 */
export const CLUSTER_PROTOCOL = 3;

/** The version of a node that registered none: a release before protocol versions. */
export const UNVERSIONED = 0;

/** A live node of another cluster protocol version than this node's. */
export interface ForeignNode {
  /** Its node id. */
  node: string;
  /** Its cluster protocol version ({@linkcode UNVERSIONED} when it registered none). */
  protocol: number;
}

function versionText(protocol: number): string {
  return protocol === UNVERSIONED
    ? `${protocol} (a release before cluster protocol versions)`
    : String(protocol);
}

/**
 * The log line of a node that does not join while nodes of another protocol version are live.
 *
 * @param nodes the live nodes of other versions
 * @param retryMs how long the node waits before it looks again
 * @returns one line naming both versions and what the operator can do
 */
export function refusalText(nodes: readonly ForeignNode[], retryMs: number): string {
  const versions = [...new Set(nodes.map((n) => n.protocol))].sort((a, b) => a - b);
  const theirs = versions.map(versionText).join(", ");
  const names = nodes.map((n) => n.node).sort().join(", ");
  return `Cluster: not joining: live node(s) ${names} run cluster protocol ${theirs}, this node ` +
    `runs ${CLUSTER_PROTOCOL}; releases of different cluster protocols cannot share a cluster: ` +
    `stop every node of the other release (its persistent sessions stay in Redis), then this ` +
    `node joins; checking again every ${retryMs / 1000} s`;
}

/**
 * Why a node that waits is not ready (`/readyz`, `/healthz`): the versions only, no node ids,
 * since `/healthz` answers without a login.
 *
 * @param nodes the live nodes of other versions
 * @returns one line naming both versions
 */
export function waitingText(nodes: readonly ForeignNode[]): string {
  const versions = [...new Set(nodes.map((n) => n.protocol))].sort((a, b) => a - b);
  return `waiting to join the cluster: live node(s) run cluster protocol ${
    versions.map(versionText).join(", ")
  }, this node runs ${CLUSTER_PROTOCOL}`;
}

/**
 * The log line of a node that finds a node of another protocol version joined beside it: one
 * that does not check (a release before protocol versions), or started within the same moment.
 *
 * @param node the node that joined
 * @returns one line naming both versions and what the operator must do
 */
export function intruderText(node: ForeignNode): string {
  return `Cluster: node ${node.node} joined running cluster protocol ${
    versionText(node.protocol)
  }, this node runs ${CLUSTER_PROTOCOL}; releases of different cluster protocols cannot share a ` +
    `cluster (messages and sessions between them may be lost or duplicated): stop node ${node.node}`;
}
