/**
 * What the broker needs of its cluster membership, apart from its implementation
 * (`cluster_link.ts`), which the broker imports only when `cluster:` is configured: so that
 * neither the broker's module graph nor its documentation pulls in the Redis client.
 *
 * @module
 */

import type { ClusterConfig } from "../config/mod.ts";
import type { BrokerCore } from "./core.ts";
import type { BrokerMessage } from "./message.ts";
import type { ForwardGate } from "../cluster/forward_acks.ts";
import type { BrokerStore } from "../store/broker_store.ts";
import type { StoreMutation } from "../store/mutation.ts";
import type { CommitGate, StoreWriter } from "./store_writer.ts";
import type { Logger, Refused } from "./policy.ts";

/** Options of `ClusterLink.start`. */
export interface ClusterLinkOptions {
  /** The resolved `cluster` section (enabled). */
  config: ClusterConfig;
  /** The core this node serves. */
  core: BrokerCore;
  /** Runs the actions a call into the core queued; called after each one. */
  run: () => void;
  /** Where cluster events are logged. */
  logger: Logger;
  /** How a shared group with members on several nodes picks the node for a message. */
  shareStrategy?: "round_robin" | "random";
  /**
   * `shared`: the link opens the store the nodes share (`openClusterStore`) as the node's store,
   * and persistent sessions move between nodes through it. Left out: the node has a store of its
   * own (given when embedding) or none, and its sessions stay on it.
   */
  store?: "shared";
  /** Resolves when everything the core journaled so far is committed (`undefined`: it is). */
  committed?: () => Promise<void> | undefined;
  /** Writes a mutation to the node's store with what the core journals in this turn. */
  write?: (mutation: StoreMutation) => void;
  /** How many mutations were written to the store so far. */
  journaled?: () => number;
  /**
   * Aborts the start while it waits for the nodes of another cluster protocol version to go
   * (`ClusterBusOptions.signal`): the broker shut down before it joined.
   */
  signal?: AbortSignal;
  /**
   * Told why the node does not join yet while it waits for the nodes of another cluster protocol
   * version to go (`_protocol.ts`, `waitingText`), and `undefined` once it joins: what `/readyz`
   * and `/healthz` say meanwhile.
   */
  waiting?: (reason: string | undefined) => void;
}

/** Cluster figures of one node, for `$SYS` and `/metrics`. */
export interface ClusterFigures {
  /** This node's id. */
  nodeId: string;
  /** Nodes alive, this one included. */
  nodes: number;
  /** Whether Redis is connected, this node is synchronised and its stream connections are open. */
  ready: boolean;
  /** Messages sent to other nodes (one per receiving node). */
  forwarded: number;
  /** Messages received from other nodes. */
  received: number;
  /** Messages not forwarded (Redis away, or the forwarding queue full). */
  dropped: number;
  /** Other nodes found dead (stopped responding) and removed, since this node started. */
  nodesDead: number;
  /** Sessions of departed nodes this node adopted. */
  sessionsAdopted: number;
  /** Times the other nodes took this node for dead (its sessions continued elsewhere). */
  takenForDead: number;
  /** Times this node found that Redis lost the cluster's data (`P epoch`). */
  redisDataLost: number;
  /** Times this node's store found that Redis lost the sessions' data (`P store:epoch`). */
  storeDataLost: number;
  /**
   * Frames and records read from Redis that this node refused as malformed (another node's bug,
   * another release, a hand-written key): ignored, the node serving on.
   */
  malformed: number;
}

/** A broker's membership of a cluster, as the broker drives it. */
export interface ClusterMember {
  /** The store the nodes share, when the link opened it (`store: "shared"`). */
  readonly store: BrokerStore | undefined;
  /** Figures for `$SYS` and `/metrics`. */
  figures(): ClusterFigures;
  /**
   * The forwards of QoS 1/2 messages to other nodes and their acknowledgement by Redis: a
   * publisher's PUBACK/PUBREC waits for those its PUBLISH caused, while Redis is connected.
   */
  readonly forwards: ForwardGate;
  /**
   * The `$SYS/broker/cluster/…` topics and values: this node's id and bus counters, and the
   * cluster-wide sums of `counters` and `gauges` (shared through Redis; as of each node's
   * previous share; the counters' sums keep what departed nodes counted, so they never go down).
   */
  sysTopics(
    counters: Record<string, number>,
    gauges: Record<string, number>,
  ): Record<string, string>;
  /** The host program or an operator deleted a retained message here: delete it everywhere. */
  retainedDeleted(topic: string): void;
  /** A message is being routed on this node: other nodes with matching subscriptions get it. */
  forward(message: BrokerMessage): void;
  /**
   * A client asks to subscribe to `filter`: a promise when the SUBACK should wait until the other
   * nodes know this node wants it (its first subscriber here), else `undefined`.
   */
  prepareInterest(filter: string): Promise<undefined> | undefined;
  /**
   * A client is about to log in here: a promise when its login must wait until the session it had
   * on another node (or in the shared store) is loaded here, else `undefined`. The promise
   * resolves with a refusal when the session the client asked to resume (`resume`: Clean Start
   * 0) could not be loaded in time. `progress` is called as each part of a long session read
   * comes (the login's bound counts from the last, `BrokerCore.progressed`).
   */
  prepareLogin(
    clientId: string,
    resume: boolean,
    progress?: () => void,
  ): Promise<Refused | undefined> | undefined;
  /**
   * The shared store's commit gate for the node's connections: nothing waits for it while Redis is
   * away.
   */
  storeGate(writer: CommitGate & Partial<Pick<StoreWriter, "probe">>): CommitGate;
  /** A local client's subscriptions or connection changed. */
  sessionChanged(clientId: string): void;
  /** A local client's CONNECT was accepted. */
  connected(clientId: string, clean?: boolean): void;
  /** A local client's connection ended. */
  disconnected(clientId: string): void;
  /**
   * Before the store writer's probe: when Redis lost its data, a fresh block of message ids and
   * this node's messages renumbered from it (`ClusterSessions.renew`).
   */
  renewStore(): Promise<void>;
  /** Catches up with sessions the core discarded without an event; called at each sweep. */
  sweep(): void;
  /**
   * Leaves the cluster. With `counters` (as `sysTopics` takes them), those are shared first: the
   * cluster-wide totals keep what this node counted after its last share, not only up to it.
   */
  close(counters?: Record<string, number>): Promise<void>;
}

/** The module `cluster_link.ts`, as the broker imports it on demand. */
export interface ClusterLinkModule {
  /** Joins the cluster. */
  startClusterLink(options: ClusterLinkOptions): Promise<ClusterMember>;
}
