/**
 * The cluster message bus: how the nodes of a cluster exchange messages, interest, session
 * ownership and liveness through Redis (the broker's end is `src/broker/cluster_link.ts`).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { setImmediate } from "node:timers";
import type { Redis } from "ioredis";
import type { MessageRecord } from "../store/message_record.ts";
import { decodeMessage, encodeMessage } from "../store/record_codec.ts";
import { messageProblem } from "./_record_problem.ts";
import { background } from "./_background.ts";
import {
  type BusFrame,
  decodeFrames,
  encodeFrame,
  FrameBatch,
  type LeftFrame,
  type MessageFrame,
  type RetainedFrame,
  subscribedEntries,
  type SubscribedEntry,
  writeFrame,
} from "./bus_frame.ts";
import { ByteWriter } from "../store/record_codec.ts";
import { TextCache } from "./_text_cache.ts";
import { InterestTable } from "./interest_table.ts";
import { parseSharedFilter } from "../topic/shared_filter.ts";
import type { ShareChoice } from "./share_chooser.ts";
import type { ShareStrategy } from "../topic/mod.ts";
import { ForwardAcks, type ForwardGate } from "./forward_acks.ts";
import { closeRedis, createRedis, redactUrl, type RedisConnectOptions } from "./redis_connect.ts";
import { type RespClient, RespError, RespTlsError, type RespValue } from "./resp_client.ts";
import { CallBatch } from "./_call_batch.ts";
import { checkRedisVersion, RedisVersionError } from "./_redis_version.ts";
import { respOptionsOf, StreamLink } from "./_stream_link.ts";
import type { GuardedConnector } from "./_guarded_connector.ts";
import {
  ACK_STALE_SCRIPT,
  ADOPT_SCRIPT,
  APPLIED_PENDING_SCRIPT,
  CLAIM_SCRIPT,
  clusterStorePrefix,
  DROP_WILL_SCRIPT,
  GIVEN_WAY_WILL_SCRIPT,
  HAND_OFF_SCRIPT,
  HEARTBEAT_SCRIPT,
  LEAVE_SCRIPT,
  PASS_SCRIPT,
  PEND_SCRIPT,
  READ_FROM_SCRIPT,
  REAPED_INCARNATION_MS,
  REGISTER_SCRIPT,
  RELEASE_SCRIPT,
  RETAIN_SCRIPT,
  SHARE_STATS_SCRIPT,
  SNAPSHOT_SCRIPT,
  TAKE_SCRIPT,
  TAKE_WILL_SCRIPT,
  UNTAKE_SCRIPT,
  VERSIONS_SCRIPT,
} from "./_bus_scripts.ts";
import type { ForeignNode } from "./_protocol.ts";
import { exceedsTopicLength } from "../topic/topic_length.ts";

/** The timer functions the bus uses; injected by tests. */
export interface BusTimers {
  /** The heartbeat's. */
  setInterval(callback: () => void, ms: number): number;
  clearInterval(id: number): void;
  /**
   * The retries of the stream connections (`setTimeout` when not given).
   */
  setTimeout?(callback: () => void, ms: number): number;
  clearTimeout?(id: number): void;
}

/**
 * Which of a node's Redis connections: ioredis's command and subscriber connections, its reader
 * (only when the message streams use ioredis), or the two RESP connections of the message streams
 * (`stream`, opened and retried together).
 */
export type BusConnection = "command" | "subscriber" | "reader" | "stream";

/** Told of each reconnect attempt; set once the bus exists. */
interface RetryHook {
  report?: (connection: BusConnection, attempt: number, delay: number) => void;
}

/** The command and subscriber connections, and how to make more like them. */
interface Connected {
  cmd: Redis;
  sub: Redis;
  /** Makes a connection with the same options and retries (not connected yet). */
  make: (connection: BusConnection) => Redis;
}

/**
 * Connects the command and the subscriber connection, one attempt each; afterwards they
 * reconnect by themselves with `retryDelay`, telling `hook` of each attempt.
 */
async function connectPair(
  options: RedisConnectOptions,
  retryDelay: (attempt: number) => number,
  hook: RetryHook,
): Promise<Connected> {
  let started = false;
  const make = (connection: BusConnection) =>
    createRedis(options, {
      // Commands fail at once while Redis is away: the bus resynchronises on reconnect instead
      // of replaying stale writes.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResubscribe: true,
      // Commands of one turn (the XADDs of a flush, say) go out in one write.
      enableAutoPipelining: connection === "command",
      retryStrategy: (attempt) => {
        if (!started) return null;
        const delay = retryDelay(attempt);
        hook.report?.(connection, attempt, delay);
        return delay;
      },
    });
  const cmd = make("command");
  const sub = make("subscriber");
  // The socket's own error ("connect ECONNREFUSED …", "NOAUTH …") says more than the rejection
  // of connect() ("Connection is closed.").
  let firstError: Error | undefined;
  for (const redis of [cmd, sub]) redis.on("error", (e: Error) => firstError ??= e);
  try {
    await Promise.all([cmd.connect(), sub.connect()]);
  } catch (error) {
    await Promise.all([closeRedis(cmd), closeRedis(sub)]);
    throw firstError ?? error;
  }
  started = true;
  return { cmd, sub, make };
}

/**
 * How long a node that left keeps receiving, in its dead stream, what matches its interest (its
 * shared groups only when no live node has members): longer than the adoption of its sessions
 * takes (their filters announced), well under the dead stream's life. Counted from its departure
 * and again from each return of Redis (an adopter announces at its own resync).
 */
const DEPARTED_GRACE_MS = 30_000;
/** How long a departed node's stream is kept (as the reaping script does). */
const DEAD_STREAM_MS = 600_000;

/**
 * How long a message this node passes on for a shared group waits for a node with members of
 * the group to be known (tried at each heartbeat) before it is given up as reaching no member.
 */
export const SHARE_WAIT_MS = 30_000;
/**
 * How many times a message for a shared group is passed on at once from node to node, each of
 * which found no member of the group left (their views of the others lag behind); past it, each
 * further pass waits for a heartbeat: a bound against passing it back and forth.
 */
export const MAX_PASSES = 4;
/**
 * The most passes of one message for one group in all: this bounds a message bounced between
 * nodes whose views disagree for minutes.
 */
export const MAX_HOPS = 255;
/**
 * The most entries of a dead node's stream read with shared deliveries not finished that its
 * rescue reads (XPENDING): about what the in-flight windows and queues of its clean members
 * held, each entry a batch of messages.
 */
const MAX_UNFINISHED = 100_000;
/**
 * How often the entries read and finished are acknowledged in the group `r` (one XACK for all):
 * one command per interval rather than one per read. A node dying meanwhile has its last ones'
 * shared QoS 1 messages passed on once more by its rescue (a duplicate, which QoS 1 allows).
 */
const ACK_EVERY_MS = 50;

/** The SHA1 of {@linkcode TAKE_SCRIPT}, for EVALSHA on the stream writer. */
const TAKE_SHA = createHash("sha1").update(TAKE_SCRIPT).digest("hex");

/** Largest batch of frames sent to one node in one XADD (a single larger frame goes alone). */
const BATCH_BYTES = 256 * 1024;

const REAL_TIMERS: BusTimers = {
  setInterval: (callback, ms) => setInterval(callback, ms) as unknown as number,
  clearInterval: (id) => clearInterval(id),
};

/** Options of {@linkcode ClusterBus.start}. */
export interface ClusterBusOptions extends RedisConnectOptions {
  /** This node's id, unique in the cluster. */
  nodeId: string;
  /**
   * Further Redis URLs, tried in order at start when `url` is unreachable, and in turn when a
   * reconnect fails (a failover; Redis Sentinel or a manual promotion makes one the primary).
   */
  alternateUrls?: string[];
  /**
   * Prefix of every Redis key and channel of the cluster.
   *
   * @default {"amqtt:"}
   */
  prefix?: string;
  /**
   * Milliseconds between heartbeats (liveness refresh and the check for dead nodes).
   *
   * @default {1000}
   */
  heartbeatInterval?: number;
  /**
   * Lifetime of the liveness key in ms: a node that stops heartbeating is found dead at most
   * `livenessTtl + heartbeatInterval` later (by the next heartbeat of any other node).
   *
   * @default {3 * heartbeatInterval}
   */
  livenessTtl?: number;
  /**
   * Delay before reconnect attempt `attempt` (1, 2, ...) after Redis was lost.
   *
   * @default {(attempt) => Math.min(5000, 100 * 2 ** (attempt - 1))}
   */
  retryDelay?: (attempt: number) => number;
  /**
   * Messages waiting to be forwarded (per receiving node) at most; more are dropped and counted,
   * so a Redis that cannot keep up never grows memory without bound.
   *
   * @default {100000}
   */
  maxQueuedForwards?: number;
  /**
   * How long, in ms of Redis's clock, a node's stream keeps entries (batches of messages) the
   * node has not read (paused, or dead and not reaped yet); older ones are trimmed when other
   * nodes write to it. It must outlast the detection of a dead node, whose stream is then renamed
   * and kept whole for its adopter: trimmed by count instead, a busy cluster dropped acknowledged
   * messages of a dead node's sessions before the reap. A departed node's dead stream is not
   * trimmed (what goes there is bounded by the grace).
   *
   * @default {max(30 s, 4 × (livenessTtl + heartbeatInterval))}
   */
  streamRetention?: number;
  /**
   * How a shared group with members on several nodes picks the node that serves a message
   * published here: in turn or at random (the broker's `shared_subscription_strategy`).
   *
   * @default {"round_robin"}
   */
  shareStrategy?: ShareStrategy;
  /**
   * Heartbeat timer, and the stream connections' retry timer; tests pass timers that never fire
   * and call {@linkcode ClusterBus.heartbeat}, or fire the retries themselves.
   *
   * @default {setInterval, clearInterval, setTimeout and clearTimeout}
   */
  timers?: BusTimers;
  /**
   * Milliseconds an attempt to open a stream connection may take (TCP connect, TLS handshake,
   * AUTH, first reply); past it the attempt fails and the next follows the reconnect back-off.
   *
   * @default {10000}
   */
  streamConnectTimeout?: number;
  /**
   * The clock of a departed node's grace (ms); tests pass their own.
   *
   * @default {Date.now}
   */
  clock?: () => number;
  /**
   * Called at start while live nodes of another cluster protocol version (`_protocol.ts`) keep
   * this node from registering, once per change of their set; the node looks again every
   * `protocolRetry` ms and registers once there are none (nodes of one release cannot share a
   * cluster with another's, see ARCHITECTURE "Mixed versions").
   */
  protocolRefused?: (nodes: ForeignNode[], retryMs: number) => void;
  /**
   * Milliseconds between two looks for live nodes of another cluster protocol version at start.
   *
   * @default {2000}
   */
  protocolRetry?: number;
  /** Aborts a start that waits for the nodes of another cluster protocol version to go. */
  signal?: AbortSignal;
}

/** The connection state the bus reports, for logging. */
export type BusState =
  /**
   * Connected, registered, interest synchronised (first time or after a reconnect). `dataLost`:
   * Redis lost the cluster's data since this node was last registered (its `P epoch` key is gone
   * or another), as after a restart without its data; never on the first registration.
   * `rolledBack`: this node found that Redis went back to older data (restarted from an older
   * snapshot, a lagging replica promoted) and emptied the cluster's keys, which made it a data
   * loss for every node (`dataLost` too).
   */
  | { state: "ready"; reconnected: boolean; dataLost: boolean; rolledBack: boolean }
  /** Redis was lost (`error`: the last connection error, if any); forwarding pauses. */
  | { state: "disconnected"; error?: string }
  /** One connection tries again after `delay` ms (attempt `attempt` since it was lost). */
  | { state: "reconnecting"; connection: BusConnection; attempt: number; delay: number }
  /**
   * The stream connections (XADDs of forwarded messages, XREAD of this node's stream) could not
   * be opened again while Redis is otherwise reachable: messages to and from other nodes wait,
   * local traffic goes on; they are tried again with the reconnect back-off.
   */
  | { state: "streamsLost"; error: string }
  /** The stream connections are open again: forwarding and reading resumed. */
  | { state: "streamsBack" }
  /**
   * The stream connections use ioredis from now on, since Deno's TLS cannot open them while
   * ioredis can (`reason`).
   */
  | { state: "streamsOnIoredis"; reason: string }
  /**
   * Reconnected to a Redis older than the cluster needs (`_redis_version.ts`; a failover to an
   * older replica, another URL of the list): the node does not register on it and runs none of
   * its scripts, serving local clients as in an outage; looked at again at each heartbeat and
   * reconnection (the next URL of the list, when there are several). Reported once per server.
   */
  | { state: "redisTooOld"; error: string };

/** The events of a {@linkcode ClusterBus} and their payloads. */
export interface ClusterBusEventMap {
  /** A message published on another node, forwarded here because this node declared interest. */
  message: MessageFrame;
  /**
   * Another node took over a session this node owned: close its connection here. `missed`: its
   * claim was made while this node was away from Redis (found when it registered again, or when
   * a release that failed meanwhile is made again).
   */
  takeover: { clientId: string; node: string; missed?: boolean };
  /**
   * Another node's provisional session of a client whose session this node holds gave way there,
   * and left the subscriptions its client made in it in Redis (see
   * {@linkcode ClusterBus.sendSubscribed}); `subscriptions` is empty since cluster protocol 3.
   */
  subscribed: { clientId: string; node: string; subscriptions: SubscribedEntry[] };
  /**
   * The node that had a session this node claimed let go of it, with its stored state committed
   * (see {@linkcode ClusterBus.handOver}).
   */
  handoff: { clientId: string; node: string; marks: Record<string, number> };
  /**
   * The messages forwarded to this node, up to and including stream entry `id`, have been handed
   * to the `message` listeners (one event per read from Redis).
   */
  read: { id: string };
  /** A node joined (or was first seen). */
  nodeJoined: { node: string };
  /**
   * A node left: stopped, or found dead (liveness key expired). `clients` are the sessions it
   * owned (for their wills), sorted, known to the node that reaped it and to nodes told by it.
   */
  nodeLeft: { node: string; graceful: boolean; clients: string[] };
  /**
   * A topic's retained message was set or cleared by some node (this one included), in the order
   * Redis applied the changes.
   */
  retained: RetainedFrame;
  /** A connection state change, for the log. */
  state: BusState;
  /**
   * A frame or record read from Redis was refused as malformed (and counted, `stats.malformed`):
   * `what` it was (a frame's type and sender when known), `reason` why. It reached nothing else.
   */
  malformed: { what: string; reason: string };
  /**
   * A listener threw, or work started in the background failed unexpectedly (a bug, or data
   * that passed the checks and still could not be used): the bus goes on, the failure (`what`
   * failed) is told here for the log.
   */
  fault: { what: string; error: unknown };
  /**
   * A message for a shared group that this node had to pass on (see
   * {@linkcode ClusterBus.redirect}) reached no member of it: no node with members was known for
   * {@linkcode SHARE_WAIT_MS}, or it was passed on {@linkcode MAX_HOPS} times.
   */
  shareLost: { frame: MessageFrame; share: string };
  /**
   * This node was taken for dead (reaped while it was only paused: an event loop blocked longer
   * than `livenessTtl`): the other nodes adopted its sessions, and its store writes, claims and
   * adoptions are refused (fenced) since. Listeners drop every session kept here, without writing
   * anything of it, before this node registers again with a new incarnation, owning nothing.
   * Emitted once per incarnation, synchronously.
   */
  fenced: { owned: number };
}

/**
 * A shared-group message this node passes on (see {@linkcode ClusterBus.redirect}) until Redis
 * has made the pass: its entry stays in the holder's stream meanwhile.
 */
interface PendingPass {
  /** The node whose stream holds the message: this one, or a departed one rescued here. */
  holder: string;
  /** The stream entry's id (absent: the message came from no stream entry). */
  id?: string;
  /** The pass's key in `P passed:HOLDER`: entry id, frame index, group ('' without an entry). */
  key: string;
  frame: MessageFrame;
  /** The group, `$share/{group}/{filter}`. */
  share: string;
  /** Its key in the bus's pending passes: holder and key, or a number of its own without one. */
  slot: string;
  /** When it was first tried (the bus's clock). */
  since: number;
  /** Tried at the next heartbeat, not now (no node with members was known, or past MAX_PASSES). */
  wait: boolean;
  /** Sent, not answered yet. */
  sending: boolean;
  /** Entries of this node's stream kept pending until the pass is made ({@linkcode ClusterBus.passOn}). */
  holds?: readonly string[];
  /** The stream entry its key names, when not `id` (a {@linkcode ClusterBus.passOn}). */
  entry?: string;
}

/** A take ({@linkcode ClusterBus.take}) not answered yet. */
interface PendingTake {
  /** The stream entry's id. */
  id: string;
  /** Its key in `P passed:ID`, as a pass's. */
  key: string;
  /** The incarnation that asked it: the only one it is sent as. */
  inc: string;
  done: (taken: boolean) => void;
}

type Listener<T> = (event: T) => void;
type Arg = string | Buffer;
type ScriptName =
  | "register"
  | "snapshot"
  | "heartbeat"
  | "leave"
  | "claim"
  | "release"
  | "dropWill"
  | "takeWill"
  | "givenWayWill"
  | "adopt"
  | "retain"
  | "pass"
  | "readFrom"
  | "ackStale"
  | "shareStats"
  | "take"
  | "untake"
  | "versions"
  | "handOff"
  | "pend"
  | "appliedPending";
type ScriptedRedis =
  & Redis
  & {
    [K in `amqttBus_${ScriptName}` | `amqttBus_${ScriptName}Buffer`]: (
      ...args: Arg[]
    ) => Promise<unknown>;
  };

/**
 * The most claims sent in one script call (a call of Redis's runs alone: kept short; a claim may
 * read a session as well, as many as the store's reads of one call).
 */
const MAX_CLAIMS = 64;

/** A subscription's fields as a `subscribed` frame and `P pendsub:ID` carry them. */
function subscribedEntry(s: SubscribedEntry): SubscribedEntry {
  const entry: SubscribedEntry = { topic: s.topic, qos: s.qos };
  if (s.noLocal !== undefined) entry.noLocal = s.noLocal;
  if (s.retainAsPublished !== undefined) entry.retainAsPublished = s.retainAsPublished;
  if (s.retainHandling !== undefined) entry.retainHandling = s.retainHandling;
  if (s.identifier !== undefined) entry.identifier = s.identifier;
  return entry;
}

/** A claim's answer: the previous owner or "", or with a read, that and the session's rows. */
type ClaimReply = string | { previous: string; claimed: boolean; rows: unknown[] };

const SCRIPTS: Record<ScriptName, string> = {
  register: REGISTER_SCRIPT,
  snapshot: SNAPSHOT_SCRIPT,
  heartbeat: HEARTBEAT_SCRIPT,
  leave: LEAVE_SCRIPT,
  claim: CLAIM_SCRIPT,
  release: RELEASE_SCRIPT,
  dropWill: DROP_WILL_SCRIPT,
  takeWill: TAKE_WILL_SCRIPT,
  givenWayWill: GIVEN_WAY_WILL_SCRIPT,
  adopt: ADOPT_SCRIPT,
  retain: RETAIN_SCRIPT,
  pass: PASS_SCRIPT,
  readFrom: READ_FROM_SCRIPT,
  ackStale: ACK_STALE_SCRIPT,
  shareStats: SHARE_STATS_SCRIPT,
  take: TAKE_SCRIPT,
  untake: UNTAKE_SCRIPT,
  versions: VERSIONS_SCRIPT,
  handOff: HAND_OFF_SCRIPT,
  pend: PEND_SCRIPT,
  appliedPending: APPLIED_PENDING_SCRIPT,
};

/**
 * The last id of the group `r` in an XINFO GROUPS answer: how far the stream's node can have
 * read it (see READ_FROM_SCRIPT); undefined without that group.
 */
function lastDelivered(info: unknown): string | undefined {
  if (!Array.isArray(info)) return undefined;
  for (const group of info) {
    if (!Array.isArray(group)) continue;
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < group.length; i += 2) fields.set(String(group[i]), group[i + 1]);
    if (String(fields.get("name")) !== "r") continue;
    const id = fields.get("last-delivered-id");
    return typeof id === "string" && id.includes("-") ? id : undefined;
  }
  return undefined;
}

/** A stream entry id `ms-seq` as two numbers. */
/**
 * The key of a shared-group message of a node's stream for one group in `P passed:ID`: its
 * entry's id, its index among the entry's frames, the group. One message for one group is
 * passed on, or taken for a QoS 2 delivery, once under it (by the node, or by its rescuer).
 */
function passKey(id: string, index: number, share: string): string {
  return `${id} ${index} ${share}`;
}

function streamId(id: string): [number, number] {
  const dash = id.indexOf("-");
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

function compareStreamIds(a: [number, number], b: [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}

/** The ms part of a stream entry id as Redis answered it (text or bytes); 0 if none. */
function streamIdMs(id: unknown): number {
  let ms = 0;
  if (typeof id === "string") {
    ms = Number.parseInt(id, 10);
  } else if (id instanceof Uint8Array) {
    for (const byte of id) {
      if (byte < 0x30 || byte > 0x39) break;
      ms = ms * 10 + byte - 0x30;
    }
  }
  return Number.isFinite(ms) ? ms : 0;
}

/** A stream entry id (ASCII) from its bytes. */
function latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

/**
 * A will read from Redis, left out when its topic is past `MAX_TOPIC_LENGTH` (an older release
 * stored it): no map of the broker may hold such a topic (topic_length.ts).
 */
function storedWill(record: MessageRecord): MessageRecord | undefined {
  return exceedsTopicLength(record.topic) ? undefined : record;
}

function buf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Counters of a bus. */
export interface BusStats {
  /** Messages sent to other nodes (one per receiving node). */
  forwarded: number;
  /** Messages received from other nodes. */
  received: number;
  /** Messages not forwarded: Redis was unreachable, or too many were waiting to be sent. */
  dropped: number;
  /** Frames received that could not be decoded (ignored). */
  malformed: number;
}

/**
 * Whether `error` is the refusal of a claim or adoption because this node's incarnation was
 * reaped (it was taken for dead, and its sessions moved to other nodes).
 *
 * @example
 * ```ts ignore
 * import { isFencedError } from "./cluster_bus.ts";
 *
 * await bus.claim("c1").catch((error) => {
 *   if (isFencedError(error)) console.log("this node steps down and registers again");
 * });
 * ```
 *
 * @param error a rejection of {@linkcode ClusterBus.claim} or {@linkcode ClusterBus.adopt}
 * @returns true when the refusal came from the fence
 */
export function isFencedError(error: unknown): boolean {
  return /AMQTT_FENCED/.test(String((error as Error)?.message));
}

/** A starting node's registration refused: live nodes of another cluster protocol version. */
class ProtocolRefusal extends Error {
  readonly nodes: ForeignNode[];
  constructor(nodes: ForeignNode[]) {
    super("Cannot register: live nodes of another cluster protocol version are registered");
    this.name = "ProtocolRefusal";
    this.nodes = nodes;
  }
}

/** The foreign nodes of a script's reply: { node, version, ... } (`foreign`, `_bus_scripts.ts`). */
function foreignNodes(reply: unknown[]): ForeignNode[] {
  const nodes: ForeignNode[] = [];
  for (let i = 0; i < reply.length; i += 2) {
    nodes.push({ node: String(reply[i]), protocol: Number(String(reply[i + 1])) });
  }
  return nodes;
}

/**
 * One node's end of the cluster bus, on Redis.
 *
 * - **Interest:** the node declares the topic filters it has local subscribers for
 *   ({@linkcode addInterest}, counted, so many local subscribers of one filter are one
 *   declaration). Each node keeps its filters in a Redis set and announces changes on a control
 *   channel; every node keeps a table of the others' filters.
 * - **Routing:** {@linkcode publish} sends a locally published message only to the nodes whose
 *   interest matches its topic, each into that node's own stream: a topic nobody subscribes to
 *   costs no Redis traffic, and a node receives only what it asked for. The messages of one
 *   event-loop turn for one node go as one batch, in one XADD. Frames are binary
 *   (topic, payload, QoS, retain, 5.0 properties, origin node, publisher, sequence number), and
 *   one publisher's messages to one node travel in order in one stream, which keeps them until
 *   the node reads them (after a reconnect, from where it stopped). {@linkcode forwards} tells
 *   when Redis has acknowledged the XADDs of the QoS 1/2 messages queued so far, for the
 *   publishers' replies to wait for.
 * - **Liveness:** a key with a TTL, refreshed by the heartbeat; each heartbeat also finds nodes
 *   whose key expired, and exactly one node reaps each (releasing its sessions and interest,
 *   announcing it), so a dead node is detected within `livenessTtl + heartbeatInterval`.
 * - **Ownership:** {@linkcode claim} makes this node the owner of a client id cluster-wide; the
 *   previous owner gets a `takeover` event.
 * - **Faults:** when Redis restarts or is unreachable, the connections reconnect with back-off
 *   (`state` events), and messages to forward wait (bounded); on reconnect the node registers
 *   again, rewrites its interest and session ownership, reloads the others' interest, and sends
 *   what waited.
 *
 * @example
 * ```ts ignore
 * import { ClusterBus } from "./cluster_bus.ts";
 *
 * const bus = await ClusterBus.start({ url: "redis://127.0.0.1:6379", nodeId: "node-1" });
 * bus.on("message", (frame) => console.log(frame.message.topic));
 * await bus.addInterest("sensors/#");
 * bus.publish({ topic: "sensors/1", payload: new Uint8Array([1]), qos: 0, retain: false }, "c1");
 * await bus.close();
 * ```
 */
export class ClusterBus implements AsyncDisposable {
  /** This node's id. */
  readonly nodeId: string;
  readonly #prefix: string;
  readonly #cmd: ScriptedRedis;
  /**
   * Claims of concurrent logins (client id, takeover frame, will) as one script call. Sent as
   * well before every other script that reads or changes ownership, so that Redis runs them in
   * the order they were made.
   */
  readonly #claims = new CallBatch<
    [string, Arg, Arg, "" | "r" | "s" | "n" | "w" | "k" | "!" | "r!" | "s!"],
    ClaimReply
  >(
    (batch) => {
      const epoch = this.#epoch ?? "";
      const args: Arg[] = [this.#prefix, this.nodeId, this.#incarnation, epoch, String(this.#gen)];
      for (const claim of batch) args.push(...claim);
      return this.#cmd.amqttBus_claimBuffer(...args).then((answer) => {
        const replies = answer as unknown[];
        // The node's own counter, after the claims (`CLAIM_SCRIPT`): noted before the logins
        // hear of their claims (and send their CONNACKs), as a store write's value is.
        this.counted(Number(replies.pop()), epoch);
        return replies.map((reply): ClaimReply => {
          if (!Array.isArray(reply)) return String(reply ?? "");
          const [old, claimed, rows] = reply as [Buffer | null, number, unknown[]];
          return { previous: String(old ?? ""), claimed: claimed === 1, rows };
        });
      });
    },
    MAX_CLAIMS,
  );
  readonly #sub: Redis;
  /**
   * Blocks in XREADGROUP on this node's stream of forwarded messages when the streams use ioredis
   * ({@linkcode streamsFallback}); not opened otherwise.
   */
  #reader: Redis | undefined;
  /** Makes another ioredis connection like the command connection. */
  readonly #make: (connection: BusConnection) => Redis;
  readonly #retryDelay: (attempt: number) => number;
  /**
   * The XADDs of forwarded messages and the XREAD of this node's stream, on RESP connections of
   * their own (many XADDs in flight, replies read in place); `undefined` when they use ioredis
   * (see {@linkcode streamsFallback}).
   */
  #streams: StreamLink | undefined;
  /** Why the streams use ioredis; `undefined` while they use the RESP connections. */
  #fallback: string | undefined;
  /** The RESP connections given up for ioredis, closing. */
  #abandoned: Promise<void> | undefined;
  /**
   * An attempt to open the stream connections failed while Redis was otherwise reachable, and
   * none succeeded since: forwarding and reading wait, the attempts go on with the back-off.
   */
  #streamsDown = false;
  /** The attempt being made to open the stream connections (its error, or none). */
  #streamsOpening: Promise<Error | undefined> | undefined;
  /** Counts losses of Redis: an attempt to open the streams made before one is not waited for. */
  #streamsEpoch = 0;
  /** Attempts since the stream connections were last opened. */
  #streamAttempt = 0;
  /** The next attempt to open the stream connections. */
  #streamRetry: number | undefined;
  readonly #streamRetention: number;
  /** The time of the last XADD Redis answered (its entry id's ms), 0 before the first. */
  #redisMs = 0;
  readonly #noteRedisTime = (id: unknown) => {
    const ms = streamIdMs(id);
    if (ms > 0) this.#redisMs = ms;
  };
  /** The id of the last entry read from this node's stream. */
  #lastId = "0-0";
  /** A heartbeat run because the stream's read found this node not registered (#readEntries). */
  #checkRegistration: Promise<void> | undefined;
  /** The stream reader whose group `r` was set to {@linkcode #lastId} (see #readEntries). */
  #readingIn: unknown;
  /**
   * With a store ({@linkcode keepUntilStored}): the last entry whose messages are stored; the
   * stream is trimmed up to there only, so that what was read and not stored yet when this node
   * dies is still there for the node that takes its sessions.
   */
  #storedUpTo: string | undefined;
  #reading: Promise<void> = Promise.resolve();
  readonly #ttl: number;
  readonly #timers: BusTimers;
  readonly #clock: () => number;
  readonly #heartbeatTimer: number;
  /** Whether the heartbeat the timer started last is unanswered ({@linkcode #beat}). */
  #beating = false;
  /** Whether a tick came while it was: the next one starts as it settles. */
  #beatDue = false;
  readonly #listeners = new Map<string, Set<Listener<unknown>>>();
  readonly #interest = new Map<string, number>();
  /** Filters announced ahead of their first subscription ({@linkcode announceAhead}). */
  readonly #ahead = new Map<string, { at: number; settled: boolean; done: Promise<void> }>();
  /**
   * Shared groups whose last member here left, → the last entry of this node's stream read then:
   * the marks not written to `P left:ID` yet (Redis away; the resync writes them).
   */
  readonly #leftMarks = new Map<string, string>();
  /**
   * The marks sent to `P left:ID`, → their entry: deleted there once this node's stream is
   * trimmed past them (see {@linkcode #pruneMarks}), so that the hash holds no field per group
   * ever left.
   */
  readonly #sentMarks = new Map<string, string>();
  /**
   * Shared groups with a persistent member here (see {@linkcode addInterest}), → how many: a
   * group whose persistent members all left while clean ones stay is a clean-member group again.
   */
  readonly #durable = new Map<string, number>();
  readonly #remote: InterestTable;
  readonly #known = new Set<string>();
  /**
   * Nodes that left or died less than {@linkcode DEPARTED_GRACE_MS} ago, with the time: their
   * non-shared interest is kept and what matches it goes to their dead stream, which the nodes
   * adopting their sessions read (see `ClusterSessions.adoptAll`).
   */
  readonly #departed = new Map<string, number>();
  /** Fences asked ({@linkcode fence}): the nodes yet to answer, by question number. */
  readonly #fences = new Map<number, { waiting: Set<string>; done: () => void }>();
  #fenceId = 0;
  /**
   * Known nodes the heartbeats did not find registered, → when the first of them did (the bus's
   * clock): see {@linkcode heartbeat}.
   */
  readonly #missing = new Map<string, number>();
  readonly #owned = new Set<string>();
  /** Sessions whose release failed (Redis away), released again at the resync ({@linkcode release}). */
  readonly #unreleased = new Set<string>();
  /**
   * This node's incarnation: a token the registration writes to `P inc:ID` and every store write,
   * claim and adoption of this node carries; the script reaping the node replaces it, so that a
   * node taken for dead while it was only paused writes nothing more to the sessions handed out.
   */
  #incarnation = crypto.randomUUID();
  /** Whether {@linkcode #incarnation} is still to be registered (a new one replaces the key). */
  #newIncarnation = true;
  /** The counters last given to {@linkcode shareCounters}. */
  #counters: Record<string, number> = {};
  /**
   * What the incarnations reaped before the current one counted ({@linkcode #counters} when the
   * current one was made): their last shares are in `P departed`, so this one shares what it
   * counted since.
   */
  #countersBefore: Record<string, number> = {};
  readonly #seq = new Map<string, number>();
  /**
   * The `order` of the last message forwarded, across publishers; from the start time, so that
   * a node restarted with the same id goes on above its predecessor.
   */
  #order = Date.now() * 1000;
  readonly #maxQueued: number;
  /** Per receiving node, the batches of frames to send at the next flush (the last one open). */
  #outbox = new Map<string, FrameBatch[]>();
  #queued = 0;
  /** Where each forwarded message is encoded, once for the nodes that get the same frame. */
  readonly #scratch = new ByteWriter();
  /** The strings of the frames read lately (origins, publishers, topics repeat). */
  readonly #texts = new TextCache();
  /** QoS 1/2 forwards queued and acknowledged by Redis, for the publishers' replies. */
  readonly #acks = new ForwardAcks();
  /**
   * Shared-group messages being passed on (see {@linkcode redirect}), by holder and pass key (a
   * number of its own for one from no stream entry), in the order added.
   */
  readonly #passes = new Map<string, PendingPass>();
  /** A number for each pass from no stream entry (it has no key to be known by). */
  #unkeyed = 0;
  /**
   * The passes of dead nodes given up here (a `shareLost` event): holder → when last and their
   * keys, so that its rescue once more ({@linkcode #rescues}) does not report them again. Dropped
   * by that rescue, or {@linkcode DEPARTED_GRACE_MS} after the last one when none follows.
   */
  readonly #lostRescued = new Map<string, { at: number; keys: Set<string> }>();
  /** Their scripts sent and not answered yet. */
  readonly #passing = new Set<Promise<unknown>>();
  /**
   * Nodes reaped here whose streams are rescued again once the others stopped writing there
   * (see {@linkcode #rescue}): node → when reaped and the shared groups it had members of.
   */
  readonly #rescues = new Map<string, { at: number; groups: ReadonlySet<string> }>();
  /** The stream entry being handed to the listeners, and the frame's index in it. */
  #entryId: string | undefined;
  #frameIndex = 0;
  /**
   * Entries of this node's stream read with shared QoS 1 deliveries to clean sessions not
   * finished yet ({@linkcode holdEntry}) → how many: pending in the group `r` (no XACK) until
   * none is left, so that the node rescuing this one's stream after its death passes them on. In
   * the order read (the first one holds the trim).
   */
  readonly #unfinished = new Map<string, number>();
  /** Entries read and finished, for the next XACK ({@linkcode ACK_EVERY_MS}). */
  #toAck: string[] = [];
  /**
   * Takes asked ({@linkcode take}) and not sent yet, or sent and failed (Redis away): sent at the
   * end of the turn, else at a heartbeat. Each with the incarnation that asked it: one of an
   * incarnation reaped since is refused, never sent under the next one (`TAKE_SCRIPT`).
   */
  #toTake: PendingTake[] = [];
  #takeScheduled = false;
  /** Keys this node took in `P passed:ID`, with their entries: deleted with the entries' trim. */
  #taken: [string, string][] = [];
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #flushScheduled = false;
  /**
   * Flushes whose XADDs are not answered yet. Meanwhile QoS 0 forwards wait for the answer and go
   * in the next flush, so that a busy node sends fewer, larger batches (one write to Redis per
   * round trip rather than one per event-loop turn) while an idle one sends at once.
   */
  #sending = 0;
  /**
   * The outbox holds something a peer waits for (a QoS 1/2 forward, whose publisher's reply
   * waits for its XADD, or a fence answer): it goes at once, pipelined behind the flush in
   * flight, since waiting for that one would add a round trip to the reply.
   */
  #urgent = false;
  /** Settled when the last flush's XADDs (and those before) are answered and settled. */
  #lastFlush: Promise<void> = Promise.resolve();
  /** Control frames received while a snapshot of the others' interest is being read. */
  #buffered: BusFrame[] | undefined;
  #ready = false;
  #everReady = false;
  #lastError: string | undefined;
  #syncing: Promise<void> = Promise.resolve();
  /** The last resync failed: the heartbeat tries again ({@linkcode heartbeat}). */
  #resyncFailed = false;
  /** The refusal of too old a Redis last reported (`redisTooOld`), until a resync succeeds. */
  #tooOldTold: string | undefined;
  /** Whether the `redis` list names more than one server (a too old one is moved on from). */
  #failover = false;
  /** The `P epoch` this node last found at a registration (`undefined` before the first). */
  #epoch: string | undefined;
  /** The epoch changed since the last "ready" (reported with the next one). */
  #dataLost = false;
  /**
   * The last value of `P count` a registration or heartbeat of this node got (0 before the first):
   * a lower one under the same epoch means Redis went back to older data (`_bus_scripts.ts`).
   */
  #gen = 0;
  /**
   * The highest value of this node's own `P gen:ID` it got under its epoch (0 before the first):
   * counted by its registrations, heartbeats and store writes ({@linkcode counted}), and by no
   * other node.
   */
  #ownGen = 0;
  /**
   * Redis's clock (ms) in the last heartbeat's answer, and this node's monotonic clock when it
   * came: {@linkcode redisNow}.
   */
  #redisClock: { redis: number; local: number } | undefined;
  /** When a registration or heartbeat of this node was last answered (`#clock`). */
  #answeredAt = 0;
  /** The foreign nodes (`_protocol.ts`) last told to `protocolRefused` at start, as a key. */
  #protocolTold = "";
  /** This node's script found Redis gone back since the last "ready" (reported with it). */
  #rolledBack = false;
  #closing: Promise<void> | undefined;
  readonly #stats: BusStats = { forwarded: 0, received: 0, dropped: 0, malformed: 0 };

  private constructor(
    options: ClusterBusOptions,
    connected: Connected,
    retryDelay: (attempt: number) => number,
  ) {
    const { cmd, sub } = connected;
    this.nodeId = options.nodeId;
    this.#prefix = options.prefix ?? "amqtt:";
    this.#cmd = cmd as ScriptedRedis;
    this.#sub = sub;
    this.#make = connected.make;
    this.#retryDelay = retryDelay;
    this.#failover = (options.alternateUrls ?? []).length > 0;
    if (respOptionsOf(cmd) === undefined) {
      this.#fallback = "Deno's TLS cannot connect without verifying the server's certificate";
      this.#openReader();
    } else {
      this.#streams = new StreamLink(cmd, `${this.#prefix}${this.nodeId}`, {
        ...(options.streamConnectTimeout === undefined
          ? {}
          : { connectTimeout: options.streamConnectTimeout }),
      });
    }
    const interval = options.heartbeatInterval ?? 1000;
    this.#ttl = options.livenessTtl ?? 3 * interval;
    this.#streamRetention = options.streamRetention ??
      Math.max(DEPARTED_GRACE_MS, 4 * (this.#ttl + interval));
    this.#timers = options.timers ?? REAL_TIMERS;
    this.#clock = options.clock ?? Date.now;
    this.#maxQueued = options.maxQueuedForwards ?? 100_000;
    this.#remote = new InterestTable(
      options.shareStrategy === undefined ? {} : { strategy: options.shareStrategy },
    );
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.#cmd.defineCommand(`amqttBus_${name}`, { numberOfKeys: 0, lua });
    }
    this.#sub.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      this.#onFrame(channel.toString("utf8"), message);
    });
    for (const redis of [cmd, sub]) {
      redis.on("error", (error: Error) => this.#lastError = error.message);
      redis.on("close", () => this.#lost());
      redis.on("ready", () => this.#maybeResync());
    }
    this.#heartbeatTimer = this.#timers.setInterval(() => this.#beat(), interval);
  }

  /**
   * Connects to Redis, registers this node, declares no interest yet and reads the others'.
   *
   * @param options Redis connection, node id, prefix, timing
   * @returns the running bus
   * @throws {TypeError} If an option is invalid.
   * @throws {Error} If no Redis (`url`, then `alternateUrls`) can be reached at start.
   */
  static async start(options: ClusterBusOptions): Promise<ClusterBus> {
    if (typeof options.nodeId !== "string" || options.nodeId === "") {
      throw new TypeError("Invalid cluster node id: expected a non-empty string");
    }
    const interval = options.heartbeatInterval ?? 1000;
    const ttl = options.livenessTtl ?? 3 * interval;
    if (!(Number.isFinite(interval) && interval > 0 && Number.isFinite(ttl) && ttl > 0)) {
      throw new RangeError(
        `Invalid heartbeat interval ${interval} or liveness TTL ${ttl}: expected positive numbers`,
      );
    }
    const retryDelay = options.retryDelay ??
      ((attempt: number) => Math.min(5000, 100 * 2 ** (attempt - 1)));
    const urls = [options.url, ...(options.alternateUrls ?? [])];
    const hook: RetryHook = {};
    let pair: Connected | undefined;
    let failure: unknown;
    for (let i = 0; i < urls.length; i++) {
      // The others, in order after this one, are where a failed reconnect turns to.
      const failoverUrls = [...urls.slice(i + 1), ...urls.slice(0, i)];
      try {
        pair = await connectPair({ ...options, url: urls[i]!, failoverUrls }, retryDelay, hook);
      } catch (error) {
        failure = error;
        continue;
      }
      // Reached but too old: refused now, in one line, rather than fail later mid-operation.
      try {
        await checkRedisVersion(pair.cmd);
      } catch (error) {
        await Promise.all([closeRedis(pair.cmd), closeRedis(pair.sub)]);
        throw new Error(
          `Cannot start cluster node ${JSON.stringify(options.nodeId)}: ${
            (error as Error).message
          }, at ${redactUrl(urls[i]!)}`,
          { cause: error },
        );
      }
      break;
    }
    if (pair === undefined) {
      throw new Error(
        `Cannot start cluster node ${JSON.stringify(options.nodeId)}: no Redis reachable at ${
          urls.map(redactUrl).join(", ")
        } (${(failure as Error).message})`,
        { cause: failure },
      );
    }
    const bus = new ClusterBus(options, pair, retryDelay);
    hook.report = (connection, attempt, delay) => {
      bus.#emit("state", { state: "reconnecting", connection, attempt, delay });
    };
    try {
      for (;;) {
        await bus.#awaitProtocol(options);
        await bus.#retirePrevious();
        try {
          await bus.#resync();
          break;
        } catch (error) {
          // A node of another version registered between the look above and this registration
          // (`REGISTER_SCRIPT`): waits as if the look had found it.
          if (!(error instanceof ProtocolRefusal)) throw error;
          await bus.#awaitProtocol(options, error.nodes);
        }
      }
      bus.#reading = bus.#readLoop();
    } catch (error) {
      await bus.close();
      throw error;
    }
    return bus;
  }

  /** Counters. */
  get stats(): Readonly<BusStats> {
    return this.#stats;
  }

  /**
   * The QoS 1/2 messages {@linkcode publish} queued while Redis was connected, and whether Redis
   * has acknowledged their XADDs yet: a publisher's PUBACK or PUBREC waits for them. While Redis
   * is away nothing waits (see {@linkcode publish}).
   */
  get forwards(): ForwardGate {
    return this.#acks;
  }

  /**
   * Where this node's incarnation is kept, and the incarnation now: a store write, claim or
   * adoption carrying an incarnation other than the key's (the node was reaped) is refused. The
   * cluster's {@linkcode RedisStore} checks it in every write (`RedisStoreOptions.fence`). A key
   * gone fences as well while `epochKey` still holds `epoch`, the cluster's epoch this node found
   * at its last registration ('' before the first): the `reaped` mark expired while this node was
   * paused, rather than Redis losing its data; unless `genKey` holds less than `gen`, the last
   * value this node got from it: Redis went back to data older than this node's registration,
   * which its next registration or heartbeat makes a data loss. `nodeGenKey` is this node's own
   * counter, which each store write counts too ({@linkcode counted}).
   */
  get incarnation(): {
    key: string;
    token: string;
    epochKey: string;
    epoch: string;
    genKey: string;
    gen: number;
    nodeGenKey: string;
    nodeGen: number;
  } {
    return {
      key: `${this.#prefix}inc:${this.nodeId}`,
      token: this.#incarnation,
      epochKey: `${this.#prefix}epoch`,
      epoch: this.#epoch ?? "",
      genKey: `${this.#prefix}count`,
      gen: this.#gen,
      nodeGenKey: `${this.#prefix}gen:${this.nodeId}`,
      nodeGen: this.#nodeGen(),
    };
  }

  /**
   * The highest value of this node's own counter it got, as its scripts pass it: 0 when its last
   * registration or heartbeat was answered longer ago than a reaped incarnation's key lives
   * (`REAPED_INCARNATION_MS`), so that the scripts take its counter and incarnation key gone for
   * a node paused that long (fenced), not for Redis gone back to before its registration.
   */
  #nodeGen(): number {
    return this.#clock() - this.#answeredAt < REAPED_INCARNATION_MS ? this.#ownGen : 0;
  }

  /**
   * Notes the value `gen` of this node's own counter (`incarnation.nodeGenKey`) that a store
   * write (or a claim) counted under the cluster's epoch `epoch` (the one it carried): a write acknowledged
   * after a snapshot Redis goes back to leaves the counter below it, which this node's next
   * heartbeat finds (`_bus_scripts.ts`, `rolled_back`). A value of another epoch (Redis lost its
   * data since) is not taken. The highest value is kept ({@linkcode #ownCounted}): the answers
   * come on two connections, and one read after a later one's must not lower it.
   *
   * @param gen the counter's value the write got
   * @param epoch the epoch the write carried
   */
  counted(gen: number, epoch: string): void {
    if (epoch !== "" && epoch === this.#epoch) this.#ownCounted(gen);
  }

  /**
   * Notes a value of this node's own counter that a script answered under the epoch this node
   * holds: the highest is kept. The store's writes and the bus's scripts answer on two
   * connections, so a heartbeat run before a write may be read after the write's answer; taking
   * the last answer lowered the value by what the write counted, and Redis gone back to a
   * snapshot between the two, with no write after it, went unnoticed. Within one epoch the
   * counter never goes below a value it gave: a counter gone (deleted, evicted, or expired after
   * a week's pause) starts again above the value the node passes (`COUNT_LUA`). Across epochs
   * (Redis lost its data) the value is set, not raised (`#heartbeat`, `#resync`).
   */
  #ownCounted(gen: number): void {
    if (gen > this.#ownGen) this.#ownGen = gen;
  }

  /** Whether Redis is connected and this node's interest is synchronised. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Why the message streams (XADDs of forwarded messages, XREAD of this node's stream) use
   * ioredis rather than the faster RESP connections of their own, or `undefined` when they do
   * not: TLS without certificate verification, or certificates Deno's TLS refuses and ioredis
   * accepts.
   */
  get streamsFallback(): string | undefined {
    return this.#fallback;
  }

  /** Whether the message streams' connections are open (or on ioredis): messages cross nodes. */
  get streamsUp(): boolean {
    return !this.#streamsDown;
  }

  /** The other nodes this node knows to be alive, sorted. */
  get nodes(): string[] {
    return [...this.#known].sort();
  }

  /** The filters this node declared (each once). */
  get interest(): string[] {
    return [...this.#interest.keys()];
  }

  /**
   * Listens to an event.
   *
   * @param type the event name
   * @param listener called with the event's payload
   * @returns a function that removes the listener
   */
  on<K extends keyof ClusterBusEventMap>(
    type: K,
    listener: Listener<ClusterBusEventMap[K]>,
  ): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) this.#listeners.set(type, set = new Set());
    set.add(listener as Listener<unknown>);
    return () => set.delete(listener as Listener<unknown>);
  }

  #emit<K extends keyof ClusterBusEventMap>(type: K, event: ClusterBusEventMap[K]): void {
    for (const listener of this.#listeners.get(type) ?? []) {
      try {
        listener(event);
      } catch (error) {
        // A listener's failure is its own; the bus goes on, the failure logged by the link.
        if (type !== "fault") this.#emit("fault", { what: `the ${type} listener`, error });
      }
    }
  }

  /** Reports the failure of work started in the background (`fault`). */
  readonly #fault = (what: string, error: unknown): void => this.#emit("fault", { what, error });

  /** A frame or record from Redis refused: counted, and told (`malformed`) for the log. */
  #malformed(what: string, error: unknown): void {
    this.#stats.malformed++;
    this.#emit("malformed", {
      what,
      reason: error instanceof Error ? error.message : String(error),
    });
  }

  /**
   * Declares a local subscriber for `filter`. The first declaration of a filter is written to
   * Redis and announced; later ones only count.
   *
   * @param filter a topic filter (a shared one counts as its inner filter)
   * @param durable whether the subscriber's session outlives its connection: a shared group with
   *   such a member here is one whose messages the nodes adopting this node's sessions replay,
   *   after its death, rather than the node rescuing its stream (kept in `P durable:ID` until the
   *   group's last member here leaves)
   * @returns settled when announced, or at once when Redis is away (announced on reconnect)
   */
  async addInterest(filter: string, durable = false): Promise<void> {
    const count = this.#interest.get(filter) ?? 0;
    this.#interest.set(filter, count + 1);
    if (durable && parseSharedFilter(filter) !== undefined) {
      const members = this.#durable.get(filter) ?? 0;
      this.#durable.set(filter, members + 1);
      // Before the interest's announcement, on the same connection: never a group Redis has
      // for this node without knowing it has a persistent member.
      if (members === 0 && this.#ready) {
        this.#cmd.sadd(`${this.#prefix}durable:${this.nodeId}`, filter).catch(() => {});
      }
    }
    if (count > 0) {
      this.#members(filter, count + 1);
      return;
    }
    this.#remote.shares.add(this.nodeId, filter);
    this.#leftMarks.delete(filter);
    this.#sentMarks.delete(filter); // (its field goes with the announcement)
    const ahead = this.#ahead.get(filter);
    if (ahead === undefined) {
      await this.#announce(true, filter);
      return;
    }
    this.#ahead.delete(filter);
    await ahead.done; // announced already
  }

  /**
   * Announces `filter` before its first local subscription is granted, so that the SUBACK can
   * wait until the other nodes have been told (a message published elsewhere after the SUBACK
   * then reaches the new subscription). The {@linkcode addInterest} that follows costs nothing;
   * a filter announced ahead but never declared (the subscription was refused) is withdrawn by a
   * later heartbeat.
   *
   * @param filter a topic filter about to be subscribed to
   * @returns settled when announced; `undefined` when there is nothing to wait for (declared
   *   already, or Redis is away)
   */
  announceAhead(filter: string): Promise<void> | undefined {
    if (!this.#ready || this.#interest.has(filter)) return undefined;
    const ahead = this.#ahead.get(filter);
    if (ahead !== undefined) return ahead.settled ? undefined : ahead.done;
    const entry = { at: Date.now(), settled: false, done: Promise.resolve() };
    entry.done = this.#announce(true, filter).finally(() => entry.settled = true);
    this.#ahead.set(filter, entry);
    return entry.done;
  }

  /** Withdraws filters announced ahead more than 10 s ago that no subscription declared. */
  #sweepAhead(now: number): void {
    for (const [filter, ahead] of this.#ahead) {
      if (now - ahead.at < 10_000 || !ahead.settled) continue;
      this.#ahead.delete(filter);
      if (!this.#interest.has(filter)) this.#announce(false, filter).catch(() => {});
    }
  }

  /**
   * Withdraws one declaration of `filter`; the last one is removed from Redis and announced.
   *
   * @param filter a topic filter declared before
   * @param durable as given to the {@linkcode addInterest} it withdraws: the last persistent
   *   member of a shared group here leaving, while clean ones stay, takes the group out of
   *   `P durable:ID` (after this node's death, its stream's unread messages for the group go to
   *   a member elsewhere, no adopted session being a member)
   * @returns settled when announced, or at once when Redis is away
   */
  async removeInterest(filter: string, durable = false): Promise<void> {
    const count = this.#interest.get(filter);
    if (count === undefined) return;
    const members = durable ? this.#durable.get(filter) : undefined;
    if (members !== undefined) {
      if (members > 1) this.#durable.set(filter, members - 1);
      else {
        this.#durable.delete(filter);
        if (count > 1 && this.#ready) {
          this.#cmd.srem(`${this.#prefix}durable:${this.nodeId}`, filter).catch(() => {});
        }
      }
    }
    if (count > 1) {
      this.#interest.set(filter, count - 1);
      this.#members(filter, count - 1);
      return;
    }
    this.#interest.delete(filter);
    this.#remote.shares.remove(this.nodeId, filter);
    // Every entry read so far was routed while the group had members here, none after it: the
    // node rescuing this one's stream passes on only what came after (see #rescue).
    if (parseSharedFilter(filter) !== undefined) this.#leftMarks.set(filter, this.#lastId);
    this.#durable.delete(filter);
    await this.#announce(false, filter);
  }

  /**
   * A shared group's local members changed in number (past the first): the other nodes weigh
   * their choice of node for it by members. Kept in `P members:ID` for nodes that join later.
   */
  #members(filter: string, count: number): void {
    if (parseSharedFilter(filter) === undefined) return;
    this.#remote.shares.weigh(this.nodeId, filter, count);
    if (!this.#ready) return; // the resync on reconnect writes them all
    const key = `${this.#prefix}members:${this.nodeId}`;
    const frame = buf(encodeFrame({ type: "members", origin: this.nodeId, filter, count }));
    const write = count > 1
      ? this.#cmd.multi().hset(key, filter, String(count))
      : this.#cmd.multi().hdel(key, filter);
    write.publish(`${this.#prefix}ctl`, frame).exec().catch(() => {});
  }

  /** Writes this node's member counts again (before it registers and announces its interest). */
  async #writeMembers(): Promise<void> {
    const key = `${this.#prefix}members:${this.nodeId}`;
    const counts: string[] = [];
    for (const [filter, count] of this.#interest) {
      if (count > 1 && parseSharedFilter(filter) !== undefined) counts.push(filter, String(count));
    }
    const write = this.#cmd.multi().del(key);
    if (counts.length > 0) write.hset(key, ...counts);
    // The marks of groups left while Redis was away, and the groups with persistent members.
    const marks = [...this.#leftMarks];
    if (marks.length > 0) write.hset(`${this.#prefix}left:${this.nodeId}`, ...marks.flat());
    for (const [filter, mark] of marks) this.#sentMarks.set(filter, mark);
    const durable = `${this.#prefix}durable:${this.nodeId}`;
    write.del(durable);
    if (this.#durable.size > 0) write.sadd(durable, ...this.#durable.keys());
    await write.exec();
    // Not a mark made meanwhile (a group left while this was written).
    for (const [filter, mark] of marks) {
      if (this.#leftMarks.get(filter) === mark) this.#leftMarks.delete(filter);
    }
  }

  /** Reads the other nodes' member counts (after their interest). */
  async #readMembers(nodes: readonly string[]): Promise<void> {
    const replies = await Promise.all(
      nodes.map((node) => this.#cmd.hgetall(`${this.#prefix}members:${node}`)),
    );
    nodes.forEach((node, i) => {
      for (const [filter, count] of Object.entries(replies[i]!)) {
        this.#remote.shares.weigh(node, filter, Number(count));
      }
    });
  }

  async #announce(add: boolean, filter: string): Promise<void> {
    if (!this.#ready) return; // the resync on reconnect writes the whole set
    const key = `${this.#prefix}interest:${this.nodeId}`;
    const frame = buf(
      encodeFrame({ type: "interest", origin: this.nodeId, add, filters: [filter] }),
    );
    const multi = this.#cmd.multi();
    if (add) multi.sadd(key, filter);
    else multi.srem(key, filter);
    // A shared group's leave mark goes with its leave, in the same step (see #rescue).
    const mark = add ? undefined : this.#leftMarks.get(filter);
    const left = `${this.#prefix}left:${this.nodeId}`;
    if (add && parseSharedFilter(filter) !== undefined) multi.hdel(left, filter);
    if (mark !== undefined) {
      multi.hset(left, filter, mark).srem(`${this.#prefix}durable:${this.nodeId}`, filter);
      // Noted as it is sent: a prune sent after it must not delete it with an older mark.
      this.#sentMarks.set(filter, mark);
    }
    multi.publish(`${this.#prefix}ctl`, frame);
    try {
      await multi.exec();
      if (mark !== undefined && this.#leftMarks.get(filter) === mark) {
        this.#leftMarks.delete(filter);
      }
    } catch {
      // Redis went away meanwhile: the resync writes the whole set, and the marks.
    }
  }

  /**
   * Forwards a message published on this node to every other node with a matching interest.
   *
   * @param message the message as published
   * @param publisher the publisher's client id (`""` for the host program); its messages carry
   * consecutive sequence numbers
   * @param choice the node that serves each matching shared group (see
   * {@linkcode chooseShares}; chosen here when omitted): a node gets the message when it has
   * non-shared interest in it or serves a group, with the groups it serves
   * @returns the number of nodes it was sent to (0 when no other node wants the topic, or Redis
   * is away: then it is counted as dropped)
   *
   * A QoS 1/2 message queued while Redis is connected is counted in {@linkcode forwards} until
   * the XADDs carrying it are answered, so that its publisher's reply waits for them. One queued
   * while Redis is away waits (bounded) for Redis to come back, but no reply waits for it: the
   * node keeps serving its local clients, and a publisher never hangs on a Redis that may not
   * come back. Lost with this node if it dies before Redis is back.
   */
  publish(
    message: MessageRecord,
    publisher = "",
    choice: ShareChoice | undefined = this.chooseShares(message.topic),
  ): number {
    const nodes = choice === undefined
      ? this.#remote.nodesFor(message.topic)
      : this.#targets(message.topic, choice);
    if (nodes.length === 0) return 0;
    // While Redis is away the messages wait here (bounded) and go when it is back.
    if (this.#queued + nodes.length > this.#maxQueued) {
      this.#stats.dropped += nodes.length;
      return 0;
    }
    const seq = (this.#seq.get(publisher) ?? 0) + 1;
    this.#seq.set(publisher, seq);
    const order = ++this.#order;
    const frame: MessageFrame = {
      type: "message",
      origin: this.nodeId,
      publisher,
      seq,
      order,
      message,
    };
    // Encoded once into the scratch writer and copied into each node's batch; a node chosen for
    // shared groups gets a frame of its own that lists them.
    let plain: Uint8Array | undefined;
    for (const node of nodes) {
      const shares = choice?.get(node);
      if (shares === undefined) {
        plain ??= writeFrame(this.#scratch.reset(), frame).view();
        this.#enqueue(node, plain);
      } else {
        this.#enqueue(node, encodeFrame({ ...frame, shares }));
      }
    }
    this.#queued += nodes.length;
    if (message.qos > 0) {
      // While they cannot be sent, no reply waits for them (see #lost and #streamsFailed).
      if (this.#ready && !this.#streamsDown) this.#acks.queued();
      this.#urgent = true;
    }
    this.#scheduleFlush();
    this.#stats.forwarded += nodes.length;
    return nodes.length;
  }

  /**
   * Whether this node has declared `filter` (a local subscriber, connected or not, has it).
   *
   * @param filter a topic filter as declared (a shared one with its prefix)
   * @returns true while declared
   */
  declares(filter: string): boolean {
    return this.#interest.has(filter);
  }

  /**
   * Passes a message on for shared groups this node was chosen for but has no member of any
   * more (its last one left just before the publishing node heard of it): for each group, to
   * another node with members of it, which delivers it to that group only. One whose members
   * also left passes it on again: at once up to {@linkcode MAX_PASSES} passes in all (views of
   * the others lag), then once per heartbeat, up to {@linkcode MAX_HOPS}.
   *
   * A pass loses nothing acknowledged: the message's entry stays in this node's stream until
   * Redis has made the pass (the stream is not trimmed past it), and the pass is a script that
   * notes it under the entry's key (`P passed:ID`) as it writes the other node's stream. If this
   * node dies first, the node that reaps it passes on what its stream held for groups it had no
   * member of and had not passed ({@linkcode #rescue}). While no node with members is known, the
   * message waits, tried at each heartbeat for {@linkcode SHARE_WAIT_MS}; given up, it is a
   * `shareLost` event.
   *
   * @param frame the message as received
   * @param shares the groups to pass on
   */
  redirect(frame: MessageFrame, shares: readonly string[]): void {
    const id = this.#entryId;
    for (const share of shares) {
      if (this.#passes.size >= this.#maxQueued) {
        // Bounded like the outbox (a storm of messages for a group nobody has).
        this.#emit("shareLost", { frame, share });
        continue;
      }
      const key = id === undefined ? "" : passKey(id, this.#frameIndex, share);
      const slot = key === "" ? `${++this.#unkeyed}` : `${this.nodeId} ${key}`;
      // Its entry stays pending in the group `r` until the pass is made (#passDone): the pass
      // goes after the leave's mark on one connection, so if this node dies before the mark
      // reached Redis (the group still served there, the entry read), the rescue finds the
      // entry pending and passes its QoS 1 messages on.
      if (id !== undefined && !this.#passes.has(slot)) this.holdEntry();
      this.#passes.set(slot, {
        slot,
        holder: this.nodeId,
        ...(id === undefined ? {} : { id }),
        key,
        frame,
        share,
        since: this.#clock(),
        wait: false,
        sending: false,
      });
    }
    this.#sendPasses(false);
  }

  /**
   * Passes on a message that a session ending here held for a shared group, not acknowledged or
   * never sent, when no other member of the group is left here: to a node with members of it,
   * which delivers it to that group only (MQTT 5.0 on shared subscriptions: a message whose
   * member's session ends before it acknowledged it SHOULD go to another member; the session
   * hands on no QoS 2 message whose delivery began [MQTT-4.8.2-5]). Made like a
   * {@linkcode redirect}: a script that notes it under a key of its own in `P passed:ID` as it
   * writes the other node's stream, so that one whose answer was lost and that is sent again
   * does not arrive twice; from node to node at most {@linkcode MAX_HOPS} times (`P hops:`).
   * Lost if this node dies before the pass is made, unless `holds` keeps the message's stream
   * entries pending meanwhile (the rescue of its stream then passes it on).
   *
   * @param message the message (its payload is not copied: one of its own)
   * @param share the group, `$share/{group}/{filter}`
   * @param options `publisher`: its publisher's client id; `holds`: entries of this node's
   *   stream held for the message ({@linkcode holdEntry}), released once the pass is made;
   *   `entry`: the message's entry of this node's stream ({@linkcode routedEntry}): passed under
   *   its key, as a rescue would, and in place of this node's own take of it ({@linkcode take}:
   *   taken, never written)
   * @returns false when no other node with members of the group is known: not passed
   */
  passOn(
    message: MessageRecord,
    share: string,
    options: {
      publisher?: string;
      holds?: readonly string[];
      entry?: { id: string; index: number };
    } = {},
  ): boolean {
    if (this.#closing !== undefined || this.#passes.size >= this.#maxQueued) return false;
    if (this.#remote.shares.another(share, this.nodeId) === undefined) return false;
    const publisher = options.publisher ?? "";
    const seq = (this.#seq.get(publisher) ?? 0) + 1;
    this.#seq.set(publisher, seq);
    // Unique across this node's runs (it starts at the clock's microseconds).
    const order = ++this.#order;
    // A message of this node's stream is passed under its entry's key, as a rescue of the
    // stream would pass it: one of the two passes is made, never both (no second delivery of a
    // QoS 2 message, nor a QoS 1 duplicate, when this node dies before the entry's XACK).
    const entry = options.entry;
    const key = entry === undefined ? `o ${order}` : passKey(entry.id, entry.index, share);
    const slot = `${this.nodeId} ${key}`;
    if (this.#passes.has(slot)) return true;
    this.#passes.set(slot, {
      slot,
      holder: this.nodeId,
      key,
      frame: { type: "message", origin: this.nodeId, publisher, seq, order, message },
      share,
      since: this.#clock(),
      wait: false,
      sending: false,
      ...(options.holds === undefined || options.holds.length === 0
        ? {}
        : { holds: options.holds }),
      ...(entry === undefined ? {} : { entry: entry.id }),
    });
    this.#sendPasses(false);
    return true;
  }

  /**
   * Sends the passes waiting (with `tick`, those that wait for a heartbeat too), each to a node
   * with members of its group known now; one that failed (Redis away) is tried again at a
   * heartbeat.
   */
  #sendPasses(tick: boolean): void {
    if (!this.#ready || this.#passes.size === 0) return;
    // A Map visits what is added meanwhile and skips what is deleted: no copy needed.
    for (const pass of this.#passes.values()) {
      if (pass.sending || (pass.wait && !tick)) continue;
      const node = this.#remote.shares.another(pass.share, pass.holder);
      if (node === undefined) {
        if (this.#clock() - pass.since >= SHARE_WAIT_MS) this.#lose(pass);
        else pass.wait = true;
        continue;
      }
      const live = node === this.nodeId || this.#known.has(node);
      const frame = encodeFrame({ ...pass.frame, shares: [pass.share], only: true });
      const { origin, publisher, seq, order } = pass.frame;
      const limit = pass.wait ? MAX_HOPS : MAX_PASSES;
      pass.sending = true;
      const sent = this.#cmd.amqttBus_pass(
        this.#prefix,
        pass.holder,
        pass.key,
        String(
          (pass.id ?? pass.entry) === undefined
            ? pass.since
            : streamId((pass.id ?? pass.entry)!)[0],
        ),
        `${this.#prefix}${live ? "s" : "dead"}:${node}`,
        buf(frame),
        String(this.#streamRetention + 2 * DEAD_STREAM_MS),
        live ? "0" : "1",
        `${origin} ${publisher} ${seq} ${order ?? 0} ${pass.share}`,
        String(limit),
        node,
        // Its own pass of a message of its stream, never sent here (passOn): its take gives way.
        pass.entry === undefined ? "0" : "1",
      ).then((made) => {
        pass.sending = false;
        if (made !== -1) {
          this.#passDone(pass);
          if (made === 1) this.#stats.forwarded++;
        } else if (limit === MAX_HOPS) {
          this.#lose(pass);
        } else {
          pass.wait = true; // passed on as often as at once: again at a heartbeat
        }
      }, () => {
        pass.sending = false;
        pass.wait = true;
      }).finally(() => this.#passing.delete(sent));
      this.#passing.add(sent);
    }
  }

  #lose(pass: PendingPass): void {
    this.#passDone(pass);
    if (pass.holder !== this.nodeId) {
      const lost = this.#lostRescued.get(pass.holder);
      if (lost === undefined) {
        this.#lostRescued.set(pass.holder, { at: this.#clock(), keys: new Set([pass.key]) });
      } else {
        lost.at = this.#clock();
        lost.keys.add(pass.key);
      }
    }
    this.#emit("shareLost", { frame: pass.frame, share: pass.share });
  }

  #passDone(pass: PendingPass): void {
    this.#passes.delete(pass.slot);
    if (pass.holder === this.nodeId && pass.id !== undefined) this.releaseEntry(pass.id);
    if (pass.holds !== undefined) { for (const id of pass.holds) this.releaseEntry(id); }
  }

  /**
   * The first entry of this node's stream with a pass not made yet: the stream is trimmed up to
   * it at most. This node's passes are added in the order of their entries.
   */
  #firstPassing(): string | undefined {
    for (const pass of this.#passes.values()) {
      if (pass.holder === this.nodeId && pass.id !== undefined) return pass.id;
    }
    return undefined;
  }

  /**
   * A node found dead here: what its streams hold for shared groups it had no member of (passed
   * on to it by a node whose view lagged, or sent by one that chose it before its members left)
   * and it had not passed on yet goes to a node with members, as it would have. What it held
   * for groups it had members of is for the nodes adopting its sessions. Run at the reap, and
   * again once the others have heard of it ({@linkcode DEPARTED_GRACE_MS} later), or when a node
   * restarted under its id retires its previous run: what was passed already is not passed
   * again.
   *
   * Which groups it had members of, and from which entry on it had none, is what it wrote to
   * Redis (`P gone:ID`, kept by the reaping script from its interest and its leave marks): this
   * node's view of it may lag, and a group it left after delivering a message there must not
   * have that message again. `groups` (this node's view) serves only when the node was reaped
   * or retired by a script of a release that kept none.
   *
   * @param node the dead node
   * @param groups the shared groups it had members of, as known here when it died
   */
  async #rescue(node: string, groups: ReadonlySet<string>): Promise<void> {
    let entries: { id: string; index: number; frame: MessageFrame }[];
    let gone: Record<string, string>;
    let read: string | undefined;
    let unfinished: ReadonlySet<string>;
    let takes: boolean;
    try {
      ({ entries, gone, read, unfinished, takes } = await this.#readDead(node, false, true));
    } catch {
      return; // Redis away: not rescued (said by no one; the entries stay 10 minutes)
    }
    // Written by a reaping or leaving script of a release that keeps it (a field '' always).
    const marked = gone[""] !== undefined;
    // Whether the node delivered, or was to deliver, entry `id` to its members of `share`: it had
    // members then (or when it died). Those of a group with only clean members (`+`) had the
    // entries the node read (their sessions ended with it); the others go to another member.
    // A QoS 1 message of an entry it read with a shared delivery to a clean session not finished
    // (pending in its group `r`, see holdEntry) goes to another member too: the member's session
    // ended with the node before it acknowledged (MQTT 5.0 on shared subscriptions: SHOULD).
    // One entry is a batch: its other QoS 1 messages for clean members go again as well. So
    // does a QoS 2 message of a pending entry that the node never took for a delivery (take):
    // never sent, held until taken or passed on.
    const served = (share: string, id: string, qos: number): boolean => {
      if (!marked) return groups.has(share);
      const mark = gone[share];
      if (mark === undefined) return false;
      if (mark === "*") return true; // for the nodes adopting its persistent members
      // Pending, a QoS 2 one too: its node took every QoS 2 message of its stream before it
      // wrote its PUBLISH to a member (take): the pass script skips a key taken, so only one
      // never sent goes on [MQTT-4.8.2-5]. Not from a node of a release that did not take
      // (`~` missing, or none taken for as long as `P passed:ID` lives): its delivery may have
      // begun.
      if ((qos === 1 || (qos === 2 && takes)) && unfinished.has(id)) return false;
      if (mark === "+") {
        return read === undefined || compareStreamIds(streamId(id), streamId(read)) <= 0;
      }
      return compareStreamIds(streamId(id), streamId(mark)) <= 0;
    };
    // Rescued at the reap and again after the grace: what the first one gave up is not
    // reported twice, what it still passes on is not added twice.
    const lost = this.#lostRescued.get(node)?.keys;
    if (!this.#rescues.has(node)) this.#lostRescued.delete(node); // the last rescue
    const start = this.#passes.size;
    for (const { id, index, frame } of entries) {
      for (const share of frame.shares ?? []) {
        if (served(share, id, frame.message.qos)) continue;
        const key = passKey(id, index, share);
        const slot = `${node} ${key}`;
        if (lost?.has(key) || this.#passes.has(slot)) continue;
        this.#passes.set(slot, {
          slot,
          holder: node,
          id,
          key,
          frame,
          share,
          since: this.#clock(),
          wait: false,
          sending: false,
        });
      }
    }
    if (this.#passes.size > start) this.#sendPasses(false);
  }

  /**
   * Picks, for one message to `topic`, the node (this one included) that serves each matching
   * shared group: one per group cluster-wide, in turn or at random. Pass it to
   * {@linkcode publish}; this node delivers to a group only when it is chosen for it.
   *
   * @param topic a topic name
   * @returns node → the groups (`$share/{group}/{filter}`) it serves; `undefined` when no group
   *   matches
   */
  chooseShares(topic: string): ShareChoice | undefined {
    return this.#remote.shares.choose(topic);
  }

  /** The other nodes with non-shared interest in `topic`, and those chosen for a group. */
  #targets(topic: string, choice: ShareChoice): string[] {
    const nodes = this.#remote.plainNodesFor(topic);
    for (const node of choice.keys()) {
      if (node !== this.nodeId && !nodes.includes(node)) nodes.push(node);
    }
    return nodes;
  }

  /** Appends a frame to what goes to `node` at the next flush, in a batch under the size cap. */
  #enqueue(node: string, frame: Uint8Array): void {
    let batches = this.#outbox.get(node);
    if (batches === undefined) this.#outbox.set(node, batches = []);
    let batch = batches.at(-1);
    if (batch === undefined || (batch.count > 0 && batch.length + frame.length > BATCH_BYTES)) {
      batches.push(batch = new FrameBatch());
    }
    batch.add(frame);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || !this.#ready || this.#outbox.size === 0) return;
    if (this.#sending > 0 && !this.#urgent) return; // sent when the flush in flight is answered
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /**
   * Sends what was forwarded since the last flush: per node, one stream entry per batch (split at
   * {@linkcode BATCH_BYTES}), in the order published. A stream keeps what its node has not read
   * yet, so a node cut off from Redis for a moment reads it when it is back.
   */
  #flush(): void {
    this.#flushScheduled = false;
    if (!this.#ready) {
      // Kept for when Redis is back; no reply waits for them meanwhile (see publish).
      this.#acks.release();
      return;
    }
    let writer: RespClient | undefined;
    const link = this.#streams;
    if (link !== undefined) {
      if (this.#streamsDown) {
        // Kept for when the stream connections are back (see #streamsFailed).
        this.#acks.release();
        return;
      }
      writer = link.writer;
      if (writer === undefined) {
        // Lost since (closed by Redis while idle, say): the outbox waits for a new one.
        background(
          this.#openStreams().then((error) => error === undefined && this.#scheduleFlush()),
          "the reopening of the stream connections",
          this.#fault,
        );
        return;
      }
    }
    const outbox = this.#outbox;
    this.#outbox = new Map();
    this.#urgent = false;
    this.#queued = 0;
    // Every forward counted so far is in this outbox; its XADDs go out in order on one
    // connection, so they are answered in order.
    const mark = this.#acks.emitted;
    const sent: Promise<unknown>[] = [];
    // A live stream drops what its node has not read for longer than the retention, by Redis's
    // clock (from the last XADD it answered: an older time trims less, never more).
    const minId = this.#redisMs === 0 ? undefined : String(this.#redisMs - this.#streamRetention);
    let last: Promise<unknown> | undefined;
    // Departed nodes' dead streams first: a fence answer in this flush then follows them too.
    const targets = [...outbox].sort(([a], [b]) =>
      Number(this.#known.has(a)) - Number(this.#known.has(b))
    );
    for (const [node, batches] of targets) {
      const known = this.#known.has(node);
      if (!known && !this.#departed.has(node)) {
        // It left meanwhile.
        for (const batch of batches) this.#stats.dropped += batch.count;
        continue;
      }
      const stream = `${this.#prefix}${known ? "s" : "dead"}:${node}`;
      for (const batch of batches) {
        const count = batch.count;
        const frames = batch.finish();
        // A dead stream is not trimmed: its adopter reads all of it, and what goes there is
        // bounded by the grace (DEPARTED_GRACE_MS) and its 10-minute life.
        const trim = known && minId !== undefined;
        let xadd: Promise<unknown>;
        if (writer !== undefined) {
          xadd = writer.send(
            trim
              ? ["XADD", stream, "MINID", "~", minId, "*", "f", frames]
              : ["XADD", stream, "*", "f", frames],
          );
        } else {
          const payload = buf(frames);
          xadd = trim
            ? this.#cmd.xadd(stream, "MINID", "~", minId, "*", "f", payload)
            : this.#cmd.xadd(stream, "*", "f", payload);
        }
        last = xadd;
        sent.push(xadd.catch(() => this.#stats.dropped += count));
      }
      // (A live stream whose node left or was reaped before this node heard of it is the empty
      // one the leaving or reaping script left, with the dead stream's lifetime: it keeps it.)
      if (!known) {
        // On the XADDs' connection, so that it follows the XADD that may create the stream.
        (writer !== undefined
          ? writer.send(["PEXPIRE", stream, DEAD_STREAM_MS])
          : this.#cmd.pexpire(stream, DEAD_STREAM_MS)).catch(() => {});
      }
    }
    last?.then(this.#noteRedisTime, () => {});
    // A failed XADD means Redis was lost: counted as dropped above, and no reply waits for it.
    if (sent.length === 0 && this.#sending === 0) {
      this.#acks.settle(mark);
      return;
    }
    // Settled after the flushes in flight: their forwards are counted below this mark.
    // Settled with nothing: a flush must not hold the replies of the ones before it.
    const done = Promise.all([this.#lastFlush, ...sent]).then(() => {
      this.#acks.settle(mark);
      this.#sending--;
      this.#scheduleFlush();
    });
    this.#lastFlush = done;
    this.#sending++;
  }

  /**
   * Opens the stream connections that are not open: one attempt, shared by the callers meanwhile.
   * A failure is handled by {@linkcode #streamsFailed}.
   *
   * @returns the attempt's error, or `undefined` when the streams can be used (open, or on
   *   ioredis from now on)
   */
  #openStreams(): Promise<Error | undefined> {
    const link = this.#streams;
    if (link === undefined) return Promise.resolve(undefined);
    if (this.#streamsOpening === undefined) {
      const attempt = this.#attemptStreams(link).finally(() => {
        if (this.#streamsOpening === attempt) this.#streamsOpening = undefined;
      });
      this.#streamsOpening = attempt;
    }
    return this.#streamsOpening;
  }

  async #attemptStreams(link: StreamLink): Promise<Error | undefined> {
    const epoch = this.#streamsEpoch;
    try {
      await link.open();
    } catch (error) {
      // Made before Redis was lost (the link was reset): the resync's attempt tells.
      if (epoch !== this.#streamsEpoch) return error as Error;
      return await this.#streamsFailed(error as Error) ? undefined : error as Error;
    }
    this.#streamsOpened();
    return undefined;
  }

  /** The stream connections are open: a retry's success ends their outage. */
  #streamsOpened(): void {
    this.#streamAttempt = 0;
    this.#cancelStreamRetry();
    if (!this.#streamsDown) return;
    this.#streamsDown = false;
    // During a resync (not ready), its end reports the bus ready instead.
    if (this.#ready && this.#closing === undefined) {
      this.#emit("state", { state: "streamsBack" });
      this.#scheduleFlush();
    }
  }

  /**
   * An attempt to open the stream connections failed. When Redis itself is away (the command
   * connection does not answer either), that is what gets reported, and the resync after its
   * return opens them. Deno's TLS refusing what ioredis accepted (the command connection answers,
   * with the same settings) moves the streams to ioredis for good. Otherwise they are down until
   * an attempt succeeds: the first failure is reported, replies waiting for forwards go out (they
   * may not be sent soon), and the next attempt follows the reconnect back-off.
   *
   * @returns whether the streams moved to ioredis
   */
  async #streamsFailed(error: Error): Promise<boolean> {
    this.#acks.release();
    // An error reply (an ACL refusing PING, say) is an answer all the same.
    const reachable = this.#cmd.status === "ready" &&
      await this.#cmd.ping().then(() => true, (e: Error) => e?.name === "ReplyError");
    if (this.#closing !== undefined || !reachable) return false;
    if (error instanceof RespTlsError) {
      this.#fallBack(error.message);
      return true;
    }
    const wasUp = this.#ready && !this.#streamsDown;
    this.#streamsDown = true;
    if (wasUp) this.#emit("state", { state: "streamsLost", error: error.message });
    if (this.#ready) this.#retryStreams();
    return false;
  }

  /** Schedules the next attempt to open the stream connections, with the reconnect back-off. */
  #retryStreams(): void {
    if (this.#streamRetry !== undefined || this.#closing !== undefined) return;
    const attempt = ++this.#streamAttempt;
    const delay = this.#retryDelay(attempt);
    this.#emit("state", { state: "reconnecting", connection: "stream", attempt, delay });
    const set = this.#timers.setTimeout ?? ((f, ms) => setTimeout(f, ms) as unknown as number);
    this.#streamRetry = set(() => {
      this.#streamRetry = undefined;
      // Redis itself was lost meanwhile: the resync after its return opens them.
      if (this.#ready) this.#openStreams();
    }, delay);
  }

  #cancelStreamRetry(): void {
    if (this.#streamRetry === undefined) return;
    (this.#timers.clearTimeout ?? clearTimeout)(this.#streamRetry);
    this.#streamRetry = undefined;
  }

  /** The streams go to ioredis from now on: the XADDs on the command connection, a reader. */
  #fallBack(reason: string): void {
    const link = this.#streams!;
    this.#streams = undefined;
    this.#abandoned = link.close();
    this.#fallback = reason;
    // The reader below reads in the group `r` as well (#readEntries): set again from the last
    // entry routed before its first read, so the group's last id keeps saying how far.
    this.#readingIn = undefined;
    this.#cancelStreamRetry();
    this.#streamAttempt = 0;
    this.#openReader();
    this.#emit("state", { state: "streamsOnIoredis", reason });
    if (this.#streamsDown) {
      this.#streamsDown = false;
      if (this.#ready) this.#emit("state", { state: "streamsBack" });
    }
    this.#scheduleFlush();
  }

  /** Opens the ioredis connection that reads this node's stream (it reconnects by itself). */
  #openReader(): void {
    if (this.#reader !== undefined) return;
    const reader = this.#make("reader");
    reader.on("error", () => {});
    reader.connect().catch(() => {});
    this.#reader = reader;
  }

  /** Sends what waits in the outbox and resolves once Redis has answered every XADD so far. */
  async #forwardsWritten(): Promise<void> {
    // While the XADD connection is being opened, or once it was lost (closed by Redis while idle),
    // a flush sends nothing (see #flush): it is opened first, so that what follows (a handoff,
    // the leave script) does not overtake the forwards.
    const lost = this.#ready && this.#outbox.size > 0 && !this.#streamsDown &&
      this.#streams?.writer === undefined;
    await (lost ? this.#openStreams() : this.#streamsOpening);
    if (this.#ready && this.#outbox.size > 0) this.#flush();
    return this.#lastFlush;
  }

  /**
   * One read of the stream from the last entry read, in the group `r` (XREADGROUP, on the RESP
   * reader or on the ioredis one): its entries' ids and frames.
   */
  async #readEntries(stream: string): Promise<[string, Uint8Array | undefined][] | null> {
    const link = this.#streams;
    let reader: RespClient | Redis | undefined;
    if (link !== undefined) {
      // Opened again by the resync, or by the retries while they are down.
      if (!this.#ready || this.#streamsDown) return null;
      reader = link.reader;
      if (reader === undefined) {
        // Lost since: opened again at once (when that fails, the retries take over).
        if (await this.#openStreams() !== undefined) return null;
        reader = this.#streams?.reader;
        if (reader === undefined) return null; // moved to ioredis: read there from now on
      }
    } else {
      reader = this.#reader;
      if (reader === undefined || reader.status !== "ready") return null;
    }
    // In the group `r`, from the last entry routed (set again on each new connection, or after a
    // failed read whose answer may have been lost): Redis keeps how far this node can have read,
    // which the node rescuing its stream after its death goes by (see #rescue). On ioredis too:
    // a stream read without the group would leave its last id behind what was read (delivered
    // again by the rescue), and a stream without the group would have its unread entries taken
    // for read (their clean-member groups' messages rescued by no one).
    if (this.#readingIn !== reader) {
      const made = await this.#cmd.amqttBus_readFrom(this.#prefix, this.nodeId, this.#lastId);
      if (made === 0) {
        // Not registered: read once registered again. Taken for registered here, this node was
        // reaped or Redis lost its data (FLUSHALL: the blocked read failed as the stream went):
        // its heartbeat finds out which and registers it, now rather than at its next turn.
        if (this.#ready) this.#checkNow();
        return null;
      }
      if (made === 2) this.#readAnew();
      this.#readingIn = reader;
    }
    // Without NOACK: an entry stays pending until acknowledged (#sendAcks), soon unless a shared
    // delivery holds it (holdEntry).
    const read = ["GROUP", "r", this.nodeId, "COUNT", 4096, "BLOCK", 0] as const;
    let reply: [Uint8Array, [Uint8Array, (Uint8Array | RespValue)[]][]][] | null;
    try {
      reply = link !== undefined
        ? await (reader as RespClient).send([
          "XREADGROUP",
          ...read,
          "STREAMS",
          stream,
          ">",
        ]) as typeof reply
        : await (reader as Redis).callBuffer(
          "XREADGROUP",
          ...read,
          "STREAMS",
          stream,
          ">",
        ) as typeof reply;
    } catch (error) {
      this.#readingIn = undefined;
      throw error;
    }
    if (reply === null) return null;
    const out: [string, Uint8Array | undefined][] = [];
    for (const [, entries] of reply) {
      for (const [id, fields] of entries) {
        out.push([latin1(id), fields[1] as Uint8Array | undefined]);
      }
    }
    return out;
  }

  /**
   * Reads this node's stream of forwarded messages, blocking in XREADGROUP; after a reconnect it
   * goes on from the last entry read. Read entries are trimmed.
   */
  async #readLoop(): Promise<void> {
    const stream = `${this.#prefix}s:${this.nodeId}`;
    const channel = `${this.#prefix}to:${this.nodeId}`;
    let trimmedAt = 0;
    while (this.#closing === undefined) {
      let entries: [string, Uint8Array | undefined][] | null;
      try {
        entries = await this.#readEntries(stream);
      } catch {
        entries = null;
      }
      if (this.#closing !== undefined) return;
      if (entries === null) {
        // Not connected (or the connection was lost): tried again in a moment.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (entries.length === 0) continue;
      for (const [id, payload] of entries) {
        this.#lastId = id;
        this.#entryId = id;
        if (payload !== undefined) this.#onFrame(channel, payload);
        // Read without NOACK: pending until acknowledged, soon unless a delivery holds it.
        if (!this.#unfinished.has(id)) this.#toAck.push(id);
      }
      this.#entryId = undefined;
      this.#scheduleAcks();
      this.#emit("read", { id: this.#lastId });
      // What was read is trimmed now and then, not after every read: one command less per read.
      const now = Date.now();
      if (now - trimmedAt >= 100) {
        trimmedAt = now;
        this.#trim(this.#lastId);
      }
    }
  }

  /**
   * Trims this node's stream up to `upTo` (the entries before it), with the leave marks that go
   * with it ({@linkcode #pruneMarks}). Not past a message being passed on: if this node dies
   * first, its reaper passes it on; nor past an entry with shared deliveries not finished, which
   * its reaper passes on too; nor past what is not stored yet ({@linkcode keepUntilStored}).
   */
  #trim(upTo: string): void {
    if (this.#storedUpTo !== undefined) upTo = this.#storedUpTo;
    const passing = this.#firstPassing();
    if (passing !== undefined && compareStreamIds(streamId(passing), streamId(upTo)) < 0) {
      upTo = passing;
    }
    const held = this.#unfinished.keys().next().value;
    if (held !== undefined && compareStreamIds(streamId(held), streamId(upTo)) < 0) {
      upTo = held;
    }
    if (upTo === "0-0") return;
    const stream = `${this.#prefix}s:${this.nodeId}`;
    const pruned = this.#pruneMarks(upTo);
    // The takes of trimmed entries: no rescue reads those entries.
    const taken = this.#pruneTaken(upTo);
    if (pruned.length === 0 && taken.length === 0) {
      this.#cmd.xtrim(stream, "MINID", upTo).catch(() => {});
      return;
    }
    const multi = this.#cmd.multi().xtrim(stream, "MINID", upTo);
    if (pruned.length > 0) {
      multi.hdel(`${this.#prefix}left:${this.nodeId}`, ...pruned.map(([filter]) => filter));
    }
    multi.exec().then((replies) => {
      if (replies === null || replies.some(([error]) => error)) throw new Error("trim not run");
    }).then(() => {
      if (taken.length === 0) return;
      // Once the entries are gone, and by this incarnation only: one reaped meanwhile (paused)
      // trimmed nothing of its rescuer's dead stream, whose entries keep their keys
      // (UNTAKE_SCRIPT).
      this.#cmd.amqttBus_untake(
        this.#prefix,
        this.nodeId,
        this.#incarnation,
        this.#epoch ?? "",
        String(this.#gen),
        ...taken.map(([, key]) => key),
      ).catch(() => this.#taken.unshift(...taken)); // Redis away: at a later trim
    }, () => {
      // Not run (Redis away): pruned at a later trim, unless joined or left since.
      for (const [filter, mark] of pruned) {
        if (!this.#sentMarks.has(filter) && !this.#interest.has(filter)) {
          this.#sentMarks.set(filter, mark);
        }
      }
      this.#taken.unshift(...taken);
    });
  }

  /**
   * At a heartbeat, the leave marks that no read of a new entry would prune (a group left after
   * the last entry its stream got, the stream quiet since): the stream is trimmed through the
   * last entry read, which nothing needs once routed (the group `r` keeps how far this node
   * read), and they go with it, as do the keys taken ({@linkcode take}) for those entries.
   * Nothing to do without marks or keys.
   */
  #trimQuiet(): void {
    if ((this.#sentMarks.size === 0 && this.#taken.length === 0) || this.#lastId === "0-0") {
      return;
    }
    const [ms, seq] = streamId(this.#lastId);
    this.#trim(`${ms}-${seq + 1}`);
  }

  /**
   * At a heartbeat, acknowledges what is pending in the group `r` and held by nothing here
   * (before the first entry held or being passed on, or through the last one read): left over
   * from an XACK that failed (Redis away, its connection lost) or that Redis lost (it went back
   * to older data). Without this such entries stay pending until the node leaves (the pending
   * list grows with every Redis outage), and the rescue of its stream after its death would take
   * their shared QoS 1 messages for unfinished and pass them on again.
   */
  #ackStale(): void {
    if (this.#lastId === "0-0") return;
    let below: string | undefined = this.#unfinished.keys().next().value;
    const passing = this.#firstPassing();
    if (
      passing !== undefined &&
      (below === undefined || compareStreamIds(streamId(passing), streamId(below)) < 0)
    ) {
      below = passing;
    }
    if (below === undefined) {
      const [ms, seq] = streamId(this.#lastId);
      below = `${ms}-${seq + 1}`;
    }
    this.#cmd.amqttBus_ackStale(this.#prefix, this.nodeId, below).catch(() => {});
  }

  /**
   * Keeps the stream entry being routed now pending in the group `r` until
   * {@linkcode releaseEntry}: a shared QoS 1 delivery of one of its messages to a clean session
   * began (released at the PUBACK), or a QoS 2 one (released once taken, {@linkcode take}). If
   * this node dies first, the node rescuing its stream passes the entry's shared QoS 1 messages,
   * and its QoS 2 ones never taken, on to another member of their groups (MQTT 5.0 on shared
   * subscriptions: a message whose chosen member's session ends before it acknowledged it SHOULD
   * go to another member).
   *
   * @returns the entry's id, for {@linkcode releaseEntry}; undefined when no entry of this
   *   node's stream is being routed (a local message, or one replayed from another stream)
   */
  holdEntry(): string | undefined {
    const id = this.#entryId;
    if (id === undefined) return undefined;
    this.#unfinished.set(id, (this.#unfinished.get(id) ?? 0) + 1);
    return id;
  }

  /**
   * One delivery that {@linkcode holdEntry} held is finished (acknowledged, or gone with its
   * session): the entry is acknowledged in the group `r` once none is left.
   *
   * @param id what {@linkcode holdEntry} returned
   */
  releaseEntry(id: string): void {
    const n = this.#unfinished.get(id);
    if (n === undefined) return;
    if (n > 1) {
      this.#unfinished.set(id, n - 1);
      return;
    }
    this.#unfinished.delete(id);
    this.#toAck.push(id);
    this.#scheduleAcks();
  }

  /**
   * The stream entry being routed now and the message's index among its frames; undefined
   * when no entry of this node's stream is being routed (see {@linkcode holdEntry}).
   *
   * @returns the entry's id and the frame's index, for {@linkcode take} and {@linkcode passOn}
   */
  routedEntry(): { id: string; index: number } | undefined {
    const id = this.#entryId;
    return id === undefined ? undefined : { id, index: this.#frameIndex };
  }

  /**
   * Takes a shared-group message published at QoS 2, of an entry of this node's stream, for a
   * delivery to a member here, before its first PUBLISH is written: its key goes into
   * `P passed:ID` (`TAKE_SCRIPT`), where a pass of it (this node's, or its rescuer's) would
   * have put it. The rescue of this node's stream after its death passes on what its pending
   * entries hold for clean members and was not taken: never sent, it SHOULD go to another
   * member (MQTT 5.0 on shared subscriptions); taken, its delivery may have begun and it goes to
   * no other [MQTT-4.8.2-5]. The takes of one turn go in one script call; while Redis is away
   * they wait, asked again once it is back, and at each heartbeat. The keys go with the entries'
   * trim.
   *
   * @param entry the message's entry and index ({@linkcode routedEntry} while it was routed)
   * @param share the group, `$share/{group}/{filter}`
   * @returns (as a promise) true once taken here; false when a rescue of this node's stream
   *   passed it on already, or the incarnation that asked was reaped (this node was taken for
   *   dead): it must not be sent
   */
  take(entry: { id: string; index: number }, share: string): Promise<boolean> {
    return new Promise((resolve) => {
      this.#toTake.push({
        id: entry.id,
        key: passKey(entry.id, entry.index, share),
        inc: this.#incarnation,
        done: resolve,
      });
      if (this.#takeScheduled) return;
      this.#takeScheduled = true;
      queueMicrotask(() => {
        this.#takeScheduled = false;
        this.#sendTakes();
      });
    });
  }

  #sendTakes(): void {
    if (!this.#ready || this.#closing !== undefined || this.#toTake.length === 0) return;
    const inc = this.#incarnation;
    // Those of an incarnation reaped since: its rescuer passes on what it did not take, and the
    // node dropped the members' sessions unwritten (the `fenced` event) [MQTT-4.8.2-5].
    const takes: PendingTake[] = [];
    for (const t of this.#toTake) {
      if (t.inc === inc) takes.push(t);
      else t.done(false);
    }
    this.#toTake = [];
    if (takes.length === 0) return;
    const args: string[] = [];
    for (const t of takes) args.push(String(streamId(t.id)[0]), t.key);
    const keep = String(this.#streamRetention + 2 * DEAD_STREAM_MS);
    // On the stream writer when it is up (Deno's faster client; the delivery waits for it).
    const writer = this.#streams?.writer;
    const fence = [inc, this.#epoch ?? "", String(this.#gen)];
    const argv = ["0", this.#prefix, this.nodeId, ...fence, keep, ...args];
    const sent = writer !== undefined && !this.#streamsDown
      ? writer.send(["EVALSHA", TAKE_SHA, ...argv]).catch((error) => {
        // Not loaded in this server yet (restarted, another one): sent whole, which loads it.
        if (!(error instanceof RespError) || !error.message.startsWith("NOSCRIPT")) throw error;
        return writer.send(["EVAL", TAKE_SCRIPT, ...argv]);
      })
      : this.#cmd.amqttBus_take(this.#prefix, this.nodeId, ...fence, keep, ...args);
    sent.then((reply) => {
      // Fenced (-1): this incarnation was reaped, none taken.
      const made = Array.isArray(reply) ? reply as number[] : [];
      for (let i = 0; i < takes.length; i++) {
        const t = takes[i]!;
        if (made[i] === 1) this.#taken.push([t.id, t.key]);
        t.done(made[i] === 1);
      }
    }, () => {
      // Redis away, or the answer lost: asked again once the bus is ready again, or at a
      // heartbeat (a take made already answers taken), the deliveries waiting meanwhile.
      this.#toTake = [...takes, ...this.#toTake];
    });
  }

  /** The keys taken for entries before `upTo`, which a trim up to it deletes. */
  #pruneTaken(upTo: string): [string, string][] {
    if (this.#taken.length === 0) return [];
    const limit = streamId(upTo);
    const out: [string, string][] = [];
    const keep: [string, string][] = [];
    for (const t of this.#taken) {
      (compareStreamIds(streamId(t[0]), limit) < 0 ? out : keep).push(t);
    }
    this.#taken = keep;
    return out;
  }

  #scheduleAcks(): void {
    // Not once closing: no XACK goes then (#sendAcks), and no timer outlives the bus.
    if (this.#ackTimer !== undefined || this.#toAck.length === 0 || this.#closing !== undefined) {
      return;
    }
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#sendAcks();
    }, ACK_EVERY_MS);
  }

  /**
   * Acknowledges the entries read and finished in the group `r`, in one XACK: what stays pending
   * is what the rescue of this node's stream goes by. While Redis is away they wait.
   */
  #sendAcks(): void {
    if (this.#closing !== undefined) return;
    if (!this.#ready) {
      this.#scheduleAcks();
      return;
    }
    if (this.#toAck.length === 0) return;
    const ids = this.#toAck;
    this.#toAck = [];
    const stream = `${this.#prefix}s:${this.nodeId}`;
    const writer = this.#streams?.writer;
    const sent = writer !== undefined && !this.#streamsDown
      ? writer.send(["XACK", stream, "r", ...ids])
      : this.#cmd.xack(stream, "r", ...ids);
    sent.catch(() => {
      // Left pending (Redis away, the connection lost): a rescue after this node's death would
      // pass their shared QoS 1 messages on once more, a duplicate QoS 1 allows.
    });
  }

  /**
   * This node's stream is one it never read (READ_FROM_SCRIPT made its group `r` at its start):
   * Redis lost the one it read. What was read there says nothing of this one, whose ids may be
   * below it (a server promoted without the data, with its clock behind): it is read, trimmed
   * and marked from its start, not past the entries read before (which a trim up to them would
   * delete unread).
   */
  #readAnew(): void {
    if (this.#lastId === "0-0") return;
    this.#lastId = "0-0";
    // Entries of the lost stream: nothing to acknowledge or hold there.
    this.#unfinished.clear();
    this.#toAck = [];
    this.#taken = [];
    if (this.#storedUpTo !== undefined) this.#storedUpTo = "0-0";
    // The marks of groups left: none of this stream's entries was read then.
    for (const filter of this.#leftMarks.keys()) this.#leftMarks.set(filter, "0-0");
    this.#sentMarks.clear();
  }

  /**
   * The groups whose leave marks (`P left:ID`) go with a trim of this node's stream up to `upTo`
   * (the entries before it): a mark before it names an entry the trim removes, and a rescue of
   * the stream after this node's death finds nothing up to the mark; the mark then says what no
   * mark says (no entry left was delivered to the group here). Sent in the trim's transaction:
   * a trim that fails keeps them.
   */
  #pruneMarks(upTo: string): [string, string][] {
    const out: [string, string][] = [];
    if (this.#sentMarks.size === 0) return out;
    const limit = streamId(upTo);
    for (const [filter, mark] of this.#sentMarks) {
      if (compareStreamIds(streamId(mark), limit) < 0) {
        this.#sentMarks.delete(filter);
        out.push([filter, mark]);
      }
    }
    return out;
  }

  /**
   * From now on this node's stream is trimmed only up to the entries {@linkcode stored} says are
   * stored (a node whose persistent sessions are in a store the nodes share); until the first
   * call, it is not trimmed at all.
   */
  keepUntilStored(): void {
    this.#storedUpTo ??= "0-0";
  }

  /**
   * What this node read of its stream up to entry `id` (a `read` event's) is stored: the stream
   * may be trimmed up to there.
   *
   * @param id a stream entry id
   */
  stored(id: string): void {
    // Past the last entry read, it was read from a stream Redis lost since (see #readAnew).
    if (compareStreamIds(streamId(id), streamId(this.#lastId)) > 0) return;
    this.#storedUpTo = id;
  }

  /**
   * The live nodes of another cluster protocol version than this node's (`_protocol.ts`): nodes
   * of a release before protocol versions (version 0) or of another version.
   *
   * @returns their ids and versions
   * @throws {Error} If Redis cannot be reached.
   */
  async foreignNodes(): Promise<ForeignNode[]> {
    return foreignNodes(await this.#cmd.amqttBus_versions(this.#prefix, this.nodeId) as unknown[]);
  }

  /**
   * Waits, before this node touches the cluster's keys, until no live node of another cluster
   * protocol version is registered (`VERSIONS_SCRIPT`), telling `protocolRefused` each time the
   * set of such nodes changes. Waiting rather than failing the start: a service manager restarting
   * a node that exits would turn a rolling upgrade into a crash loop, while a node that waits joins
   * by itself once the last node of the other release stopped. A Redis error at the first look
   * ends the start, as any other at start; once waiting (maybe for long, through an upgrade), one
   * is looked past: Redis restarting meanwhile would otherwise end the node it kept waiting.
   */
  async #awaitProtocol(options: ClusterBusOptions, refusedBy?: ForeignNode[]): Promise<void> {
    const retryMs = options.protocolRetry ?? 2000;
    const signal = options.signal;
    let found = refusedBy;
    for (;;) {
      signal?.throwIfAborted();
      let nodes: ForeignNode[] | undefined = found;
      found = undefined;
      try {
        nodes ??= await this.foreignNodes();
      } catch (error) {
        if (this.#protocolTold === "") throw error;
      }
      if (nodes?.length === 0) return;
      if (nodes !== undefined) {
        const key = JSON.stringify(nodes.map((n) => [n.node, n.protocol]).sort());
        if (key !== this.#protocolTold) {
          this.#protocolTold = key;
          options.protocolRefused?.(nodes, retryMs);
        }
      }
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          clearTimeout(timer);
          reject(signal!.reason);
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener("abort", stop);
          resolve();
        }, retryMs);
        signal?.addEventListener("abort", stop, { once: true });
      });
    }
  }

  /**
   * A node starting with the id of one that ended without leaving (a crashed worker restarted
   * at once): that one is removed first, as if reaped, so that the others publish its clients'
   * wills; its unread stream goes with it.
   */
  async #retirePrevious(): Promise<void> {
    const registered = await this.#cmd.sismember(`${this.#prefix}nodes`, this.nodeId);
    this.#claims.flush();
    const clients = (await this.#cmd.amqttBus_leave(this.#prefix, this.nodeId) as string[])
      .map(String).sort();
    if (registered === 0 && clients.length === 0) return;
    const frame: LeftFrame = {
      type: "left",
      origin: this.nodeId,
      node: this.nodeId,
      graceful: false,
      clients,
    };
    await this.#cmd.publish(`${this.#prefix}ctl`, buf(encodeFrame(frame)));
  }

  /**
   * The other nodes a message to `topic` would be forwarded to now.
   *
   * @param topic a topic name
   * @returns their node ids
   */
  nodesFor(topic: string): string[] {
    return this.#remote.nodesFor(topic);
  }

  /**
   * Whether any other node wants messages on `topic` now: a cheap check before building a
   * message for {@linkcode publish}.
   *
   * @param topic a topic name
   * @returns true when some node's interest matches it
   */
  wants(topic: string): boolean {
    return this.#remote.wants(topic);
  }

  /**
   * Whether `node` departed less than the grace ago: a last resort for the shared groups it had
   * members of (see `#nodeLeft`), whose messages go to its dead stream.
   *
   * @param node a node id
   * @returns true while its interest is kept after it left
   */
  departed(node: string): boolean {
    return this.#departed.has(node) && !this.#known.has(node);
  }

  /**
   * Keeps `node`'s interest after it departed for another grace from now, when it is still kept:
   * an adoption of its sessions that keeps failing (Redis refusing the script, or the dead
   * stream's read) calls it at each try, so that what is published meanwhile still goes to the
   * dead stream the adopter reads, however long the failure lasts.
   *
   * @param node a departed node's id
   */
  keepDeparted(node: string): void {
    if (this.#departed.has(node)) this.#departed.set(node, this.#clock());
  }

  /** The `order` of the last message this node forwarded (see `MessageFrame.order`). */
  get lastOrder(): number {
    return this.#order;
  }

  /**
   * Forgets a publisher's sequence counter (its session ended here).
   *
   * @param publisher a client id
   */
  forgetPublisher(publisher: string): void {
    this.#seq.delete(publisher);
  }

  /**
   * Makes this node the owner of a session cluster-wide. The previous owner, if another node,
   * receives a `takeover` event.
   *
   * @param clientId the client id
   * @param will the session's will, kept in Redis so that another node publishes it if this one
   *   dies (see {@linkcode takeWill}); replaces any will kept before
   * @param clean the claim of a login starting clean: its session begins (`P born`, and the
   *   subscriptions left for an older one dropped, see {@linkcode pendSubscriptions})
   * @returns the previous owner's node id, or `undefined`
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async claim(clientId: string, will?: MessageRecord, clean = false): Promise<string | undefined> {
    this.#owned.add(clientId);
    this.#unreleased.delete(clientId);
    const frame = buf(encodeFrame({ type: "takeover", origin: this.nodeId, clientId }));
    const encoded = will === undefined ? "" : buf(encodeMessage(will));
    const old = await this.#fenced(
      this.#claims.add([clientId, frame, encoded, clean ? "!" : ""]),
      () => this.#owned.delete(clientId),
    );
    return old === "" ? undefined : old as string;
  }

  /**
   * {@linkcode claim} (without a will) and the read of the session from the store, in one script
   * call, atomic in Redis: a login's read and claim in one round trip (see `CLAIM_SCRIPT`). With
   * `unlessSubscribed`, a stored session with subscriptions is read only, not claimed: its
   * filters are to be announced first (`ClusterSessions`). The read marks this node as the
   * session's writer when it owned it already or claimed it from nobody, as a read made after
   * the claim would.
   *
   * @param clientId the client id
   * @param unlessSubscribed whether a stored session with subscriptions is left unclaimed
   * @param clean the claim of a login starting clean (as {@linkcode claim})
   * @returns the previous owner (`undefined`: none, or this node), whether the session was
   *   claimed, and the session's rows for `RedisStore.sessionFrom`: those of none when claimed
   *   from another node (read after its handoff), its record and subscriptions only when not
   *   claimed
   * @throws {Error} (as a rejection) If Redis is unreachable, or this node was taken for dead
   *   ({@linkcode isFencedError}).
   */
  claimRead(
    clientId: string,
    unlessSubscribed: boolean,
    clean = false,
  ): Promise<{ previous: string | undefined; claimed: boolean; rows: unknown[] }> {
    const read = unlessSubscribed ? "s" : "r";
    return this.#claimRead(clientId, clean ? `${read}!` : read);
  }

  /**
   * {@linkcode claimRead} of a session no other node owns: when another node owns it, it is
   * neither claimed nor read (`CLAIM_SCRIPT` with read `k`). A session brought here for no login
   * of its client (the subscriptions of a provisional session that gave way, `ClusterSessions`)
   * is not taken from a node that holds it: its client may be connected there, and the takeover
   * would close that connection.
   *
   * @param clientId the client id
   * @returns as {@linkcode claimRead}: not claimed, `previous` names the node owning it
   * @throws {Error} (as a rejection) If Redis is unreachable, or this node was taken for dead
   *   ({@linkcode isFencedError}).
   */
  claimReadUnowned(
    clientId: string,
  ): Promise<{ previous: string | undefined; claimed: boolean; rows: unknown[] }> {
    return this.#claimRead(clientId, "k");
  }

  async #claimRead(
    clientId: string,
    read: "r" | "s" | "k" | "r!" | "s!",
  ): Promise<{ previous: string | undefined; claimed: boolean; rows: unknown[] }> {
    const owned = this.#owned.has(clientId);
    const unreleased = this.#unreleased.has(clientId);
    this.#owned.add(clientId);
    this.#unreleased.delete(clientId);
    const frame = buf(encodeFrame({ type: "takeover", origin: this.nodeId, clientId }));
    const reply = await this.#fenced(
      this.#claims.add([clientId, frame, "", read]),
      () => this.#owned.delete(clientId),
    ) as Exclude<ClaimReply, string>;
    if (!reply.claimed) {
      // Not claimed: as before the call.
      if (!owned) this.#owned.delete(clientId);
      if (unreleased) this.#unreleased.add(clientId);
    }
    const previous = reply.previous === "" ? undefined : reply.previous;
    return { previous, claimed: reply.claimed, rows: reply.rows };
  }

  /**
   * Makes this node the owner of a session only when no session of that client exists
   * cluster-wide: no other node owns it and the store holds no record of it (one atomic script
   * call, `CLAIM_SCRIPT` with read `n`). The claim of a session served here provisionally while
   * Redis was away (`ClusterSessions`): it becomes this node's when nothing else exists, else it
   * gives way. When claimed, the read marks this node as the session's writer, as a claim from
   * nobody with its read does.
   *
   * @param clientId the client id
   * @param will the session's will, kept in Redis as with {@linkcode claim}
   * @param watch the will waits for a Will Delay Interval: when the session gives way, any claim
   *   of the client from then on (a login anywhere) is noted, for {@linkcode givenWayWillDue}
   * @returns whether it was claimed, and the node owning the session otherwise (`undefined`: none,
   *   or this node, with a session stored)
   * @throws {Error} (as a rejection) If Redis is unreachable (nothing is known then: ask again;
   *   the session stays listed as this node's meanwhile), or this node was taken for dead
   *   ({@linkcode isFencedError}).
   */
  async claimUnlessExists(
    clientId: string,
    will?: MessageRecord,
    watch = false,
  ): Promise<{ claimed: boolean; owner: string | undefined }> {
    const owned = this.#owned.has(clientId);
    const unreleased = this.#unreleased.has(clientId);
    this.#owned.add(clientId);
    this.#unreleased.delete(clientId);
    const undo = () => {
      if (!owned) this.#owned.delete(clientId);
      if (unreleased) this.#unreleased.add(clientId);
    };
    const frame = buf(encodeFrame({ type: "takeover", origin: this.nodeId, clientId }));
    const encoded = will === undefined ? "" : buf(encodeMessage(will));
    // Fenced: not made. Lost with Redis: not known to have gone through, so the session stays
    // listed as this node's (as with `claim`): a node that claims it from this one meanwhile is
    // answered at the resync (a missed `takeover`), else it would wait for a handoff that never
    // comes and load nothing of what this node held. Asked again then (made twice, it is one).
    const reply = await this.#fenced(
      this.#claims.add([clientId, frame, encoded, watch ? "w" : "n"]),
      undo,
    ) as Exclude<ClaimReply, string>;
    if (!reply.claimed) undo();
    return { claimed: reply.claimed, owner: reply.previous === "" ? undefined : reply.previous };
  }

  /**
   * Tells the node holding a client's session that a provisional session of its client here gave
   * way to that session, and left the subscriptions its client made in it in Redis
   * ({@linkcode pendSubscriptions}): it adds them without moving the session (`ClusterSessions`).
   * Redis's publish: lost when that node is away from Redis, which looks at its resync.
   *
   * @param node the node holding the session
   * @param clientId the client id
   * @returns settled when Redis has it
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async sendSubscribed(node: string, clientId: string): Promise<void> {
    const frame = encodeFrame({
      type: "subscribed",
      origin: this.nodeId,
      clientId,
      subscriptions: [],
    });
    await this.#cmd.publish(`${this.#prefix}to:${node}`, buf(frame));
  }

  /** Notes Redis's clock as a registration or heartbeat answered it (see {@linkcode redisNow}). */
  #noteRedisClock(ms: unknown): void {
    if (ms === undefined || ms === null || !Number.isFinite(Number(ms))) return;
    this.#redisClock = { redis: Number(ms), local: performance.now() };
  }

  /**
   * Redis's clock now, as this node reckons it while it may not reach Redis: the time in its last
   * heartbeat's answer plus what its own monotonic clock counted since (no other machine's wall
   * clock is compared with its own); 0 before the first answer.
   *
   * @returns ms on Redis's clock
   */
  redisNow(): number {
    const at = this.#redisClock;
    return at === undefined ? 0 : Math.floor(at.redis + performance.now() - at.local);
  }

  /**
   * Leaves in Redis the subscriptions a client made in a provisional session here, which gives
   * way to the session that exists (`PEND_SCRIPT`): kept there until the node holding that
   * session, or any node loading it later (a move, an adoption), adds them to it
   * ({@linkcode pendingSubscriptions}, {@linkcode appliedPending}). Not left when that session
   * began at or after `since` (a clean start the client may have made after its provisional
   * session began [MQTT-3.1.2-4]), nor when no session exists now.
   *
   * @param clientId the client id
   * @param since when the provisional session began, on Redis's clock ({@linkcode redisNow})
   * @param subscriptions the subscriptions granted
   * @returns `"left"`, `"newer"` or `"none"`, and the node owning the session (`undefined`: none)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async pendSubscriptions(
    clientId: string,
    since: number,
    subscriptions: readonly SubscribedEntry[],
  ): Promise<{ left: "left" | "newer" | "none"; owner: string | undefined }> {
    this.#claims.flush();
    const pairs = subscriptions.flatMap((s) => [s.topic, JSON.stringify(subscribedEntry(s))]);
    const [left, owner] = await this.#cmd.amqttBus_pend(
      this.#prefix,
      clientId,
      String(since),
      ...pairs,
    ) as [number, string];
    return {
      left: left === 1 ? "left" : left === -1 ? "newer" : "none",
      owner: owner === "" ? undefined : String(owner),
    };
  }

  /**
   * The subscriptions left in Redis for a client's session ({@linkcode pendSubscriptions}).
   *
   * @param clientId the client id
   * @returns filter → the subscription as stored (its JSON), for {@linkcode appliedPending}; the
   *   subscriptions, checked (a malformed one left out)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async pendingSubscriptions(
    clientId: string,
  ): Promise<{ stored: Map<string, string>; subscriptions: SubscribedEntry[] }> {
    const hash = await this.#cmd.hgetall(`${this.#prefix}pendsub:${clientId}`);
    const stored = new Map(Object.entries(hash));
    const subscriptions: SubscribedEntry[] = [];
    for (const [filter, json] of stored) {
      try {
        const [entry] = subscribedEntries(`[${json}]`);
        if (entry?.topic === filter) subscriptions.push(entry);
      } catch {
        // Malformed (written by hand, say): not added, dropped with the others once applied.
      }
    }
    return { stored, subscriptions };
  }

  /**
   * The client ids with subscriptions left in Redis for their sessions
   * ({@linkcode pendSubscriptions}): looked at when this node is back from an outage.
   *
   * @returns the client ids
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async pendingClients(): Promise<string[]> {
    return await this.#cmd.smembers(`${this.#prefix}pendsubs`);
  }

  /**
   * Drops the subscriptions left for a client's session that this node added to it and stored
   * (`APPLIED_PENDING_SCRIPT`: each only while it is still the one read).
   *
   * @param clientId the client id
   * @param stored as {@linkcode pendingSubscriptions} read them
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async appliedPending(clientId: string, stored: ReadonlyMap<string, string>): Promise<void> {
    const pairs = [...stored].flat();
    await this.#cmd.amqttBus_appliedPending(this.#prefix, clientId, ...pairs);
  }

  /**
   * Watches for a login of a client whose provisional session gave way here to the session this
   * node adopted, its will waiting for its delay (as {@linkcode claimUnlessExists} with `watch`
   * does for one that gave way at its claim).
   *
   * @param clientId the client id
   * @returns settled when Redis has it
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async watchGivenWay(clientId: string): Promise<void> {
    this.#claims.flush();
    await this.#cmd.hset(`${this.#prefix}gaveway`, clientId, this.nodeId);
  }

  /**
   * The Will Delay Interval of a provisional session that gave way here is over: whether its will
   * is to be published, no login of the client (a claim, on any node) having gone through since
   * it gave way (`GIVEN_WAY_WILL_SCRIPT`) [MQTT-3.1.3-9].
   *
   * @param clientId the client id
   * @returns true to publish the will
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async givenWayWillDue(clientId: string): Promise<boolean> {
    this.#claims.flush();
    return await this.#cmd.amqttBus_givenWayWill(this.#prefix, this.nodeId, clientId) === 1;
  }

  /**
   * Forgets the will kept for a session this node owns: published or discarded here.
   *
   * @param clientId the client id
   * @returns settled when done
   * @throws {Error} (as a rejection) If Redis is unreachable, or this node was taken for dead
   *   ({@linkcode isFencedError}): the will is then the adopter's to publish [MQTT-3.1.2-8].
   */
  async dropWill(clientId: string): Promise<void> {
    this.#claims.flush();
    const epoch = this.#epoch ?? "";
    const gen = await this.#fenced(
      this.#cmd.amqttBus_dropWill(
        this.#prefix,
        this.nodeId,
        clientId,
        this.#incarnation,
        epoch,
        String(this.#gen),
      ),
    );
    // Counted in this node's own counter (`DROP_WILL_SCRIPT`), as a claim is.
    this.counted(Number(gen), epoch);
  }

  /**
   * Adopts a session that no node owns any more (its node died or left): only one caller
   * cluster-wide becomes its owner, and gets its will to publish.
   *
   * @param clientId the client id
   * @param again asked again after a call that failed: the script may have run, and its answer
   *   been lost with the connection; a session this node owns is then taken as adopted by it
   * @returns `undefined` when another node owns it (adopted, or the client reconnected), else the
   *   will kept for it, if any
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async adopt(
    clientId: string,
    again = false,
  ): Promise<{ will: MessageRecord | undefined } | undefined> {
    this.#claims.flush();
    const epoch = this.#epoch ?? "";
    const [won, will, gen] = await this.#fenced(this.#cmd.amqttBus_adoptBuffer(
      this.#prefix,
      this.nodeId,
      clientId,
      again ? "1" : "0",
      this.#incarnation,
      epoch,
      String(this.#gen),
    )) as [number, Buffer, number];
    if (won !== 1) return undefined;
    // Counted in this node's own counter (`ADOPT_SCRIPT`) before the session is taken as its.
    this.counted(Number(gen), epoch);
    this.#owned.add(clientId);
    return {
      will: will.length === 0
        ? undefined
        : storedWill(decodeMessage(new Uint8Array(will.buffer, will.byteOffset, will.byteLength))),
    };
  }

  /**
   * Takes the will of a session that no node owns any more (its node died): only one caller
   * cluster-wide gets it, and publishes it.
   *
   * @param clientId the client id
   * @returns the will, or `undefined` when there is none, another node took it, or the client
   *   is owned again
   * @throws {Error} (as a rejection) If Redis is unreachable, or this node was taken for dead
   *   ({@linkcode isFencedError}): a live node takes the will.
   */
  async takeWill(clientId: string): Promise<MessageRecord | undefined> {
    this.#claims.flush();
    const epoch = this.#epoch ?? "";
    const [reply, gen] = await this.#fenced(this.#cmd.amqttBus_takeWillBuffer(
      this.#prefix,
      clientId,
      this.nodeId,
      this.#incarnation,
      epoch,
      String(this.#gen),
    )) as [Buffer, number];
    if (reply.length === 0) return undefined;
    // Counted in this node's own counter (`TAKE_WILL_SCRIPT`) before the will is published.
    this.counted(Number(gen), epoch);
    return storedWill(
      decodeMessage(new Uint8Array(reply.buffer, reply.byteOffset, reply.byteLength)),
    );
  }

  /**
   * Sets (with a `message`) or clears a topic's retained message cluster-wide: stored in Redis
   * for nodes that join later, and announced to every node (a `retained` event, on this node
   * too, in Redis's order).
   *
   * @param topic the topic
   * @param message the retained message, or `undefined` to clear it
   * @returns settled when stored
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async retain(topic: string, message: MessageRecord | undefined): Promise<void> {
    const frame: RetainedFrame = message === undefined
      ? { type: "retained", origin: this.nodeId, topic }
      : { type: "retained", origin: this.nodeId, topic, message };
    await this.#cmd.amqttBus_retain(
      this.#prefix,
      topic,
      buf(encodeFrame(frame)),
      message === undefined ? "" : buf(encodeMessage(message)),
    );
  }

  /**
   * Shares this node's counters and gauges and reads every node's: the sums are cluster-wide
   * totals, as of each node's latest share. The counters' totals include what departed nodes
   * counted (`P departed`, added as each was reaped or left), so that they never go down;
   * the gauges' are of the registered nodes only.
   *
   * @param counters this node's counters (never decreasing)
   * @param gauges this node's gauges
   * @returns each counter and gauge summed over the nodes (this one included)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async shareCounters(
    counters: Record<string, number>,
    gauges: Record<string, number> = {},
  ): Promise<Record<string, number>> {
    this.#counters = counters;
    const since: Record<string, number> = {};
    for (const [name, value] of Object.entries(counters)) {
      since[name] = Math.max(0, value - (this.#countersBefore[name] ?? 0));
    }
    const [, live, departed] = await this.#cmd.amqttBus_shareStats(
      this.#prefix,
      this.nodeId,
      this.#incarnation,
      JSON.stringify({ counters: since, gauges }),
    ) as [number, string[], string[]];
    const totals: Record<string, number> = {};
    const add = (values: unknown) => {
      if (typeof values !== "object" || values === null) return;
      for (const [name, value] of Object.entries(values)) {
        if (typeof value === "number") totals[name] = (totals[name] ?? 0) + value;
      }
    };
    for (const json of live) {
      try {
        const stats = JSON.parse(json) as Record<string, unknown>;
        if (typeof stats.counters === "object") {
          add(stats.counters);
          add(stats.gauges);
        } else {
          add(stats); // An older release's share: its figures, not told apart.
        }
      } catch (error) {
        this.#malformed("shared figures", error);
      }
    }
    for (let i = 0; i + 1 < departed.length; i += 2) {
      const value = Number(departed[i + 1]);
      if (Number.isFinite(value)) totals[departed[i]] = (totals[departed[i]] ?? 0) + value;
    }
    return totals;
  }

  /**
   * Stores retained messages in Redis where their topic has none, without announcing them (the
   * other nodes have them): for a Redis that came back without its data.
   *
   * @param messages the retained messages this node holds
   * @returns settled when stored
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async restoreRetained(messages: readonly MessageRecord[]): Promise<void> {
    const key = `${this.#prefix}retained`;
    for (let i = 0; i < messages.length; i += 1000) {
      const pipeline = this.#cmd.pipeline();
      for (const m of messages.slice(i, i + 1000)) {
        pipeline.hsetnx(key, m.topic, buf(encodeMessage(m)));
      }
      await pipeline.exec();
    }
  }

  /**
   * Reads every retained message of the cluster from Redis, a slice at a time.
   *
   * @returns the messages (undecodable entries skipped and counted as malformed)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async retainedMessages(): Promise<MessageRecord[]> {
    const out: MessageRecord[] = [];
    let cursor = "0";
    do {
      const [next, entries] = await this.#cmd.hscanBuffer(
        `${this.#prefix}retained`,
        cursor,
        "COUNT",
        1000,
      );
      cursor = next.toString();
      for (let i = 1; i < entries.length; i += 2) {
        const value = entries[i]!;
        try {
          const message = decodeMessage(
            new Uint8Array(value.buffer, value.byteOffset, value.length),
          );
          // Into this node's retained store and on to subscribers: a topic name [MQTT-3.3.1-5].
          const problem = messageProblem(message);
          if (problem !== undefined) throw new RangeError(problem);
          if (message.topic !== entries[i - 1]!.toString()) {
            throw new RangeError("topic differs from the field's");
          }
          out.push(message);
        } catch (error) {
          this.#malformed(`retained record ${JSON.stringify(entries[i - 1]!.toString())}`, error);
        }
      }
    } while (cursor !== "0");
    return out;
  }

  /**
   * Gives up ownership of a session (its connection ended and it is not kept here), unless
   * another node took it over already. Made again after one that failed while Redis was away,
   * it emits the `takeover` (`missed`) of a node that claimed the session meanwhile.
   *
   * @param clientId the client id
   * @returns true if this node owned it
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async release(clientId: string): Promise<boolean> {
    this.#owned.delete(clientId);
    this.forgetPublisher(clientId);
    this.#claims.flush();
    try {
      const owner = await this.#cmd.amqttBus_release(this.#prefix, this.nodeId, clientId);
      const claimedAway = this.#releasedAgain(clientId, owner);
      // Made before the resync did (Redis back, this node not registered yet: a sweep, say):
      // another node's claim meanwhile is answered here, or it never is.
      if (claimedAway !== undefined) {
        this.#emit("takeover", { clientId, node: claimedAway, missed: true });
      }
      return owner === 1;
    } catch (error) {
      // Redis away: this node may stay listed as the owner, and another node's registration
      // would take its client as taken over from here. Released again at the resync, unless
      // claimed here again meanwhile.
      if (!this.#owned.has(clientId)) this.#unreleased.add(clientId);
      throw error;
    }
  }

  /**
   * A release went through: when one that failed while Redis was away was pending
   * (`#unreleased`), and another node is listed as the owner, that node claimed the session
   * meanwhile and waits for this node's handoff, its takeover notice lost (this node was not
   * subscribed). Returns that node, once: to whichever release (the resync's, or one made again
   * while it runs) gets the answer first.
   */
  #releasedAgain(clientId: string, owner: unknown): string | undefined {
    if (!this.#unreleased.delete(clientId)) return undefined;
    return typeof owner === "string" && owner !== this.nodeId ? owner : undefined;
  }

  /**
   * Tells the node that took a session over that this node let go of it and committed what it
   * stored of it: that node may load it from the shared store now.
   *
   * @param clientId the client id
   * @param node the new owner
   * @param marks origin node → the highest message `order` of it routed here (see `HandoffFrame`)
   * @returns settled when sent
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async handOver(clientId: string, node: string, marks?: Record<string, number>): Promise<void> {
    const frame = buf(encodeFrame({
      type: "handoff",
      origin: this.nodeId,
      clientId,
      ...(marks === undefined ? {} : { marks }),
    }));
    // The forwards counted in the marks are in Redis before the handoff: they travel on
    // another connection than this PUBLISH.
    if (this.#streams !== undefined) await this.#forwardsWritten();
    // (Also to the session's owner when it is not `node`, and the writer mark of a chain of
    // moves passed on: see HAND_OFF_SCRIPT.)
    await this.#cmd.amqttBus_handOff(this.#prefix, this.nodeId, clientId, node, frame);
  }

  /**
   * In a chain of moves (`P store:handing`, see `_bus_scripts.ts`): the node before `node` in
   * the chain that still writes the session (holds its writer mark: it has not handed over yet),
   * for a node that claimed the session from `node`, which died before handing it on; or, when
   * `node` is not in the chain (it owned the session: a node adopting it after `node` left or
   * died), any node of the chain that still writes it, the previous owner of a single move
   * included (`node` claimed the session from it and died or left before its handoff). Never
   * this node.
   *
   * @param clientId the client id
   * @param node the previous owner the claim named, or the departed owner
   * @returns that node, or `undefined` when none (no chain, or the mark is with `node` or after)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async chainWriter(clientId: string, node: string): Promise<string | undefined> {
    const store = clusterStorePrefix(this.#prefix);
    // The chain first: the handoff of the node writing it moves the mark, not the chain.
    const chain = await this.#cmd.hget(`${store}handing`, clientId);
    const writer = await this.#cmd.hget(`${store}writer`, clientId);
    if (chain === null || writer === null || writer === this.nodeId) return undefined;
    const nodes = chain.split("\n");
    const at = nodes.indexOf(writer);
    const limit = nodes.lastIndexOf(node);
    if (limit === -1) return at !== -1 ? writer : undefined;
    return at !== -1 && at < limit ? writer : undefined;
  }

  /**
   * Resolves once this node has read every message forwarded to it so far: what other nodes put
   * in its stream before the call (a takeover notice, say) has been handed to the `message`
   * listeners. Gives up after `maxMs`, or when Redis is lost.
   *
   * @param maxMs the longest wait, ms
   * @returns settled when caught up (or given up)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async caughtUp(maxMs: number): Promise<void> {
    const stream = `${this.#prefix}s:${this.nodeId}`;
    const end = Date.now() + maxMs;
    // The question too is bounded: a login waiting here must not wait for a Redis that holds
    // its answer (paused, or busy with a long script).
    let timer: ReturnType<typeof setTimeout> | undefined;
    const last = await Promise.race([
      this.#cmd.xrevrange(stream, "+", "-", "COUNT", 1),
      new Promise<[]>((resolve) => timer = setTimeout(() => resolve([]), maxMs)),
    ]).finally(() => clearTimeout(timer));
    if (last.length === 0) return;
    const target = streamId(last[0]![0]);
    while (
      compareStreamIds(streamId(this.#lastId), target) < 0 && this.#ready &&
      this.#closing === undefined && Date.now() < end
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /**
   * Resolves once this node has read everything the other nodes had queued for it when they
   * heard the question: each answers in this node's stream, after what it sent before. A
   * message another node decided to send here before it learned of a change announced earlier
   * (an interest, say) is then read. Gives up after `maxMs` (a node that died does not answer).
   *
   * @param maxMs the longest wait, ms
   * @returns settled when every node answered (or given up)
   */
  async fence(maxMs: number): Promise<void> {
    const waiting = new Set(this.#known);
    if (waiting.size === 0 || !this.#ready) return;
    const id = ++this.#fenceId;
    const answered = Promise.withResolvers<void>();
    this.#fences.set(id, { waiting, done: answered.resolve });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const frame = buf(encodeFrame({ type: "fence", origin: this.nodeId, id }));
      await this.#cmd.publish(`${this.#prefix}ctl`, frame);
      await Promise.race([
        answered.promise,
        new Promise((resolve) => timer = setTimeout(resolve, maxMs)),
      ]);
    } catch {
      // Redis is away: nothing more comes meanwhile.
    } finally {
      clearTimeout(timer);
      this.#fences.delete(id);
    }
  }

  /**
   * What other nodes had forwarded to a node that left or died and it may not have read: its
   * stream, kept 10 minutes after its departure (the others write there for a while after they
   * heard of it), and what they wrote under its live stream's name after it was renamed.
   *
   * @param node the node id
   * @param died the node is known dead (its liveness key expired) though not reaped yet: its
   *   live stream is read even while it is still registered
   * @returns the message frames with their stream entry ids and their index among the entry's
   *   frames, in order
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async deadStream(
    node: string,
    died = false,
  ): Promise<{ id: string; index: number; frame: MessageFrame }[]> {
    return (await this.#readDead(node, died, false)).entries;
  }

  /**
   * {@linkcode deadStream}, and with `served` in the same transaction what the rescue of the
   * node's stream goes by (see {@linkcode #rescue}): `P gone:ID`, how far the node can have
   * read its stream (its group's last id; undefined without the group), the entries it read
   * with shared deliveries not finished (pending in the group, see {@linkcode holdEntry}), and
   * whether it took its QoS 2 messages before their first PUBLISH ({@linkcode take}).
   */
  async #readDead(node: string, died: boolean, served: boolean): Promise<{
    entries: { id: string; index: number; frame: MessageFrame }[];
    gone: Record<string, string>;
    read: string | undefined;
    unfinished: ReadonlySet<string>;
    takes: boolean;
  }> {
    // A node that had not heard of the departure yet wrote to the node's stream after the reaping
    // script renamed it: read that too, unless the node registered again (it reads it itself).
    const live = `${this.#prefix}s:${node}`;
    const deadKey = `${this.#prefix}dead:${node}`;
    // In one transaction: a node registering again as a new incarnation moves its live stream's
    // entries to its dead stream meanwhile (REGISTER_SCRIPT), and read apart they could be missed.
    const multi = this.#cmd.multi()
      .sismember(`${this.#prefix}nodes`, node)
      .xrangeBuffer(deadKey, "-", "+")
      .xrangeBuffer(live, "-", "+");
    if (served) {
      multi.hgetall(`${this.#prefix}gone:${node}`).xinfo("GROUPS", deadKey)
        .xpending(deadKey, "r", "-", "+", MAX_UNFINISHED)
        .zscore(`${this.#prefix}passed:${node}`, "~");
    }
    const replies = await multi.exec();
    if (replies === null) throw new Error("the read of a departed node's streams was aborted");
    // XINFO and XPENDING fail on a stream that does not exist (nothing was sent there), or
    // without the group: no group, then.
    for (const [error] of replies.slice(0, 4)) if (error) throw error;
    const [registered, dead, late, gone, groups, pending, takes] = replies.map(([, reply]) =>
      reply
    ) as [
      number,
      [Buffer, Buffer[]][],
      [Buffer, Buffer[]][],
      Record<string, string> | undefined,
      unknown,
      unknown,
      string | null | undefined,
    ];
    // (It has a lifetime: the leaving or reaping script left it with one, see `release_all`.)
    const entries = registered === 1 && !died ? dead : [...dead, ...late];
    const out: { id: string; index: number; frame: MessageFrame }[] = [];
    for (const [id, fields] of entries) {
      const payload = fields[1];
      if (payload === undefined) continue;
      let frames: BusFrame[];
      try {
        frames = decodeFrames(
          new Uint8Array(payload.buffer, payload.byteOffset, payload.length),
          this.#texts,
        );
      } catch (error) {
        this.#malformed(`entry ${id} of node ${node}'s stream`, error);
        continue;
      }
      for (let index = 0; index < frames.length; index++) {
        const frame = frames[index]!;
        if (frame.type === "message") out.push({ id: id.toString(), index, frame });
      }
    }
    const unfinished = new Set<string>();
    if (Array.isArray(pending)) {
      for (const p of pending) if (Array.isArray(p)) unfinished.add(String(p[0]));
    }
    return {
      entries: out,
      gone: gone ?? {},
      read: lastDelivered(groups),
      unfinished,
      takes: takes !== null && takes !== undefined,
    };
  }

  /**
   * Whether a node's liveness key is still there: a node that died keeps it until its TTL runs out.
   *
   * @param node a node id
   * @returns false once the node is dead (or left)
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async alive(node: string): Promise<boolean> {
    return await this.#cmd.exists(`${this.#prefix}alive:${node}`) === 1;
  }

  /**
   * The client ids of the sessions some node owns.
   *
   * @returns the client ids
   * @throws {Error} (as a rejection) If Redis is unreachable.
   */
  async ownedSessions(): Promise<Set<string>> {
    this.#claims.flush();
    return new Set(await this.#cmd.hkeys(`${this.#prefix}owner`));
  }

  /**
   * The node owning a session.
   *
   * @param clientId the client id
   * @returns its node id, or `undefined`
   */
  async ownerOf(clientId: string): Promise<string | undefined> {
    this.#claims.flush();
    return await this.#cmd.hget(`${this.#prefix}owner`, clientId) ?? undefined;
  }

  /**
   * A script's answer; refused because this node's incarnation was reaped, `undo` is called and
   * the heartbeat run at once (it registers again, after the `fenced` event) rather than at its
   * time.
   */
  async #fenced<T>(reply: Promise<T>, undo?: () => void): Promise<T> {
    try {
      return await reply;
    } catch (error) {
      if (isFencedError(error)) {
        undo?.();
        this.heartbeat().catch(() => {});
      }
      throw error;
    }
  }

  /**
   * The timer's heartbeat, one at a time: a tick while the previous one is unanswered (Redis
   * stalled, a long script ahead of it) starts none, else each tick's would wait in Redis and run
   * back to back once it answers; the next starts as soon as that one settles, so that the
   * liveness key is refreshed as soon as Redis runs scripts again. A heartbeat whose connection
   * closes settles then (`maxRetriesPerRequest: 0` rejects the commands in flight).
   */
  #beat(): void {
    if (this.#beating) {
      this.#beatDue = true;
      return;
    }
    this.#beating = true;
    // Its script's answer, not the registration it may start (not ready meanwhile, the ticks'
    // heartbeats return at once).
    this.#heartbeat().then((after) => {
      after?.resync.catch(() => {});
    }, () => {}).finally(() => {
      this.#beating = false;
      if (!this.#beatDue) return;
      this.#beatDue = false;
      this.#beat();
    });
  }

  /**
   * Refreshes this node's liveness key and reaps nodes whose key expired (`nodeLeft` events).
   * Run by the heartbeat timer (one at a time); tests call it directly.
   *
   * @returns settled when done (or at once when Redis is away)
   */
  async heartbeat(): Promise<void> {
    await (await this.#heartbeat())?.resync;
  }

  /**
   * {@linkcode heartbeat}, settled once its script answered (or at once when Redis is away): the
   * registration it may start then (`resync`) is not waited for, which waits for other steps.
   */
  async #heartbeat(): Promise<{ resync: Promise<void> } | undefined> {
    const waiting = this.#beatWaiters;
    this.#beatWaiters = [];
    try {
      return await this.#heartbeatRun();
    } finally {
      for (const resolve of waiting) resolve();
    }
  }

  /**
   * Settles once a heartbeat that starts after this call has run: its script answered (the nodes
   * it reaped announced, their sessions' adoption begun here), or it found Redis away or this
   * node not ready; or at {@linkcode close}. Never rejects. A provisional session is settled after
   * it (`ClusterSessions.settleProvisional`), so that a dead owner of its client's session is
   * reaped first and the session adopted (here, or by another node) rather than given way to a
   * dead node.
   *
   * @returns settled after the next heartbeat
   */
  afterHeartbeat(): Promise<void> {
    if (this.#closing !== undefined) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#beatWaiters.push(resolve);
    return promise;
  }

  /** The waiters of {@linkcode afterHeartbeat}. */
  #beatWaiters: (() => void)[] = [];

  async #heartbeatRun(): Promise<{ resync: Promise<void> } | undefined> {
    if (this.#closing !== undefined) return;
    if (!this.#ready) {
      // A resync that failed with Redis connected (a command refused: an ACL, memory full, a
      // script error) would otherwise leave the node not ready until a reconnection.
      if (this.#resyncFailed) {
        this.#resyncFailed = false;
        this.#maybeResync();
      }
      return;
    }
    this.#sweepAhead(Date.now());
    this.#sweepDeparted(this.#clock());
    this.#trimQuiet();
    this.#ackStale();
    this.#sendTakes();
    let reply: [number, string[], unknown[], unknown, number, number, number, number];
    try {
      this.#claims.flush();
      reply = await this.#cmd.amqttBus_heartbeat(
        this.#prefix,
        this.nodeId,
        String(this.#ttl),
        this.#incarnation,
        this.#epoch ?? "",
        String(this.#gen),
        String(this.#nodeGen()),
      ) as typeof reply;
    } catch {
      return;
    }
    const [registered, members, reaped, epoch, gen, rolledBack, ownGen, redisMs] = reply;
    this.#gen = Number(gen);
    this.#noteRedisClock(redisMs);
    if (rolledBack === 1) this.#announceEmptied();
    // Counted after the script found the epoch gone or another (Redis lost its data, or this
    // script emptied it): a value of the new data, not to be raised by the old ones.
    if (this.#epoch !== undefined && String(epoch) !== this.#epoch) this.#ownGen = Number(ownGen);
    else this.#ownCounted(Number(ownGen));
    this.#answeredAt = this.#clock();
    if (rolledBack === 1) this.#rolledBack = true;
    for (let i = 0; i < reaped.length; i += 2) {
      const frame: LeftFrame = {
        type: "left",
        origin: this.nodeId,
        node: String(reaped[i]),
        graceful: false,
        clients: (reaped[i + 1] as string[]).map(String).sort(),
      };
      this.#cmd.publish(`${this.#prefix}ctl`, buf(encodeFrame(frame))).catch(() => {});
      // Its shared groups as known when it died, before its interest changes to a departed one's.
      const groups = new Set(this.#remote.filtersOf(frame.node));
      this.#nodeLeft(frame);
      this.#rescue(frame.node, groups);
      this.#rescues.set(frame.node, { at: this.#clock(), groups });
    }
    this.#sendPasses(true);
    // A node reaped by another one is announced on the control channel; one still missing a
    // liveness TTL after a heartbeat first found it so had its announcement lost (Redis was
    // away): it left all the same. Not sooner: after Redis lost its data (or was emptied after
    // going back to older data) a live node registers again only at its next heartbeat, or its
    // reconnection, and the heartbeats that waited behind a long script (that emptying) answer
    // milliseconds apart. Taken for departed, its interest would be served in its dead stream,
    // which it never reads: what was forwarded to it meanwhile would be lost.
    const live = new Set(members.map(String));
    const now = this.#clock();
    for (const node of [...this.#known]) {
      const since = this.#missing.get(node);
      if (live.has(node)) this.#missing.delete(node);
      else if (since === undefined) this.#missing.set(node, now);
      else if (now - since >= this.#ttl) this.#nodeLeft({ node, graceful: false, clients: [] });
    }
    // Redis lost its data though no connection closed (FLUSHALL, a replica without the data
    // promoted behind the same address, or one gone back to older data, which the script
    // emptied): the cluster's epoch is gone or another. Registered
    // again at once, which reports the loss (`dataLost`) as a reconnection to an empty Redis
    // does, so that the store and the retained set are written again too.
    const lost = this.#epoch !== undefined && String(epoch) !== this.#epoch;
    if (registered === 0 || lost) {
      // This node was found dead (paused longer than the TTL) and reaped: it lets go of its
      // sessions (the `fenced` event) and registers again; or Redis lost its data.
      this.#ready = false;
      return { resync: this.#queueResync() };
    }
  }

  #nodeLeft(event: { node: string; graceful: boolean; clients: string[] }): void {
    // Its interest stays a while: what matches it goes to its dead stream, which the nodes
    // adopting its sessions read once they have announced the sessions' filters. Its shared
    // groups go on with their other members; one that has none gets its messages there.
    const filters = this.#remote.filtersOf(event.node);
    this.#missing.delete(event.node);
    if (!this.#known.delete(event.node)) {
      if (!this.#departed.has(event.node)) this.#remote.drop(event.node);
      return;
    }
    this.#remote.drop(event.node);
    if (filters.length > 0) {
      this.#remote.add(event.node, filters);
      this.#remote.shares.fallback(event.node);
      this.#departed.set(event.node, this.#clock());
    }
    // A node closing adopts nothing: its leaving script may have run already (an adoption then
    // is refused as fenced), and the nodes that stay adopt the departed node's sessions.
    if (this.#closing !== undefined) return;
    this.#emit("nodeLeft", { node: event.node, graceful: event.graceful, clients: event.clients });
  }

  /** Forgets the interest of nodes that departed more than {@linkcode DEPARTED_GRACE_MS} ago. */
  #sweepDeparted(now: number): void {
    // Kept for a rescue to come only (before it starts below: it reads them when it has run).
    for (const [node, { at }] of this.#lostRescued) {
      if (!this.#rescues.has(node) && now - at >= DEPARTED_GRACE_MS) this.#lostRescued.delete(node);
    }
    // Nodes that had not heard of the departure wrote to its streams meanwhile: once more.
    for (const [node, { at, groups }] of this.#rescues) {
      if (now - at < DEPARTED_GRACE_MS) continue;
      this.#rescues.delete(node);
      this.#rescue(node, groups);
    }
    for (const [node, at] of this.#departed) {
      if (now - at < DEPARTED_GRACE_MS) continue;
      this.#departed.delete(node);
      if (!this.#known.has(node)) this.#remote.drop(node);
    }
  }

  #nodeSeen(node: string): void {
    this.#departed.delete(node);
    this.#rescues.delete(node); // back: it reads its stream itself
    if (node === this.nodeId || this.#known.has(node)) return;
    this.#known.add(node);
    this.#emit("nodeJoined", { node });
  }

  #onFrame(channel: string, bytes: Uint8Array): void {
    let frames: BusFrame[];
    try {
      frames = decodeFrames(
        new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        this.#texts,
      );
    } catch (error) {
      this.#malformed(`frame on ${channel}`, error);
      return;
    }
    for (let i = 0; i < frames.length; i++) {
      this.#frameIndex = i;
      const frame = frames[i]!;
      try {
        this.#onOneFrame(channel, frame);
      } catch (error) {
        // Data the checks let through that this node could not use: that frame only, not the
        // rest of the batch nor the reader (a throw here would end the subscriber's connection
        // handler or the stream's read loop).
        this.#malformed(`${frame.type} frame from node ${frame.origin}`, error);
      }
    }
  }

  #onOneFrame(channel: string, frame: BusFrame): void {
    if (channel === `${this.#prefix}ctl`) {
      if (frame.origin === this.nodeId && frame.type !== "left" && frame.type !== "retained") {
        return;
      }
      if (this.#buffered !== undefined) this.#buffered.push(frame);
      else this.#control(frame);
      return;
    }
    if (frame.type === "message") {
      this.#stats.received++;
      this.#emit("message", frame);
    } else if (frame.type === "takeover") {
      if (this.#owned.delete(frame.clientId)) this.forgetPublisher(frame.clientId);
      this.#emit("takeover", { clientId: frame.clientId, node: frame.origin });
    } else if (frame.type === "subscribed") {
      this.#emit("subscribed", {
        clientId: frame.clientId,
        node: frame.origin,
        subscriptions: frame.subscriptions,
      });
    } else if (frame.type === "fence") {
      const fence = this.#fences.get(frame.id);
      if (fence !== undefined && fence.waiting.delete(frame.origin) && fence.waiting.size === 0) {
        fence.done();
      }
    } else if (frame.type === "handoff") {
      this.#emit("handoff", {
        clientId: frame.clientId,
        node: frame.origin,
        marks: frame.marks ?? {},
      });
    }
  }

  #control(frame: BusFrame): void {
    switch (frame.type) {
      case "interest":
        this.#nodeSeen(frame.origin);
        if (frame.add) this.#remote.add(frame.origin, frame.filters);
        else this.#remote.remove(frame.origin, frame.filters);
        return;
      case "sync":
        this.#nodeSeen(frame.origin);
        this.#remote.replace(frame.origin, frame.filters);
        // Its member counts were written before its registration sent this frame.
        this.#cmd.hgetall(`${this.#prefix}members:${frame.origin}`).then((counts) => {
          for (const [filter, count] of Object.entries(counts)) {
            this.#remote.shares.weigh(frame.origin, filter, Number(count));
          }
        }, () => {});
        return;
      case "members":
        this.#remote.shares.weigh(frame.origin, frame.filter, frame.count);
        return;
      case "left":
        if (frame.node === this.nodeId) {
          // Reaped by another node while alive (a long pause): register again.
          if (this.#closing === undefined && this.#ready) {
            this.#ready = false;
            this.#queueResync().catch(() => {});
          }
          return;
        }
        if (frame.origin === this.nodeId) return; // reaped here, already reported
        if (frame.origin === frame.node && !frame.graceful) {
          // A node restarted at once under its id retired its previous run, which died: that
          // run's streams are rescued as by a reaper, by one node (the first by id known here).
          const groups = new Set(this.#remote.filtersOf(frame.node));
          this.#nodeLeft(frame);
          const others = [this.nodeId, ...this.#known].filter((n) => n !== frame.node);
          if (others.sort()[0] === this.nodeId) this.#rescue(frame.node, groups);
          return;
        }
        this.#nodeLeft(frame);
        return;
      case "retained":
        this.#emit("retained", frame);
        return;
      case "emptied":
        // After the registration in progress, if any (this frame waited for its end): a node
        // registered before the emptying learns of it now, not at its next heartbeat, which may
        // be minutes away (logins resuming a session are refused as busy until it registers).
        background(
          this.#syncing.then(() => {
            if (this.#ready) this.#checkNow();
          }),
          "the check after an emptied frame",
          this.#fault,
        );
        return;
      case "fence": {
        // Answered behind what waits for that node, in the same stream.
        this.#enqueue(
          frame.origin,
          encodeFrame({ type: "fence", origin: this.nodeId, id: frame.id }),
        );
        this.#queued++;
        this.#urgent = true;
        this.#scheduleFlush();
        return;
      }
    }
  }

  /**
   * Runs the heartbeat now, rather than at its turn (one at a time): this node may have been
   * reaped, or Redis lost or emptied its data; the heartbeat finds out which and registers it.
   */
  #checkNow(): void {
    if (this.#checkRegistration !== undefined) return;
    const check = this.heartbeat().finally(() => {
      this.#checkRegistration = undefined;
    });
    this.#checkRegistration = check;
    background(check, "the registration check", this.#fault);
  }

  /**
   * This node's script found Redis gone back to older data and emptied the cluster's keys: the
   * other nodes are told at once (an `emptied` frame on the control channel), so that each
   * registers again now rather than at its next heartbeat. Lost with the connection, each
   * learns at its heartbeat, or as its stream reader finds its stream gone.
   */
  #announceEmptied(): void {
    const frame = buf(encodeFrame({ type: "emptied", origin: this.nodeId }));
    this.#cmd.publish(`${this.#prefix}ctl`, frame).catch(() => {});
  }

  #lost(): void {
    // Replies waiting for forwards go out: Redis may not come back soon (see publish).
    this.#acks.release();
    // The stream connections follow the command connection (to another server, after a failover),
    // opened again by the resync, which does not wait for an attempt made before (it may wait for
    // a server that was lost until its connect timeout).
    this.#streams?.reset();
    this.#streamsEpoch++;
    this.#streamsOpening = undefined;
    this.#cancelStreamRetry();
    // Trimmed by the clock of the server that answers next (after a failover, one whose clock
    // may be behind would trim unread entries): the first XADD after this trims nothing.
    this.#redisMs = 0;
    if (this.#closing !== undefined) return;
    if (!this.#ready && this.#everReady === false) return;
    if (this.#ready) {
      this.#ready = false;
      const error = this.#lastError;
      this.#lastError = undefined;
      this.#emit(
        "state",
        error === undefined ? { state: "disconnected" } : { state: "disconnected", error },
      );
    }
    // Reported with Redis's loss; the resync's attempt tells whether they are back.
    this.#streamsDown = false;
  }

  #maybeResync(): void {
    if (this.#closing !== undefined || this.#ready) return;
    if (this.#cmd.status !== "ready" || this.#sub.status !== "ready") return;
    if (!this.#everReady) return; // the first sync is run by start()
    this.#queueResync().catch(() => {});
  }

  #queueResync(): Promise<void> {
    this.#syncing = this.#syncing.then(() => this.#resync()).catch((error) => {
      // Tried again at the next heartbeat, when Redis is still connected (no reconnection would).
      this.#resyncFailed = true;
      if (error instanceof RedisVersionError) {
        if (error.message !== this.#tooOldTold) {
          this.#tooOldTold = error.message;
          this.#emit("state", { state: "redisTooOld", error: error.message });
        }
        // With other servers listed, the next one (the old one may be a replica left behind).
        if (this.#failover) this.#moveOn();
        return;
      }
      // Connected to a replica (an alternate URL not promoted yet): reconnect, to the next one.
      if (/READONLY/.test(String((error as Error)?.message))) {
        this.#lastError = (error as Error).message;
        this.#moveOn();
      }
    });
    return this.#syncing;
  }

  /** Reconnects every connection to the next server of the `redis` list. */
  #moveOn(): void {
    for (const redis of [this.#cmd, this.#sub, this.#reader]) {
      if (redis === undefined) continue;
      (redis as unknown as { connector?: GuardedConnector }).connector?.skipCurrent();
      redis.disconnect(true);
    }
  }

  /**
   * Notes whether Redis lost the cluster's data since this node's last registration: the first
   * node to register sets `P epoch` to a random token (SET NX), which lasts as long as Redis keeps
   * its data; gone or another after a reconnect means Redis was restarted without its data (or
   * emptied). A Redis only paused or unreachable for a while, a node taken for dead or a cluster
   * that deleted keys keeps it.
   */
  async #checkEpoch(): Promise<void> {
    const key = `${this.#prefix}epoch`;
    await this.#cmd.set(key, crypto.randomUUID(), "NX");
    const epoch = await this.#cmd.get(key);
    if (this.#epoch !== undefined && epoch !== this.#epoch) this.#dataLost = true;
    this.#epoch = epoch ?? undefined;
  }

  /** Registers this node with its interest and owned sessions, then reads the others' interest. */
  async #resync(): Promise<void> {
    if (this.#closing !== undefined || this.#ready) return;
    const reconnected = this.#everReady;
    const reported = this.#streamsDown;
    if (reconnected) {
      // Checked at start (`start`), and again at each return: the server may be another one now
      // (a failover, the next URL), older than the scripts need. Nothing is run on it then.
      await checkRedisVersion(this.#cmd);
    }
    // The stream connections first: at start a failure there fails the start (unless they move
    // to ioredis); later the bus goes on without them, and the retries open them.
    const streamError = await this.#openStreams();
    if (streamError !== undefined && !this.#everReady) {
      throw new Error(`Cannot open the stream connections: ${streamError.message}`, {
        cause: streamError,
      });
    }
    await this.#sub.subscribe(`${this.#prefix}ctl`, `${this.#prefix}to:${this.nodeId}`);
    this.#buffered = [];
    try {
      const filters = [...this.#interest.keys()];
      const sync = buf(encodeFrame({ type: "sync", origin: this.nodeId, filters }));
      await this.#writeMembers();
      this.#claims.flush();
      // Releases that failed while Redis was away (not claimed here again since), before this
      // node registers: another node's registration must not find it listed as their owner.
      // A node that claimed one meanwhile found this node as its owner, and waits for its
      // handoff; the takeover notice it sent was lost (this node was not subscribed): answered
      // below, as for the sessions taken over meanwhile.
      const claimedAway: [string, string][] = [];
      for (const clientId of [...this.#unreleased]) {
        if (!this.#owned.has(clientId)) {
          const owner = await this.#cmd.amqttBus_release(this.#prefix, this.nodeId, clientId);
          const node = this.#releasedAgain(clientId, owner);
          if (node !== undefined) claimedAway.push([clientId, node]);
        }
        this.#unreleased.delete(clientId);
      }
      // This node's own counter as its registration answered it, kept once the epoch is known.
      let registeredGen = 0;
      const epochBefore = this.#epoch;
      const register = async (incarnation: string, fresh: boolean) => {
        const [registered, lost, gen, rolledBack, ownGen, redisMs] = await this.#cmd
          .amqttBus_register(
            this.#prefix,
            this.nodeId,
            String(this.#ttl),
            sync,
            incarnation,
            // A starting node's first registration is refused while a live node of another cluster
            // protocol version is registered, checked in the script that registers (`2`); a
            // running node registering again (after a Redis outage, a reap) is not: it runs already.
            fresh ? (this.#everReady ? "1" : "2") : "0",
            this.#epoch ?? "",
            String(this.#gen),
            String(this.#nodeGen()),
            String(filters.length),
            ...filters,
            ...this.#owned,
          ) as [number, unknown[], number, number, number, number?];
        if (registered === 2) throw new ProtocolRefusal(foreignNodes(lost));
        this.#gen = Number(gen);
        this.#noteRedisClock(redisMs);
        registeredGen = Number(ownGen);
        this.#answeredAt = this.#clock();
        // Found gone back and emptied: `#checkEpoch` below finds the epoch gone (`dataLost`).
        if (rolledBack === 1) {
          this.#rolledBack = true;
          this.#announceEmptied();
        }
        return registered === 1 ? lost.map(String) : undefined;
      };
      let lost = await register(this.#incarnation, this.#newIncarnation);
      if (lost === undefined) {
        // Reaped while it was only paused: every session it owned went to other nodes, and its
        // writes are refused. It lets go of them all (the listeners drop them unwritten), then
        // registers again as a new incarnation owning nothing. Writes until then still carry the
        // reaped incarnation (refused, and known to be from before the registration).
        const owned = this.#owned.size;
        this.#owned.clear();
        this.#emit("fenced", { owned });
        const next = crypto.randomUUID();
        lost = (await register(next, true))!;
        this.#incarnation = next;
        // Its shares until the reap are counted in `P departed`: this one shares what it counts
        // from here (what it counted between its last share and now is not counted, as for a
        // node that died).
        this.#countersBefore = { ...this.#counters };
      }
      this.#newIncarnation = false;
      await this.#checkEpoch();
      // Under another epoch (Redis lost its data): the new data's counter, not raised by the old.
      if (this.#epoch !== epochBefore) this.#ownGen = registeredGen;
      else this.#ownCounted(registeredGen);
      const snapshot = await this.#cmd.amqttBus_snapshot(this.#prefix, this.nodeId) as unknown[];
      const seen = new Set<string>();
      for (let i = 0; i < snapshot.length; i += 2) {
        const node = String(snapshot[i]);
        seen.add(node);
        this.#remote.replace(node, (snapshot[i + 1] as string[]).map(String));
        this.#nodeSeen(node);
      }
      await this.#readMembers([...seen]);
      // After a Redis restart, a node may not have registered again yet: keep what is known of
      // it; the heartbeats decide whether it is gone.
      for (const node of this.#known) {
        if (!seen.has(node) && !this.#missing.has(node)) this.#missing.set(node, this.#clock());
      }
      const buffered = this.#buffered;
      this.#buffered = undefined;
      for (const frame of buffered) {
        try {
          this.#control(frame);
        } catch (error) {
          this.#malformed(`${frame.type} frame from node ${frame.origin}`, error);
        }
      }
      // Sessions another node claimed while this one was away: taken over.
      for (const clientId of lost) {
        this.#owned.delete(clientId);
        const node = (await this.ownerOf(clientId)) ?? "";
        this.#emit("takeover", { clientId, node, missed: true });
      }
      for (const [clientId, node] of claimedAway) {
        this.#emit("takeover", { clientId, node, missed: true });
      }
    } catch (error) {
      this.#buffered = undefined;
      if (error instanceof ProtocolRefusal) {
        // Not registered: nothing of the cluster's frames concerns it while it waits.
        await this.#sub.unsubscribe(`${this.#prefix}ctl`, `${this.#prefix}to:${this.nodeId}`);
      }
      throw error;
    }
    // The grace of departed nodes counts from here again: their adopters may not have announced
    // the sessions' filters while Redis was away (they do at their own resync).
    const now = this.#clock();
    for (const node of this.#departed.keys()) this.#departed.set(node, now);
    this.#ready = true;
    this.#everReady = true;
    this.#tooOldTold = undefined;
    // Takes that waited for Redis go now, not at the next heartbeat (a member's delivery waits).
    this.#sendTakes();
    const dataLost = this.#dataLost;
    const rolledBack = this.#rolledBack;
    this.#dataLost = false;
    this.#rolledBack = false;
    if (this.#streamsDown) {
      // Redis is back, and they are not: the retries go on.
      this.#retryStreams();
      this.#emit("state", { state: "ready", reconnected, dataLost, rolledBack });
      if (!reported) {
        this.#emit("state", { state: "streamsLost", error: streamError?.message ?? "" });
      }
      return;
    }
    this.#scheduleFlush();
    this.#emit("state", { state: "ready", reconnected, dataLost, rolledBack });
  }

  /**
   * Leaves the cluster: releases this node's sessions and interest in Redis (announced to the
   * others as a graceful departure) and closes its connections. Idempotent.
   *
   * @returns settled when closed
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /**
   * Closes its connections without leaving the cluster, as a crash would: the other nodes
   * find this node dead when its liveness key expires, and reap it. Idempotent.
   *
   * @returns settled when closed
   */
  abandon(): Promise<void> {
    this.#closing ??= this.#shutdown(false);
    return this.#closing;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(leave = true): Promise<void> {
    this.#timers.clearInterval(this.#heartbeatTimer);
    for (const resolve of this.#beatWaiters.splice(0)) resolve();
    clearTimeout(this.#ackTimer);
    this.#cancelStreamRetry();
    // The forwards and passes go before the leaving script renames this node's stream.
    if (leave) {
      this.#sendPasses(true);
      await Promise.all([this.#forwardsWritten(), ...this.#passing]);
      // Those that were passed on as often as at once meanwhile go now.
      this.#sendPasses(true);
      await Promise.all(this.#passing);
      // Nobody rescues the stream of a node that left: what found no member goes, counted.
      for (const pass of this.#passes.values()) this.#lose(pass);
    } else if (this.#outbox.size > 0) this.#flush();
    await this.#syncing;
    if (leave && this.#cmd.status === "ready") {
      try {
        this.#claims.flush();
        const clients = await this.#cmd.amqttBus_leave(this.#prefix, this.nodeId) as string[];
        const frame: LeftFrame = {
          type: "left",
          origin: this.nodeId,
          node: this.nodeId,
          graceful: true,
          clients: clients.map(String).sort(),
        };
        await this.#cmd.publish(`${this.#prefix}ctl`, buf(encodeFrame(frame)));
      } catch {
        // Redis went away: the others reap this node when its liveness key expires.
      }
    }
    this.#ready = false;
    this.#acks.release();
    // QUIT would wait behind the reader's blocking XREAD: that connection is dropped instead.
    await Promise.all([
      closeRedis(this.#cmd),
      closeRedis(this.#sub),
      this.#reader === undefined ? undefined : closeRedis(this.#reader, { quit: false }),
      this.#streams?.close(),
      this.#abandoned,
    ]);
    await this.#reading;
  }
}
