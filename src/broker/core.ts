/**
 * The broker's protocol logic for MQTT 3.1, 3.1.1 and 5.0: CONNECT and sessions, subscriptions,
 * routing, retained messages, wills, QoS flows and keepalive. It touches no socket, timer, clock
 * or promise. Inputs are calls (`attach`, `handle`, `decided`, `tick`, `detach`, `publish`, and
 * the shell's back-pressure reports), time comes in as `now` arguments, and every output is an
 * action appended to {@linkcode BrokerCore.actions} (send a packet, deliver a PUBLISH, close, ask
 * the plugins, set a deadline, journal a change), which the shell drains after each call, so every
 * rule can be tested without I/O. `src/broker/connection.ts` and `src/broker/action_runner.ts`
 * are the I/O shell around it.
 *
 * @module
 */

import { DecisionTable } from "./_decision_table.ts";
import { CONNACK_NEW, CONNACK_PRESENT, PINGRESP } from "./_shared_packets.ts";
import {
  ConnackReturnCode,
  PacketType,
  REASON_CODE_PACKETS,
  ReasonCode,
} from "../packet/constants.ts";
import type { QoS } from "../packet/constants.ts";
import type {
  AckPacket,
  ConnackPacket,
  ConnectPacket,
  Packet,
  Properties,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
  UserProperty,
  Will,
} from "../packet/types.ts";
import {
  exceedsTopicLength,
  exceedsTopicLevels,
  MAX_TOPIC_LENGTH,
  RetainedStore,
  SubscriptionTree,
  validateTopicFilter,
} from "../topic/mod.ts";
import type { Delivery, ShareStrategy } from "../topic/mod.ts";
import type { ConnectionInfo } from "../transport/types.ts";
import type { StoreMutation } from "../store/mutation.ts";
import {
  BrokerMessage,
  copiesWrittenOut,
  copyOutRecords,
  forgetRecords,
  ownProperties,
} from "./message.ts";
import { Session } from "./session.ts";
import type {
  DeliveryCounters,
  ReceiveWait,
  SessionOptions,
  SessionSubscription,
} from "./session.ts";
import { receiveAck, receivePublish, receivePubrel } from "../session/qos_flow.ts";
import { ActionQueue } from "./actions.ts";
import { type Link, LinkState } from "./link.ts";
import {
  type BrokerEvents,
  type ClientInfo,
  DEFAULT_HOOK_TIMEOUT,
  type Logger,
  type PolicyHost,
} from "./policy.ts";
import { LoginThrottle, sourceOf } from "./login_throttle.ts";
import { SessionTable } from "./_session_table.ts";
import { LogSummary } from "./log_summary.ts";
import { WarningLog } from "./warning_log.ts";
import { QueueDropLog } from "./queue_drop_log.ts";
import { countDrop, DROP_REASONS, type DropReason, emptyDropCounts } from "./drop_counters.ts";
import type { LogFields } from "../plugins/types.ts";
import type { RefusalCounters, RefusalKind, StateLimits } from "./limits.ts";
import { MemoryBudget, NODE_BYTES, SESSION_BYTES, SUBSCRIPTION_BYTES } from "./memory_budget.ts";
import { RetainedFeeds } from "./retained_feed.ts";
import { type ClientIdSource, clientIdSource } from "./client_ids.ts";
import { ExpiryQueue } from "./expiry_queue.ts";
import { connackReturnCode, toDecision } from "./decision.ts";
import type { Decision, DecisionAnswer, DecisionRequest } from "./decision.ts";
import { redeliverShared } from "./shared_redelivery.ts";
import type { DrainState, FeedTarget, RetainedFeed } from "./retained_feed.ts";
import type { StoredState } from "../store/stored_state.ts";
import { Journal } from "./journal.ts";
import { replaceSession, rewriteStore } from "./store_rewrite.ts";
import { CLIENTS_MAXIMUM, restoreState } from "./restore.ts";
import { type ConnectRefusal, connectRefusalCode } from "./connect_refusal.ts";
import {
  connackProperties,
  keepAliveFor,
  type ServerCapabilities,
  SESSION_NEVER_EXPIRES,
  sessionExpiryFor,
} from "./connack_properties.ts";
import { Link5 } from "./link5.ts";
import {
  authProperties,
  enhancedAuth,
  type EnhancedAuthState,
  serverAuth,
} from "./enhanced_auth.ts";
import { willDelayOf, willMessage } from "./will_message.ts";
import { forwarded5, retained5 } from "./deliver5.ts";
import { MatchOptions, plainMatch, routeMixed } from "./mixed_route.ts";
import { checkInboundPublish } from "./inbound_publish.ts";
import { expiryDeadline, isExpired } from "./message_expiry.ts";
import { grantedQos, publishAckCode, subscribeRefusalCode, unsubscribeCode } from "./ack_codes.ts";
import { withProblemInformation } from "./problem_information.ts";
import { unsupportedFeature } from "./feature_limits.ts";
import { AckProblems } from "./ack_problems.ts";
import { redirect } from "./server_reference.ts";
import { unsupportedFilter, unsupportedSubscribe } from "./subscribe_features.ts";
import { sendsRetained } from "./forward.ts";
import { gateShares, type ShareGate } from "./_share_gate.ts";
import { PublishFlow, type PublishFlowOptions } from "./publish_flow.ts";
import { SlotSet } from "./_slot_set.ts";
import { LinkClock, NEVER, shifted } from "./_link_clock.ts";

/** Broker limits the core enforces. */
export interface CoreOptions {
  /** Outgoing QoS 1/2 messages in flight per session (`max_inflight`). */
  maxInflight: number;
  /** Messages queued behind a session's window before the oldest is dropped. */
  maxQueuedMessages: number;
  /**
   * Seconds a connection may take to send CONNECT and have it checked: the plugins' decision on
   * its credentials and will, and an MQTT 5.0 enhanced authentication exchange (which the client
   * drives). Not the session's preparation (see {@linkcode CoreOptions.prepareTimeout}).
   */
  connectTimeout: number;
  /**
   * Seconds a login's session preparation (the policy's `prepareLogin`: a cluster node loading
   * the client's session, waiting for its previous owner's handoff) may take once the plugins
   * accepted the CONNECT without progress; it replaces the connect timeout then. Each progress
   * the preparation reports ({@linkcode BrokerCore.progressed}: a part of a long session read)
   * counts it again from then. Past it the CONNECT is refused as server busy (0x89; 3.1/3.1.1:
   * return code 3). No absolute cap on the whole: a read's parts are finite and fixed at its
   * start (ARCHITECTURE.md, "A large session is read in parts"), and a cap would refuse a long
   * queue on every try. Default `connectTimeout`.
   */
  prepareTimeout?: number;
  /**
   * Seconds to keep an offline persistent session, unless its CONNECT asked for another
   * interval; undefined keeps it forever.
   */
  sessionExpiryInterval: number | undefined;
  /** Extra seconds added to 1.5 x keepalive before a silent client is dropped (aMQTT's key). */
  timeoutDisconnectDelay: number;
  // Under attack (see LoginThrottle and LogSummary).
  /** Failed or unchecked logins one source may have in a burst; 0 = no limit. Default 20. */
  maxLoginFailures?: number;
  /** Seconds for a source's login budget to come back. Default 60. */
  loginFailureWindow?: number;
  /** Seconds between summary log lines (refused logins, dropped messages). Default 60. */
  logSummaryInterval?: number;
  /** Limits on the state clients can make the broker hold; a missing or 0 limit is off. */
  limits?: Partial<StateLimits>;
  /** The memory budget in bytes (`max_memory`); missing or 0 for none. */
  maxMemory?: number;
  /** How a shared subscription's group picks the member for a message. Default round robin. */
  shareStrategy?: ShareStrategy;
  /**
   * What the broker announces to MQTT 5.0 clients in CONNACK and enforces on them; default: no
   * limit beyond the 3.1.1 ones (Receive Maximum 65535, no topic aliases).
   */
  capabilities?: ServerCapabilities;
  /**
   * Milliseconds a plugin has to answer one step of enhanced authentication before the login
   * (CONNACK 0x88) or re-authentication (DISCONNECT 0x89) fails; 0 for no limit. Default
   * {@linkcode DEFAULT_HOOK_TIMEOUT}, the plugin host's `hookTimeout` for the other hooks.
   */
  hookTimeout?: number;
  /**
   * Flow control from subscribers' queues back to publishers' reads (`publish_flow.ts`); off when
   * missing.
   */
  flowControl?: PublishFlowOptions;
}

/** Counters for `$SYS` and for inspection. */
export interface BrokerStats extends DeliveryCounters, RefusalCounters {
  /** Bytes read from clients. */
  bytesReceived: number;
  /** Bytes written to clients. */
  bytesSent: number;
  /** Packets received from clients. */
  messagesReceived: number;
  /** Packets sent to clients. */
  messagesSent: number;
  /** PUBLISH packets received from clients. */
  publishReceived: number;
  /** Clients connected now. */
  clientsConnected: number;
  /** The most clients connected at once since start (never reset). */
  clientsMaximum: number;
  /** Connections accepted since start. */
  clientsTotal: number;
  /** PUBLISH packets received from clients, by QoS (index 0, 1, 2). */
  publishReceivedByQos: [number, number, number];
  /** Payload bytes of the PUBLISH packets received, by QoS. */
  payloadBytesReceivedByQos: [number, number, number];
  /** PUBLISH packets sent to clients, by QoS (resends included). */
  publishSentByQos: [number, number, number];
  /** Payload bytes of the PUBLISH packets sent, by QoS. */
  payloadBytesSentByQos: [number, number, number];
  /** Times a publisher stopped being read because a subscriber's queue was full (flow control). */
  publishersPaused: number;
  /** Pauses that lasted `flow_control_timeout`: the queues they waited for then dropped. */
  pauseTimeouts: number;
}

/** A decision asked for, and what the core does with the answer. */
interface PendingDecision {
  /** The link whose packets wait for it; none for a delivery's receive authorization. */
  link: LinkState | undefined;
  resume: (answer: Decision, now: number) => void;
}

/** What a decision answered already does with a second answer: nothing. */
function settledDecision(): void {}

/** A connection being attached: the shell's object for it and what the transport says. */
export interface LinkOptions {
  /** The shell's object for the connection: actions carry it, the core never calls into it. */
  handle: unknown;
  /** The transport's description of the peer. */
  info: ConnectionInfo;
  /** Mutual TLS: the peer certificate's CN replaces the CONNECT username. */
  certCnAsUsername?: boolean;
}

const SYS_PREFIX = "$SYS/";
/** The answer to a step of enhanced authentication whose plugin did not answer in time. */
const AUTH_TIMED_OUT: Decision = {
  allowed: false,
  reasonCode: ReasonCode.SERVER_UNAVAILABLE,
  reasonString: "authentication plugin did not answer in time",
};
/** The answer to a login whose session preparation had not ended by the end of its bound. */
const PREPARE_TIMED_OUT: Decision = {
  allowed: false,
  reasonCode: ReasonCode.SERVER_BUSY,
  reasonString: "session not prepared in time",
};
/** The answer to a login whose plugins had not decided by the end of the connect timeout. */
const LOGIN_UNCHECKED: Decision = {
  allowed: false,
  reasonCode: ReasonCode.SERVER_UNAVAILABLE,
  reasonString: "login not checked within the connect timeout",
};
/** The answer that lets a login waiting for its source's logins in progress be checked. */
const LOGIN_ADMITTED: Decision = { allowed: true };
/** The answer to a waiting login whose source spent its failed-login budget meanwhile. */
const LOGIN_THROTTLED: Decision = {
  allowed: false,
  reasonCode: ReasonCode.SERVER_UNAVAILABLE,
  reasonString: "too many failed logins",
};
/** Offline sessions discarded per sweep at most. */
const EXPIRIES_PER_TICK = 2000;
/**
 * Deliveries a sweep visits at most to give payloads that waited buffers of their own
 * (`Session.sweepKept`), beyond one window: 10,000 sessions with 40 messages waiting each took
 * the first sweeps 0.2-0.5 s, a stall of the whole broker; at this bound a sweep takes a few ms
 * and the rest follow at the next sweeps (bench/sweep_kept.ts).
 */
export const AGED_PER_SWEEP = 2000;

/**
 * The longest client id the broker takes, in UTF-16 code units: the longest string V8 hashes by
 * its characters (longer ones all hash by their length), the bound topics have for the same
 * reason ({@linkcode MAX_TOPIC_LENGTH}, topic_length.ts).
 */
export const MAX_CLIENT_ID_LENGTH = MAX_TOPIC_LENGTH;

/** The protocol core shared by every listener of one broker. */
export class BrokerCore {
  /** Every session, connected or offline, by client id. */
  readonly sessions = new SessionTable<Session>();
  /** Every subscription of every session. */
  readonly subscriptions: SubscriptionTree<Session>;
  /** Set by a cluster node: which shared groups it serves for a message (see `_share_gate.ts`). */
  shareGate: ShareGate | undefined;
  /**
   * Set by a cluster node: whether another node has subscribers to a topic. A 5.0 PUBACK or
   * PUBREC says 0x10 No matching subscribers only when no node has any.
   */
  matchesElsewhere: ((topic: string) => boolean) | undefined;
  /**
   * Set by a cluster node: whether a session created now for a client id is provisional, kept
   * in memory and not journaled (served while Redis is away; `ClusterSessions`). Such a session
   * is stored later with {@linkcode storeSession}, or dropped with {@linkcode giveWay}.
   */
  provisional: ((clientId: string) => boolean) | undefined;
  /**
   * Set by a cluster node: the Will Delay Interval of a session that gave way here
   * ({@linkcode giveWay}) is over. The client's session goes on elsewhere, and its login on
   * another node within the delay cancels the will [MQTT-3.1.3-9], which this node cannot see:
   * the node asks Redis, and calls `publish` when the will is to go (a login here cancels it as
   * any). Unset, the will is published at once.
   */
  givenWayWillDue: ((clientId: string, publish: () => void) => void) | undefined;
  /**
   * Set by a cluster node: the delayed will of a session that gave way here
   * ({@linkcode giveWay}) is cancelled by a login of its client here [MQTT-3.1.3-9]; the node
   * forgets what it noted in Redis to ask at the delay's end ({@linkcode givenWayWillDue}).
   */
  givenWayWillCancelled: ((clientId: string) => void) | undefined;
  readonly #shareMemberAmong = (share: string, sessions: ReadonlySet<unknown>) =>
    this.subscriptions.shareMemberAmong(share, sessions);
  /** The retained message of each topic. */
  readonly retained = new RetainedStore<BrokerMessage>();
  /** Every open connection, before and after CONNECT. */
  readonly links: SlotSet<LinkState> = new SlotSet();
  /**
   * What the core asks the shell to do, in order: the shell drains it after each call into the
   * core (see `src/broker/action_runner.ts`).
   */
  readonly actions: ActionQueue = new ActionQueue();
  /** Counters, updated in place. */
  readonly stats: BrokerStats = {
    bytesReceived: 0,
    bytesSent: 0,
    messagesReceived: 0,
    messagesSent: 0,
    publishReceived: 0,
    publishSent: 0,
    dropped: 0,
    droppedBy: emptyDropCounts(),
    clientsConnected: 0,
    clientsMaximum: 0,
    clientsTotal: 0,
    publishReceivedByQos: [0, 0, 0],
    payloadBytesReceivedByQos: [0, 0, 0],
    publishSentByQos: [0, 0, 0],
    payloadBytesSentByQos: [0, 0, 0],
    refusedTopicLevels: 0,
    refusedSubscriptions: 0,
    refusedSessions: 0,
    refusedRetained: 0,
    refusedMemory: 0,
    publishersPaused: 0,
    pauseTimeouts: 0,
  };
  /** Flow control from subscribers' queues back to publishers' reads; undefined when off. */
  readonly flow: PublishFlow | undefined;
  /** The memory budget; the shell samples the process's memory into it. */
  readonly budget: MemoryBudget;
  #sessionShared: SessionOptions | undefined;
  /** Retained messages still to be sent to new subscriptions, a slice at a time. */
  readonly feeds: RetainedFeeds = new RetainedFeeds();
  #options: CoreOptions;
  #limits: StateLimits;
  #retainedBytes = 0;
  #schedule: (() => void) | undefined;
  /** Offline persistent sessions, oldest disconnect first (expiry and eviction order). */
  #offline = new Set<Session>();
  /** Offline sessions that expire, soonest first. */
  #expiries = new ExpiryQueue<Session>();
  /** Offline sessions whose will waits for its delay, soonest first. */
  #wills = new ExpiryQueue<Session>();
  /**
   * Sessions dropped by {@linkcode giveWay} whose connection's will waits for its delay: the
   * client's session goes on elsewhere, so its next login here within the delay cancels the will
   * [MQTT-3.1.3-9].
   */
  readonly #givenWay = new SessionTable<Session>();
  #policy: PolicyHost;
  #events: BrokerEvents;
  #log: Logger;
  #clientIds: ClientIdSource;
  #nextLink = 0;
  /** Decisions asked for and not answered yet, by id, with what to do with the answer. */
  #decisions = new DecisionTable<PendingDecision>();
  #nextDecision = 0;
  /**
   * Logins waiting for their source's logins in progress (see `LoginThrottle`), by source, in
   * arrival order: ids of decisions that no plugin was asked, answered by `#admitWaiting`.
   */
  readonly #waitingLogins = new Map<string, number[]>();
  #admitting = false;
  /** Receive authorizations asked so far, and those not answered yet (in the order asked). */
  #receivesAsked = 0;
  readonly #receivesPending = new Set<number>();
  /**
   * Decisions with their own bound, by id: steps of enhanced authentication waiting for their
   * plugin, session preparations; when (ms) and what they are answered if still pending then.
   */
  #timeouts = new Map<number, { at: number; answer: Decision }>();
  #backlog = new Map<LinkState, Packet[]>();
  #logins: LoginThrottle;
  #refusalLog: WarningLog;
  #denialLog: WarningLog;
  #limitLog: WarningLog;
  #drops = new LogSummary("messages dropped");
  /** Each session's queue-full drops, told per session as they happen. */
  readonly #queueDrops: QueueDropLog;
  readonly #queueFull = {
    queueFull: (session: Session, n: number) => this.#queueDrops.dropped(session, n, this.#now),
  };
  #dropsLogged = emptyDropCounts();
  #summaryMs: number;
  #nextSummary = 0;
  /** Builds the store mutations of persistent state; undefined without a store. */
  #durable: Journal | undefined;
  /** The client whose session `evict` hands over to another cluster node, while it does. */
  #handingOver: string | undefined;
  /** The 5.0 limits announced in CONNACK. */
  #caps: ServerCapabilities;
  /** The clock of the latest call into the core, ms (for wills and message expiry). */
  #now = 0;
  /** The base of the times kept in links (`LinkState.deadline`, `announced`). */
  #clock = new LinkClock();
  /** Connected MQTT 5.0 links: while there are none, routing takes the 3.1.1 path only. */
  #v5Links = 0;
  /** Those of them whose deliveries are checked one by one (`Link5.plainDeliveries` false). */
  #v5Checked = 0;
  /** What the subscriptions of each match ask of 5.0 deliveries (see `mixed_route.ts`). */
  readonly #matchOptions = new MatchOptions();

  /**
   * Creates the core; connections reach it through {@linkcode attach}.
   *
   * @param options limits
   * @param hooks authentication/authorization policy, event sink and logger; `schedule` asks the
   *   shell to call {@linkcode drainRetained} soon (without it, retained messages go out at once);
   *   `memoryProbe` reads the process memory for the memory budget; `clientIds` proposes the
   *   ids assigned to clients that send an empty one (default `auto-<time>-<counter>`);
   *   `durable` turns the journal on: every change of durable state (persistent sessions,
   *   retained messages, counters) becomes a `journal` action, for the store
   */
  constructor(
    options: CoreOptions,
    hooks: {
      policy: PolicyHost;
      events: BrokerEvents;
      logger: Logger;
      schedule?: () => void;
      memoryProbe?: () => number;
      clientIds?: ClientIdSource;
      durable?: boolean;
    },
  ) {
    this.#options = options;
    this.#caps = options.capabilities ?? {
      receiveMaximum: 65535,
      maximumPacketSize: 268_435_460,
      topicAliasMaximum: 0,
      maximumSessionExpiryInterval: options.sessionExpiryInterval,
    };
    // A shared group serves its connected members while it has any (MQTT 5.0 §4.8.2).
    this.subscriptions = new SubscriptionTree<Session>({
      shareStrategy: options.shareStrategy,
      shareAvailable: (session) => session.link !== undefined,
    });
    this.#policy = hooks.policy;
    this.#events = hooks.events;
    this.#log = hooks.logger;
    this.#logins = new LoginThrottle({
      maxFailures: options.maxLoginFailures ?? 20,
      window: options.loginFailureWindow ?? 60,
    });
    this.#summaryMs = (options.logSummaryInterval ?? 60) * 1000;
    this.#schedule = hooks.schedule;
    this.#clientIds = hooks.clientIds ?? clientIdSource();
    if (hooks.durable) this.#durable = new Journal((m) => this.#journal(m));
    if (options.flowControl !== undefined && options.flowControl.highWater > 0) {
      this.flow = new PublishFlow(options.flowControl, this.actions, this.stats);
    }
    const l = options.limits ?? {};
    this.#limits = {
      maxTopicLevels: l.maxTopicLevels ?? 0,
      maxSubscriptionsPerClient: l.maxSubscriptionsPerClient ?? 0,
      maxSessions: l.maxSessions ?? 0,
      maxRetainedMessages: l.maxRetainedMessages ?? 0,
      maxRetainedBytes: l.maxRetainedBytes ?? 0,
    };
    // Lines a client can cause at will: 20 in full per summary interval, the rest tallied.
    this.#refusalLog = new WarningLog(hooks.logger, { what: "logins refused", lines: 20 });
    this.#denialLog = new WarningLog(hooks.logger, { what: "authorization denials", lines: 20 });
    this.#limitLog = new WarningLog(hooks.logger, { what: "limit refusals", lines: 20 });
    this.#queueDrops = new QueueDropLog(hooks.logger, {
      maxQueued: options.maxQueuedMessages,
      intervalMs: this.#summaryMs,
    });
    this.budget = new MemoryBudget(
      options.maxMemory ?? 0,
      () => this.stateBytes,
      hooks.memoryProbe,
    );
  }

  /** Bytes of retained topics and payloads stored (what `max_retained_bytes` bounds). */
  get retainedBytes(): number {
    return this.#retainedBytes;
  }

  /**
   * An estimate of the memory held for clients: retained messages, trie nodes, subscriptions and
   * sessions. O(1): the memory budget reads it at every decision.
   */
  get stateBytes(): number {
    return this.#retainedBytes +
      (this.retained.nodeCount + this.subscriptions.nodeCount) * NODE_BYTES +
      this.subscriptions.size * SUBSCRIPTION_BYTES + this.sessions.size * SESSION_BYTES;
  }

  /**
   * Rebuilds the state a store loaded at start-up (see `restore.ts`): persistent sessions, all
   * offline, with their subscriptions, queues, in-flight messages, inbound QoS 2 ids, wills and
   * deadlines; retained messages; counters. Wills of sessions that expired meanwhile are
   * published. Call it once, before any connection.
   *
   * @param state what the store loaded
   * @param now the clock, ms (wall clock: stored deadlines are)
   * @throws {TypeError} If the core has no journal
   */
  restore(state: StoredState, now: number): void {
    if (this.#durable === undefined) throw new TypeError("Cannot restore: the core has no store");
    const restored = restoreState(state, now, this.#durable, this.#sessionOptions());
    // Left out (bad stored state from an older release): said, the rest is served. Ten lines at
    // most, then their number.
    for (const line of restored.skipped.slice(0, 10)) this.#log.warning(`Not restoring ${line}`);
    if (restored.skipped.length > 10) {
      this.#log.warning(`Not restoring ${restored.skipped.length - 10} more such entries`);
    }
    for (const { session, expiresAt, willAt } of restored.sessions) {
      this.sessions.set(session.clientId, session);
      for (const sub of session.subscriptions.values()) {
        this.subscriptions.subscribe(sub.topic, session, sub);
      }
      this.#offline.add(session);
      if (expiresAt !== undefined) {
        session.expiresAt = expiresAt;
        session.expiry = this.#expiries.push(expiresAt, session);
      }
      if (willAt !== undefined) session.willDue = this.#wills.push(willAt, session);
    }
    for (const message of restored.retained) {
      this.retained.set(message.topic, message);
      this.#retainedBytes += retainedSize(message);
    }
    this.stats.clientsMaximum = Math.max(this.stats.clientsMaximum, restored.clientsMaximum);
    for (const will of restored.dueWills) this.publish(will);
  }

  /**
   * Journals the clearing of everything stored but the counters (`clear_on_shutdown`).
   */
  clearStored(): void {
    this.#durable?.clear();
  }

  /**
   * Gives every stored message a new id, from `next` on, as the journal next holds it (the
   * rewrite after a Redis that lost its data: `RedisStore.renewIds`).
   *
   * @param next the first id of a block no other node uses
   */
  renumberIds(next: number): void {
    this.#durable?.renumber(next);
  }

  /**
   * Journals a `clear` and the whole durable state again, after writes to the store failed
   * (`store_rewrite.ts`): the store is behind memory then.
   */
  rewriteStore(): void {
    if (this.#durable === undefined) return;
    rewriteStore(this.#durable, {
      sessions: this.sessions.values(),
      retained: this.retained.entries(),
      clientsMaximum: this.stats.clientsMaximum,
    });
  }

  /**
   * Journals one persistent session whole in place of what the store holds of it
   * (`store_rewrite.ts`, `replaceSession`).
   *
   * @param clientId the client id
   * @returns whether the session is held here and stored (so journaled)
   */
  rewriteSession(clientId: string): boolean {
    const session = this.sessions.get(clientId);
    if (session?.journal === undefined) return false;
    replaceSession(session);
    return true;
  }

  /**
   * Gives a persistent session held without a journal (a provisional one, see
   * {@linkcode provisional}) its journal, and journals it whole in place of what the store holds
   * of it (`store_rewrite.ts`, `replaceSession`): from here on it is stored like any other.
   *
   * @param clientId the client id
   * @returns whether the session is held here, persistent, and now journaled
   */
  storeSession(clientId: string): boolean {
    const session = this.sessions.get(clientId);
    if (session === undefined || session.clean || this.#durable === undefined) return false;
    if (session.journal === undefined) session.journal = this.#durable.session(clientId);
    replaceSession(session);
    return true;
  }

  /**
   * Adds subscriptions to a session held here, each replacing the session's subscription to the
   * same filter as a SUBSCRIBE does [MQTT-3.8.4-3], and journaled as one: the subscriptions a
   * provisional session's client was granted (SUBACK) before it gave way, kept in the client's
   * session (`ClusterSessions`). Nothing is sent: no SUBACK, no retained message (the client had
   * them when it subscribed). The session's limits apply as at a SUBSCRIBE
   * (`max_subscriptions_per_client`, `max_topic_levels`, the memory budget): a new filter past
   * them is left out, counted and logged as a refused one. Its SUBACK was given for the
   * provisional session, which is gone; the session the client resumes (Session Present 1) is
   * another, and holds what it can: else a client could exceed the limit by subscribing during an
   * outage, the session that exists being full already. Replacing a subscription costs nothing
   * and always goes through.
   *
   * @param clientId the client id
   * @param subscriptions the subscriptions as granted
   * @returns how many were added (0 when no session of that client is here)
   */
  mergeSubscriptions(clientId: string, subscriptions: readonly SessionSubscription[]): number {
    const session = this.sessions.get(clientId);
    if (session === undefined) return 0;
    let added = 0;
    for (const sub of subscriptions) {
      if (this.#subscriptionRefusal(session, sub.topic) !== undefined) continue;
      this.#addSubscription(session, sub);
      added++;
    }
    return added;
  }

  /**
   * Drops a session that is not this node's to keep (a provisional one, when a session of the
   * client exists elsewhere in the cluster): its connection, if any, is closed with 0x89 Server
   * busy (3.1.1: closed), so that the client logs in again and resumes the real session; its
   * will is published as at any close the client did not make with DISCONNECT 0x00
   * [MQTT-3.1.2-8] [MQTT-3.14.4-3]: at once without a Will Delay Interval, else once the delay
   * has passed unless the client logs in here again before (its session goes on elsewhere, so
   * dropping this one does not end it [MQTT-3.1.3-9]). Nothing of the session is journaled (a
   * provisional session has no journal).
   *
   * @param clientId the client id
   * @param reason for the log
   * @param now the clock, ms
   * @returns false when no session of that client is here
   */
  giveWay(clientId: string, reason: string, now: number): boolean {
    const session = this.sessions.get(clientId);
    if (session === undefined) return false;
    const link = session.link;
    if (link !== undefined) {
      this.#close(link, "close", reason, ReasonCode.SERVER_BUSY);
      this.detach(link, now);
    }
    // A will waiting for its delay outlives this session (`#discard` would publish it now).
    const due = session.willDue;
    session.willDue = undefined;
    if (this.sessions.get(clientId) === session) this.#discard(session);
    if (due !== undefined) {
      session.willDue = due;
      this.#givenWay.set(clientId, session);
    }
    return true;
  }

  /**
   * Removes a topic's retained message without publishing anything (an administrator's action).
   *
   * @param topic the topic name
   * @returns false when the topic had no retained message
   */
  deleteRetained(topic: string): boolean {
    const old = this.retained.get(topic);
    this.#unretain(old);
    return old !== undefined;
  }

  // One object per new session, not a second one spread from it with `clean` and `journal`.
  /** The bounds and outlets of every session: one object they all keep a reference to. */
  #sessionOptions(): SessionOptions {
    return this.#sessionShared ??= {
      maxInflight: this.#options.maxInflight,
      maxQueued: this.#options.maxQueuedMessages,
      budget: this.budget,
      out: this.actions,
      flow: this.flow,
      drops: this.#queueFull,
    };
  }

  /**
   * Sends retained messages to new subscriptions, walking up to `max` trie nodes of the retained
   * store. The shell calls it again while it returns "more", yielding to other connections
   * between calls, and a little later when it returns "blocked".
   *
   * @param max trie nodes to visit at most (each finds at most one message)
   * @returns "done", "more", or "blocked" when every feed waits for its subscriber
   */
  drainRetained(max: number): DrainState {
    return this.feeds.drain(max, this.#feedTarget);
  }

  /**
   * Registers a new connection; it must send CONNECT within the connect timeout (a `deadline`
   * action).
   *
   * @param connection the shell's object for it and the transport's description of the peer
   * @param now the clock, ms
   * @returns the core's state of the connection, to pass to the other calls
   */
  attach(connection: LinkOptions, now: number): Link {
    const link = new LinkState(
      ++this.#nextLink,
      connection.handle,
      connection.info,
      connection.certCnAsUsername ?? false,
    );
    this.links.add(link);
    this.#setDeadline(link, now + this.#options.connectTimeout * 1000);
    return link;
  }

  /**
   * Handles one decoded packet from a connection.
   *
   * @param from the connection it came from
   * @param packet the packet
   * @param now the clock, ms
   */
  handle(from: Link, packet: Packet, now: number): void {
    this.#routed = false;
    this.#routedKept = undefined;
    this.#routedWaits = undefined;
    const link = from as LinkState;
    // Nothing more is done for a link once it is closing (taken over, refused, timed out).
    if (link.closing) return;
    this.#now = now;
    this.stats.messagesReceived++;
    if (link.keepAliveMs > 0) link.deadline = this.#clock.since(now) + link.keepAliveMs;
    if (link.waitingFor !== 0) {
      // A plugin decision about an earlier packet is pending: this one waits behind it, so that
      // the link's packets take effect in the order they came [MQTT-4.6.0-6].
      const backlog = this.#backlog.get(link);
      if (backlog === undefined) this.#backlog.set(link, [packet]);
      else backlog.push(packet);
      return;
    }
    this.#process(link, packet, now);
  }

  /**
   * Whether `link` waits for a plugin decision: packets handed in meanwhile are held, in order.
   * A shell that reads ahead while a decision is pending uses it to bound what it decodes.
   *
   * @param link the connection
   * @returns true while a decision about one of its packets is pending
   */
  waiting(link: Link): boolean {
    return (link as LinkState).waitingFor !== 0;
  }

  /**
   * The shell closes a connection of its own accord (the peer went away, an error, shutdown, an
   * administrator): nothing more is done for it, and a decision answered later only settles the
   * bookkeeping. {@linkcode detach} follows once it has closed.
   *
   * @param link the connection
   */
  closing(link: Link): void {
    (link as LinkState).closing = true;
  }

  /**
   * The shell held back a QoS 1/2 PUBLISH for back-pressure instead of writing it: it keeps its
   * DUP flag as it was, and it and the link's later ones wait in the session until
   * {@linkcode drained}, in order.
   *
   * @param link the connection
   * @param packetId the PUBLISH's packet id
   * @param dup the DUP flag of the action
   */
  unsent(link: Link, packetId: number, dup: boolean): void {
    const state = link as LinkState;
    state.blocked = true;
    const session = state.session;
    if (session !== undefined && session.link === state) session.unsent(packetId, dup);
  }

  /**
   * The shell's output for a connection drained after it held back PUBLISHes: they go out now.
   *
   * @param link the connection
   */
  drained(link: Link): void {
    const state = link as LinkState;
    state.blocked = false;
    const session = state.session;
    if (session === undefined || session.link !== state || state.closing) return;
    session.sendHeld();
    // The shared watch may have dropped some as they went (a take refused while the link was
    // blocked, which `writable` left to this call): their slots go to queued messages now, not
    // at the next acknowledgement.
    session.pump(this.stats, this.#now);
  }

  /**
   * The shared watch (`SharedWatch.mayWrite`) lets the PUBLISHes it held back in `session` go:
   * they are written now, in order, unless the connection holds them back (then at
   * {@linkcode drained}); those it drops leave the window, which queued messages fill.
   *
   * @param session the session
   */
  writable(session: Session): void {
    const link = session.link;
    if (link === undefined || link.blocked || link.closing) return;
    session.sendHeld();
    // The watch may have dropped some (`drop`): their slots go to queued messages.
    session.pump(this.stats, this.#now);
  }

  /**
   * The bytes queued and being written on a connection, as the shell reports them: a retained
   * feed waits while its subscriber has much unwritten (see `Session.room`).
   *
   * @param link the connection
   * @param bytes the bytes pending
   */
  pending(link: Link, bytes: number): void {
    (link as LinkState).pendingBytes = bytes;
  }

  /**
   * The answer to an `ask` action, given at once or later. The packet that asked takes effect,
   * then the link's packets held meanwhile, in order. An answer for a link closed meanwhile only
   * settles the bookkeeping (the login budget); an unknown id is ignored.
   *
   * @param id the id of the `ask` action
   * @param answer the plugins' answer, with a reason code if they gave one
   * @param now the clock, ms
   */
  decided(id: number, answer: DecisionAnswer, now: number): void {
    const pending = this.#decisions.get(id);
    if (pending === undefined) return;
    this.#decisions.delete(id);
    this.#timeouts.delete(id);
    const { link, resume } = pending;
    // The map's old tables keep their entries until a full GC: they must not keep the link (see
    // `_slot_set.ts`).
    pending.link = undefined;
    pending.resume = settledDecision;
    const decision = toDecision(answer);
    if (link === undefined) {
      resume(decision, now);
      return;
    }
    if (link.waitingFor === id) link.waitingFor = 0;
    // The wait was the broker's (a slow plugin), not the client's: the keepalive allowance
    // [MQTT-3.1.2-24] counts from the answer.
    if (link.keepAliveMs > 0) link.deadline = this.#clock.since(now) + link.keepAliveMs;
    resume(decision, now);
    const backlog = this.#backlog.get(link);
    if (backlog === undefined) return;
    let i = 0;
    while (i < backlog.length && link.waitingFor === 0 && !link.closing) {
      this.#process(link, backlog[i++]!, now);
    }
    backlog.splice(0, i);
    if (backlog.length === 0 || link.closing) this.#backlog.delete(link);
  }

  /**
   * A session preparation (an `ask` of kind `prepare`) made progress: a part of a long session
   * read came. Its bound ({@linkcode CoreOptions.prepareTimeout}) counts again from `now`: it
   * bounds a preparation that stalls, not one that takes long while it moves (a queue of
   * millions of entries read in parts), which bounded as a whole was refused on every try, its
   * client never getting its session. Nothing for another kind, or a decision already settled.
   *
   * @param id the id of the `ask` action
   * @param now the clock, ms
   */
  progressed(id: number, now: number): void {
    const timeout = this.#timeouts.get(id);
    if (timeout === undefined || timeout.answer !== PREPARE_TIMED_OUT) return;
    const at = now + (this.#options.prepareTimeout ?? this.#options.connectTimeout) * 1000;
    if (at > timeout.at) timeout.at = at;
  }

  /**
   * Asks the plugins with an `ask` action: `resume` runs with the answer from
   * {@linkcode decided} (at once if the shell has it at once), and the link's packets wait until
   * then.
   */
  #ask(
    link: LinkState,
    request: DecisionRequest,
    resume: (answer: Decision, now: number) => void,
  ): number {
    const id = ++this.#nextDecision;
    this.#decisions.set(id, { link, resume });
    link.waitingFor = id;
    this.actions.ask(link, id, request);
    return id;
  }

  /** Sets a link's deadline and tells the shell. */
  #setDeadline(link: LinkState, at: number): void {
    const kept = this.#clock.deadline(at);
    link.deadline = kept;
    if (link.announced !== kept) {
      link.announced = kept;
      this.actions.deadline(link, at);
    }
  }

  /** Closes a link with an action; nothing more is done for it. */
  #close(
    link: LinkState,
    kind: "close" | "abort" | "takeOver",
    reason: string,
    code: number,
  ): void {
    if (link.closing) return;
    link.closing = true;
    this.actions.close(kind, link, reason, code);
  }

  /** Every change of durable state goes through here, as a `journal` action for the store. */
  #journal(mutation: StoreMutation): void {
    // A session handed over to another node lives on from the shared store: its end here is not
    // written there.
    if (this.#handingOver !== undefined && mutationClient(mutation) === this.#handingOver) return;
    this.actions.journal(mutation);
  }

  #process(link: LinkState, packet: Packet, now: number): void {
    if (!link.connected) {
      if (packet.type !== PacketType.CONNECT) {
        // The first packet from a client must be CONNECT [MQTT-3.1.0-1].
        this.#violation(link, `first packet was not CONNECT but type ${packet.type}`);
        return;
      }
      return this.#connect(link, packet, now);
    }
    if (
      link.auth !== undefined && (link.session === undefined || packet.type === PacketType.AUTH)
    ) {
      return this.#authPacket(link, link.auth, packet, now);
    }
    const session = link.session!;
    switch (packet.type) {
      case PacketType.PUBLISH:
        return this.#publish(link, session, packet);
      case PacketType.PUBACK:
        this.#ack(link, session, packet, "puback");
        return;
      case PacketType.PUBREC:
        this.#ack(link, session, packet, "pubrec");
        return;
      case PacketType.PUBCOMP:
        this.#ack(link, session, packet, "pubcomp");
        return;
      case PacketType.PUBREL:
        // PUBCOMP either way: an unknown id means our PUBCOMP was lost [MQTT-4.3.3-2]; at 5.0
        // that PUBCOMP says 0x92 Packet Identifier not found [MQTT-3.7.2-1].
        if (session.inbound.has(packet.packetId)) session.journal?.released(packet.packetId);
        link.v5?.quota.settle(packet.packetId);
        this.actions.send(
          link,
          receivePubrel(session.inbound, packet.packetId, link.v5 !== undefined),
        );
        return;
      case PacketType.SUBSCRIBE:
        return this.#subscribe(link, session, packet);
      case PacketType.UNSUBSCRIBE:
        this.#unsubscribe(link, session, packet);
        return;
      case PacketType.PINGREQ:
        // [MQTT-3.12.4-1]
        this.actions.send(link, PINGRESP);
        return;
      case PacketType.DISCONNECT:
        if (link.v5 !== undefined && !this.#disconnect5(link, session, packet)) return;
        // A DISCONNECT discards the will [MQTT-3.14.4-3] and closes the connection [MQTT-3.14.4-1].
        session.will = undefined;
        this.#close(link, "close", "client disconnected", ReasonCode.NORMAL_DISCONNECTION);
        return;
      case PacketType.CONNECT:
        // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
        this.#violation(link, "second CONNECT on one connection");
        return;
      default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH never come from a 3.1.1 client.
        this.#violation(link, `unexpected packet type ${packet.type} from a client`);
        return;
    }
  }

  /**
   * Called by the shell once a connection has closed, for whatever reason.
   *
   * @param closed the connection
   * @param now the clock, ms
   */
  detach(closed: Link, now: number): void {
    const link = closed as LinkState;
    if (!this.links.delete(link)) return;
    link.closing = true;
    this.#now = now;
    if (link.v5 !== undefined) {
      this.#v5Links--;
      if (!link.v5.plainDeliveries) this.#v5Checked--;
    }
    // Its packets held behind a decision go with it; the decision's answer, when it comes, only
    // settles the login budget.
    this.#backlog.delete(link);
    const auth = link.auth;
    if (auth?.awaiting === true && auth.connect !== undefined && link.session === undefined) {
      // An exchange at CONNECT the client left while the server waited for its AUTH: no answer
      // will settle it; a failed login, its unit not given back.
      auth.connect = undefined;
      this.#settleLogin(link, false, now);
    }
    link.waitingFor = 0;
    this.flow?.forgetLink(link);
    const session = link.session;
    if (session === undefined || session.link !== link) return;
    session.link = undefined;
    // Offline, it drains no more: the publishers it paused are read again.
    this.flow?.forgetSession(session);
    this.stats.clientsConnected--;
    if (session.will !== undefined && session.willDelay > 0 && !session.clean) {
      // Published when the delay has passed or the session ends, whichever comes first, and not
      // at all if the client reconnects before (MQTT 5.0 Will Delay Interval).
      session.willDue = this.#wills.push(now + session.willDelay * 1000, session);
    } else {
      this.#publishWill(session);
    }
    if (session.clean) {
      // A clean session ends with its connection [MQTT-3.1.2-6].
      this.#discard(session);
    } else {
      // Messages waiting for this client may wait long: stop pinning read buffers.
      if (session.inflightCount > 0 || session.outbound.queuedCount > 0) {
        for (const p of session.outbound.pending()) p.message.detach();
      }
      this.#offline.add(session);
      if (session.expiryInterval !== undefined) {
        session.expiresAt = now + session.expiryInterval * 1000;
        session.expiry = this.#expiries.push(session.expiresAt, session);
      }
      session.journal?.put(session, now);
    }
    this.#events.clientDisconnected?.(session.clientId, link.client);
  }

  /**
   * Closes a client's connection from the host (an administrator's kick, a takeover on another
   * node): a `close` action (or `takeOver` for 0x8E), then the will is published when the
   * connection has closed, as for any close without DISCONNECT [MQTT-3.1.2-8].
   *
   * @param clientId the client
   * @param reason for the log
   * @param code the MQTT 5.0 reason code, e.g. 0x98 administrative action, 0x8E taken over
   * @returns false when the client has no connection open
   */
  kick(clientId: string, reason: string, code: number): boolean {
    const link = this.sessions.get(clientId)?.link;
    if (link === undefined || link.closing) return false;
    this.#close(link, code === ReasonCode.SESSION_TAKEN_OVER ? "takeOver" : "close", reason, code);
    return true;
  }

  /**
   * Publishes the will of every connected client now, before the broker closes their connections
   * for shutdown: a server-side close without DISCONNECT publishes the will [MQTT-3.1.2-8], and
   * done here, while every connection is still open, the subscribers among them receive the wills
   * of the others (as Mosquitto's subscribers do on its shutdown).
   */
  publishWills(): void {
    for (const link of this.links) {
      const session = link.session;
      if (session !== undefined && session.link === link) this.#publishWill(session);
    }
  }

  /**
   * Closes silent connections and expires offline sessions. The shell calls it about once a
   * second: one sweep for all connections instead of a timer per connection.
   *
   * @param now the clock, ms
   */
  tick(now: number): void {
    this.#now = now;
    if (now >= this.#nextSummary) {
      if (this.#nextSummary > 0) this.#summarize();
      this.#nextSummary = now + this.#summaryMs;
      this.#logins.sweep(now);
    }
    this.#queueDrops.tick(now);
    // Budgets refill with time, not only when a login is settled.
    for (const source of this.#waitingLogins.keys()) this.#admitWaiting(source, now);
    this.budget.sweep();
    for (const [id, { at, answer }] of this.#timeouts) {
      // A step of enhanced authentication whose plugin did not answer in time: the login was not
      // checked ("server unavailable"); a session preparation that did not end in time: server
      // busy. A late answer finds no decision and is ignored.
      if (now >= at) this.decided(id, answer, now);
    }
    const flow = this.flow;
    // The links keep their times since a base that moves forward every few days (see
    // `_link_clock.ts`): when it moves, so do they.
    const shift = this.#clock.rebase(now);
    const since = this.#clock.since(now);
    for (const link of this.links) {
      if (shift !== 0) {
        link.deadline = shifted(link.deadline, shift);
        link.announced = shifted(link.announced, shift);
      }
      if (link.closing) continue;
      // The broker stopped reading a paused publisher: its silence is not the client's; the
      // keepalive allowance [MQTT-3.1.2-24] counts from the last sweep of the pause.
      if (link.keepAliveMs > 0 && flow?.isPaused(link)) link.deadline = since + link.keepAliveMs;
      if (link.deadline !== NEVER && since > link.deadline) {
        // 1.5 x keepalive without a packet [MQTT-3.1.2-24], or no CONNECT in time. The peer is
        // unresponsive: abort rather than flush, or a peer that also stopped reading would hold
        // the connection (and its will) until the drain timeout.
        // A CONNECT still awaiting authentication has no client yet: its connect timeout ran out.
        const checking = link.client === undefined && link.waitingFor !== 0
          ? link.waitingFor
          : undefined;
        if (link.client !== undefined) {
          this.#close(link, "abort", "keepalive timeout", ReasonCode.KEEP_ALIVE_TIMEOUT);
        } else if (checking !== undefined) {
          // The CONNECT came in time; the broker's own check of it did not end (a slow plugin,
          // a password worker behind a queue): the login was not checked, "server unavailable",
          // as when a hook times out, rather than a close without CONNACK.
          this.decided(checking, LOGIN_UNCHECKED, now);
        } else {
          this.#close(
            link,
            "abort",
            "no CONNECT accepted within the connect timeout",
            ReasonCode.UNSPECIFIED_ERROR,
          );
        }
      } else if (link.announced !== NEVER && since >= link.announced) {
        // Traffic moved the deadline later without an action: announce where it is now.
        this.#setDeadline(link, this.#clock.at(link.deadline));
      }
    }
    this.#sweepKept();
    // After the keepalive pass, which counted a paused publisher's allowance from now.
    flow?.tick(now);
    for (
      let due = this.#wills.peek();
      due !== undefined && now >= due.at;
      due = this.#wills.peek()
    ) {
      this.#wills.pop();
      const session = due.item;
      session.willDue = undefined;
      if (this.#givenWay.get(session.clientId) === session) {
        this.#givenWay.delete(session.clientId);
        if (this.givenWayWillDue !== undefined) {
          this.givenWayWillDue(session.clientId, () => this.#publishWill(session));
          continue;
        }
      }
      this.#publishWill(session);
    }
    // Each session has its own lifetime: the heap gives the soonest deadline first. The sweep
    // stops at the first that has time left, or after a bounded number, so that 100,000
    // sessions expiring at once are discarded over several sweeps, not in one stall.
    let budget = EXPIRIES_PER_TICK;
    for (let next = this.#expiries.peek(); next !== undefined; next = this.#expiries.peek()) {
      if (now < next.at || budget-- === 0) break;
      const session = next.item;
      const waiting = session.inflightCount + session.queuedCount;
      // What went to another member of a shared group was not dropped.
      countDrop(this.stats, "sessionExpired", waiting - this.#discard(session));
    }
  }

  /** Where the last sweep's {@linkcode #sweepKept} stopped: a slot of {@linkcode links}. */
  #keptFrom = 0;

  /**
   * Deliveries waiting since the last sweep let go of the slab or buffer they share
   * (`Session.sweepKept`): at most {@linkcode AGED_PER_SWEEP} visits (and one window) per sweep,
   * from the session where the last sweep stopped, so that every session's turn comes.
   */
  #sweepKept(): void {
    const links = this.links;
    const n = links.size;
    let budget = AGED_PER_SWEEP;
    let at = this.#keptFrom < n ? this.#keptFrom : 0;
    for (let k = 0; k < n; k++) {
      const link = links.at(at)!;
      if (!link.closing && link.session !== undefined) {
        budget -= link.session.sweepKept(budget);
        // Out of budget: this session goes on (or is done) at the next sweep.
        if (budget <= 0) break;
      }
      if (++at === n) at = 0;
    }
    this.#keptFrom = at;
  }

  /**
   * Publishes a message from the host program (or a plugin): routed like a client's PUBLISH.
   *
   * @param message the message
   */
  publish(message: BrokerMessage): void {
    if (message.retain) this.#retain(message);
    this.#events.published?.(message);
    this.#route(message);
  }

  // Entry points for a cluster node (src/broker/cluster_link.ts): what other nodes did.

  /**
   * Delivers a message another cluster node received to the local subscriptions, as a message
   * published here would be (QoS downgraded per subscription), without storing it as retained
   * (see {@linkcode replaceRetained}) and without any event.
   *
   * @param message the message
   */
  routeRemote(message: BrokerMessage): void {
    this.#route(message);
  }

  /**
   * Sets or clears a topic's retained message as another cluster node decided: no routing, no
   * limits (the publisher's node applied them), no event.
   *
   * @param topic the topic
   * @param message the new retained message, or `undefined` to clear it
   */
  replaceRetained(topic: string, message: BrokerMessage | undefined): void {
    this.#unretain(this.retained.get(topic));
    if (message === undefined || message.payload.length === 0) return;
    this.retained.set(topic, message.asRetained());
    this.#retainedBytes += retainedSize(message);
  }

  /**
   * Ends a client's session here because it continues on another cluster node: its connection,
   * if any, is closed as taken over (its will published), and the session discarded.
   *
   * With `handOver`, a persistent session kept in a store shared by the nodes (the cluster's
   * Redis store) moves to the other node, which loads it from the store: nothing of its end here
   * is written to the store, its messages for shared groups stay with it, and a will waiting for
   * its delay is left to the other node.
   *
   * @param clientId the client id
   * @param reason for the log
   * @param now the clock, ms
   * @param handOver whether the session continues from the shared store
   * @returns false when no session of that client is here
   */
  evict(clientId: string, reason: string, now: number, handOver = false): boolean {
    const session = this.sessions.get(clientId);
    if (session === undefined) return false;
    const handing = handOver && session.journal !== undefined;
    try {
      const link = session.link;
      if (link !== undefined) {
        this.#close(link, "takeOver", reason, ReasonCode.SESSION_TAKEN_OVER);
        // The detach is journaled: the other node loads the session as gone offline now, so it
        // knows that a QoS 1 entry still queued was never sent (no DUP on its first send).
        this.detach(link, now);
      }
      if (handing) this.#handingOver = clientId;
      if (handing) this.#cancelWill(session);
      if (this.sessions.get(clientId) === session) this.#discard(session);
    } finally {
      this.#handingOver = undefined;
    }
    return true;
  }

  /**
   * Ends every session here because all of them continue on other cluster nodes: this node was
   * taken for dead (reaped while its event loop was only blocked) and its sessions were adopted
   * elsewhere, where the wills of its connected clients were published. Each connection is closed
   * as taken over (5.0: DISCONNECT 0x8E [MQTT-3.1.4-3]), as by {@linkcode evict} with
   * `handOver`, and no will is published here.
   *
   * @param reason for the log
   * @param now the clock, ms
   * @returns the client ids of the sessions ended, and how many had a connection
   */
  relinquishAll(reason: string, now: number): { clientIds: string[]; connected: number } {
    const clientIds = [...this.sessions.keys()];
    let connected = 0;
    for (const clientId of clientIds) {
      const session = this.sessions.get(clientId);
      if (session === undefined) continue;
      if (session.link !== undefined) connected++;
      // Published by the node that adopted the session (not journaled: nothing of the session's
      // end here is written to the shared store).
      session.will = undefined;
      this.evict(clientId, reason, now, true);
    }
    return { clientIds, connected };
  }

  #publishWill(session: Session): void {
    const will = session.will;
    if (will === undefined) return;
    session.will = undefined;
    session.journal?.willGone(session);
    // Published on every close not caused by DISCONNECT [MQTT-3.1.2-8]; a will with retain
    // set is stored as a retained message like any retained PUBLISH [MQTT-3.1.2-17].
    // A 5.0 will keeps its properties (all but the Will Delay Interval) and its expiry.
    this.publish(
      will.properties === undefined
        ? new BrokerMessage(will.topic, will.payload, {
          qos: will.qos,
          retain: will.retain,
          senderId: session.clientId,
        })
        : willMessage(will, session.clientId, this.#now),
    );
  }

  #connect(link: LinkState, packet: ConnectPacket, now: number): void {
    link.protocolVersion = packet.protocolVersion;
    link.maximumPacketSize = packet.properties?.maximumPacketSize;
    link.connected = true;
    let clientId = packet.clientId;
    if (clientId === "") {
      if ((!packet.clean && packet.protocolVersion === 4) || packet.protocolVersion === 3) {
        // Empty id needs clean session [MQTT-3.1.3-8]; MQTT 3.1 requires 1-23 characters. MQTT
        // 5.0 assigns one whatever Clean Start says [MQTT-3.1.3-6] and names it in CONNACK.
        this.#refuse(link, "client_id_invalid", "empty client id", clientId);
        return;
      }
      // [MQTT-3.1.3-6]: the server assigns a unique id, one no session uses (a client may have
      // chosen an id of the same shape). The time is the CONNECT's: the core reads no clock.
      do {
        clientId = this.#clientIds(now);
      } while (clientId === "" || this.sessions.has(clientId));
    } else if (packet.protocolVersion === 3 && clientId.length > 23) {
      // MQTT 3.1 limits client ids to 23 characters and answers longer ones with return code 2
      // (3.1.1 lifted the limit [MQTT-3.1.3-5]); Mosquitto does the same.
      this.#refuse(link, "client_id_invalid", "MQTT 3.1 client id over 23 characters", clientId);
      return;
    } else if (clientId.length > MAX_CLIENT_ID_LENGTH) {
      // A server may refuse ids past 23 bytes [MQTT-3.1.3-5]. Past 16383 characters V8 hashes a
      // string by its length alone: such ids of one length would share one bucket of every Map
      // keyed by client id (`SessionTable`'s ids whose hash is taken, the store's, the cluster's),
      // each login a scan of all of them (tests/broker/81_colliding_client_ids_test.ts).
      this.#refuse(
        link,
        "client_id_invalid",
        `client id over ${MAX_CLIENT_ID_LENGTH} characters`,
        `${clientId.slice(0, 64)}…`,
      );
      return;
    }
    const method = packet.properties?.authenticationMethod;
    if (method !== undefined && this.#policy.offersAuthenticationMethod?.(method) !== true) {
      // No plugin runs this enhanced authentication method: 0x8C, then close [MQTT-4.12.0-1].
      this.#refuse(
        link,
        "bad_authentication_method",
        `authentication method "${method}" is not supported`,
        clientId,
      );
      return;
    }
    // With `use_cert_cn_as_username`, the verified certificate names the user, not CONNECT; a
    // connection without a certificate CN must not fall back to a user name it chose itself.
    if (link.certCnAsUsername && link.info.peerCommonName === undefined) {
      this.#refuse(link, "not_authorized", "no client certificate common name", clientId);
      return;
    }
    if (packet.will !== undefined && exceedsTopicLength(packet.will.topic)) {
      // A will topic past 16383 characters (topic_length.ts): 5.0 CONNACK 0x90 Topic Name
      // invalid; 3.1.1 has no return code for it and closes the connection [MQTT-3.2.2-5].
      this.#refuse(
        link,
        "topic_name_invalid",
        `will topic over ${MAX_TOPIC_LENGTH} characters`,
        clientId,
      );
      return;
    }
    if (packet.will !== undefined && this.#tooDeep(packet.will.topic)) {
      // A will is a PUBLISH made in advance: too deep a topic closes the connection like one.
      this.#violation(link, `will topic has more than ${this.#limits.maxTopicLevels} levels`);
      return;
    }
    // A will above the Maximum QoS or retained without Retain Available: refused, CONNACK
    // 0x9B / 0x9A at 5.0 [MQTT-3.2.2-12] [MQTT-3.2.2-13], closed without CONNACK at 3.1/3.1.1.
    const unsupported = packet.will && unsupportedFeature(packet.will, this.#caps);
    if (unsupported) {
      this.#refuse(link, unsupported.refusal, `will refused: ${unsupported.reason}`, clientId);
      return;
    }
    const username = link.certCnAsUsername ? link.info.peerCommonName : packet.username;
    const client: ClientInfo = {
      clientId,
      username,
      // Copied: a view would pin the whole read buffer for as long as the session lives.
      password: packet.password?.slice(),
      remoteAddress: link.info.remoteAddress,
      transport: link.info.transport,
      listener: link.info.listener,
      peerCommonName: link.info.peerCommonName,
      protocolVersion: packet.protocolVersion,
      anonymous: username === undefined,
      cleanStart: packet.clean,
    };
    // 5.0: the plugins see the CONNECT's properties (not its Authentication Data).
    if (packet.properties !== undefined) client.properties = pluginProperties(packet.properties);
    // A source that failed too often lately is not checked at all: a flood of wrong passwords
    // from one address costs one refusal each, not a password check each, and cannot crowd out
    // logins from elsewhere. "Server unavailable" (return code 3, MQTT 3.1.1 §3.2.2.3), not
    // "bad user name or password": the credentials were never looked at. A source whose budget
    // is in use by its logins in progress waits for them (devices behind one address logging in
    // at once), after the logins of that source already waiting.
    const source = sourceOf(link.info.remoteAddress, link.info.remoteHost);
    const queue = this.#waitingLogins.get(source);
    if (queue === undefined && this.#logins.admit(source, now)) {
      this.#check(link, packet, client, method, now);
      return;
    }
    if (queue === undefined && !this.#logins.inProgress(source)) {
      this.#refuse(link, "login_unchecked", LOGIN_THROTTLED.reasonString!, clientId);
      return;
    }
    // A decision no plugin is asked: the link's packets wait behind it as behind any, and the
    // connect timeout answers it "server unavailable" (see `tick`).
    const id = ++this.#nextDecision;
    this.#decisions.set(id, {
      link,
      resume: (decision, at) => {
        if (decision.allowed) this.#check(link, packet, client, method, at);
        else this.#refuse(link, "login_unchecked", decision.reasonString!, clientId);
      },
    });
    link.waitingFor = id;
    if (queue === undefined) this.#waitingLogins.set(source, [id]);
    else queue.push(id);
  }

  /**
   * Lets the logins of `source` waiting for its budget be checked, in order, as far as the
   * budget allows; refuses them all once the budget is spent and nothing is in progress.
   */
  #admitWaiting(source: string, now: number): void {
    const queue = this.#waitingLogins.get(source);
    // A login settled at once by the check it starts comes back here: the loop below goes on.
    if (queue === undefined || this.#admitting) return;
    this.#admitting = true;
    try {
      while (queue.length > 0) {
        const id = queue[0]!;
        const link = this.#decisions.get(id)?.link;
        if (link !== undefined && !link.closing) {
          let answer: Decision;
          if (this.#logins.admit(source, now)) answer = LOGIN_ADMITTED;
          else if (this.#logins.inProgress(source)) break;
          else answer = LOGIN_THROTTLED;
          queue.shift();
          this.decided(id, answer, now);
        } else {
          // Answered by the connect timeout, or closed: nothing to check.
          queue.shift();
          this.#decisions.delete(id);
        }
      }
    } finally {
      this.#admitting = false;
    }
    if (queue.length === 0) this.#waitingLogins.delete(source);
  }

  /** Reports an admitted login's outcome to the throttle; its source's waiting logins go on. */
  #settleLogin(link: LinkState, ok: boolean, now: number): void {
    const source = sourceOf(link.info.remoteAddress, link.info.remoteHost);
    this.#logins.settle(source, ok, now);
    if (this.#waitingLogins.size > 0) this.#admitWaiting(source, now);
  }

  /** Asks the plugins whether an admitted login's credentials are good. */
  #check(
    link: LinkState,
    packet: ConnectPacket,
    client: ClientInfo,
    method: string | undefined,
    now: number,
  ): void {
    if (method !== undefined) {
      // Enhanced authentication: the method's plugin decides instead of `authenticate` (§4.12).
      link.auth = enhancedAuth(method, packet, client);
      this.#authStep(link, packet.properties?.authenticationData, now);
      return;
    }
    // An answer the shell has at once (anonymous access, say) comes back before any other
    // packet is handled.
    this.#ask(
      link,
      { kind: "authenticate", client },
      (answer, at) => this.#authenticated(link, packet, client, answer, at),
    );
  }

  /** The rest of a CONNECT once the plugins have answered whether the client may log in. */
  #authenticated(
    link: LinkState,
    packet: ConnectPacket,
    client: ClientInfo,
    decision: Decision,
    now: number,
  ): void {
    const clientId = client.clientId;
    // The password was for `authenticate` only: not kept for the life of the session (a copy per
    // connection, and a secret the broker no longer needs).
    client.password = undefined;
    const unchecked = decision.reasonCode === ReasonCode.SERVER_UNAVAILABLE;
    this.#settleLogin(link, decision.allowed, now);
    if (link.closing) return;
    if (!decision.allowed) {
      // The plugins' reason code (a 5.0 client gets it as is, a 3.1/3.1.1 client the return
      // code it knows); without one, bad credentials for credentials given and refused, not
      // authorized for none given.
      const kind = packet.username === undefined ? "not_authorized" : "bad_credentials";
      const why = decision.reasonString ??
        (unchecked ? "authentication unavailable" : "authentication refused");
      this.#refuse(link, kind, why, clientId, decision.reasonCode, decision.userProperties);
      return;
    }
    const will = packet.will;
    if (will === undefined) {
      this.#prepareLogin(link, packet, client, now);
      return;
    }
    const willAllowed = (ok: Decision, at: number) => {
      if (link.closing) return;
      if (ok.allowed) {
        this.#prepareLogin(link, packet, client, at);
        return;
      }
      this.#refuse(
        link,
        "not_authorized",
        ok.reasonString ?? `the will topic "${will.topic}" is not authorized`,
        clientId,
        ok.reasonCode,
        ok.userProperties,
      );
    };
    const ok = this.#willAllowed(link, client, will, willAllowed);
    if (ok !== undefined) willAllowed(ok, now);
  }

  /**
   * Asks the policy to bring the client's session here first (a cluster node loads it and claims
   * the client id, closing the connection another node had), when it has that hook. Only now,
   * once the credentials and the will were accepted: the checks come first [MQTT-3.1.4-2], a
   * takeover is part of an accepted CONNECT [MQTT-3.1.4-3]. The login budget was settled
   * before: a refusal here (0x89 server busy, say) is no failed login.
   */
  #prepareLogin(link: LinkState, packet: ConnectPacket, client: ClientInfo, now: number): void {
    if (this.#policy.prepareLogin === undefined) {
      this.#login(link, packet, client, now);
      return;
    }
    const id = this.#ask(link, { kind: "prepare", client }, (ready, at) => {
      if (link.closing) return;
      if (ready.allowed) {
        this.#login(link, packet, client, at);
        return;
      }
      this.#refuse(
        link,
        "server_busy",
        ready.reasonString ?? "session not prepared",
        client.clientId,
        ready.reasonCode,
        ready.userProperties,
      );
    });
    if (!this.#decisions.has(id)) return;
    // The CONNECT came and was accepted: the connect timeout ends here. It bounds the client's
    // part (the CONNECT's arrival, which the server "SHOULD" bound: MQTT 5.0 §3.1.4, item 1, no
    // normative id; and an enhanced authentication it drives) and the plugins' checks. The
    // preparation has its own bound (a cluster node waits for the previous owner's handoff up to
    // its cluster's bound, longer than the connect timeout by default), after which the login is
    // refused as server busy, never left to hang.
    const timeout = (this.#options.prepareTimeout ?? this.#options.connectTimeout) * 1000;
    this.#timeouts.set(id, { at: now + timeout, answer: PREPARE_TIMED_OUT });
    this.#setDeadline(link, Infinity);
  }

  /** Accepts a CONNECT that passed every check: takes over or creates the session, CONNACK. */
  #login(link: LinkState, packet: ConnectPacket, client: ClientInfo, now: number): void {
    const clientId = client.clientId;
    if (!this.sessions.has(clientId) && !this.#sessionAllowed(link, clientId)) return;
    link.client = client;
    const v5 = packet.protocolVersion === 5;
    // At 5.0 the Server Keep Alive, when set, replaces the client's [MQTT-3.2.2-22].
    const keepAlive = v5 ? keepAliveFor(this.#caps, packet) : packet.keepAlive;
    if (keepAlive > 0) {
      // The keepalive deadline replaces the connect timeout [MQTT-3.1.2-24].
      link.keepAliveMs = keepAlive * 1500 + this.#options.timeoutDisconnectDelay * 1000;
      this.#setDeadline(link, now + link.keepAliveMs);
    } else {
      link.keepAliveMs = 0;
      this.#setDeadline(link, Infinity);
    }

    let session = this.sessions.get(clientId);
    if (session?.link !== undefined) {
      // Takeover: the existing connection is closed [MQTT-3.1.4-2], its will published. What it
      // had queued still goes out first, its CONNACK above all, so that under a storm of
      // takeovers each connection learns it was accepted before it is taken over and can tell a
      // takeover from a refusal; one whose writes are stuck is aborted. Messages in flight are
      // resent on the new connection [MQTT-4.4.0-1].
      const old = session.link;
      this.#close(
        old,
        "takeOver",
        `session taken over by a new connection from ${link.info.remoteAddress}`,
        ReasonCode.SESSION_TAKEN_OVER,
      );
      this.detach(old, now);
      session = this.sessions.get(clientId);
    }
    if (session !== undefined && packet.clean) {
      // Clean session discards any previous state [MQTT-3.1.2-6].
      this.#discard(session);
      session = undefined;
    }
    const sessionPresent = session !== undefined;
    if (session === undefined) {
      session = new Session(
        clientId,
        this.#sessionOptions(),
        // 5.0: a Clean Start 1 session with an expiry outlives its connection
        // [MQTT-3.1.2-23], so it is stored like one resumed.
        (v5 ? sessionExpiryFor(this.#caps, packet) === 0 : packet.clean) ||
          this.provisional?.(clientId) === true
          ? undefined
          : this.#durable?.session(clientId),
      );
      this.sessions.set(clientId, session);
    }
    session.clean = packet.clean;
    if (v5) {
      // 5.0: Clean Start only discards the old session (above); the session ends with the
      // connection when its Session Expiry Interval is 0, never with 0xFFFFFFFF [MQTT-3.1.2-23].
      const expiry = sessionExpiryFor(this.#caps, packet);
      session.clean = expiry === 0;
      session.expiryInterval = expiry === SESSION_NEVER_EXPIRES ? undefined : expiry;
      // Never more unacknowledged QoS 1/2 PUBLISH than the client's Receive Maximum
      // [MQTT-3.3.4-9].
      const receiveMaximum = packet.properties?.receiveMaximum ?? 65535;
      session.setMaxInflight(Math.min(this.#options.maxInflight, receiveMaximum));
      link.v5 = new Link5(this.#caps, packet);
      this.#v5Links++;
      if (!link.v5.plainDeliveries) this.#v5Checked++;
    } else {
      // The broker's interval (3.1.1 has no Session Expiry Interval of its own).
      session.expiryInterval = this.#options.sessionExpiryInterval;
      if (session.maxInflight !== this.#options.maxInflight) {
        session.setMaxInflight(this.#options.maxInflight);
      }
    }
    session.client = client;
    // The will is kept for the session's life: bytes of its own, not views into the CONNECT's
    // read buffer (a slot of a slab other connections share: a view would pin the whole slab).
    // Its payload, and its Correlation Data, the one binary will property (ownProperties).
    const will = packet.will;
    session.will = will === undefined ? undefined : { ...will, payload: will.payload.slice() };
    if (will?.properties !== undefined) session.will!.properties = ownProperties(will.properties);
    // A delayed will of the previous connection is not published: the client is back. (The
    // new CONNECT's will replaced it above.)
    this.#cancelWill(session);
    const givenWay = this.#givenWay.get(clientId);
    if (givenWay !== undefined) {
      // The same for the will of a session that gave way here (`giveWay`) [MQTT-3.1.3-9].
      this.#cancelWill(givenWay);
      this.#givenWay.delete(clientId);
      this.givenWayWillCancelled?.(clientId);
    }
    session.willDelay = v5 && packet.will !== undefined ? willDelayOf(packet.will) : 0;
    this.#leaveOffline(session);
    session.link = link;
    link.session = session;
    this.stats.clientsConnected++;
    this.stats.clientsTotal++;
    if (this.stats.clientsConnected > this.stats.clientsMaximum) {
      this.stats.clientsMaximum = this.stats.clientsConnected;
      this.#durable?.counter(CLIENTS_MAXIMUM, this.stats.clientsMaximum);
    }
    session.journal?.put(session, undefined);
    // Session present is 0 for a clean session [MQTT-3.2.2-1], else whether one existed
    // [MQTT-3.2.2-2]. MQTT 3.1 has no session-present flag: the codec writes it as 0.
    // One shared packet for every 3.1/3.1.1 login: nothing to build per connection.
    const connack = v5
      ? this.#connack5(link, packet, clientId, sessionPresent)
      : packet.protocolVersion !== 3 && sessionPresent
      ? CONNACK_PRESENT
      : CONNACK_NEW;
    this.actions.send(link, connack);
    // Unacknowledged messages are resent on reconnect, in order, after the CONNACK
    // [MQTT-4.4.0-1]; expired ones are dropped [MQTT-3.3.2-5].
    session.resume(this.stats, now);
    this.#queueDrops.back(session);
    this.#events.clientConnected?.(client);
  }

  /** The CONNACK accepting a 5.0 CONNECT, with its properties. */
  #connack5(
    link: LinkState,
    packet: ConnectPacket,
    clientId: string,
    sessionPresent: boolean,
  ): ConnackPacket {
    const connack: ConnackPacket = {
      type: PacketType.CONNACK,
      sessionPresent,
      reasonCode: ConnackReturnCode.ACCEPTED,
    };
    // [MQTT-3.2.2-16]: an assigned identifier is named in the CONNACK.
    const properties = connackProperties(this.#caps, packet, {
      assignedClientIdentifier: packet.clientId === "" ? clientId : undefined,
    });
    if (properties !== undefined) connack.properties = properties;
    if (link.auth !== undefined) {
      // A successful CONNACK carries the CONNECT's method and the plugin's last data
      // [MQTT-4.12.0-5].
      connack.properties = {
        ...connack.properties,
        ...authProperties(link.auth.method, link.auth.data),
      };
      link.auth.connect = undefined;
      link.auth.data = undefined;
    }
    return connack;
  }

  /**
   * A packet while enhanced authentication runs at CONNECT (only AUTH and DISCONNECT may come),
   * or an AUTH after CONNACK (a re-authentication, or its next step).
   */
  #authPacket(link: LinkState, auth: EnhancedAuthState, packet: Packet, now: number): void {
    if (packet.type === PacketType.DISCONNECT && link.session === undefined) {
      this.#close(link, "close", "client gave up authentication", ReasonCode.NORMAL_DISCONNECTION);
      return;
    }
    if (packet.type !== PacketType.AUTH) {
      // Before CONNACK the client sends only AUTH (or DISCONNECT) [MQTT-3.1.2-30].
      this.#violation(link, `packet type ${packet.type} during enhanced authentication`);
      return;
    }
    if (packet.properties?.authenticationMethod !== auth.method) {
      // Every AUTH carries the CONNECT's Authentication Method [MQTT-4.12.0-5] [MQTT-4.12.1-1].
      this.#violation(link, "AUTH with another authentication method than the CONNECT's");
      return;
    }
    const code = packet.reasonCode ?? ReasonCode.SUCCESS;
    if (auth.awaiting && code === ReasonCode.CONTINUE_AUTHENTICATION) {
      auth.awaiting = false;
    } else if (
      !auth.awaiting && link.session !== undefined && !auth.reauthenticating &&
      code === ReasonCode.RE_AUTHENTICATE
    ) {
      // Re-authentication [MQTT-4.12.1-1]: the session goes on while it runs.
      auth.reauthenticating = true;
      auth.step = 0;
      auth.state = undefined;
      auth.client = link.client ?? auth.client;
    } else {
      this.#violation(link, `unexpected AUTH with reason code 0x${code.toString(16)}`);
      return;
    }
    this.#authStep(link, packet.properties?.authenticationData, now);
  }

  /**
   * Asks the method's plugin for the next step of the exchange, within the hook timeout: a
   * plugin that has not answered by then fails the step (see {@linkcode tick}).
   */
  #authStep(link: LinkState, data: Uint8Array | undefined, now: number): void {
    const auth = link.auth!;
    const id = this.#ask(link, {
      kind: "enhanced",
      client: auth.client,
      step: {
        method: auth.method,
        data: data?.slice(),
        client: auth.client,
        step: auth.step++,
        reauthenticate: auth.reauthenticating,
        state: auth.state,
      },
    }, (answer, at) => this.#authAnswered(link, auth, answer, at));
    const timeout = this.#options.hookTimeout ?? DEFAULT_HOOK_TIMEOUT;
    // Unless the shell answered at once (the decision is gone already).
    if (timeout > 0 && this.#decisions.has(id)) {
      this.#timeouts.set(id, { at: now + timeout, answer: AUTH_TIMED_OUT });
    }
  }

  /** The plugin's answer to one step: challenge again, succeed, or refuse. */
  #authAnswered(link: LinkState, auth: EnhancedAuthState, answer: Decision, now: number): void {
    const connect = auth.connect;
    const step = answer.authentication;
    if (answer.allowed && step?.continue === true && !link.closing) {
      // More data needed: AUTH 0x18 with the plugin's challenge [MQTT-4.12.0-2].
      auth.awaiting = true;
      auth.state = step.state;
      // The plugin's Reason String and User Properties where the client takes them
      // [MQTT-3.15.2-2] [MQTT-3.15.2-3] (before CONNACK, by its CONNECT's limits).
      const limits = link.v5?.limits ?? {
        maximumPacketSize: link.maximumPacketSize,
        requestProblemInformation: connect?.properties?.requestProblemInformation,
      };
      this.actions.send(
        link,
        withProblemInformation(
          serverAuth(ReasonCode.CONTINUE_AUTHENTICATION, auth.method, step.data),
          answer,
          limits,
        ),
      );
      return;
    }
    if (connect !== undefined && link.session === undefined) {
      // At CONNECT: success goes on to the will check and the login (CONNACK 0x00 with the
      // method and data); a refusal is a CONNACK with the plugin's code, then close
      // [MQTT-4.12.0-4]. Settles the login budget either way.
      // An exchange the client left mid-way (the link closed before the answer) counts as a
      // failed login: its unit of the login budget is not given back.
      auth.data = step?.data;
      const done = step?.continue === true ? toDecision(false) : answer;
      this.#authenticated(link, connect, auth.client, done, now);
      return;
    }
    if (link.closing) return;
    auth.reauthenticating = false;
    if (answer.allowed) {
      // Re-authentication succeeded: AUTH 0x00 with the method [MQTT-4.12.0-5].
      this.actions.send(link, serverAuth(ReasonCode.SUCCESS, auth.method, step?.data));
      return;
    }
    // A failed re-authentication: DISCONNECT with the plugin's code, then close [MQTT-4.12.1-2].
    // Server unavailable (a plugin that did not answer) is no DISCONNECT code: server busy is.
    const code = answer.reasonCode === ReasonCode.SERVER_UNAVAILABLE
      ? ReasonCode.SERVER_BUSY
      : answer.reasonCode !== undefined &&
          REASON_CODE_PACKETS[answer.reasonCode]?.includes(PacketType.DISCONNECT) === true
      ? answer.reasonCode
      : ReasonCode.NOT_AUTHORIZED;
    if (link.v5 !== undefined) link.v5.closeUserProperties = answer.userProperties;
    this.#close(link, "close", answer.reasonString ?? "re-authentication refused", code);
  }

  /**
   * A will is a PUBLISH the client makes in advance: it gets the same checks as one, at CONNECT
   * time, so that a refusal can still be reported (with return code 5, as Mosquitto does) rather
   * than silently dropping the will when the connection is lost. `$SYS` is read-only.
   */
  #willAllowed(
    link: LinkState,
    client: ClientInfo,
    will: Will,
    resume: (ok: Decision, now: number) => void,
  ): Decision | undefined {
    if (will.topic.startsWith(SYS_PREFIX)) {
      this.#log.debug(`${client.clientId} may not have a will on ${will.topic}: $SYS is read-only`);
      return toDecision(false);
    }
    if (!this.#policy.hasPublishHooks) return toDecision(true);
    this.#ask(
      link,
      {
        kind: "will",
        client,
        topic: will.topic,
        qos: will.qos,
        retain: will.retain,
        properties: will.properties,
      },
      (answer, at) => {
        if (!answer.allowed) {
          this.#denied(
            client,
            "will_denied",
            will.topic,
            `${client.clientId} (${client.remoteAddress}) is not allowed a will on ${will.topic}`,
          );
        }
        resume(answer, at);
      },
    );
    return undefined;
  }

  /** Logs an authorization denial, within the denial lines' budget. */
  #denied(client: ClientInfo, event: string, topic: string, message: string): void {
    const tally = { reason: event, source: sourceOf(client.remoteAddress) };
    this.#denialLog.warn(message, tally, denial(client, event, topic));
  }

  /**
   * The summary lines of what was counted since the last ones, at once: the broker stops, and the
   * drops and refusals of its last interval must be told too (a short run, a test's node, would
   * otherwise end without a word of them).
   *
   * @param now the clock, ms
   */
  summarize(now: number): void {
    // Before the first tick (which starts the first interval), nothing has run for long.
    const since = this.#nextSummary > 0 ? this.#nextSummary - this.#summaryMs : now;
    const seconds = Math.max(1, Math.round((now - since) / 1000));
    this.#summarize(seconds);
    this.#nextSummary = now + this.#summaryMs;
  }

  /** Summary lines, once per interval, for the refusals not logged one by one and the drops. */
  #summarize(seconds = this.#summaryMs / 1000): void {
    this.#refusalLog.flush(seconds);
    this.#denialLog.flush(seconds);
    this.#limitLog.flush(seconds);
    this.#queueDrops.flush(seconds);
    const counted = this.stats.droppedBy;
    for (const reason of Object.keys(DROP_REASONS) as DropReason[]) {
      this.#drops.add(DROP_REASONS[reason], undefined, counted[reason] - this.#dropsLogged[reason]);
      this.#dropsLogged[reason] = counted[reason];
    }
    const dropped = this.#drops.take(seconds);
    if (dropped !== undefined) this.#log.warning(dropped);
  }

  /**
   * At `max_sessions`, a new session takes the place of the offline session that has waited
   * longest, so that abandoned sessions cannot lock new clients out; with every session
   * connected, or with the memory budget spent, it is refused with "server unavailable".
   * Resuming an existing session is not new work: the clients the broker serves keep being served.
   */
  #sessionAllowed(link: LinkState, clientId: string): boolean {
    const max = this.#limits.maxSessions;
    if (max > 0 && this.sessions.size >= max) {
      const oldest = this.#offline.values().next().value;
      if (oldest !== undefined) {
        this.#limitLog.warn(
          `Discarding the offline session of ${oldest.clientId} for ${clientId}: max_sessions ${max} reached`,
          { reason: "offline session discarded (max_sessions)" },
        );
        this.#discard(oldest);
      }
    }
    let kind: RefusalKind | undefined;
    if (max > 0 && this.sessions.size >= max) kind = "refusedSessions";
    else if (this.budget.exceeded) kind = "refusedMemory";
    if (kind === undefined) return true;
    this.stats[kind]++;
    const why = kind === "refusedSessions" ? `max_sessions ${max} reached` : "max_memory reached";
    this.#limitLog.warn(`Refusing ${clientId} from ${link.info.remoteAddress}: ${why}`, {
      reason: kind,
      source: sourceOf(link.info.remoteAddress, link.info.remoteHost),
    });
    this.#refuse(link, "quota_exceeded", why, clientId);
    return false;
  }

  /** Whether a PUBLISH or will topic is over `max_topic_levels`: counted, then closed. */
  #tooDeep(topic: string): boolean {
    if (!exceedsTopicLevels(topic, this.#limits.maxTopicLevels)) return false;
    this.stats.refusedTopicLevels++;
    return true;
  }

  // A protocol violation closes the connection [MQTT-4.8.0-1], logged like a malformed packet.
  #violation(link: LinkState, reason: string): void {
    this.#disconnect(link, reason, ReasonCode.PROTOCOL_ERROR);
  }

  /** Closes a connection the broker refuses to serve further, logged; 5.0 gets `code`. */
  #disconnect(link: LinkState, reason: string, code: number): void {
    const who = link.session === undefined ? "" : ` (${link.session.clientId})`;
    this.#log.warning(`Closing connection from ${link.info.remoteAddress}${who}: ${reason}`);
    this.#close(link, "close", reason, code);
  }

  /**
   * Refuses a CONNECT with the code its level has for `kind`, or with `plugin`'s reason code (a
   * 5.0 client gets it as is, a 3.1/3.1.1 one its return code).
   */
  #refuse(
    link: LinkState,
    kind: ConnectRefusal,
    reason: string,
    clientId: string,
    plugin?: number,
    userProperties?: UserProperty[],
  ): void {
    const v5 = link.protocolVersion === 5;
    const chosen = plugin === undefined
      ? connectRefusalCode(kind, link.protocolVersion)
      : !v5
      ? connackReturnCode(plugin)
      : plugin >= 0x80 && REASON_CODE_PACKETS[plugin]?.includes(PacketType.CONNACK) === true
      ? plugin
      : connectRefusalCode(kind, 5);
    // With `server_reference`, a spent quota sends a 5.0 client to the other server (0x9C).
    const to = v5 && plugin === undefined && chosen !== undefined
      ? redirect(chosen, this.#caps.serverReference)
      : undefined;
    const code = to?.code ?? chosen;
    // A refusing CONNACK is followed by closing the connection [MQTT-3.2.2-5]; at 5.0 its reason
    // code is 0x80 or above [MQTT-3.2.2-8], Session Present 0 [MQTT-3.2.2-6], and the connection
    // closes after it [MQTT-3.2.2-7].
    if (code !== undefined) {
      const connack: ConnackPacket = {
        type: PacketType.CONNACK,
        sessionPresent: false,
        reasonCode: code,
      };
      if (to?.serverReference !== undefined) {
        connack.properties = { serverReference: to.serverReference };
      }
      // At 5.0 with a reason string, unless it would not fit the client's Maximum Packet Size
      // [MQTT-3.2.2-19].
      const limits = { maximumPacketSize: link.maximumPacketSize };
      this.actions.send(
        link,
        v5
          ? withProblemInformation(connack, { reasonString: reason, userProperties }, limits)
          : connack,
      );
    }
    this.#close(
      link,
      "close",
      `connection refused (return code ${code}): ${reason}`,
      ReasonCode.NORMAL_DISCONNECTION,
    );
    const { listener, remoteAddress } = link.info;
    this.#refusalLog.warn(
      `Refused client "${clientId}" from ${remoteAddress}: ${reason} (return code ${code})`,
      { reason, source: sourceOf(remoteAddress, link.info.remoteHost) },
      { event: "connection_refused", clientId, listener, remoteAddress, reason },
    );
    this.#events.connectionRefused?.(link.info, clientId, code ?? 0x80, reason);
  }

  /**
   * A 5.0 client's DISCONNECT: the Session Expiry Interval it sets replaces the session's, unless
   * the CONNECT's was 0 [MQTT-3.14.2-2] (a Protocol Error, closed with DISCONNECT 0x82); reason
   * code 0x04 keeps the will [MQTT-3.14.4-3]. Returns false when the close is already done.
   */
  #disconnect5(link: LinkState, session: Session, packet: Packet): boolean {
    if (packet.type !== PacketType.DISCONNECT) return true;
    const v5 = link.v5!;
    const asked = packet.properties?.sessionExpiryInterval;
    if (asked !== undefined) {
      if (v5.connectExpiry === 0 && asked !== 0) {
        this.#violation(link, "DISCONNECT set a Session Expiry Interval after CONNECT set 0");
        return false;
      }
      const max = this.#caps.maximumSessionExpiryInterval;
      const expiry = max !== undefined && asked > max ? max : asked;
      session.clean = expiry === 0;
      session.expiryInterval = expiry === SESSION_NEVER_EXPIRES ? undefined : expiry;
    }
    if (packet.reasonCode === ReasonCode.DISCONNECT_WITH_WILL_MESSAGE) {
      this.#close(
        link,
        "close",
        "client disconnected with its will",
        ReasonCode.NORMAL_DISCONNECTION,
      );
      return false;
    }
    return true;
  }

  #publish(link: LinkState, session: Session, packet: PublishPacket): void {
    this.stats.publishReceived++;
    this.stats.publishReceivedByQos[packet.qos]++;
    this.stats.payloadBytesReceivedByQos[packet.qos] += packet.payload.length;
    this.budget.noteInput(this.stats.bytesReceived);
    if (exceedsTopicLength(packet.topic)) {
      // Past 16383 characters every topic of one length shares one Map bucket (topic_length.ts):
      // refused before a Topic Alias is set or a map sees it. 3.1.1 cannot refuse a PUBLISH but
      // by closing the connection [MQTT-3.3.5-2]; 5.0 says why: DISCONNECT 0x90 Topic Name invalid.
      this.#disconnect(
        link,
        `topic over ${MAX_TOPIC_LENGTH} characters`,
        ReasonCode.TOPIC_NAME_INVALID,
      );
      return;
    }
    const v5 = link.v5;
    if (v5 !== undefined && (packet.qos > 0 || packet.retain || packet.properties !== undefined)) {
      // (A 5.0 PUBLISH at QoS 0, without RETAIN and properties, has nothing to check: no Topic
      // Alias, no Receive Maximum count, no Maximum QoS or Retain Available to exceed.)
      const resolved = this.#inbound5(link, v5, packet);
      if (resolved === undefined) return;
      packet = resolved;
    } else if (v5 === undefined && (packet.qos > 0 || packet.retain)) {
      // 3.1/3.1.1 cannot be told the Maximum QoS or Retain Available, nor refuse a PUBLISH: a
      // message beyond them closes the connection, as Mosquitto does.
      const unsupported = unsupportedFeature(packet, this.#caps);
      if (unsupported !== undefined) {
        this.#violation(link, `PUBLISH refused: ${unsupported.reason}`);
        return;
      }
    }
    if (this.#tooDeep(packet.topic)) {
      // Each level costs a trie node: refused before any is made. MQTT 3.1.1 cannot refuse a
      // PUBLISH, and dropping it silently would hide the fault: the connection is closed, as
      // Mosquitto does past its 200 levels.
      this.#violation(link, `topic has more than ${this.#limits.maxTopicLevels} levels`);
      return;
    }
    // aMQTT's broker_message_received comes before any check.
    this.#events.publishReceived?.(session.clientId, packet);
    if (packet.topic.startsWith(SYS_PREFIX)) {
      // Refused messages are counted as dropped (not authorized) and summarised once per
      // interval; a line each would let one client flood the log.
      this.#log.debug(`${session.clientId} may not publish to ${packet.topic}: $SYS is read-only`);
      this.#accept(link, session, packet, false);
      return;
    }
    if (!this.#policy.hasPublishHooks) {
      this.#accept(link, session, packet, true);
      return;
    }
    this.#ask(
      link,
      {
        kind: "publish",
        client: link.client!,
        topic: packet.topic,
        qos: packet.qos,
        retain: packet.retain,
        properties: packet.properties,
      },
      (answer) => this.#publishDecided(link, session, packet, answer),
    );
  }

  /**
   * The 5.0 checks of an inbound PUBLISH: our Receive Maximum [MQTT-3.3.4-7] (exceeded: DISCONNECT
   * 0x93), its Topic Alias (resolved, or DISCONNECT 0x94/0x82), Maximum QoS and Retain Available.
   * Returns the PUBLISH with its topic resolved, or undefined when the connection is closed.
   */
  #inbound5(link: LinkState, v5: Link5, packet: PublishPacket): PublishPacket | undefined {
    if (packet.qos > 0 && v5.quota.admit(packet.packetId!) === "exceeded") {
      this.#log.warning(
        `Closing connection from ${link.info.remoteAddress} (${link.session!.clientId}): ` +
          `more than ${v5.quota.maximum} QoS 1/2 PUBLISH unacknowledged`,
      );
      this.#close(link, "close", "receive maximum exceeded", ReasonCode.RECEIVE_MAXIMUM_EXCEEDED);
      return undefined;
    }
    // The capabilities are the limits announced (Maximum QoS, Retain Available): no object per
    // PUBLISH, and a PUBLISH without a Topic Alias keeps its topic string.
    const verdict = checkInboundPublish(packet, v5.aliases, this.#caps);
    if (typeof verdict !== "string") {
      this.#log.warning(
        `Closing connection from ${link.info.remoteAddress} (${link.session!.clientId}): ` +
          verdict.reason,
      );
      this.#close(link, "close", verdict.reason, verdict.reasonCode);
      return undefined;
    }
    return verdict === packet.topic ? packet : { ...packet, topic: verdict };
  }

  #publishDecided(
    link: LinkState,
    session: Session,
    packet: PublishPacket,
    answer: Decision,
  ): void {
    // MQTT 3.1.1 cannot tell the publisher a reason code; 5.0's PUBACK/PUBREC will carry it.
    const allowed = answer.allowed;
    if (!allowed) {
      this.#denied(
        link.client!,
        "publish_denied",
        packet.topic,
        `${session.clientId} (${link.info.remoteAddress}) is not allowed to publish to ` +
          packet.topic,
      );
    }
    if (link.closing) return;
    this.#accept(link, session, packet, allowed, answer);
  }

  /** Acknowledges and routes a PUBLISH; a 5.0 refusal carries the plugins' code and text. */
  #accept(
    link: LinkState,
    session: Session,
    packet: PublishPacket,
    allowed: boolean,
    answer?: Decision,
  ): void {
    // MQTT 3.1.1 cannot tell a publisher it was refused: the flow completes and the message is
    // dropped, as Mosquitto does.
    const qos = packet.qos;
    if (qos === 0) {
      if (allowed) this.#received(link, session, packet);
      else countDrop(this.stats, "notAuthorized");
      return;
    }
    // QoS 1: PUBACK [MQTT-4.3.2-2]. QoS 2 exactly once: a resent PUBLISH with the same id is
    // acknowledged but not routed again until PUBREL releases the id [MQTT-4.3.3-2].
    const { deliver, reply } = receivePublish(session.inbound, qos, packet.packetId!);
    if (deliver && qos === 2) session.journal?.received(packet.packetId!);
    const matched = deliver && allowed ? this.#received(link, session, packet) : -1;
    if (deliver && !allowed) countDrop(this.stats, "notAuthorized");
    const v5 = link.v5;
    if (v5 === undefined) {
      this.actions.send(link, reply);
      return;
    }
    // 5.0 tells the publisher: 0x87 for a refused message [MQTT-3.4.2-1] [MQTT-3.5.2-1], with a
    // reason string only if it did not turn problem information off [MQTT-3.1.2-29].
    const refusal = answer?.reasonCode;
    const code = !allowed && refusal !== undefined && refusal >= 0x80 &&
        REASON_CODE_PACKETS[refusal]?.includes(reply.type) === true
      ? refusal
      : publishAckCode(
        !allowed
          ? "not_authorized"
          // 0x10 only where the server knows that no subscriber matched (5.0 §3.4.2.1, PUBACK
          // Reason Codes): in a cluster, subscribers on another node got the message too.
          : matched === 0 && this.matchesElsewhere?.(packet.topic) !== true
          ? "no_subscribers"
          : "delivered",
      );
    // A PUBACK, or a PUBREC of 0x80 or more, ends the id's count against our Receive Maximum
    // [MQTT-3.3.4-8]; a PUBREC of success waits for the PUBCOMP.
    if (qos === 1 || code >= 0x80) v5.quota.settle(packet.packetId!);
    // After a PUBREC of 0x80 or more no PUBREL comes: the id is free for a new message
    // [MQTT-4.3.3-9].
    if (qos === 2 && code >= 0x80 && session.inbound.release(packet.packetId!)) {
      session.journal?.released(packet.packetId!);
    }
    if (code < 0x80) {
      // 0x10 No matching subscribers is a success: no reason string.
      this.actions.send(link, code === 0 ? reply : { ...(reply as AckPacket), reasonCode: code });
      return;
    }
    this.actions.send(
      link,
      withProblemInformation(
        { ...(reply as AckPacket), reasonCode: code },
        {
          reasonString: answer?.reasonString ?? `not authorized to publish to ${packet.topic}`,
          userProperties: answer?.userProperties,
        },
        v5.limits,
      ),
    );
  }

  /**
   * Whether the last {@linkcode handle} call routed a message (see {@linkcode releaseReceived});
   * that message when it is QoS 1/2, whose payload is then copied out if a session keeps it in
   * flight. A QoS 0 message is not stored here: a new object stored into the core costs a write
   * barrier per message on the fan-in path.
   */
  #routed = false;
  #routedKept: BrokerMessage | undefined;
  /** With receive hooks: the deliveries of the routed message that asked the plugins. */
  #routedWaits: ReceiveWait[] | undefined;

  /**
   * After a PUBLISH given to {@linkcode handle} and the actions that followed it have run: lets go
   * of the bytes it was decoded from, so that the connection may read its next bytes into the same
   * buffer. Its deliveries have been copied into the subscribers' output buffers by then; a
   * QoS 0 message is kept nowhere else (not queued for offline sessions, its retained copy has a
   * payload of its own), nor is a QoS 1/2 message delivered only at QoS 0 or written out only to
   * clean sessions, which never send it again (such a message lets go of its payload,
   * `BrokerMessage.writtenOut`); one a session keeps in flight until acknowledged, to send it
   * again, gets its payload copied out here (`BrokerMessage.copyOut`; one
   * queued behind a window got it during the routing, one that waits long gets a buffer of its own
   * from `detach`). A 5.0 delivery's copy (Subscription Identifiers, Retain As Published) delivered
   * at QoS 0 is written out during the routing too; one kept in flight shares the message's copy.
   * So does every record of it that may be kept past the routing (a store writer's batch, one
   * held for a session moving here on a cluster node; `copyOutRecords`), and a delivery still
   * waiting for the plugins' receive authorization. Last, the 5.0 copies written out to clean
   * sessions (or at QoS 0) that still view the buffer let go of it (`copiesWrittenOut`). Refused
   * (the buffer is not reused) while actions of the routing are still to run: they read the
   * payloads they write.
   *
   * @returns whether nothing made from the PUBLISH refers to its bytes any more
   */
  releaseReceived(): boolean {
    if (!this.#routed) return false;
    this.#routed = false;
    const kept = this.#routedKept;
    this.#routedKept = undefined;
    const waits = this.#routedWaits;
    this.#routedWaits = undefined;
    if (this.actions.length > 0) {
      // Not released: what refers to the buffer stays valid.
      forgetRecords();
      return false;
    }
    // Only a message a session keeps in flight (or a copy of it): one delivered only at QoS 0 was
    // written out.
    if (kept !== undefined && kept.inFlight) kept.copyOut();
    if (waits !== undefined) {
      // Deliveries whose receive authorization is still unanswered wait in memory.
      for (let i = 0; i < waits.length; i++) {
        const wait = waits[i]!;
        if (this.#receivesPending.has(wait.ask)) wait.message.copyOut();
      }
    }
    copyOutRecords();
    // Kept by no session that reads it again (see BrokerMessage.writtenOut): no copy.
    if (kept !== undefined && !kept.inFlight) kept.writtenOut();
    // Last, once every copy that is kept has bytes of its own: the 5.0 copies still viewing the
    // buffer were written out to clean sessions.
    copiesWrittenOut();
    return true;
  }

  /** Takes a PUBLISH the client may make; returns how many subscriptions matched it. */
  #received(link: LinkState, session: Session, packet: PublishPacket): number {
    // A 5.0 PUBLISH keeps its properties, forwarded untouched [MQTT-3.3.2-4] [MQTT-3.3.2-15]
    // [MQTT-3.3.2-16] [MQTT-3.3.2-17], and its expiry [MQTT-3.3.2-5].
    const properties = packet.properties;
    const message = new BrokerMessage(packet.topic, packet.payload, {
      qos: packet.qos,
      retain: packet.retain,
      senderId: session.clientId,
      properties,
      expiresAt: properties === undefined ? undefined : expiryDeadline(properties, this.#now),
      // Its PUBLISH as received may go out again as it is (see BrokerMessage.encoded).
      receivedAt: link.v5 === undefined ? 4 : 5,
    });
    this.#routed = true;
    forgetRecords();
    if (packet.qos !== 0) this.#routedKept = message;
    if (packet.retain) this.#retain(message);
    this.#events.messageReceived?.(session.clientId, message);
    const flow = this.flow;
    if (flow === undefined) return this.#route(message);
    // A delivery that fills a subscriber's queue pauses this publisher (publish_flow.ts).
    flow.source = link;
    flow.now = this.#now;
    const matched = this.#route(message);
    flow.source = undefined;
    return matched;
  }

  #retain(message: BrokerMessage): void {
    const topic = message.topic;
    const old = this.retained.get(topic);
    if (message.payload.length === 0) {
      // A zero-byte retained message clears the topic [MQTT-3.3.1-10] and is not stored
      // [MQTT-3.3.1-11]; it is still forwarded to current subscribers.
      this.#unretain(old);
    } else {
      const growth = retainedSize(message) - (old === undefined ? 0 : retainedSize(old));
      // The limits bound what clients make the broker hold; the host program and its plugins
      // (the `$SYS` version) are trusted.
      const refusal = message.senderId === undefined
        ? undefined
        : this.#retainRefusal(old === undefined, growth);
      if (refusal !== undefined) {
        // Not stored, still forwarded to current subscribers (3.1.1 cannot tell the publisher).
        // The message it would have replaced is dropped too: a later subscriber must not get a
        // value that has been superseded.
        this.#unretain(old);
        this.stats[refusal]++;
        this.#limitLog.warn(
          `Not retaining a message on ${topic.slice(0, 200)}: ${
            refusal === "refusedMemory" ? "max_memory" : "the retained message limits are"
          } reached`,
          { reason: refusal },
        );
        return;
      }
      // It replaces any earlier retained message on the topic [MQTT-3.3.1-5].
      const retained = message.asRetained();
      this.retained.set(topic, retained);
      this.#durable?.retained(retained);
      this.#retainedBytes += growth;
    }
    this.#events.retainedMessage?.(message);
  }

  #unretain(old: BrokerMessage | undefined): void {
    if (old === undefined) return;
    this.retained.delete(old.topic);
    this.#durable?.unretained(old.topic);
    this.#retainedBytes -= retainedSize(old);
  }

  /** Which limit refuses storing a retained message, if one does. */
  #retainRefusal(isNew: boolean, growth: number): RefusalKind | undefined {
    const { maxRetainedMessages, maxRetainedBytes } = this.#limits;
    if (isNew && maxRetainedMessages > 0 && this.retained.size >= maxRetainedMessages) {
      return "refusedRetained";
    }
    if (growth > 0 && maxRetainedBytes > 0 && this.#retainedBytes + growth > maxRetainedBytes) {
      return "refusedRetained";
    }
    if ((isNew || growth > 0) && this.budget.exceeded) return "refusedMemory";
    return undefined;
  }

  /** Routes a message to its subscribers; returns how many subscriptions matched. */
  #route(message: BrokerMessage): number {
    let deliveries = this.subscriptions.match(message.topic);
    if (this.shareGate !== undefined) {
      deliveries = gateShares(deliveries, message, this.shareGate, this.#shareMemberAmong);
    }
    const stats = this.stats;
    if (message.expiresAt !== undefined && isExpired(message.expiresAt, this.#now)) {
      // An expired message is not delivered [MQTT-3.3.2-5].
      countDrop(stats, "expired", deliveries.length);
      return deliveries.length;
    }
    if (
      !this.#policy.hasReceiveHooks &&
      (this.#v5Links > 0
        ? message.qos !== 0 ||
          !plainMatch(deliveries, message, this.#v5Checked > 0, this.#matchOptions)
        // No 5.0 client connected: a QoS 1/2 message is queued for offline sessions with the
        // options and identifiers of their subscriptions all the same, so that it is stored and
        // later sent with them [MQTT-3.3.4-3].
        : message.qos !== 0 && !plainMatch(deliveries, message, false, this.#matchOptions))
    ) {
      // A 5.0 client is connected: subscription options and identifiers, expiry, aliases and
      // Maximum Packet Size for the deliveries that have them, the 3.1.1 path's fan-out for the
      // others (a QoS 1/2 message's QoS 0 deliveries too). A QoS 0 message to which nothing of
      // 5.0 applies takes the 3.1.1 path below, 5.0 subscribers alike.
      routeMixed(deliveries, message, this.actions, stats, this.#now, this.#matchOptions);
      return deliveries.length;
    }
    if (this.#policy.hasReceiveHooks) {
      this.#routeChecked(message, deliveries);
      return deliveries.length;
    }
    if (message.qos === 0) {
      // Every delivery is QoS 0: one action for all of them, to the connected subscribers.
      if (deliveries.length > 0) this.actions.fanOut(message, deliveries);
      return deliveries.length;
    }
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      // Delivered at min(published, granted) [MQTT-3.8.4-6]; one copy per client [MQTT-3.3.5-1].
      const qos = (d.qos < message.qos ? d.qos : message.qos) as QoS;
      d.subscriber.deliver(message, qos, stats, d.share);
    }
    return deliveries.length;
  }

  // aMQTT's receive ACL: a plugin decides per delivery. Only taken when a plugin has the hook.
  // Subscription options and identifiers apply as on the unchecked path (deliver5).
  #routeChecked(message: BrokerMessage, deliveries: readonly Delivery<Session>[]): void {
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      const out = forwarded5(d, message, this.stats, this.#now);
      if (out !== undefined) this.#deliverChecked(d.subscriber, out.message, out.qos, d.share);
    }
  }

  #deliverChecked(session: Session, message: BrokerMessage, qos: QoS, share?: string): void {
    const client = session.client;
    if (client === undefined) return;
    const id = ++this.#nextDecision;
    const ask = ++this.#receivesAsked;
    const wait: ReceiveWait = { message, qos, allowed: undefined, share, ask };
    this.#receivesPending.add(ask);
    this.#decisions.set(id, {
      link: undefined,
      resume: (answer) => {
        wait.allowed = answer.allowed;
        this.#deliverReceived(session);
      },
    });
    // Decisions may come back in any order (a plugin's lookups take varying time): deliver in
    // the order the messages were routed, behind whatever this session still waits for, so each
    // topic stays ordered [MQTT-4.6.0-6].
    (session.receiving ??= []).push(wait);
    // Its payload is copied out of the read buffer if it still waits then (releaseReceived).
    if (this.#routed) (this.#routedWaits ??= []).push(wait);
    this.actions.ask(undefined, id, { kind: "receive", client, topic: message.topic });
  }

  /** Receive authorizations asked so far (numbered from 1 in the order asked). */
  get receivesAsked(): number {
    return this.#receivesAsked;
  }

  /**
   * Every receive authorization numbered below this one was answered and its delivery decided:
   * deliveries routed before it was asked are delivered or dropped (and, to persistent sessions,
   * journaled), none waits in memory.
   */
  get receivesAnsweredBelow(): number {
    for (const ask of this.#receivesPending) return ask;
    return this.#receivesAsked + 1;
  }

  /**
   * Whether a delivery whose receive authorization is numbered after `after` up to `upTo` still
   * waits in memory (unanswered, or answered behind one of its session's that is not).
   *
   * @param after the number asked last before them
   * @param upTo the number asked last of them
   * @returns true while one of them waits
   */
  receivesWaiting(after: number, upTo: number): boolean {
    // The set keeps the order asked: ascending numbers.
    for (const ask of this.#receivesPending) {
      if (ask > upTo) return false;
      if (ask > after) return true;
    }
    return false;
  }

  /** Delivers the session's answered deliveries up to the first that still waits. */
  #deliverReceived(session: Session): void {
    const waits = session.receiving;
    if (waits === undefined) return;
    let i = 0;
    for (; i < waits.length && waits[i]!.allowed !== undefined; i++) {
      const wait = waits[i]!;
      if (wait.allowed) session.deliver(wait.message, wait.qos, this.stats, wait.share);
      else this.#receiveDenied(session.client, wait.message.topic);
      // Decided only now: an answered delivery behind an unanswered one is still in memory.
      this.#receivesPending.delete(wait.ask);
    }
    waits.splice(0, i);
    if (waits.length === 0) session.receiving = undefined;
  }

  /** A delivery the receive ACL refused: dropped, counted, and logged within the budget. */
  #receiveDenied(client: ClientInfo | undefined, topic: string): void {
    countDrop(this.stats, "notAuthorized");
    if (client === undefined) return;
    this.#denied(
      client,
      "receive_denied",
      topic,
      `${client.clientId} (${client.remoteAddress}) is not allowed to receive ${topic}`,
    );
  }

  #ack(
    link: LinkState,
    session: Session,
    packet: AckPacket,
    kind: "puback" | "pubrec" | "pubcomp",
  ): void {
    // At 5.0 a PUBREC of 0x80 or more ends the flow without PUBREL [MQTT-4.3.3-4] [MQTT-4.4.0-2].
    const v5 = link.v5 !== undefined;
    const failed = v5 && (packet.reasonCode ?? 0) >= 0x80;
    // A cluster node watches a clean member's shared QoS 1 deliveries to their PUBACK: the
    // group's copy, told by its packet id from the session's own subscription's copy of the same
    // message.
    const watch = this.actions.sharedWatch;
    const watched = watch !== undefined && kind === "puback" && session.clean
      ? session.outbound.get(packet.packetId)
      : undefined;
    const outcome = receiveAck(session.outbound, kind, packet.packetId, failed, v5);
    if (outcome.kind === "pubrel") {
      session.journal?.pubrel(packet.packetId);
      // A PUBREC is answered with PUBREL [MQTT-4.3.3-1].
      this.actions.send(link, outcome.reply);
    } else if (outcome.kind === "complete") {
      if (watched?.share !== undefined) watch!.acked(session, watched.message, watched.share);
      session.journal?.acked(packet.packetId);
      session.pump(this.stats, this.#now);
      this.flow?.drained(session);
    } else if (outcome.kind === "violation") {
      // An ack that does not fit the message in flight with its id (PUBREC or PUBCOMP for QoS 1,
      // PUBACK for QoS 2, PUBCOMP before PUBREC, PUBACK after PUBREL) is a protocol violation
      // and closes the connection [MQTT-4.8.0-1], as Mosquitto does. The flow stays as it was:
      // a persistent session resends on the next connection.
      this.#violation(link, outcome.reason);
    } else {
      // A duplicate or stray ack (an id that is not in flight) is harmless [MQTT-4.3.2-1]; a 5.0
      // PUBREC for it is answered with PUBREL 0x92 Packet Identifier not found [MQTT-3.6.2-1].
      this.#log.debug(`${session.clientId}: ignored ${outcome.reason}`);
      if (outcome.reply !== undefined) this.actions.send(link, outcome.reply);
    }
  }

  #subscribe(link: LinkState, session: Session, packet: SubscribePacket): void {
    // A feature the CONNACK said is off, used anyway: a Protocol Error at 5.0, DISCONNECT 0xA1,
    // 0xA2 or 0x9E (§3.2.2.3.11-13). (3.1.1 gets SUBACK 0x80 per filter, in #grant.)
    const unsupported = link.v5 && unsupportedSubscribe(packet, this.#caps);
    if (unsupported) {
      this.#log.warning(
        `Closing connection from ${link.info.remoteAddress} (${session.clientId}): ` +
          unsupported.reason,
      );
      this.#close(link, "close", unsupported.reason, unsupported.reasonCode);
      return;
    }
    if (this.#policy.hasSubscribeHooks) this.#subscribeChecked(link, session, packet, []);
    else this.#grant(link, session, packet, undefined);
  }

  /** Asks about each filter in turn, from `decisions.length` on, then grants. */
  #subscribeChecked(
    link: LinkState,
    session: Session,
    packet: SubscribePacket,
    decisions: Decision[],
  ): void {
    if (link.closing) return;
    const subs = packet.subscriptions;
    if (decisions.length === subs.length) {
      this.#grant(link, session, packet, decisions);
      return;
    }
    const sub = subs[decisions.length]!;
    this.#ask(
      link,
      { kind: "subscribe", client: link.client!, topic: sub.topic, qos: sub.qos },
      (answer) => {
        // MQTT 3.1.1 has one failure code for a SUBACK slot, 0x80; a 5.0 SUBACK carries the
        // plugins' reason code.
        decisions.push(this.#subscribeDecided(link, session, sub.topic, answer));
        this.#subscribeChecked(link, session, packet, decisions);
      },
    );
  }

  #subscribeDecided(
    link: LinkState,
    session: Session,
    filter: string,
    answer: Decision,
  ): Decision {
    if (!answer.allowed) {
      this.#denied(
        link.client!,
        "subscribe_denied",
        filter,
        `${session.clientId} (${link.info.remoteAddress}) is not allowed to subscribe to ` +
          filter,
      );
    }
    return answer;
  }

  #grant(
    link: LinkState,
    session: Session,
    packet: SubscribePacket,
    decisions: Decision[] | undefined,
  ): void {
    const codes: number[] = [];
    const granted: { topic: string; qos: QoS; retained: boolean }[] = [];
    const v5 = link.v5;
    const version = link.protocolVersion;
    // The SUBSCRIBE's Subscription Identifier goes with each of its filters (5.0 §3.8.2.1.2).
    const identifier = v5 === undefined
      ? undefined
      : packet.properties?.subscriptionIdentifier?.[0];
    // At 5.0 the SUBACK says why filters were refused [MQTT-3.9.2-1] [MQTT-3.9.2-2].
    const problems = v5 === undefined ? undefined : new AckProblems();
    for (let i = 0; i < packet.subscriptions.length; i++) {
      const sub = packet.subscriptions[i]!;
      const problem = validateTopicFilter(sub.topic);
      const decision = decisions?.[i];
      if (problem !== undefined || (decision !== undefined && !decision.allowed)) {
        // A refused filter gets 0x80 in its SUBACK slot [MQTT-3.8.4-5] (at 5.0 the reason:
        // 0x8F filter invalid, 0x87 not authorized); the others still apply.
        if (problem !== undefined) {
          this.#log.info(
            `${session.clientId}: invalid topic filter "${brief(sub.topic)}": ${problem}`,
          );
        }
        const plugin = decision?.reasonCode;
        problems?.add(
          problem !== undefined
            ? `invalid topic filter "${brief(sub.topic)}": ${problem}`
            : decision?.reasonString ?? `not authorized to subscribe to "${brief(sub.topic)}"`,
          decision?.userProperties,
        );
        codes.push(
          problem === undefined && v5 !== undefined && plugin !== undefined && plugin >= 0x80 &&
            REASON_CODE_PACKETS[plugin]?.includes(PacketType.SUBACK) === true
            ? plugin
            : subscribeRefusalCode(
              problem !== undefined ? "filter_invalid" : "not_authorized",
              version,
            ),
        );
        continue;
      }
      if (v5 === undefined && unsupportedFilter(sub.topic, this.#caps) !== undefined) {
        // A feature turned off, which 3.1.1 cannot be told of: the filter's SUBACK slot is the
        // failure code 0x80 [MQTT-3.8.4-5].
        codes.push(ReasonCode.UNSPECIFIED_ERROR);
        continue;
      }
      const quota = this.#subscriptionRefusal(session, sub.topic);
      if (quota !== undefined) {
        codes.push(subscribeRefusalCode("quota_exceeded", version));
        problems?.add(`filter "${brief(sub.topic)}" refused: ${quota}`);
        continue;
      }
      const qos = grantedQos(sub.qos, this.#caps.maximumQoS);
      const existed = session.subscriptions.has(sub.topic);
      // A subscription to an existing filter replaces it [MQTT-3.8.4-3], options and all.
      const options: SessionSubscription = v5 === undefined ? { topic: sub.topic, qos } : {
        topic: sub.topic,
        qos,
        // (No Local on a shared filter never gets here: the decoder refuses it [MQTT-3.8.3-4].)
        noLocal: sub.noLocal === true,
        retainAsPublished: sub.retainAsPublished === true,
        retainHandling: sub.retainHandling ?? 0,
        identifier,
      };
      this.#addSubscription(session, options);
      codes.push(qos);
      granted.push({
        topic: sub.topic,
        qos,
        // Retained messages per Retain Handling [MQTT-3.3.1-9..11]; never for a shared one.
        // A broker without Retain Available serves none (MQTT 5.0 §3.2.2.3.5), at every level.
        retained: this.#caps.retainAvailable !== false &&
          sendsRetained(sub.topic, options, existed),
      });
    }
    // One SUBACK, same packet id, one code per filter in order [MQTT-3.8.4-1..5].
    const suback: Packet = {
      type: PacketType.SUBACK,
      packetId: packet.packetId,
      reasonCodes: codes,
    };
    this.actions.send(
      link,
      problems === undefined
        ? suback
        : withProblemInformation(suback, problems.information, v5!.limits),
    );
    for (const { topic, qos, retained } of granted) {
      this.#events.subscribed?.(session.clientId, topic, qos);
      if (!retained) continue;
      // Matching retained messages are sent after the SUBACK, RETAIN = 1 [MQTT-3.3.1-6], a
      // slice at a time (see drainRetained) so that a large match does not stall other clients.
      const feed: RetainedFeed = {
        session,
        link,
        subscription: session.subscriptions.get(topic)!,
        cursor: this.retained.cursor(topic),
        qos,
      };
      if (this.feeds.add(feed)) this.#schedule?.();
    }
    // A core driven without a shell to schedule slices sends them all now.
    if (this.#schedule === undefined) this.drainRetained(Number.MAX_SAFE_INTEGER);
  }

  /**
   * Adds a subscription to a session, replacing its subscription to the same filter
   * [MQTT-3.8.4-3]: in the subscription tree, in the session, and in its journal (a
   * `putSubscription` row of the filter and its options, whatever else `sub` carries). The one step
   * of a granted SUBSCRIBE filter and of a merged subscription (`mergeSubscriptions`).
   */
  #addSubscription(session: Session, sub: SessionSubscription): void {
    this.subscriptions.subscribe(sub.topic, session, sub);
    session.addSubscription(sub);
    session.journal?.subscribed(sub.topic, sub);
  }

  /**
   * A filter is refused (SUBACK 0x80 [MQTT-3.8.4-5]) past `max_topic_levels`; a new one also past
   * `max_subscriptions_per_client` or the memory budget. Replacing a subscription costs nothing.
   * Returns why it is refused, or undefined.
   */
  #subscriptionRefusal(session: Session, filter: string): string | undefined {
    let kind: RefusalKind | undefined;
    let why = "";
    if (exceedsTopicLevels(filter, this.#limits.maxTopicLevels)) {
      kind = "refusedTopicLevels";
      why = `more than ${this.#limits.maxTopicLevels} levels`;
    } else if (!session.subscriptions.has(filter)) {
      const max = this.#limits.maxSubscriptionsPerClient;
      if (max > 0 && session.subscriptions.size >= max) {
        kind = "refusedSubscriptions";
        why = `max_subscriptions_per_client ${max} reached`;
      } else if (this.budget.exceeded) {
        kind = "refusedMemory";
        why = "max_memory reached";
      }
    }
    if (kind === undefined) return undefined;
    this.stats[kind]++;
    this.#limitLog.warn(
      `${session.clientId}: refusing filter ${filter.slice(0, 200)}: ${why}`,
      { reason: kind },
    );
    return why;
  }

  /**
   * Where retained messages for new subscriptions go. A feed waits while its subscriber has no
   * room (a connection not reading, a full window and queue), so that none is dropped, and stops
   * when its subscription or connection goes. Each message passes the receive authorization like
   * any delivery. (The cursor skips messages replaced or cleared since the SUBSCRIBE: their
   * successors were routed to this subscription live.)
   */
  #feedTarget: FeedTarget = {
    room: (feed) => {
      const session = feed.session;
      const subscription = feed.subscription;
      if (
        session.link !== feed.link ||
        session.subscriptions.get(subscription.topic) !== subscription
      ) {
        return -1;
      }
      // A core without a shell to come back later sends everything at once.
      return this.#schedule === undefined ? Number.MAX_SAFE_INTEGER : session.room(feed.qos);
    },
    send: (feed, message) => {
      if (message.expiresAt !== undefined && isExpired(message.expiresAt, this.#now)) {
        // An expired retained message is not sent [MQTT-3.3.2-5], and no longer kept.
        countDrop(this.stats, "expired");
        if (this.retained.get(message.topic) === message) this.#unretain(message);
        return;
      }
      if (feed.link.v5 !== undefined) {
        const out = retained5(feed.session, feed.subscription, message, this.stats, this.#now);
        if (out === undefined) return;
        if (this.#policy.hasReceiveHooks) this.#deliverChecked(feed.session, out.message, out.qos);
        else feed.session.deliver(out.message, out.qos, this.stats);
        return;
      }
      const qos = (feed.qos < message.qos ? feed.qos : message.qos) as QoS;
      if (this.#policy.hasReceiveHooks) this.#deliverChecked(feed.session, message, qos);
      else feed.session.deliver(message, qos, this.stats);
    },
  };

  #unsubscribe(link: LinkState, session: Session, packet: UnsubscribePacket): void {
    const v5 = link.v5;
    const codes: number[] | undefined = v5 === undefined ? undefined : [];
    // At 5.0 the UNSUBACK says what came of filters that removed nothing [MQTT-3.11.2-1].
    const problems = v5 === undefined ? undefined : new AckProblems();
    for (const topic of packet.topics) {
      const problem = problems && validateTopicFilter(topic);
      if (problem !== undefined) {
        // No subscription can have an invalid filter: 0x8F says so (5.0 §3.11.3).
        codes!.push(ReasonCode.TOPIC_FILTER_INVALID);
        problems!.add(`invalid topic filter "${brief(topic)}": ${problem}`);
        continue;
      }
      const existed = this.subscriptions.unsubscribe(topic, session);
      if (existed) {
        session.deleteSubscription(topic);
        session.journal?.unsubscribed(topic);
        this.#events.unsubscribed?.(session.clientId, topic);
      }
      // 5.0: one reason code per filter, 0x11 for none [MQTT-3.11.3-1] [MQTT-3.11.3-2].
      codes?.push(unsubscribeCode(existed));
      if (!existed) problems?.add(`no subscription to "${brief(topic)}" existed`);
    }
    // UNSUBACK even when nothing matched [MQTT-3.10.4-5].
    this.actions.send(
      link,
      codes === undefined
        ? { type: PacketType.UNSUBACK, packetId: packet.packetId }
        : withProblemInformation(
          { type: PacketType.UNSUBACK, packetId: packet.packetId, reasonCodes: codes },
          problems!.information,
          v5!.limits,
        ),
    );
  }

  /** Takes a session's delayed will off the will heap (it stays or goes with `session.will`). */
  #cancelWill(session: Session): void {
    if (session.willDue === undefined) return;
    this.#wills.remove(session.willDue);
    session.willDue = undefined;
  }

  /** Ends a session; returns how many of its messages went to other shared-group members. */
  #discard(session: Session): number {
    if (session.willDue !== undefined) {
      // A session that ends publishes the will still waiting for its delay.
      this.#cancelWill(session);
      this.#publishWill(session);
    }
    this.subscriptions.unsubscribeAll(session);
    // Shared-group messages it had not started to deliver go to another member (§4.8.2), unless
    // the session lives on, on another cluster node.
    const moved = this.#handingOver === session.clientId
      ? 0
      : redeliverShared(session, this.subscriptions, {
        counters: this.stats,
        watch: this.actions.sharedWatch,
      });
    session.clearSubscriptions();
    session.clearDeliveries();
    this.flow?.forgetSession(session);
    this.#queueDrops.ended(
      session,
      this.#handingOver === session.clientId ? "moved to another node" : "ended",
    );
    session.journal?.deleted();
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    this.#leaveOffline(session);
    return moved;
  }

  /** Takes a session off the offline list and its deadline off the expiry heap. */
  #leaveOffline(session: Session): void {
    this.#offline.delete(session);
    session.expiresAt = undefined;
    if (session.expiry !== undefined) {
      this.#expiries.remove(session.expiry);
      session.expiry = undefined;
    }
  }
}

/** The structured fields of an authorization denial's log line. */
function denial(client: ClientInfo, event: string, topic: string): LogFields {
  return {
    event,
    clientId: client.clientId,
    username: client.username,
    listener: client.listener,
    remoteAddress: client.remoteAddress,
    reason: "not authorized",
    topic,
  };
}

/** What a retained message counts against `max_retained_bytes`: its topic and payload. */
function retainedSize(message: BrokerMessage): number {
  return message.topic.length + message.payload.length;
}

/** A filter or topic as a Reason String names it: at most 100 characters. */
function brief(topic: string): string {
  return topic.length <= 100 ? topic : `${topic.slice(0, 100)}…`;
}

/** A CONNECT's properties as plugins see them: without the Authentication Data (a view). */
function pluginProperties(properties: Properties): Properties {
  if (properties.authenticationData === undefined) return properties;
  const copy = { ...properties };
  delete copy.authenticationData;
  return copy;
}

/** The client a store mutation is about, if any. */
function mutationClient(mutation: StoreMutation): string | undefined {
  return mutation.type === "putSession"
    ? mutation.session.clientId
    : "clientId" in mutation
    ? mutation.clientId
    : undefined;
}
