/**
 * The broker's end of a cluster: joins the {@linkcode ClusterBus} on Redis and connects it to the
 * core, so that several broker processes act as one broker.
 *
 * - **Interest:** the filters of local subscriptions (persistent offline sessions included) are
 *   declared on the bus, so other nodes send this node only messages it has subscribers for.
 * - **Routing:** a message routed here from a local client, the host program, a plugin or a will
 *   is forwarded to the nodes whose interest matches (never `$SYS`); a message from another node
 *   is delivered to the local subscriptions like a local one (QoS downgraded per subscription,
 *   RETAIN clear) and never forwarded again. A shared group is served once per message
 *   cluster-wide: the publishing node picks one node per matching group (its own or another with
 *   members of it), and the others leave their members of that group out.
 * - **Retained messages:** each change is stored in Redis and announced to every node, which keeps
 *   the whole set; a node loads it from Redis when it starts and after Redis comes back.
 * - **Sessions:** a client accepted here is claimed cluster-wide, with its will; the node that had
 *   it closes its connection (taken over) and hands its session over: a persistent one is loaded
 *   here from the store the nodes share (`cluster_sessions.ts`) before the login is decided.
 * - **Wills:** a will is published where its client's connection ended; when a node dies, one
 *   other node takes each of its clients' wills from Redis and publishes it.
 *
 * @module
 */

import type { ClusterConfig } from "../config/mod.ts";
import { ClusterBus, type ClusterBusOptions, isFencedError } from "../cluster/cluster_bus.ts";
import { EndSignal } from "../cluster/_end_signal.ts";
import { clusterStorePrefix } from "../cluster/_bus_scripts.ts";
import { CLUSTER_PROTOCOL, intruderText, refusalText, waitingText } from "../cluster/_protocol.ts";
import type { MessageFrame, RetainedFrame } from "../cluster/bus_frame.ts";
import type { ForwardGate } from "../cluster/forward_acks.ts";
import type { ShareChoice } from "../cluster/share_chooser.ts";
import type { RedisTlsOptions } from "../cluster/redis_connect.ts";
import { RedisStore, type RedisStoreOptions } from "../cluster/redis_store.ts";
import { ClusterSessions } from "./cluster_sessions.ts";
import { handoffWait } from "./cluster_policy.ts";
import type { CommitGate, StoreWriter } from "./store_writer.ts";
import type { MessageRecord } from "../store/message_record.ts";
import { propertiesFromJson } from "../store/json_properties.ts";
import { StoreError } from "../store/store_error.ts";
import type { BrokerCore } from "./core.ts";
import { BrokerMessage } from "./message.ts";
import type { Session } from "./session.ts";
import type { Logger, Refused } from "./policy.ts";
import { errorText } from "./_error_text.ts";
import { background } from "../cluster/_background.ts";
import { countDrop } from "./drop_counters.ts";
import type { ClusterFigures, ClusterLinkOptions, ClusterMember } from "./cluster_member.ts";

export type { ClusterFigures, ClusterLinkOptions } from "./cluster_member.ts";

const NONE: readonly string[] = [];
/** Malformed frames and records logged one by one; later ones are counted only. */
const MALFORMED_LINES = 20;

/** How long QoS 1/2 work waits for the store once Redis is back, before the store's outage rules apply. */
const STORE_RECOVERY_MS = 10_000;
/**
 * A provisional session's settle that failed with Redis reachable (a script error, say) is tried
 * again this many times in all, pausing {@linkcode SETTLE_PAUSE_MS} doubling up to
 * {@linkcode SETTLE_PAUSE_MAX_MS} between tries; then it stays provisional until the next resync.
 */
const SETTLE_TRIES = 8;
const SETTLE_PAUSE_MS = 250;
const SETTLE_PAUSE_MAX_MS = 8_000;
/**
 * The default node id: the host name and the process id, so that several nodes on one machine
 * (`amqtt --workers N`) and nodes on several machines get distinct ids.
 *
 * @returns `HOSTNAME-PID`, with characters a node id may not hold replaced by `_`
 */
export function defaultNodeId(): string {
  let host = "node";
  try {
    host = Deno.hostname();
  } catch {
    // No permission to read it: the pid alone is unique on this machine.
  }
  return `${host}-${Deno.pid}`.replace(/[^\x21-\x7e]/g, "_").slice(0, 128);
}

/** One broker's membership of a cluster. */
export class ClusterLink implements ClusterMember {
  readonly #bus: ClusterBus;
  readonly #core: BrokerCore;
  /** Runs the actions a call into the core queued (the broker's action runner). */
  readonly #run: () => void;
  readonly #log: Logger;
  /** The filters declared on the bus for each local client, to withdraw them exactly once. */
  readonly #declared = new Map<string, Set<string>>();
  /** The local clients whose filters were declared as a persistent session's (see below). */
  readonly #declaredDurable = new Set<string>();
  /** Retained changes that arrive while the retained set is being loaded; applied after. */
  #pending: RetainedFrame[] | undefined;
  #loading: Promise<void> = Promise.resolve();
  #closed = false;
  /** Ends the pauses of {@linkcode #recoverStore} at close. */
  readonly #recoveryWakes = new Set<() => void>();
  /** Settles of provisional sessions waiting to be tried again (see {@linkcode SETTLE_TRIES}). */
  readonly #settleRetries = new Map<string, ReturnType<typeof setTimeout>>();
  /** Cluster-wide sums of the counters the nodes share, from the latest share. */
  #totals: Record<string, number> = {};
  #sharing = false;
  /** Retained changes and session claims that failed while Redis was away, to redo when back. */
  readonly #unshared = new Set<string>();
  readonly #unclaimed = new Set<string>();
  /** Persistent sessions kept here offline: released cluster-wide when they expire. */
  readonly #offline = new Set<string>();
  /** The incarnation whose step-down was logged (`#stepDown`). */
  #steppedDown: string | undefined;
  /** Stepped down, not registered again yet (for the log line of the registration). */
  #rejoining = false;
  /** Redis was lost (logged) and is not back yet: its return is logged as such. */
  #away = false;
  /**
   * Clients that logged in after the step-down and before this node registered again: what their
   * sessions wrote then carried the reaped incarnation and is refused (`#storeFenced`).
   */
  readonly #window = new Set<string>();
  /** Failures to reach Redis since it was lost: the first is logged, the rest counted. */
  #failures = 0;
  /**
   * The shared groups this node serves for a message routed here (chosen here for a local
   * message, by the publishing node for a forwarded one): what the core's share gate asks.
   */
  readonly #serving = new WeakMap<BrokerMessage, readonly string[]>();
  /**
   * The message from another node being routed now, and the groups this node serves for it: the
   * core asks the share gate while it routes, so no map entry is needed for it.
   */
  #routing: BrokerMessage | undefined;
  #routingShares: readonly string[] = [];
  /** Messages another node passed on for some shared groups: for those groups only. */
  readonly #sharesOnly = new WeakSet<BrokerMessage>();
  /** Messages of a departed node's stream: for the sessions adopted from it only. */
  readonly #onlyFor = new WeakMap<BrokerMessage, ReadonlySet<unknown>>();
  /**
   * QoS 1 messages (published at QoS 1) read from this node's stream and delivered to clean
   * sessions as members of shared groups, not acknowledged yet: session → message → the stream entries they hold
   * pending in Redis (`ClusterBus.holdEntry`; one per delivery). Released at the PUBACK, or by
   * the sweep once the session no longer holds the message (ended, or dropped it).
   */
  readonly #unfinished = new Map<Session, Map<BrokerMessage, string[]>>();
  /**
   * Messages published at QoS 2 read from this node's stream and delivered to clean sessions as
   * members of shared groups, never written yet: session → message → its take (the groups, the
   * stream entries held pending until it is taken; see `ClusterBus.take`).
   */
  readonly #untaken = new Map<Session, Map<BrokerMessage, Untaken>>();
  /** Takes answered, whose sessions {@linkcode #wake} lets write (at the end of the turn). */
  readonly #toWake = new Set<Untaken>();
  /** The entries of this node's stream, and frame indexes, of QoS 1/2 shared messages read. */
  readonly #entries = new WeakMap<BrokerMessage, { id: string; index: number }>();
  /** Persistent sessions moving between nodes, when the node's store is the shared Redis store. */
  #sessions: ClusterSessions | undefined;
  /** The store the nodes share, when this link opened it; the broker's writer closes it. */
  store: RedisStore | undefined;
  /** Starts the store's recovery when Redis lost its data (`storeGate`), at each sweep. */
  #recoverLost: (() => void) | undefined;
  /** Ends the commits waited for when Redis is lost (back when it is). */
  #redisLost = new EndSignal();
  // Events an operator needs to see, for `$SYS` and `/metrics` (`figures`).
  #nodesDead = 0;
  #takenForDead = 0;
  #redisDataLost = 0;

  private constructor(bus: ClusterBus, core: BrokerCore, run: () => void, logger: Logger) {
    this.#bus = bus;
    this.#core = core;
    this.#run = run;
    this.#log = logger;
    // Any other message (none was decided for it) is served here for every group.
    core.shareGate = (message, share) =>
      (message === this.#routing ? this.#routingShares : this.#serving.get(message))
        ?.includes(share) ?? true;
    core.matchesElsewhere = (topic) => clusterWide(topic) && this.#bus.wants(topic);
    core.actions.sharedWatch = {
      held: (session, message, qos, share) => this.#sharedHeld(session, message, qos, share),
      mayWrite: (session, message, share) => this.#mayWrite(session, message, share),
      acked: (session, message) => this.#sharedAcked(session, message),
      handed: (from, to, message, share) => this.#sharedHanded(from, to, message, share),
      passOn: (session, message, share) => this.#passOn(session, message, share),
    };
    bus.on("message", (frame) => this.#received(frame));
    bus.on("retained", (frame) => this.#retained(frame));
    bus.on("takeover", ({ clientId, node, missed }) => this.#takenOver(clientId, node, missed));
    bus.on("subscribed", ({ clientId, node }) => this.#sessions?.addSubscribed(clientId, node));
    bus.on("nodeJoined", ({ node }) => {
      this.#log.info(`Cluster: node ${node} joined`);
      // A node of another protocol version that did not wait (a release before versions does
      // not look): said loudly, since this node cannot keep it out.
      bus.foreignNodes().then((nodes) => {
        const foreign = nodes.find((n) => n.node === node);
        if (foreign !== undefined) this.#log.error(intruderText(foreign));
      }, () => {});
    });
    bus.on("malformed", ({ what, reason }) => {
      // The first ones in full; then counted only (`…/node/malformed`): a node sending bad
      // frames in a loop must not flood the log.
      const n = this.#bus.stats.malformed;
      if (n > MALFORMED_LINES) return;
      this.#log.warning(
        `Cluster: refused a malformed ${what} (${reason}): ignored${
          n === MALFORMED_LINES ? "; more are counted only (cluster/node/malformed)" : ""
        }`,
      );
    });
    bus.on("fault", ({ what, error }) => this.#fault(what, error));
    bus.on("nodeLeft", (event) => this.#nodeLeft(event.node, event.graceful, event.clients));
    bus.on("shareLost", ({ frame, share }) => this.#shareLost(frame, share));
    bus.on("fenced", ({ owned }) => this.#stepDown(`node ${bus.nodeId} was reaped`, owned));
    bus.on("state", (state) => {
      switch (state.state) {
        case "ready":
          this.#redisLost.renew();
          if (state.reconnected) {
            if (this.#rejoining) {
              this.#rejoining = false;
              this.#log.info("Cluster: joined again as a new incarnation of this node");
            } else if (state.rolledBack) {
              this.#log.warning(
                "Cluster: Redis went back to older data (restarted from an older snapshot, or a lagging replica promoted): its cluster keys emptied, so that every node registers and writes what it holds again",
              );
            } else if (state.dataLost && !this.#away) {
              // No connection closed: the heartbeat found the cluster's epoch gone (FLUSHALL).
              this.#log.warning(
                "Cluster: Redis lost its data with no reconnection (emptied, or a replica without it promoted): interest and sessions registered again",
              );
            } else {
              this.#log.warning(
                "Cluster: Redis is back: interest and sessions resynchronised, forwarding resumed",
              );
            }
            this.#away = false;
            if (state.dataLost) this.#redisDataLost++;
            // The shared store checks its own epoch at its reconnections; without one, it is
            // asked now, and starts the rewrite of this node's sessions (`storeGate`) at once.
            if (state.dataLost) {
              const store = this.store;
              if (store !== undefined) {
                background(
                  store.checkData().then((lost) => lost && this.#recoverLost?.()),
                  "the check of the store's data after Redis came back",
                  this.#fault,
                );
              }
            }
            this.#loading = this.#afterReconnect(state.dataLost);
          }
          return;
        case "disconnected":
          this.#away = true;
          this.#redisLost.end();
          this.#log.warning(
            `Cluster: lost Redis${
              state.error === undefined ? "" : ` (${state.error})`
            }: serving local clients only until it is back`,
          );
          return;
        case "reconnecting":
          // One line when Redis is lost and one when it is back, not one per attempt.
          this.#log.debug(
            `Cluster: reconnecting to Redis (${state.connection} connection, attempt ${state.attempt}, in ${state.delay} ms)`,
          );
          return;
        case "streamsLost":
          this.#log.warning(
            `Cluster: cannot open the message stream connections to Redis (${state.error}): messages to and from other nodes wait until they are back`,
          );
          return;
        case "streamsBack":
          this.#log.warning(
            "Cluster: message stream connections to Redis back, forwarding resumed",
          );
          return;
        case "streamsOnIoredis":
          this.#logFallback(state.reason);
          return;
        case "redisTooOld":
          this.#log.error(
            `Cluster: reconnected to Redis, but ${state.error}: not registering on it (no script is run there), serving local clients only until a Redis recent enough is back`,
          );
          return;
      }
    });
  }

  /**
   * Joins the cluster: connects to Redis, registers this node and loads the retained set into
   * the core.
   *
   * @param options configuration, core and logger
   * @returns the running link
   * @throws {Error} If no Redis can be reached or a TLS file cannot be read.
   */
  static async start(options: ClusterLinkOptions): Promise<ClusterLink> {
    const c = options.config;
    const nodeId = c.nodeId ?? defaultNodeId();
    const [url, ...alternateUrls] = c.redis;
    let refused = false;
    const busOptions: ClusterBusOptions = {
      url: url!,
      alternateUrls,
      nodeId,
      prefix: c.keyPrefix,
      heartbeatInterval: c.heartbeatInterval * 1000,
      livenessTtl: c.nodeTimeout * 1000,
      protocolRefused: (nodes, retryMs) => {
        options.logger.warning(refusalText(nodes, retryMs));
        options.waiting?.(waitingText(nodes));
        refused = true;
      },
    };
    if (options.signal !== undefined) busOptions.signal = options.signal;
    if (options.shareStrategy !== undefined) busOptions.shareStrategy = options.shareStrategy;
    if (c.username !== undefined) busOptions.username = c.username;
    if (c.password !== undefined) busOptions.password = c.password;
    if (c.tls !== undefined) busOptions.tls = await readTls(c.tls);
    let bus: ClusterBus;
    try {
      bus = await ClusterBus.start(busOptions);
    } finally {
      options.waiting?.(undefined);
    }
    if (refused) {
      options.logger.info(
        `Cluster: no live node of another cluster protocol left, joining (protocol ${CLUSTER_PROTOCOL})`,
      );
    }
    const link = new ClusterLink(bus, options.core, options.run, options.logger);
    try {
      if (options.store === "shared") {
        // After the bus: a Redis that cannot be reached is reported as the cluster's.
        const store = await openClusterStore(c, {
          nodeId,
          fence: {
            key: bus.incarnation.key,
            token: () => bus.incarnation.token,
            epochKey: bus.incarnation.epochKey,
            epoch: () => bus.incarnation.epoch,
            genKey: bus.incarnation.genKey,
            gen: () => bus.incarnation.gen,
            nodeGenKey: bus.incarnation.nodeGenKey,
            nodeGen: () => bus.incarnation.nodeGen,
            counted: (gen, epoch) => bus.counted(gen, epoch),
            refused: (_, token) => link.#storeFenced(token),
          },
          taken: (clientId, node) => link.#storeTaken(clientId, node),
        });
        link.store = store;
        link.#sessions = new ClusterSessions({
          bus,
          store,
          core: options.core,
          run: options.run,
          logger: options.logger,
          committed: options.committed ?? (() => undefined),
          maxWait: handoffWait(c) * 1000,
          declare: (clientId) => link.#kept(clientId),
          announce: (filter) => link.prepareInterest(filter),
          withdraw: (clientId) => link.#handedOver(clientId),
          publishWill: (clientId, will, why) => link.#publishWill(clientId, will, why),
          write: options.write ?? (() => {}),
          journaled: options.journaled ?? (() => 0),
          replay: (frame, sessions) => link.#replay(frame, sessions),
        });
        const sessions = link.#sessions;
        options.core.provisional = (clientId) => sessions.provisional(clientId);
        options.core.givenWayWillDue = (clientId, publish) => link.#givenWayWill(clientId, publish);
        // Its `P gaveway` field dropped: else left until another node's claim of the client.
        options.core.givenWayWillCancelled = (clientId) => {
          link.#bus.givenWayWillDue(clientId).catch(() => {});
        };
        await link.#sessions.start();
      }
      link.#loading = link.#loadRetained();
      await link.#loading;
    } catch (error) {
      await link.store?.close().catch(() => {});
      await bus.close();
      throw error;
    }
    if (bus.streamsFallback !== undefined) link.#logFallback(bus.streamsFallback);
    const others = bus.nodes;
    options.logger.info(
      `Cluster: joined as node ${nodeId} (${
        others.length === 0 ? "no other node" : `other nodes: ${others.join(", ")}`
      }), ${options.core.retained.size} retained messages`,
    );
    return link;
  }

  #logFallback(reason: string): void {
    this.#log.warning(
      `Cluster: the message streams use ioredis instead of Deno's faster client (${reason})`,
    );
  }

  /** This node's id. */
  get nodeId(): string {
    return this.#bus.nodeId;
  }

  /** The QoS 1/2 forwards and their acknowledgement by Redis (see `ClusterBus.forwards`). */
  get forwards(): ForwardGate {
    return this.#bus.forwards;
  }

  /** Figures for `$SYS` and `/metrics`. */
  figures(): ClusterFigures {
    const s = this.#bus.stats;
    return {
      nodeId: this.#bus.nodeId,
      nodes: this.#bus.nodes.length + 1,
      // Not ready either while messages cannot cross to and from other nodes.
      ready: this.#bus.ready && this.#bus.streamsUp,
      forwarded: s.forwarded,
      received: s.received,
      dropped: s.dropped,
      nodesDead: this.#nodesDead,
      sessionsAdopted: this.#sessions?.adopted ?? 0,
      takenForDead: this.#takenForDead,
      redisDataLost: this.#redisDataLost,
      storeDataLost: this.store?.losses ?? 0,
      malformed: s.malformed,
    };
  }

  /**
   * The `$SYS/broker/cluster/…` topics: this node's id and traffic through Redis, the number of
   * nodes, and the cluster-wide sums of `counters` and `gauges` (each node shares them at its own
   * `$SYS` interval: the sums are as of each node's latest share; those of counters keep what
   * departed nodes counted).
   *
   * @param counters this node's counters, by topic below `$SYS/broker/cluster/`
   * @param gauges this node's gauges, by topic below `$SYS/broker/cluster/`
   * @returns topic below `$SYS/broker/` → value
   */
  sysTopics(
    counters: Record<string, number>,
    gauges: Record<string, number>,
  ): Record<string, string> {
    if (!this.#sharing && !this.#closed) {
      this.#sharing = true;
      this.#bus.shareCounters(counters, gauges).then((totals) => this.#totals = totals, () => {})
        .finally(() => this.#sharing = false);
    }
    const f = this.figures();
    const out: Record<string, string> = {
      "cluster/node_id": f.nodeId,
      "cluster/nodes": String(f.nodes),
      "cluster/node/forwarded": String(f.forwarded),
      "cluster/node/received": String(f.received),
      "cluster/node/dropped": String(f.dropped),
      "cluster/node/nodes-dead": String(f.nodesDead),
      "cluster/node/sessions-adopted": String(f.sessionsAdopted),
      "cluster/node/taken-for-dead": String(f.takenForDead),
      "cluster/node/redis-data-lost": String(f.redisDataLost),
      "cluster/node/store-data-lost": String(f.storeDataLost),
      "cluster/node/malformed": String(f.malformed),
    };
    for (const [name, value] of Object.entries(this.#totals)) {
      out[`cluster/${name}`] = String(value);
    }
    return out;
  }

  /**
   * A retained message was deleted here by the host program or an operator (not by a message):
   * it is deleted on every node.
   *
   * @param topic the topic
   */
  retainedDeleted(topic: string): void {
    this.#bus.retain(topic, undefined).catch((error) => {
      this.#unshared.add(topic);
      this.#failed(`the deletion of the retained message of ${topic.slice(0, 200)}`, error);
    });
  }

  /**
   * A message is being routed on this node (a client's, after authorization, or the host
   * program's, a plugin's, a will): other nodes with matching subscriptions get it too, and a
   * retained one updates the cluster's retained set.
   *
   * @param message the message, after the core stored it as retained (or refused to)
   */
  forward(message: BrokerMessage): void {
    if (!clusterWide(message.topic)) return;
    if (message.retain) {
      // What this node's core decided (stored, cleared, or refused by a limit) is what the
      // cluster keeps.
      const stored = this.#core.retained.get(message.topic);
      const topic = message.topic;
      this.#bus.retain(topic, stored?.toRecord()).catch((error) => {
        this.#unshared.add(topic);
        this.#failed(`the retained message of ${topic.slice(0, 200)}`, error);
      });
    }
    // Most messages of a busy node go to no other node: no record is made for them.
    let order: number | undefined;
    let choice: ShareChoice | undefined;
    if (this.#bus.wants(message.topic)) {
      // Each matching shared group is served by one node cluster-wide, chosen here; the core
      // routes the message next and asks the share gate (once per group) whether it is this one.
      choice = this.#bus.chooseShares(message.topic);
      if (choice !== undefined && this.#sessions?.moving === true) {
        this.#sessions.claimShares(choice);
      }
      // Encoded at once (its frame copied into each node's batch): the record is not kept.
      if (this.#bus.publish(message.toRecord(false), message.senderId ?? "", choice) > 0) {
        order = this.#bus.lastOrder;
      }
      if (choice !== undefined) this.#decided(message, choice.get(this.#bus.nodeId) ?? []);
    }
    // A session moving here gets it after it arrived (its previous owner may not have had it),
    // and so do its shared groups that no node serves for it now.
    if (this.#sessions?.moving === true) {
      choice ??= this.#bus.chooseShares(message.topic);
      // Kept until the session arrives, maybe for seconds: noted, given a payload of its own
      // before the read buffer is read into again (copyOutRecords), not a view into a slab.
      const record = message.toRecord("long");
      if (this.#sessions.local(record, message.senderId ?? "", order, choice)) {
        this.#decided(message, choice?.get(this.#bus.nodeId) ?? []);
      }
    }
  }

  /**
   * A client asks to subscribe to `filter` (the broker's subscribe hook): the first subscriber of
   * a filter on this node waits until the other nodes were told, so that what they receive after
   * the SUBACK reaches it, as on one broker. At most a second: a slow Redis must not hold the
   * SUBACK longer.
   *
   * @param filter the topic filter
   * @returns a promise to wait for, or `undefined` (nothing to wait for)
   */
  prepareInterest(filter: string): Promise<undefined> | undefined {
    const announced = this.#bus.announceAhead(filter);
    if (announced === undefined) return undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 1000);
      const done = () => {
        clearTimeout(timer);
        resolve(undefined);
      };
      announced.then(done, done);
    });
  }

  /**
   * The store's commit gate as the node's connections use it: while Redis is away nothing waits
   * for the shared store (as for forwards, see `ClusterBus.publish`), so that local clients are
   * served; the writes wait in the store's client for Redis, and what they held is lost if this
   * node dies before Redis is back. Replies already waiting are released when Redis is lost.
   *
   * @param writer the store writer
   * @returns the gate to give connections
   */
  storeGate(writer: CommitGate & Partial<Pick<StoreWriter, "probe">>): CommitGate {
    const bus = this.#bus;
    // Redis back after writes failed: the store is written again at once (a probe, then this
    // node's sessions: `store_rewrite.ts`), and QoS 1/2 work meanwhile waits for it rather than
    // being refused, so the node goes on as soon as Redis is back.
    let recovering: Promise<unknown> | undefined;
    const recover = () => {
      if (!bus.ready || !writer.failed || recovering !== undefined) return;
      const current: Promise<unknown> = this.#recoverStore(writer).finally(() => {
        if (recovering === current) recovering = undefined;
      });
      recovering = current;
    };
    bus.on("state", (state) => {
      if (state.state === "ready") recover();
    });
    // The store found Redis without its data after the bus was back (a node idle across the
    // restart learns it from the store's reconnection): at once when a connection asks, else
    // from the next sweep. QoS 1/2 work waits for the rewrite meanwhile, as above.
    const recoverLost = () => {
      if (this.store?.dataLost === true) recover();
    };
    this.#recoverLost = recoverLost;
    return {
      get emitted() {
        return writer.emitted;
      },
      get failed() {
        recoverLost();
        return bus.ready && recovering === undefined && writer.failed;
      },
      committed: (since) => {
        if (!bus.ready) {
          // Not waited for, but asked for: a write that fails starts the store's outage, which
          // ends with the rewrite of this node's sessions once Redis is back.
          writer.committed(since)?.catch(() => {});
          return undefined;
        }
        recoverLost();
        if (recovering !== undefined) {
          const after = recovering.then(() => writer.committed(since));
          return this.#redisLost.wait(after) as Promise<void>;
        }
        const pending = writer.committed(since);
        if (pending === undefined) return undefined;
        // A write that failed because Redis lost its data (sent before the loss was known): the
        // rewrite after it stores what it held, so the reply waits for that.
        const healed = pending.catch((error) => {
          // Or one made before the loss and refused after the renewal (`RedisStore.renewIds`):
          // the rewrite stores what it held as well.
          const stale = error instanceof StoreError && error.kind === "lost";
          if (this.store?.dataLost !== true && !stale) throw error;
          recover();
          const current = recovering;
          if (current === undefined) throw error;
          return current.then(() => writer.committed(since));
        });
        return this.#redisLost.wait(healed) as Promise<void>;
      },
      stored: (clientId, packetId) => bus.ready ? writer.stored?.(clientId, packetId) : undefined,
      rewritten: () => bus.ready ? writer.rewritten?.() : undefined,
    };
  }

  /**
   * A client is about to log in here (before its login is decided): a persistent session another
   * node had, or that only the shared store holds, is loaded here first.
   *
   * @param clientId the client id
   * @param resume whether the client asked to resume its session (Clean Start 0)
   * @param progress called as each part of a long session read comes
   * @returns a promise to wait for (resolved with a refusal when the session could not be loaded
   *   in time), or `undefined` (nothing to wait for)
   */
  prepareLogin(
    clientId: string,
    resume: boolean,
    progress?: () => void,
  ): Promise<Refused | undefined> | undefined {
    return this.#sessions?.prepare(clientId, resume, { progress });
  }

  /**
   * A local client's subscriptions or connection changed: declares or withdraws interest so that
   * the bus knows exactly the filters of the sessions kept here.
   *
   * @param clientId the client
   */
  sessionChanged(clientId: string): void {
    const session = this.#core.sessions.get(clientId);
    const want = session?.subscriptions;
    let have = this.#declared.get(clientId);
    // A persistent session's shared groups are its adopter's if this node dies (`durable`); a
    // declaration is withdrawn as the kind it was made.
    const wasDurable = this.#declaredDurable.has(clientId);
    const durable = session?.clean === false;
    if (have !== undefined && session !== undefined && durable !== wasDurable) {
      // A session of the other kind under the same client id (a new Clean Start): its filters
      // are declared again as its kind's, before the old ones go (no group left in between).
      for (const filter of have) {
        if (want?.has(filter) === true) this.#bus.addInterest(filter, durable).catch(() => {});
      }
      const kept = new Set<string>();
      for (const filter of have) {
        this.#bus.removeInterest(filter, wasDurable).catch(() => {});
        if (want?.has(filter) === true) kept.add(filter);
      }
      have = kept;
      this.#declared.set(clientId, kept);
    }
    if (have !== undefined) {
      for (const filter of have) {
        if (want?.has(filter) !== true) {
          have.delete(filter);
          this.#bus.removeInterest(filter, wasDurable).catch(() => {});
        }
      }
    }
    if (durable) this.#declaredDurable.add(clientId);
    else this.#declaredDurable.delete(clientId);
    if (want !== undefined && want.size > 0) {
      const set = have ?? new Set<string>();
      for (const filter of want.keys()) {
        if (!set.has(filter)) {
          set.add(filter);
          this.#bus.addInterest(filter, durable).catch(() => {});
        }
      }
      if (have === undefined) this.#declared.set(clientId, set);
    } else if (have !== undefined) {
      this.#declared.delete(clientId);
    }
    if (!this.#declared.has(clientId)) this.#declaredDurable.delete(clientId);
  }

  /**
   * A local client's CONNECT was accepted: this node claims its session cluster-wide (another
   * node that had it closes it there) and keeps its will in Redis, for the case this node dies.
   *
   * @param clientId the client
   * @param clean whether it started clean: its claim begins a new session
   *   (`ClusterBus.claim`), which nothing left for an older one goes into [MQTT-3.1.2-4]
   */
  connected(clientId: string, clean = false): void {
    if (this.#rejoining) this.#window.add(clientId);
    this.sessionChanged(clientId);
    if (this.#sessions?.provisional(clientId) === true) {
      // Served while Redis was away, resuming a session this node did not hold: claimed only
      // if no session of it exists, when Redis is back (now, if it is already).
      if (this.#bus.ready) this.#settle(clientId);
      return;
    }
    const record = this.#willRecord(clientId);
    // A client that started clean here while Redis was away: the session it discarded, which
    // this node did not hold, is deleted once claimed [MQTT-3.1.2-6].
    const claimed = this.#sessions?.startedClean(clientId) === true
      ? this.#sessions.reclaimClean(clientId, record)
      : this.#bus.claim(clientId, record, clean);
    claimed.then((old) => {
      if (old !== undefined) {
        this.#log.info(`Cluster: ${clientId} taken over from node ${old}`);
      }
    }, (error) => {
      this.#unclaimed.add(clientId);
      this.#failed(`the session claim of ${clientId}`, error);
    });
  }

  /** The will of a client connected here, as the bus keeps it with its claim. */
  #willRecord(clientId: string): MessageRecord | undefined {
    const will = this.#core.sessions.get(clientId)?.will;
    return will === undefined ? undefined : {
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      origin: clientId,
    };
  }

  /**
   * Settles a provisional session once Redis is back (`ClusterSessions.settleProvisional`): it
   * is this node's from then on, or it gave way (its interest withdrawn here). When Redis is lost
   * again meanwhile, or this node was taken for dead, it stays provisional until the next resync.
   * A settle that failed otherwise (Redis answered with an error: a script error, a claim
   * refused) is tried again with back-off, {@linkcode SETTLE_TRIES} times in all, each failure
   * logged: else the session would stay provisional, unstored and unclaimed, until the next
   * outage.
   */
  #settle(clientId: string, attempt = 0): void {
    const pending = this.#settleRetries.get(clientId);
    if (pending !== undefined) {
      clearTimeout(pending);
      this.#settleRetries.delete(clientId);
    }
    const session = this.#core.sessions.get(clientId);
    const will = session?.link === undefined ? undefined : this.#willRecord(clientId);
    this.#sessions!.settleProvisional(clientId, will).then((settled) => {
      if (settled === "gaveWay") this.sessionChanged(clientId);
      else if (settled === "stored" && this.#core.sessions.get(clientId)?.link === undefined) {
        this.#offline.add(clientId);
      }
    }, (error) => {
      if (this.#closed || this.#sessions?.provisional(clientId) !== true) return;
      const tries = attempt + 1;
      if (!this.#bus.ready || isFencedError(error)) {
        this.#log.warning(
          `Cluster: cannot settle the provisional session of ${clientId} (${
            errorText(error)
          }): it stays provisional until Redis is back`,
        );
      } else if (tries >= SETTLE_TRIES) {
        this.#log.warning(
          `Cluster: cannot settle the provisional session of ${clientId} (${
            errorText(error)
          }), ${tries} tries: it stays provisional until the next resync`,
        );
      } else {
        const pause = Math.min(SETTLE_PAUSE_MAX_MS, SETTLE_PAUSE_MS * 2 ** attempt);
        this.#log.warning(
          `Cluster: cannot settle the provisional session of ${clientId} (${
            errorText(error)
          }): trying again in ${pause} ms (try ${tries} of ${SETTLE_TRIES})`,
        );
        this.#settleRetries.set(
          clientId,
          setTimeout(() => {
            this.#settleRetries.delete(clientId);
            if (!this.#closed) this.#settle(clientId, tries);
          }, pause),
        );
      }
    });
  }

  /**
   * The Will Delay Interval of a provisional session that gave way here is over
   * (`BrokerCore.givenWayWillDue`): its will is published unless the client logged in since, on
   * any node (`ClusterBus.givenWayWillDue`) [MQTT-3.1.3-9]. Redis away, nothing can be known:
   * published, as at any close the client did not make with DISCONNECT 0x00 [MQTT-3.1.2-8].
   */
  #givenWayWill(clientId: string, publish: () => void): void {
    if (this.#sessions?.unwatched(clientId) === true) {
      publish();
      this.#run();
      return;
    }
    this.#bus.givenWayWillDue(clientId).then((due) => {
      if (this.#closed) return;
      if (!due) {
        this.#log.info(
          `Cluster: the delayed will of ${clientId} (its provisional session gave way here) is not published: the client logged in again within the delay`,
        );
        return;
      }
      publish();
      this.#run();
    }, (error) => {
      if (this.#closed) return;
      this.#log.warning(
        `Cluster: cannot tell whether ${clientId} logged in again within its will's delay (${
          errorText(error)
        }): its will is published`,
      );
      publish();
      this.#run();
    });
  }

  /**
   * A local client's connection ended: its will was published or discarded here; a session that
   * ended is released cluster-wide, a persistent one stays owned by this node. A provisional
   * session claims and drops nothing in Redis (it is settled when Redis is back).
   *
   * @param clientId the client
   */
  disconnected(clientId: string): void {
    this.sessionChanged(clientId);
    if (this.#closed || this.#sessions?.provisional(clientId) === true) return;
    const kept = this.#core.sessions.has(clientId);
    if (kept) this.#offline.add(clientId);
    (kept ? this.#bus.dropWill(clientId) : this.#bus.release(clientId)).catch(() => {
      // Redis is away: the resync re-registers what this node owns; a stale will is replaced
      // at the client's next claim.
    });
  }

  /**
   * Withdraws the interest of sessions the core discarded without an event (expired, or evicted
   * for `max_sessions`). The broker calls it at each sweep.
   */
  sweep(): void {
    this.#recoverLost?.();
    this.#sessions?.sweep();
    this.#sweepUnfinished();
    for (const [clientId, filters] of this.#declared) {
      const session = this.#core.sessions.get(clientId);
      if (session === undefined || session.subscriptions.size !== filters.size) {
        this.sessionChanged(clientId);
      }
    }
    // Offline sessions that expired here: nobody owns them any more. Not one whose login here
    // is loading it (claimed, not restored yet): its claim is this node's.
    for (const clientId of this.#offline) {
      const session = this.#core.sessions.get(clientId);
      if (session !== undefined && session.link === undefined) continue;
      if (session === undefined && this.#sessions?.loading(clientId)) continue;
      this.#offline.delete(clientId);
      if (session === undefined && !this.#closed) this.#bus.release(clientId).catch(() => {});
    }
  }

  /**
   * Leaves the cluster (the other nodes see a graceful departure). Call after the core published
   * the wills of the connected clients and the connections are closed.
   *
   * @returns settled when the bus is closed
   */
  /**
   * Redis is back after store writes failed: probes until one works (the store's connection
   * comes back on a schedule of its own, often after the bus's), for a bounded time, pausing
   * 50 ms doubling up to 1 s between tries. QoS 1/2 work waits for it meanwhile.
   *
   * @param writer the store writer
   * @returns settled when a probe worked, or the store is given up for its usual outage
   */
  async #recoverStore(writer: Partial<Pick<StoreWriter, "probe" | "failed">>): Promise<void> {
    const end = Date.now() + STORE_RECOVERY_MS;
    for (let attempt = 0; !this.#closed && this.#bus.ready && writer.failed; attempt++) {
      if (await writer.probe?.(Number.MAX_SAFE_INTEGER) === true) return;
      if (Date.now() >= end) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(1000, 50 * 2 ** attempt));
        function done() {
          clearTimeout(timer);
          wakes.delete(done);
          resolve();
        }
        const wakes = this.#recoveryWakes;
        wakes.add(done);
      });
    }
  }

  renewStore(): Promise<void> {
    return this.#sessions?.renew() ?? Promise.resolve();
  }

  async close(counters?: Record<string, number>): Promise<void> {
    this.#closed = true;
    for (const wake of this.#recoveryWakes) wake();
    for (const timer of this.#settleRetries.values()) clearTimeout(timer);
    this.#settleRetries.clear();
    await this.#sessions?.close();
    await this.#loading.catch(() => {});
    // A last share, while this node is registered: the leave script folds it into
    // `P departed`, so that what it counted since its previous share (at its `$SYS` interval)
    // stays in the totals. Redis away: the share before it is what the reap folds.
    if (counters !== undefined && this.#bus.ready) {
      await this.#bus.shareCounters(counters).catch(() => {});
    }
    await this.#bus.close();
  }

  #received(frame: MessageFrame): void {
    // The groups of a session on its way here get it when it is here.
    const held = this.#sessions?.received(frame) ?? NONE;
    const message = toMessage(frame.message, false);
    // The publishing node chose this one for these groups, if any; other nodes serve the rest.
    let shares = frame.shares ?? [];
    if (held.length > 0) shares = shares.filter((s) => !held.includes(s));
    if (shares.length > 0 && shares.some((s) => !this.#bus.declares(s))) {
      // Chosen for a group whose last member here left before the publishing node heard of it
      // (or passed on to it by such a node, whose view lagged too): another node with members
      // serves it (see ClusterBus.redirect: a pass survives this node's death).
      const missing = shares.filter((s) => !this.#bus.declares(s));
      this.#log.debug(`Cluster: passing on a message for ${missing.join(", ")}`);
      this.#bus.redirect(frame, missing);
      shares = shares.filter((s) => this.#bus.declares(s));
    }
    // For those groups only: this node's other subscribers had it from the publishing node.
    if (frame.only === true) this.#forSharesOnly(message);
    if (shares.length > 0 && message.qos > 0) {
      const entry = this.#bus.routedEntry();
      if (entry !== undefined) this.#entries.set(message, entry);
    }
    this.#routing = message;
    this.#routingShares = shares;
    try {
      this.#core.routeRemote(message);
    } finally {
      this.#routing = undefined;
    }
    this.#run();
  }

  /**
   * A clean member's shared QoS 1 delivery began: of an entry of this node's stream, held. One
   * of a message published at QoS 2 is held until taken (see {@linkcode #mayWrite}).
   */
  #sharedHeld(session: Session, message: BrokerMessage, qos: 1 | 2, share: string): void {
    if (message.qos === 2) {
      this.#heldUntaken(session, message, share);
      return;
    }
    if (qos !== 1) return;
    const id = this.#bus.holdEntry();
    if (id === undefined) return; // a local message, or one replayed: nothing to hold
    let messages = this.#unfinished.get(session);
    if (messages === undefined) this.#unfinished.set(session, messages = new Map());
    const ids = messages.get(message);
    if (ids === undefined) messages.set(message, [id]);
    else ids.push(id);
  }

  #heldUntaken(session: Session, message: BrokerMessage, share: string): void {
    // While a message is routed, what a session is given is that message, or its copy with the
    // member's Subscription Identifier (`BrokerMessage.forwarded`) [MQTT-3.3.4-3]: of its entry.
    const routing = this.#routing;
    const routed = routing !== undefined;
    let entry = this.#entries.get(message);
    if (entry === undefined && routed) {
      entry = this.#entries.get(routing);
      // For its pass too, if the member's session ends before it is written (`#passOn`).
      if (entry !== undefined) this.#entries.set(message, entry);
    }
    if (entry === undefined) return; // a local message: no stream entry, no rescue
    let messages = this.#untaken.get(session);
    if (messages === undefined) this.#untaken.set(session, messages = new Map());
    let untaken = messages.get(message);
    if (untaken === undefined) {
      messages.set(
        message,
        untaken = {
          session,
          entry,
          takes: new Map(),
          holds: new Map(),
        },
      );
    }
    if (!untaken.takes.has(share)) untaken.takes.set(share, "new");
    // Pending while routed: a delivery that begins later (a receive authorization answering)
    // finds its entry acknowledged, and taken or not, a rescue skips it (as before the take).
    const id = routed ? this.#bus.holdEntry() : undefined;
    if (id !== undefined) {
      const held = untaken.holds.get(share);
      if (held === undefined) untaken.holds.set(share, [id]);
      else held.push(id);
    }
  }

  /**
   * Whether `session` may write its first PUBLISH of `message` (published at QoS 2) now: a
   * message of this node's stream is taken for the delivery in Redis first (one script call
   * per turn, `ClusterBus.take`), then written (`BrokerCore.writable`), its entries let go. A
   * rescue of the stream after this node's death then passes it on only if never taken, so
   * never if its delivery may have begun [MQTT-4.8.2-5].
   *
   * A session that got the message through several groups holds one copy per group, alike: each
   * group's key is taken on its own, and each copy written uses its own group's take (`share`,
   * the group its entry carries); the session's own subscription's copy is never asked about
   * (`Session.#send`). A take refused
   * (that group's copy passed on by a rescue) drops one copy, never written, and neither the
   * copies of the other groups, each of which delivers the message once (MQTT 5.0 on shared
   * subscriptions), nor the session's later PUBLISHes wait for it.
   */
  #mayWrite(session: Session, message: BrokerMessage, share: string): "write" | "wait" | "drop" {
    const untaken = this.#untaken.get(session)?.get(message);
    // The copy says which group it is a delivery for (`InflightEntry.share`): that group's take
    // only. (Was: told by its QoS, so that the session's own subscription's copy at the group's
    // QoS, written first, used the group's take; the group's copy, never sent, then went to
    // another member as the session ended, and that member's take, or the pass to another node,
    // found the key taken: the group never delivered the message.)
    const state = untaken?.takes.get(share);
    // No stream entry (a local message), or this group's copy written or dropped already.
    if (state === undefined || state === "written" || state === "dropped") return "write";
    if (state === "taken") return this.#used(untaken!, message, share, "written");
    // That group's copy is another member's (this node was taken for dead, and steps down):
    // this copy is dropped, the session's later ones do not wait for it.
    if (state === "refused") return this.#used(untaken!, message, share, "dropped");
    if (state === "new") {
      untaken!.takes.set(share, "taking");
      background(
        this.#bus.take(untaken!.entry, share).then((made) => this.#took(untaken!, share, made)),
        `the take of a shared copy for ${share}`,
        this.#fault,
      );
    }
    return "wait";
  }

  /** The copy for `share` of `untaken` is written or dropped: forgotten once all are. */
  #used(
    untaken: Untaken,
    message: BrokerMessage,
    share: string,
    as: "written" | "dropped",
  ): "write" | "drop" {
    const takes = untaken.takes;
    takes.set(share, as);
    if ([...takes.values()].every((s) => s === "written" || s === "dropped")) {
      const messages = this.#untaken.get(untaken.session);
      messages?.delete(message);
      if (messages?.size === 0) this.#untaken.delete(untaken.session);
    }
    return as === "written" ? "write" : "drop";
  }

  /** The answer to the take of `untaken` for `share` (see {@linkcode #mayWrite}). */
  #took(untaken: Untaken, share: string, made: boolean): void {
    // The group's copy went to another member here meanwhile, its take with it: the answer too.
    const moved = untaken.moved?.get(share);
    if (moved !== undefined) {
      untaken.moved!.delete(share);
      this.#took(moved, share, made);
      return;
    }
    const takes = untaken.takes;
    // The group's copy left (passed on, or handed with its answer known): nothing to note.
    if (!takes.has(share)) return;
    if (made) {
      takes.set(share, "taken");
    } else {
      // The rescue of this node's stream passed this group's copy on (this node was taken for
      // dead and steps down): never written here.
      takes.set(share, "refused");
      this.#log.debug(`Cluster: a shared message for ${untaken.session.clientId} went elsewhere`);
    }
    // The group's entries go once its take is answered (the entry is acknowledged once every
    // group's are): a copy taken is never passed on by a rescue, one refused was passed on
    // already. (Refused ones kept them for ever: an entry pending in the group `r` until the
    // node's end, holding its stream's trim.)
    releaseHolds(this.#bus, untaken, share);
    // Its session is woken with those of the other takes of the answer, once each.
    if (this.#toWake.size === 0) queueMicrotask(() => this.#wake());
    this.#toWake.add(untaken);
  }

  /**
   * Lets the sessions holding messages just taken write what they held back, once each after
   * every take of Redis's answer was noted (a window's messages taken in one call go out in one
   * pass over it, not one pass per message).
   */
  #wake(): void {
    const sessions = new Set<Session>();
    // The session that holds it now (handed to another member meanwhile: that one).
    for (const untaken of this.#toWake) sessions.add(untaken.session);
    this.#toWake.clear();
    if (this.#closed) return;
    for (const session of sessions) {
      if (this.#core.sessions.get(session.clientId) === session) this.#core.writable(session);
    }
    this.#run();
  }

  /**
   * A group's copy of `message` acknowledged by `session`: one of its holds goes. Only a group's
   * copy's PUBACK comes here (the core tells it by its packet id, `InflightEntry.share`): the
   * session's own subscription's copy of the same message object acknowledged first lets go of
   * nothing, whatever the session subscribes to by then. (Was: the hold went once no more copies
   * were pending than holds, counted by a walk over the session's whole queue at each PUBACK,
   * and at once for a session subscribed to nothing outside groups any more: an UNSUBSCRIBE
   * between the delivery and the own copy's PUBACK let go of the group copy's hold, the entry
   * acknowledged in Redis while the copy was not, lost for the group if this node died.)
   */
  #sharedAcked(session: Session, message: BrokerMessage): void {
    const messages = this.#unfinished.get(session);
    const ids = messages?.get(message);
    if (ids === undefined) return;
    this.#bus.releaseEntry(ids.pop()!);
    if (ids.length > 0) return;
    messages!.delete(message);
    if (messages!.size === 0) this.#unfinished.delete(session);
  }

  /**
   * What `from`'s delivery of `message` for `share` held is `to`'s now (a member of that group
   * here took it over). Only that group's: `from`'s copies for its other groups go their own way
   * (to their members, passed on, or with the session).
   */
  #sharedHanded(from: Session, to: Session, message: BrokerMessage, share: string): void {
    this.#handedUntaken(from, to, message, share);
    const messages = this.#unfinished.get(from);
    const ids = messages?.get(message);
    if (ids === undefined) return;
    // One hold per group the delivery was held for.
    const id = ids.pop();
    if (ids.length === 0) {
      messages!.delete(message);
      if (messages!.size === 0) this.#unfinished.delete(from);
    }
    if (id === undefined) return;
    if (!to.clean) {
      // A persistent member's group is its adopters' if this node dies (`*`): nothing to hold.
      this.#bus.releaseEntry(id);
      return;
    }
    let theirs = this.#unfinished.get(to);
    if (theirs === undefined) this.#unfinished.set(to, theirs = new Map());
    const had = theirs.get(message);
    if (had === undefined) theirs.set(message, [id]);
    else had.push(id);
  }

  /**
   * `from`'s take record of `message` for `share` goes to `to`, whose delivery of it (just made,
   * `Session.deliver`) noted one of its own: one take for both. The record's other groups stay
   * `from`'s. (Was: the whole record went, and `to` held a copy of its own subscription for
   * another group's take, wrote it under that take, or dropped it when that take was refused.)
   */
  #handedUntaken(from: Session, to: Session, message: BrokerMessage, share: string): void {
    const messages = this.#untaken.get(from);
    const untaken = messages?.get(message);
    const state = untaken?.takes.get(share);
    if (state === undefined) return;
    const holds = untaken!.holds.get(share) ?? [];
    untaken!.takes.delete(share);
    untaken!.holds.delete(share);
    if (untaken!.takes.size === 0) {
      messages!.delete(message);
      if (messages!.size === 0) this.#untaken.delete(from);
    }
    const theirs = to.clean ? this.#untaken.get(to)?.get(message) : undefined;
    if (theirs === undefined || !theirs.takes.has(share)) {
      // A persistent member's group is its adopters' if this node dies (`*`): nothing to hold.
      // (A take on its way finds the group gone from `from`'s record: nothing to note.)
      for (const id of holds) this.#bus.releaseEntry(id);
      return;
    }
    if (state === "taken" || state === "refused") {
      // Answered (its holds let go then): `to`'s copy is written, or dropped, on that answer.
      theirs.takes.set(share, state);
    } else if (state === "taking") {
      // Its answer is `to`'s (see #took); `to` asks none of its own meanwhile.
      (untaken!.moved ??= new Map()).set(share, theirs);
      if (theirs.takes.get(share) === "new") theirs.takes.set(share, "taking");
    }
    if (holds.length > 0) {
      const held = theirs.holds.get(share);
      if (held === undefined) theirs.holds.set(share, holds);
      else held.push(...holds);
    }
  }

  /**
   * A session ending here held `message` for `share`, not acknowledged or never sent, and no
   * other member of the group is left here: it goes to a member on another node (see
   * `ClusterBus.passOn`), the stream entries held for its delivery pending until the pass is
   * made.
   */
  #passOn(session: Session, message: BrokerMessage, share: string): boolean {
    if (this.#closed) return false;
    const messages = this.#unfinished.get(session);
    const untakenOf = this.#untaken.get(session);
    const untaken = untakenOf?.get(message);
    // This group's holds only: one of the QoS 1 delivery's (one per group it was held for), or
    // the QoS 2 take record's for this group.
    const ids = messages?.get(message);
    const holds = ids !== undefined ? ids.slice(-1) : untaken?.holds.get(share);
    const entry = this.#entries.get(message);
    const record = message.toRecord(false);
    // Sent later: a payload of its own, not a view into a buffer read into again.
    record.payload = record.payload.slice();
    const passed = this.#bus.passOn(record, share, {
      publisher: message.senderId ?? "",
      ...(holds === undefined ? {} : { holds }),
      ...(entry === undefined ? {} : { entry }),
    });
    if (passed && ids !== undefined) {
      ids.pop();
      if (ids.length === 0) messages!.delete(message);
      if (messages!.size === 0) this.#unfinished.delete(session);
    }
    if (passed && untaken !== undefined && untaken.takes.has(share)) {
      // Its holds are the pass's to let go (once it is made), not a take's on its way (whose
      // answer finds the group gone: see #took). The other groups' stay.
      untaken.holds.delete(share);
      untaken.takes.delete(share);
      if (untaken.takes.size === 0) untakenOf!.delete(message);
      if (untakenOf!.size === 0) this.#untaken.delete(session);
    }
    if (passed) this.#log.debug(`Cluster: passing on a message of an ended session for ${share}`);
    return passed;
  }

  /**
   * Releases the held deliveries that ended otherwise than by a PUBACK: the session ended (its
   * messages went with it, as on one broker: those handed to another member here or passed to
   * another node took their holds along), or dropped the message (its queue full).
   */
  #sweepUnfinished(): void {
    for (const [session, messages] of this.#untaken) {
      const live = this.#core.sessions.get(session.clientId) === session;
      const pending = new Set<BrokerMessage>();
      if (live) { for (const p of session.outbound.pending()) pending.add(p.message); }
      for (const [message, untaken] of messages) {
        if (pending.has(message)) continue;
        for (const share of [...untaken.holds.keys()]) releaseHolds(this.#bus, untaken, share);
        messages.delete(message);
      }
      if (messages.size === 0) this.#untaken.delete(session);
    }
    for (const [session, messages] of this.#unfinished) {
      if (this.#core.sessions.get(session.clientId) === session) {
        const pending = new Set<BrokerMessage>();
        for (const p of session.outbound.pending()) pending.add(p.message);
        for (const [message, ids] of messages) {
          if (pending.has(message)) continue;
          for (const id of ids) this.#bus.releaseEntry(id);
          messages.delete(message);
        }
        if (messages.size > 0) continue;
      } else {
        for (const ids of messages.values()) for (const id of ids) this.#bus.releaseEntry(id);
      }
      this.#unfinished.delete(session);
    }
  }

  /**
   * A message passed on for a shared group reached no member of it: no node had members for a
   * while, or it went from node to node too often. Counted as dropped; said in the log at QoS 1/2
   * (its publisher was acknowledged).
   */
  #shareLost(frame: MessageFrame, share: string): void {
    countDrop(this.#core.stats, "noShareMember");
    if (frame.message.qos === 0) return;
    this.#log.warning(
      `Cluster: a QoS ${frame.message.qos} message to ${frame.message.topic} reached no member of ${share}: its members left`,
    );
  }

  #forSharesOnly(message: BrokerMessage): void {
    this.#sharesOnly.add(message);
    this.#core.shareGate!.sharesOnly ??= (m) => this.#sharesOnly.has(m);
  }

  /**
   * A message a departed node may not have stored, for the sessions adopted from it only; or,
   * without `sessions`, one held for the shared groups of sessions that moved here.
   */
  #replay(frame: MessageFrame, sessions?: ReadonlySet<unknown>): void {
    const message = toMessage(frame.message, false);
    this.#decided(message, frame.shares ?? []);
    if (frame.only === true) this.#forSharesOnly(message);
    if (sessions !== undefined) {
      this.#onlyFor.set(message, sessions);
      this.#core.shareGate!.sessionsOnly ??= (m) => this.#onlyFor.get(m);
    }
    this.#core.routeRemote(message);
    this.#run();
  }

  /** The shared groups this node serves for `message`, which the core routes next. */
  #decided(message: BrokerMessage, shares: readonly string[]): void {
    this.#serving.set(message, shares);
  }

  #retained(frame: RetainedFrame): void {
    if (this.#pending !== undefined) {
      this.#pending.push(frame);
      return;
    }
    this.#applyRetained(frame.topic, frame.message);
  }

  #applyRetained(topic: string, record: MessageRecord | undefined): void {
    if (record !== undefined) {
      // This node's own change coming back, or one it loaded already: replacing the stored
      // message by an equal one would make a new subscription's retained feed skip it.
      const current = this.#core.retained.get(topic);
      if (current !== undefined && same(current, record)) return;
    }
    this.#core.replaceRetained(topic, record === undefined ? undefined : toMessage(record, true));
    this.#run();
  }

  /**
   * Work started in the background failed unexpectedly, or a listener of the bus threw: a bug,
   * or data that passed the checks and still could not be used. Logged, the node serving on
   * (what it was doing for one client or frame is lost, not the others').
   */
  readonly #fault = (what: string, error: unknown): void => {
    this.#log.error(`Cluster: ${what} failed: ${errorText(error)}`);
  };

  /**
   * A failure to reach Redis: the first since Redis was lost is logged, the others counted (a
   * connection storm while Redis is away would otherwise log a line per client).
   */
  #failed(what: string, error: unknown): void {
    if (this.#failures++ > 0) return;
    this.#log.warning(
      `Cluster: ${what} was not shared (${
        errorText(error)
      }); it and later changes are shared when Redis is back`,
    );
  }

  /**
   * Redis is back: a Redis that lost its data (`dataLost`, from the bus's epoch) gets this node's
   * retained set again, changes and claims that failed meanwhile are made now, then the cluster's
   * retained set is read again. Only after a loss: a Redis with no retained message may be one
   * where the cluster cleared them all meanwhile [MQTT-3.3.1-6] [MQTT-3.3.1-10], and those stay
   * cleared.
   */
  async #afterReconnect(dataLost: boolean): Promise<void> {
    if (this.#failures > 1) {
      this.#log.warning(
        `Cluster: ${this.#failures} changes failed while Redis was away; sharing them now`,
      );
    }
    this.#failures = 0;
    try {
      if (dataLost && this.#core.retained.size > 0) {
        const records = [...this.#core.retained.entries()]
          .filter(([topic]) => clusterWide(topic))
          .map(([, m]) => m.toRecord());
        await this.#bus.restoreRetained(records);
        if (records.length > 0) {
          this.#log.warning(
            `Cluster: Redis lost its data: restored the ${records.length} retained messages this node holds`,
          );
        }
      }
      const topics = [...this.#unshared];
      this.#unshared.clear();
      await Promise.all(
        topics.map((topic) => this.#bus.retain(topic, this.#core.retained.get(topic)?.toRecord())),
      );
    } catch (error) {
      this.#log.warning(`Cluster: cannot share the retained messages again: ${errorText(error)}`);
    }
    const clients = [...this.#unclaimed];
    this.#unclaimed.clear();
    for (const clientId of clients) {
      if (this.#core.sessions.get(clientId)?.link !== undefined) this.connected(clientId);
    }
    // Of a client that started clean here meanwhile and is gone since, the session it discarded
    // stays as Redis has it (see ARCHITECTURE.md).
    this.#sessions?.forgetStartedClean();
    // Subscriptions provisional sessions elsewhere left meanwhile for sessions held here (their
    // `subscribed` frames, sent while this node was away, are lost).
    const pending = this.#sessions?.applyAllPending();
    if (pending !== undefined) {
      background(pending, "adding the subscriptions left for sessions held here", this.#fault);
    }
    // Sessions served provisionally meanwhile: this node's if none existed, else they give way.
    // After the next heartbeat: a node that died meanwhile owning the client's session is reaped
    // first, and its session adopted (by this node: the provisional one gives way to it then).
    if ((this.#sessions?.provisionals().length ?? 0) > 0) {
      background(
        this.#bus.afterHeartbeat().then(() => {
          if (this.#closed) return;
          for (const clientId of this.#sessions?.provisionals() ?? []) this.#settle(clientId);
        }),
        "the settling of provisional sessions after reconnecting",
        this.#fault,
      );
    }
    await this.#loadRetained(true);
  }

  /**
   * Loads the cluster's retained set; changes announced meanwhile are applied after it. With
   * `prune` (after a reconnect), a message this node holds that Redis no longer has was cleared
   * while this node was away (the clear's announcement missed) and goes here too
   * [MQTT-3.3.1-10]; one stored here while the set was read is kept.
   */
  async #loadRetained(prune = false): Promise<void> {
    this.#pending ??= [];
    const held = prune ? [...this.#core.retained.entries()].filter(([t]) => clusterWide(t)) : [];
    try {
      const records = await this.#bus.retainedMessages();
      const kept = new Set(records.map((record) => record.topic));
      for (const [topic, message] of held) {
        if (!kept.has(topic) && this.#core.retained.get(topic) === message) {
          this.#applyRetained(topic, undefined);
        }
      }
      for (const record of records) this.#applyRetained(record.topic, record);
    } catch (error) {
      this.#log.warning(`Cluster: cannot load the retained messages: ${errorText(error)}`);
    } finally {
      const pending = this.#pending ?? [];
      this.#pending = undefined;
      for (const frame of pending) this.#applyRetained(frame.topic, frame.message);
    }
  }

  /**
   * A store write was refused: this node's incarnation was reaped (see `ClusterBus.incarnation`).
   * Its clients are closed now, before the writer's waiters (a publisher's PUBACK) learn of the
   * refusal, and the heartbeat registers the node again at once. A write of an earlier
   * incarnation (applied before this node registered again, written after) changes nothing: that
   * incarnation's step-down dropped what it was for, and the sessions here now are the new one's.
   *
   * @param token the incarnation the refused write carried
   */
  #storeFenced(token: string): void {
    if (token !== this.#bus.incarnation.token) {
      // Written for sessions of clients that logged in between the step-down and the new
      // registration (the rest were dropped at the step-down): they are not in the store, so
      // those clients are closed as well, to start again on the new incarnation. Nothing of their
      // end is written (their stored sessions, if any, are on other nodes).
      if (token !== this.#steppedDown) return;
      for (const clientId of this.#window) {
        this.#core.evict(
          clientId,
          "its state was written by a node taken for dead",
          Date.now(),
          true,
        );
        this.sessionChanged(clientId);
      }
      this.#window.clear();
      this.#run();
      return;
    }
    this.#stepDown("a write to the shared store was refused", undefined);
    this.#bus.heartbeat().catch(() => {});
  }

  /**
   * A store write's operations on a session were refused: another node holds it (it read the
   * session as its owner, or wrote it, while this node was cut off from a Redis that lost its
   * data, so that the incarnation fence let this node's writes through; or it adopted the session
   * from a node of a chain of moves while this node still held a copy). The session is let go
   * of as when the registration finds it claimed away, but at once and without a handoff (that
   * node claimed it from nobody and waits for none): its client is closed as taken over (5.0:
   * 0x8E [MQTT-3.1.4-3]), nothing of its end is written (the store's rows are the other node's),
   * its interest withdrawn and its ownership, if this node still has it, given up. No outage:
   * the rest of the write was applied. What the refused operations carried (a message queued for
   * it, say) is the other node's to have: that node's interest in the session's filters got it.
   *
   * @param clientId the session's client id
   * @param node the node the store names as its writer
   */
  #storeTaken(clientId: string, node: string): void {
    const evicted = this.#core.evict(clientId, `session taken by node ${node}`, Date.now(), true);
    this.#run();
    if (!evicted) return;
    this.#offline.delete(clientId);
    this.sessionChanged(clientId);
    // Said by what this node knows happened: a Redis that lost its data (the incarnation fence
    // let a cut-off node's writes through), or none, when another node adopted or took the
    // session while this one still held it (a chain of moves: its adopter follows the chain).
    const lost = this.#redisDataLost > 0 || (this.store?.losses ?? 0) > 0;
    const why = lost
      ? "which took its session while this node was cut off from a Redis that lost its data"
      : "which the store names as the session's writer (it adopted or took the session while this node still held it)";
    this.#log.warning(
      `Cluster: ${clientId} continues on node ${node}, ${why}: let go of here, its writes refused`,
    );
    if (!this.#closed) this.#bus.release(clientId).catch(() => {});
  }

  /**
   * This node was taken for dead (its event loop blocked longer than the node timeout, say) and
   * its sessions were adopted by other nodes, while it went on serving their clients: it closes
   * every connection as taken over (5.0: 0x8E [MQTT-3.1.4-3]) and drops every session without
   * writing it (its writes are refused), so that the clients reconnect and resume where the
   * sessions are now. Nothing it acknowledged is lost: a PUBACK/PUBREC waits for the commit
   * that the fence refuses. Logged once per incarnation.
   *
   * @param why how this node learnt it
   * @param owned how many sessions it owned in Redis, when known
   */
  #stepDown(why: string, owned: number | undefined): void {
    const { clientIds, connected } = this.#core.relinquishAll(
      "this node was taken for dead: the session continues on another node",
      Date.now(),
    );
    this.#run();
    for (const clientId of clientIds) {
      this.#offline.delete(clientId);
      this.sessionChanged(clientId);
    }
    // At each call: a login that claimed as the reaped incarnation meanwhile is refused.
    this.#sessions?.steppedDown();
    if (this.#steppedDown === this.#bus.incarnation.token) return;
    this.#steppedDown = this.#bus.incarnation.token;
    this.#takenForDead++;
    this.#rejoining = true;
    this.#window.clear();
    this.#log.error(
      `Cluster: this node was taken for dead by the others (${why}; its event loop or Redis was blocked longer than node_timeout): ${connected} clients closed and ${clientIds.length} sessions dropped here${
        owned === undefined ? "" : ` (${owned} were owned in Redis)`
      }, continued on other nodes; joining again`,
    );
  }

  #takenOver(clientId: string, node: string, missed = false): void {
    if (missed && this.#unclaimed.has(clientId) && this.#core.sessions.get(clientId)?.link) {
      // Its client logged in here while Redis was away, and that claim failed: it is made again
      // now (#afterReconnect) and takes the session from the node Redis names. A client has one
      // connection: that node had it before this login, or holds nothing (a release it lost in
      // an outage). Closing the client here would end the connection it has, for nobody's.
      this.#log.info(
        `Cluster: ${clientId}, which logged in here while Redis was away, is claimed from node ${node}`,
      );
      return;
    }
    if (this.#sessions !== undefined) {
      background(
        this.#sessions.takenOver(clientId, node, missed),
        `the handover of ${clientId}'s session to node ${node}`,
        this.#fault,
      );
      return;
    }
    const evict = () => {
      const evicted = this.#core.evict(clientId, `session taken over by node ${node}`, Date.now());
      this.#run();
      if (evicted) {
        this.#offline.delete(clientId);
        this.#log.info(`Cluster: ${clientId} continues on node ${node}: its session here ended`);
      }
    };
    // The client may have come back here after the other node's claim: the owner in Redis
    // decides.
    this.#bus.ownerOf(clientId).then((owner) => {
      if (owner !== this.#bus.nodeId) evict();
    }, evict);
  }

  /**
   * A session handed over to another node (evicted here): its interest is withdrawn, and it is
   * no longer an offline session of this node, whose end the sweep would release. Left listed,
   * the sweep released the ownership of the client's next login here while that login waited
   * for the other node's handoff: the session, restored here, was owned by nobody in Redis, so
   * the next node it moved to claimed it from nobody (no takeover here), and the store refused
   * this node's writes as another's (`wo`).
   */
  #handedOver(clientId: string): void {
    this.#offline.delete(clientId);
    this.sessionChanged(clientId);
  }

  /** A session loaded here from the shared store: its interest is declared, its expiry watched. */
  #kept(clientId: string): void {
    this.sessionChanged(clientId);
    if (this.#core.sessions.get(clientId)?.link === undefined) this.#offline.add(clientId);
  }

  #publishWill(clientId: string, will: MessageRecord, why: string): void {
    if (this.#closed) return;
    this.#log.info(`Cluster: publishing the will of ${clientId} (${why})`);
    this.#core.publish(toMessage(will, false));
    this.#run();
  }

  #nodeLeft(node: string, graceful: boolean, clients: string[]): void {
    // Closing: the nodes that stay adopt its sessions and publish its wills.
    if (this.#closed) return;
    if (graceful) {
      this.#log.info(`Cluster: node ${node} left`);
    } else {
      this.#nodesDead++;
      this.#log.warning(
        `Cluster: node ${node} stopped responding and was removed (${clients.length} clients)`,
      );
    }
    // Its sessions are adopted by the remaining nodes, each by one (with the will of a client
    // that was connected there).
    if (this.#sessions !== undefined) {
      this.#sessions.forget(node);
      background(
        this.#sessions.adoptAll(clients, `its node ${node} ${graceful ? "left" : "died"}`, node),
        `the adoption of node ${node}'s sessions`,
        this.#fault,
      );
      return;
    }
    if (graceful) return;
    // The node published nothing for the clients it had: one node takes each will and
    // publishes it, cluster-wide [MQTT-3.1.2-8].
    for (const clientId of clients) {
      this.#bus.takeWill(clientId).then((will) => {
        if (will !== undefined) this.#publishWill(clientId, will, `its node ${node} died`);
      }, (error) => {
        this.#log.warning(`Cluster: cannot take the will of ${clientId}: ${errorText(error)}`);
      });
    }
  }
}

/**
 * Opens the store the cluster's nodes share for persistent sessions: a {@linkcode RedisStore} on
 * the cluster's first Redis (the others as failovers once it is open), with the cluster's
 * credentials and TLS, its keys under the cluster's prefix followed by `store:`.
 *
 * @param config the resolved `cluster` section (enabled)
 * @param node `nodeId`, this node's id: a session that ended here while Redis was away is deleted
 *   by the rewrite after the outage unless another node owns it (the bus's `owner` hash), and the
 *   writes to a session another node holds are refused (`taken` told of it, see
 *   {@linkcode RedisStoreOptions.owner}); `fence`, the node's incarnation fence
 * @returns the open store
 * @throws {StoreError} If Redis cannot be reached.
 */
export async function openClusterStore(
  config: ClusterConfig,
  node: {
    nodeId?: string;
    fence?: RedisStoreOptions["fence"];
    taken?: (clientId: string, node: string) => void;
  } = {},
): Promise<RedisStore> {
  const options: RedisStoreOptions = {
    url: config.redis[0]!,
    // The bus's scripts find the store's keys (`P store:writer`…) under the same prefix.
    prefix: clusterStorePrefix(config.keyPrefix),
  };
  const { nodeId, fence, taken } = node;
  if (fence !== undefined) options.fence = fence;
  if (nodeId !== undefined) {
    options.owner = { key: `${config.keyPrefix}owner`, node: nodeId };
    if (taken !== undefined) options.owner.taken = taken;
  }
  if (config.redis.length > 1) options.failoverUrls = config.redis.slice(1);
  if (config.username !== undefined) options.username = config.username;
  if (config.password !== undefined) options.password = config.password;
  if (config.tls !== undefined) options.tls = await readTls(config.tls);
  return await RedisStore.open(options);
}

/**
 * Joins the cluster (see {@linkcode ClusterLink.start}); what the broker calls.
 *
 * @param options configuration, core and logger
 * @returns the running link
 */
export function startClusterLink(options: ClusterLinkOptions): Promise<ClusterMember> {
  return ClusterLink.start(options);
}

function toMessage(record: MessageRecord, retained: boolean): BrokerMessage {
  const options: ConstructorParameters<typeof BrokerMessage>[2] = {
    qos: record.qos,
    retain: record.retain,
    retainOut: retained,
    // A frame's payload is a view into the bytes of a read from Redis, which hold other frames:
    // a delivery waiting past a sweep gets a buffer of its own (BrokerMessage.keptLong).
    view: true,
  };
  if (record.origin !== undefined) options.senderId = record.origin;
  if (record.properties !== undefined) options.properties = propertiesFromJson(record.properties);
  // Its deadline, from the publishing node's clock: not delivered past it [MQTT-3.3.2-5], and a
  // 5.0 PUBLISH carries what is left of it [MQTT-3.3.2-6]. (Was left out: a message of another
  // node never expired here, queued or retained: tests/cluster/remote_expiry_test.ts.)
  if (record.expiresAt !== undefined) options.expiresAt = record.expiresAt;
  return new BrokerMessage(record.topic, record.payload, options);
}

function same(message: BrokerMessage, record: MessageRecord): boolean {
  const a = message.payload;
  const b = record.payload;
  if (message.qos !== record.qos || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function readTls(tls: NonNullable<ClusterConfig["tls"]>): Promise<RedisTlsOptions> {
  const out: RedisTlsOptions = { rejectUnauthorized: tls.verify };
  if (tls.cafile !== undefined) out.ca = await Deno.readTextFile(tls.cafile);
  if (tls.certfile !== undefined) out.cert = await Deno.readTextFile(tls.certfile);
  if (tls.keyfile !== undefined) out.key = await Deno.readTextFile(tls.keyfile);
  return out;
}

/**
 * Whether a topic's messages go to the cluster: `$SYS` describes each node and stays on it (a
 * node's `$SYS` would overwrite another's retained values).
 */
function clusterWide(topic: string): boolean {
  return !topic.startsWith("$SYS/");
}

/** A QoS 2 shared delivery of a message of this node's stream to a clean member, not written. */
interface Untaken {
  /** The session it is for (the member it was handed to, if it was). */
  session: Session;
  /** The message's stream entry and frame index. */
  readonly entry: { id: string; index: number };
  /**
   * The groups it was delivered through, each with its take: `new` (not asked yet), `taking`,
   * `taken` (its copy may be written), `written`, `refused` (a rescue of this node's stream
   * passed that group's copy on already), or `dropped` (a copy left the window unwritten).
   */
  readonly takes: Map<string, "new" | "taking" | "taken" | "written" | "refused" | "dropped">;
  /**
   * Per group, the stream entries held pending for its copy until its take is answered, or the
   * copy passed on; each let go once (a take on its way after the sweep lets go of none).
   */
  readonly holds: Map<string, string[]>;
  /**
   * Groups whose copy went to another member here with its take on its way: that member's
   * record, which the answer goes to.
   */
  moved?: Map<string, Untaken>;
}

/** Lets go of the stream entries `untaken` held for `share`'s copy, once. */
function releaseHolds(bus: ClusterBus, untaken: Untaken, share: string): void {
  const held = untaken.holds.get(share);
  if (held === undefined) return;
  untaken.holds.delete(share);
  for (const id of held) bus.releaseEntry(id);
}
