/**
 * The embeddable MQTT broker: configuration, listeners, the keepalive sweep, and the public API
 * over the protocol core.
 *
 * @module
 */

import { serverCapabilities } from "./connack_properties.ts";
import { getHeapStatistics } from "node:v8";
import { type QoS, ReasonCode } from "../packet/constants.ts";
import type { BrokerConfig, ListenerConfig } from "../config/mod.ts";
import type { BrokerConfigInput } from "../config/broker_config_input.ts";
import { resolveBrokerConfig } from "../config/mod.ts";
import { createBuiltinPlugin } from "../plugins/builtin.ts";
import { TopicAccessControlListPlugin } from "../plugins/topic_acl.ts";
import { EventLoggerPlugin } from "../plugins/event_logger.ts";
import { BrokerSysPlugin, type SysSnapshot } from "../plugins/sys.ts";
import { exceedsTopicLevels, validateTopicName } from "../topic/mod.ts";
import type { BrokerPlugin, MessageInfo } from "../plugins/types.ts";
import type { ServerListener } from "../transport/listener.ts";
import { listenTcp } from "../transport/tcp.ts";
import { listenTlsClientAuth } from "../transport/tls_node.ts";
import { listenWebSocket } from "../transport/websocket.ts";
import type { ByteConnection } from "../transport/types.ts";
import { loadCaCertificates } from "../transport/ca_certificates.ts";
import { errorText } from "./_error_text.ts";
import { BrokerConnection, type BrokerConnectionOptions } from "./connection.ts";
import { SlotSet } from "./_slot_set.ts";
import { MemoryRelease } from "./_memory_release.ts";
import type { ConnectionLimits, PacketObserver } from "./connection.ts";
import { BrokerCore } from "./core.ts";
import { ActionRunner } from "./action_runner.ts";
import { ReceiveGate } from "./receive_gate.ts";
import type { BrokerStats, CoreOptions } from "./core.ts";
import { BrokerMessage } from "./message.ts";
import { packetOfItsOwn } from "./_packet_of_its_own.ts";
import { dropTopicLevel } from "./drop_counters.ts";
import { refusalsByName } from "./limits.ts";
import { PluginHost } from "./plugin_host.ts";
import type { ClientInfo, Logger, PolicyHost } from "./policy.ts";
import { runDecision } from "./decision.ts";
import type { ClusterLinkModule, ClusterMember } from "./cluster_member.ts";
import { HttpApp } from "./http/http_app.ts";
import { listenHttp } from "./http/http_listener.ts";
import {
  type DecisionHistograms,
  newDecisionHistograms,
  timePolicy,
} from "./http/decision_timer.ts";
import { type ListenerFigures, type MetricsInput, refusalReason } from "./http/metrics.ts";
import type { BrokerStore } from "../store/broker_store.ts";
import { type CommitGate, StoreWriter } from "./store_writer.ts";
import { openStore } from "./open_store.ts";
import { loginAfter, loginPreparationTimeout } from "./cluster_policy.ts";
import { sharedByNodes } from "./_shared_store.ts";

/** What a {@linkcode BrokerConnection} is made with. */
type ConnectionOptions = BrokerConnectionOptions;

/**
 * Events a host program can listen to with {@linkcode Broker.on}.
 *
 * @example
 * ```ts
 * import { Broker, type BrokerEventMap } from "./broker.ts";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * const subscriptions: BrokerEventMap["subscribed"][] = [];
 * broker.on("subscribed", (event) => subscriptions.push(event));
 * ```
 */
export interface BrokerEventMap {
  /** A client's CONNECT was accepted. */
  clientConnected: { clientId: string; client: ClientInfo };
  /** A client's connection ended, for whatever reason. */
  clientDisconnected: { clientId: string };
  /** A subscription was granted (one event per filter). */
  subscribed: { clientId: string; topic: string; qos: QoS };
  /** A subscription was removed by UNSUBSCRIBE. */
  unsubscribed: { clientId: string; topic: string };
  /** A client published a message (after authorization). */
  message: { clientId: string; topic: string; payload: Uint8Array; qos: QoS; retain: boolean };
}

/**
 * A connected or offline client, for inspection.
 *
 * @example
 * ```ts
 * import { Broker, type SessionSummary } from "./broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * const offline: SessionSummary[] = broker.clients().filter((c) => !c.connected);
 * assert.deepEqual(offline, []);
 * ```
 */
export interface SessionSummary {
  /** The client identifier. */
  clientId: string;
  /** Whether a connection is attached to the session now. */
  connected: boolean;
  /** `host:port` of the connection, when connected. */
  remoteAddress: string | undefined;
  /** The clean-session flag of its last CONNECT. */
  cleanSession: boolean;
  /** Its subscriptions as granted. */
  subscriptions: { topic: string; qos: QoS }[];
  /** Outgoing QoS 1/2 messages awaiting acknowledgement. */
  inflight: number;
  /** Outgoing messages queued behind the in-flight window. */
  queued: number;
  /** Bytes of every packet kind written to the connection but not yet drained; 0 offline. */
  outboundBytes: number;
}

/**
 * Options of {@linkcode Broker} beyond the configuration.
 *
 * @example
 * ```ts
 * import { Broker, type BrokerOptions } from "./broker.ts";
 *
 * const options: BrokerOptions = {
 *   logger: { debug() {}, info() {}, warning: console.warn, error: console.error },
 *   // Refuse clients without a user name; leave the others to the configured plugins.
 *   plugins: [{
 *     name: "named_only",
 *     authenticate: (client) => client.anonymous ? false : undefined,
 *   }],
 * };
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } }, options);
 * ```
 */
export interface BrokerOptions {
  /** Where log lines go. Default: warnings and errors to the console. */
  logger?: Logger;
  /** Plugin objects added after the ones the configuration names, in this order. */
  plugins?: BrokerPlugin[];
  /**
   * Emit the `mqttPacketReceived` / `mqttPacketSent` plugin events (what the packet logger
   * plugin logs), and let the configured event logger log every message. Off by default: they
   * cost work on every packet (a PUBLISH's payload is copied for the plugins, which may keep it).
   * The CLI turns them on with -d.
   */
  packetEvents?: boolean;
  /**
   * Reads the process memory, in bytes, that `max_memory` bounds; called after every 16 MiB read
   * from clients or held in queued deliveries, and by the sweep: every 500 ms once memory is above
   * half of `max_memory`, every 5 s below that. Default: V8's heap used plus external buffers
   * (`Deno.memoryUsage()`). A host in a container may measure its cgroup instead.
   */
  memoryProbe?: () => number;
  /**
   * Where broker state is kept, instead of the store the configuration's `persistence` section
   * names: an opened store (another backend, or an `SqliteStore` with options of its own). The
   * broker loads it at start and closes it at shutdown. Default: the configured SQLite file when
   * persistence is on, else state lives in memory only.
   */
  store?: BrokerStore;
  /**
   * Milliseconds a shutdown waits for each client to close its side after the broker's orderly
   * close (flush, half-close) before it aborts what is left. Default 1000.
   */
  shutdownGraceMs?: number;
  /**
   * Bind plain TCP listeners with SO_REUSEPORT, so that several broker processes (cluster nodes,
   * `amqtt --workers N`) share one port; Linux, and Deno needs `--unstable-net`. Default false.
   */
  reusePort?: boolean;
  /**
   * Give the heap of many closed connections back to the system at once: when at least 1,000
   * connections and half of the most held have gone, the sweep asks V8 for one full collection
   * (see `_memory_release.ts`), at most every 10 s. Its effects reach the whole program that
   * embeds the broker: the collection pauses it for as long as V8 takes to mark its whole heap
   * (the host's objects too), and unless the program runs with `--v8-flags=--expose-gc` the
   * broker sets V8's `--expose-gc` flag at run time, after which every context made with
   * `node:vm` has a `gc` function (code the host runs in such a sandbox can then pause it).
   * After the collection, where the program has the `ffi` permission on Linux, glibc's
   * `malloc_trim` gives back the free pages the runtime's sockets left in the C allocator
   * (`_malloc_trim.ts`). A host that minds any of this turns it off; V8 then gives the heap back
   * by itself, later, and the C allocator keeps what it keeps.
   *
   * @default {true}
   */
  releaseMemory?: boolean;
}

/**
 * The version published on `$SYS/broker/version`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./broker.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(VERSION, /^\d+\.\d+\.\d+$/);
 * ```
 */
export const VERSION = "0.1.0";

/** Milliseconds of retained delivery per turn of the event loop, and trie nodes between checks. */
const RETAINED_SLICE_MS = 4;
const RETAINED_STEP = 256;
/** Milliseconds before looking again when every subscriber waiting for retained messages is busy. */
const RETAINED_WAIT_MS = 5;

/** The default of {@linkcode BrokerOptions.shutdownGraceMs}. */
const SHUTDOWN_GRACE_MS = 1000;

/** The cluster glue, imported on demand (see {@linkcode Broker.start}). */
const CLUSTER_LINK = new URL("./cluster_link.ts", import.meta.url).href;

const CONSOLE_LOGGER: Logger = {
  debug() {},
  info() {},
  warning: (m) => console.warn(m),
  error: (m) => console.error(m),
  enabled: (level) => level === "warning" || level === "error",
};

/**
 * A handler for {@linkcode Broker.on}.
 *
 * @example
 * ```ts
 * import { Broker, type BrokerEventHandler } from "./broker.ts";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * const onMessage: BrokerEventHandler<"message"> = ({ clientId, topic }) =>
 *   console.log(`${clientId} published to ${topic}`);
 * const off = broker.on("message", onMessage);
 * off(); // removes the handler again
 * ```
 */
export type BrokerEventHandler<K extends keyof BrokerEventMap> = (event: BrokerEventMap[K]) => void;

/**
 * An MQTT 3.1 / 3.1.1 broker.
 *
 * @example
 * ```ts
 * import { Broker } from "./broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * assert.ok(broker.listeners[0].port > 0);
 * ```
 */
export class Broker implements AsyncDisposable {
  readonly #config: BrokerConfig;
  readonly #host: PluginHost;
  readonly #sys: BrokerSysPlugin | undefined;
  readonly #log: Logger;
  readonly #core: BrokerCore;
  readonly #runner: ActionRunner;
  /** Replies of publishers that wait for receive authorizations (see `receive_gate.ts`). */
  readonly #receives: ReceiveGate;
  #runQueued = false;
  readonly #policy: PolicyHost;
  readonly #connections: SlotSet<BrokerConnection> = new SlotSet();
  /** Gives the heap of many closed connections back at once (see `_memory_release.ts`); none when `releaseMemory` is off. */
  readonly #release: MemoryRelease | undefined;
  /** Packets received and sent at the previous sweep: whether the broker was quiet since. */
  #packetsAtSweep = 0;
  /** Open connections per listener name, for `max-connections`. */
  readonly #perListener = new Map<string, number>();
  #listeners: ServerListener[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #retainedTimer: ReturnType<typeof setTimeout> | undefined;
  #state: "new" | "starting" | "started" | "stopping" | "stopped" = "new";
  /** The first `shutdown()`'s end, which every later call waits for. */
  #shutdown: Promise<void> | undefined;
  /** Aborts a start still waiting to join the cluster when the broker is shut down. */
  readonly #startAbort = new AbortController();
  /** Why this cluster node does not join yet (nodes of another release are live), while it waits. */
  #waiting: string | undefined;
  /** The start under way, which a shutdown meanwhile waits for. */
  #starting: Promise<void> | undefined;
  #handlers: { [K in keyof BrokerEventMap]?: BrokerEventHandler<K>[] } = {};
  #limits: ConnectionLimits;
  #observer: PacketObserver | undefined;
  readonly #shutdownGraceMs: number;
  #memoryProbe: () => number;
  readonly #reusePort: boolean;
  #startedAt = 0;
  /** Connection counters per listener, for `/metrics`. */
  readonly #counters = new Map<string, ListenerFigures>();
  /** Plugin decision times, kept only when an http listener serves `/metrics`. */
  #decisions: DecisionHistograms | undefined;
  readonly #apps: HttpApp[] = [];
  /** The configured topic_acl plugins, in configuration order, for reload. */
  readonly #acls: TopicAccessControlListPlugin[] = [];
  /** The store given when embedding, until start opens it. */
  #givenStore: BrokerStore | undefined;
  /** Writes durable state, once started with persistence on. */
  #writer: StoreWriter | undefined;
  /** This broker's membership of a cluster, when `cluster:` is configured (from start). */
  #cluster: ClusterMember | undefined;
  /** A cluster node's store, shared by the nodes (from start). */
  #sharedStore: BrokerStore | undefined;
  /** What connections wait for before replying: the writer, or on a cluster node its gate. */
  #gate: CommitGate | undefined;
  /**
   * Creates a broker; nothing listens until {@linkcode start}.
   *
   * @param config aMQTT's configuration keys (`listeners`, `plugins`, `max_inflight`, …), or a
   *   configuration already resolved by `loadBrokerConfigFile`; default: listen on 0.0.0.0:1883,
   *   anonymous clients allowed, `$SYS` every 20 s
   * @param options logger and extra plugins
   * @throws {ConfigError} when the configuration is invalid
   * @throws {TypeError} when a plugin is invalid
   */
  constructor(config?: BrokerConfigInput | BrokerConfig, options: BrokerOptions = {}) {
    this.#config = isResolved(config) ? config : resolveBrokerConfig(config ?? {});
    this.#log = options.logger ?? CONSOLE_LOGGER;
    this.#memoryProbe = options.memoryProbe ?? processMemory;
    this.#givenStore = options.store;
    // A cluster node keeps persistent sessions in the store the nodes share (see #openStore).
    const durable = options.store !== undefined || this.#config.persistence.enabled ||
      this.#config.cluster.enabled;
    this.#reusePort = options.reusePort === true;
    this.#shutdownGraceMs = options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
    if (options.releaseMemory !== false) this.#release = new MemoryRelease();
    for (const warning of this.#config.warnings) this.#log.warning(warning);
    const s = this.#config;
    const plugins: BrokerPlugin[] = [];
    for (const p of s.plugins) {
      if (p.name === "broker_sys") {
        this.#sys = new BrokerSysPlugin({
          sysInterval: p.options.sysInterval,
          snapshot: () => this.#snapshot(),
          startedAt: () => this.#startedAt,
          version: `amqtt version ${VERSION}`,
        });
        plugins.push(this.#sys);
      } else if (p.name === "event_logger") {
        // Its per-message events log at debug level: without packet logging they would cost a
        // PUBLISH's route two events that print nothing (about 30% of fan-in throughput).
        // Likewise its connect and disconnect events when the logger leaves out info lines.
        plugins.push(
          new EventLoggerPlugin({
            messages: options.packetEvents === true,
            connections: this.#log.enabled?.("info") !== false,
          }),
        );
      } else {
        const plugin = createBuiltinPlugin(p.name, p.options as Record<string, unknown>);
        if (plugin instanceof TopicAccessControlListPlugin) this.#acls.push(plugin);
        plugins.push(plugin);
      }
    }
    plugins.push(...(options.plugins ?? []));
    if (s.cluster.enabled) {
      // A cluster node's SUBACK for a filter new on this node waits until the other nodes know
      // (see ClusterLink.prepareInterest); it refuses nothing.
      plugins.push({
        name: "cluster_interest",
        authorizeSubscribe: (_client, topic) => this.#cluster?.prepareInterest(topic),
      });
    }
    this.#host = new PluginHost(plugins, { logger: this.#log });
    const host = this.#host;
    if (s.listeners.some((l) => l.type === "http")) this.#decisions = newDecisionHistograms();
    for (const l of s.listeners) {
      if (l.type !== "http") {
        this.#counters.set(l.name, { name: l.name, open: 0, accepted: 0, refused: {} });
      }
    }
    if (
      options.packetEvents &&
      (host.hasListeners("mqttPacketReceived") || host.hasListeners("mqttPacketSent"))
    ) {
      this.#observer = (clientId, packet, sent) =>
        host.emit(sent ? "mqttPacketSent" : "mqttPacketReceived", {
          clientId,
          // Plugins may keep what they are given: binary fields are views into read buffers
          // read into again (a PUBLISH's once routed, BrokerCore.releaseReceived) or into slabs
          // shared with other clients, which they would keep alive.
          packet: packetOfItsOwn(packet),
        });
    }
    const coreOptions: CoreOptions = {
      maxInflight: s.maxInflight,
      // 0 means unbounded in aMQTT's terms.
      maxQueuedMessages: s.maxQueuedMessages > 0 ? s.maxQueuedMessages : Number.MAX_SAFE_INTEGER,
      connectTimeout: s.connectTimeout,
      // A cluster node's login waits for the session's previous owner up to the cluster's bound,
      // not the connect timeout.
      prepareTimeout: s.cluster.enabled ? loginPreparationTimeout(s.cluster) : undefined,
      sessionExpiryInterval: s.sessionExpiryInterval,
      timeoutDisconnectDelay: s.timeoutDisconnectDelay,
      maxLoginFailures: s.maxLoginFailures,
      loginFailureWindow: s.loginFailureWindow,
      logSummaryInterval: s.logSummaryInterval,
      limits: {
        maxTopicLevels: s.maxTopicLevels,
        maxSubscriptionsPerClient: s.maxSubscriptionsPerClient,
        maxSessions: s.maxSessions,
        maxRetainedMessages: s.maxRetainedMessages,
        maxRetainedBytes: s.maxRetainedBytes,
      },
      // Half the heap limit leaves room for garbage and buffers before V8 runs out.
      maxMemory: s.maxMemory ?? Math.floor(getHeapStatistics().heap_size_limit / 2),
      shareStrategy: s.sharedSubscriptionStrategy,
      capabilities: serverCapabilities(s),
      flowControl: {
        highWater: s.flowControlHighWater,
        lowWater: s.flowControlLowWater,
        timeoutMs: s.flowControlTimeout * 1000,
      },
    };
    this.#limits = {
      maxPacketSize: s.maxPacketSize,
      maxOutboundBytes: s.maxOutboundBytes,
      drainTimeout: s.drainTimeout,
      serverReference: s.serverReference,
    };
    this.#policy = this.#decisions === undefined ? host : timePolicy(host, this.#decisions);
    if (s.cluster.enabled) {
      // A session another node had is loaded here before the login is decided.
      this.#policy = loginAfter(
        this.#policy,
        (id, resume, progress) => this.#cluster?.prepareLogin(id, resume, progress),
      );
    }
    this.#core = new BrokerCore(coreOptions, {
      policy: this.#policy,
      durable,
      logger: this.#log,
      schedule: () => this.#scheduleRetained(),
      memoryProbe: () => {
        try {
          return this.#memoryProbe();
        } catch (err) {
          this.#log.error(`The memory probe failed: ${errorText(err)}`);
          return 0;
        }
      },
      events: {
        clientConnected: (client) => {
          this.#cluster?.connected(client.clientId, client.cleanStart === true);
          if (this.#handlers.clientConnected !== undefined) {
            this.#emit("clientConnected", { clientId: client.clientId, client });
          }
          if (host.hasListeners("brokerClientConnected")) {
            host.emit("brokerClientConnected", {
              clientId: client.clientId,
              client: summary(client),
            });
          }
        },
        clientDisconnected: (clientId, client) => {
          this.#cluster?.disconnected(clientId);
          if (this.#handlers.clientDisconnected !== undefined) {
            this.#emit("clientDisconnected", { clientId });
          }
          if (client !== undefined && host.hasListeners("brokerClientDisconnected")) {
            host.emit("brokerClientDisconnected", { clientId, client: summary(client) });
          }
        },
        subscribed: (clientId, topic, qos) => {
          this.#cluster?.sessionChanged(clientId);
          this.#emit("subscribed", { clientId, topic, qos });
          host.emit("brokerClientSubscribed", { clientId, topic, qos });
        },
        unsubscribed: (clientId, topic) => {
          this.#cluster?.sessionChanged(clientId);
          this.#emit("unsubscribed", { clientId, topic });
          host.emit("brokerClientUnsubscribed", { clientId, topic });
        },
        publishReceived: (clientId, p) => {
          if (host.hasListeners("brokerMessageReceived")) {
            host.emit("brokerMessageReceived", {
              clientId,
              // Listeners get bytes of their own: the read buffer is read into again (see
              // BrokerCore.releaseReceived).
              message: { topic: p.topic, payload: p.payload.slice(), qos: p.qos, retain: p.retain },
            });
          }
        },
        messageReceived: (clientId, m) => {
          this.#cluster?.forward(m);
          if (this.#handlers.message !== undefined) {
            this.#emit("message", {
              clientId,
              topic: m.topic,
              payload: m.payload.slice(),
              qos: m.qos,
              retain: m.retain,
            });
          }
          if (host.hasListeners("brokerMessageBroadcast")) {
            host.emit("brokerMessageBroadcast", { clientId, message: info(m) });
          }
        },
        // The core logs refusals (within its budget of lines); here they are counted by listener.
        connectionRefused: (conn, _clientId, code) => {
          this.#refused(conn.listener, refusalReason(code));
        },
        published: (m) => this.#cluster?.forward(m),
        retainedMessage: (m) => {
          if (host.hasListeners("brokerRetainedMessage")) {
            host.emit("brokerRetainedMessage", { message: info(m) });
          }
        },
      },
    });
    // The core's actions run on the connections they name; a receive authorization (no
    // connection waits for it) is asked here; journal actions go to the store's writer (before
    // start, a host publishing early, there is no store yet: nothing to write to).
    this.#receives = new ReceiveGate(this.#core);
    this.#runner = new ActionRunner(this.#core, {
      journal: durable
        ? (mutation) => {
          if (this.#sharedStore === undefined || sharedByNodes(mutation)) {
            this.#writer?.write(mutation);
          }
        }
        : undefined,
      decide: (id, request) => {
        const answer = runDecision(this.#policy, request, {
          log: (line) => this.#log.error(line),
          settle: (later) => {
            this.#core.decided(id, later, Date.now());
            this.#runner.run();
            this.#receives.settled();
          },
        });
        if (answer !== undefined) this.#core.decided(id, answer, Date.now());
      },
    });
  }

  /** The running listeners with their bound addresses. */
  get listeners(): readonly ServerListener[] {
    return this.#listeners;
  }

  /** Traffic and client counters. */
  get stats(): Readonly<BrokerStats> {
    return this.#core.stats;
  }

  /** When the broker started (ms since epoch), 0 before. */
  get startedAt(): number {
    return this.#startedAt;
  }

  /**
   * Whether the broker should get traffic (what `/readyz` answers): started with every listener
   * bound, not shutting down, its store writable (QoS 1/2 publishes are refused while it is not)
   * and, on a cluster node, Redis reachable (it serves local clients only meanwhile).
   */
  get ready(): boolean {
    return this.notReady.length === 0;
  }

  /**
   * Why {@linkcode ready} is false, one line each; empty when the broker is ready.
   *
   * @example
   * ```ts
   * import { Broker } from "./broker.ts";
   * import assert from "node:assert/strict";
   *
   * const broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
   * assert.deepEqual(broker.notReady, ["not started"]);
   * ```
   */
  get notReady(): string[] {
    const reasons: string[] = [];
    const state = this.#state;
    if (state !== "started") {
      reasons.push(state === "stopping" || state === "stopped" ? "shutting down" : "not started");
    }
    if (this.#waiting !== undefined) reasons.push(this.#waiting);
    if (this.#writer?.failed) reasons.push("the store cannot be written");
    const cluster = this.#cluster?.figures();
    if (cluster !== undefined && !cluster.ready) reasons.push("the cluster cannot reach Redis");
    return reasons;
  }

  /**
   * Binds every configured listener and starts serving.
   *
   * @throws {Deno.errors.AddrInUse} (and other bind errors) when a listener cannot bind; listeners
   *   already bound are closed again
   */
  start(): Promise<void> {
    if (this.#state !== "new") {
      return Promise.reject(new Error(`Cannot start broker: it is ${this.#state}`));
    }
    this.#state = "starting";
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#startedAt = Date.now();
    try {
      // First: what plugins publish while they start must go to the store, on top of its state.
      await this.#openStore();
      await this.#host.init({
        logger: this.#log,
        publish: (topic, payload, options) => {
          this.#publishAny(topic, payload, options ?? {});
          return Promise.resolve();
        },
      });
      await this.#host.emitAndWait("brokerPreStart");
      // First among the listeners: a cluster node may wait long to join (nodes of another
      // release are live), and an orchestrator's probes need `/healthz` and `/readyz` meanwhile.
      for (const spec of this.#config.listeners) {
        if (spec.type !== "http") continue;
        const listener = await this.#listen(spec);
        this.#listeners.push(listener);
        this.#log.info(
          `Listener "${listener.name}" bound to ${listener.hostname}:${listener.port} (${listener.transport})`,
        );
      }
      if (this.#config.cluster.enabled) {
        // Loaded only here, by a specifier Deno does not follow ahead of time: a broker that is
        // no cluster node neither loads nor downloads the Redis client (`deno compile` needs
        // `--include src/broker/cluster_link.ts`).
        const { startClusterLink } = await import(CLUSTER_LINK) as ClusterLinkModule;
        this.#cluster = await startClusterLink({
          config: this.#config.cluster,
          core: this.#core,
          run: () => this.#runner.run(),
          logger: this.#log,
          shareStrategy: this.#config.sharedSubscriptionStrategy,
          store: this.#writer === undefined ? "shared" : undefined,
          committed: () => this.#writer?.committed(Number.MAX_SAFE_INTEGER),
          write: (mutation) => this.#writer?.write(mutation),
          journaled: () => this.#writer?.emitted ?? 0,
          signal: this.#startAbort.signal,
          waiting: (reason) => this.#waiting = reason,
        });
        this.#useSharedStore(this.#cluster.store);
      }
      for (const spec of this.#config.listeners) {
        if (spec.type === "http") continue; // bound above
        if (spec.type === "external") {
          this.#log.info(`Listener "${spec.name}" is external: connections come from the host`);
          continue;
        }
        this.#listeners.push(await this.#listen(spec));
      }
    } catch (err) {
      for (const l of this.#listeners) await l.close();
      this.#listeners = [];
      await this.#writer?.close();
      this.#writer = undefined;
      await this.#cluster?.close();
      await this.#host.close();
      this.#state = "stopped";
      throw err;
    }
    // One sweep for every connection: keepalive, connect timeout, stuck writers, session expiry.
    this.#timer = setInterval(() => this.#tick(), 500);
    this.#state = "started";
    for (const l of this.#listeners) {
      if (this.#config.listeners.find((spec) => spec.name === l.name)?.type === "http") continue;
      this.#log.info(`Listener "${l.name}" bound to ${l.hostname}:${l.port} (${l.transport})`);
    }
    await this.#host.emitAndWait("brokerPostStart");
  }

  /**
   * Opens and loads the store (when persistence is on) and rebuilds the state it holds, with one
   * log line saying where state lives.
   *
   * @throws {StoreError} when the store cannot be opened or read (nothing is written to it then)
   */
  async #openStore(): Promise<void> {
    const p = this.#config.persistence;
    // A cluster node's store comes with its cluster link (see start).
    if (this.#givenStore === undefined && this.#config.cluster.enabled) return;
    if (this.#givenStore === undefined && !p.enabled) {
      this.#log.info("Broker state is kept in memory only: it is lost when the broker stops");
      return;
    }
    const store = this.#givenStore ?? await openStore(p);
    this.#givenStore = undefined;
    let state;
    try {
      state = await store.load(Date.now());
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
    // Changes no reply waits for (a subscriber's PUBACK) join the next commit that one does.
    // After an outage the store is written again from memory before QoS 1/2 work is accepted.
    const rewrite = () => {
      this.#core.rewriteStore();
      this.#runner.run();
    };
    this.#writer = new StoreWriter(store, this.#log, { holdMs: 10, rewrite });
    this.#core.restore(state, Date.now());
    this.#runner.run();
    const how = this.#config.persistence.enabled ? ` (sync ${p.sync})` : "";
    this.#log.info(
      `Broker state is kept in ${store.location}${how}: ${state.sessions.length} session(s) ` +
        `and ${state.retained.length} retained message(s) restored`,
    );
  }

  /**
   * A cluster node's store: the Redis store the nodes share, opened by the cluster link, so that a
   * persistent session moves with its client (`cluster_sessions.ts`). Nothing is restored from
   * it at start: each session is loaded by the node its client connects to.
   */
  #useSharedStore(store: BrokerStore | undefined): void {
    if (store === undefined) return;
    this.#sharedStore = store;
    // After an outage this node's persistent sessions are written again from memory, as with
    // the SQLite store (the journal's `clear`, retained messages and counters are not shared).
    const rewrite = () => {
      this.#core.rewriteStore();
      this.#runner.run();
    };
    // A Redis that lost its data: this node's messages get new ids first (`RedisStore.renewIds`).
    const cluster = this.#cluster;
    const renew = cluster === undefined ? undefined : () => cluster.renewStore();
    this.#writer = new StoreWriter(store, this.#log, { rewrite, renew });
    this.#gate = this.#cluster?.storeGate(this.#writer);
    if (this.#config.persistence.enabled) {
      this.#log.warning(
        "persistence: not used on a cluster node: persistent sessions are kept in the cluster's Redis",
      );
    }
    this.#log.info(`Persistent sessions are kept in ${store.location}, shared by the cluster`);
  }

  /**
   * Reloads external state; the CLI calls it on SIGHUP. Plugins re-read their files (the password
   * file), TLS listeners re-read their certificate, key and CA files (new handshakes use them;
   * open connections keep theirs), and, when `config` is given (the configuration file read
   * again), the topic_acl plugins take its ACL rules. Other changes of `config` need a restart.
   * A failure is logged and leaves the previous state in effect.
   *
   * @param config the new configuration, as for the constructor
   * @throws {ConfigError} when `config` is invalid (nothing is changed then)
   */
  async reload(config?: BrokerConfigInput | BrokerConfig): Promise<void> {
    const next = config === undefined
      ? undefined
      : isResolved(config)
      ? config
      : resolveBrokerConfig(config);
    await this.#host.reload();
    for (const app of this.#apps) await app.reload();
    if (next !== undefined) this.#reloadAcls(next);
    await this.#reloadTls();
  }

  #reloadAcls(next: BrokerConfig): void {
    const rules = next.plugins.filter((p) => p.name === "topic_acl");
    if (rules.length !== this.#acls.length) {
      this.#log.warning(
        `Reload: the configuration now has ${rules.length} topic_acl plugin(s), not ` +
          `${this.#acls.length}; restart the broker to apply that`,
      );
      return;
    }
    for (let i = 0; i < rules.length; i++) {
      try {
        const notes = this.#acls[i]!.update(rules[i]!.options as Record<string, unknown>);
        for (const note of notes) this.#log.warning(`Reload: ${note}`);
      } catch (error) {
        this.#log.error(`Reload: keeping the previous ACL rules: ${errorText(error)}`);
        return;
      }
    }
    this.#log.info("ACL rules reloaded");
  }

  async #reloadTls(): Promise<void> {
    for (const listener of this.#listeners) {
      const spec = this.#config.listeners.find((l) => l.name === listener.name);
      if (spec === undefined || !spec.ssl) continue;
      if (listener.setTls === undefined) {
        this.#log.warning(
          `Reload: listener "${listener.name}" cannot change its certificate while running; ` +
            "restart the broker to use the new one",
        );
        continue;
      }
      try {
        const tls = await readTls(spec);
        listener.setTls({ cert: tls.cert, key: tls.key, ca: tls.ca });
        this.#log.info(`Listener "${listener.name}": TLS certificate reloaded`);
      } catch (error) {
        this.#log.error(
          `Reload: listener "${listener.name}" keeps its previous certificate: ${errorText(error)}`,
        );
      }
    }
  }

  /**
   * Stops listening, closes every connection and waits until they are gone. Idempotent: every
   * call, a second one while the first is stopping too, resolves once the broker has stopped.
   */
  shutdown(): Promise<void> {
    return this.#shutdown ??= this.#stop();
  }

  async #stop(): Promise<void> {
    if (this.#state === "starting") {
      // A cluster node waiting for the nodes of another release to go stops waiting; any other
      // start is let finish, then shut down as usual.
      this.#startAbort.abort(new Error("Broker shut down while it was starting"));
      await this.#starting?.catch(() => {});
    }
    if (this.#state === "stopped" || this.#state === "stopping") return;
    const wasStarted = this.#state === "started";
    this.#state = "stopping";
    if (wasStarted) await this.#host.emitAndWait("brokerPreShutdown");
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#listeners.map((l) => l.close()));
    // Wills first, while every connection is still open to receive them [MQTT-3.1.2-8].
    this.#core.publishWills();
    this.#runner.run();
    // A 5.0 client gets DISCONNECT 0x8B [MQTT-3.14.2-1] and nothing after it [MQTT-3.14.4-1];
    // every client an orderly close (FIN, not a reset) [MQTT-3.14.4-2]: the broker half-closes and
    // reads until the client closes its side.
    for (const c of this.#connections) {
      c.closeGracefully("broker shutting down", ReasonCode.SERVER_SHUTTING_DOWN);
    }
    const closing = [...this.#connections].map((c) => c.done);
    // A client that does not read or never closes cannot hold the shutdown: abort what is left
    // after a grace period.
    const timer = setTimeout(() => {
      for (const c of this.#connections) {
        c.abort("broker shutting down", ReasonCode.SERVER_SHUTTING_DOWN);
      }
    }, this.#shutdownGraceMs);
    await Promise.all(closing);
    clearTimeout(timer);
    clearTimeout(this.#retainedTimer);
    this.#core.feeds.clear();
    // After the wills and the closes, so that both reach the other nodes; with what this node
    // counted until now, kept in the cluster-wide totals after it leaves.
    await this.#cluster?.close(this.#clusterCounters());
    if (this.#writer !== undefined) {
      // The cluster's store is shared: one node leaving clears nothing of it.
      if (this.#config.persistence.clearOnShutdown && this.#sharedStore === undefined) {
        this.#core.clearStored();
        this.#runner.run();
      }
      await this.#writer.close();
      this.#writer = undefined;
    }
    // A store given when embedding but never started is closed all the same.
    await this.#givenStore?.close();
    this.#givenStore = undefined;
    // What was dropped or refused since the last summary line is told before the end.
    this.#core.summarize(Date.now());
    if (wasStarted) await this.#host.emitAndWait("brokerPostShutdown");
    await this.#host.close();
    this.#state = "stopped";
  }

  /** Same as {@linkcode shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  /**
   * Publishes a message from the host program to matching subscribers.
   *
   * @param topic a topic name (no wildcards)
   * @param payload bytes or a string (sent as UTF-8)
   * @param options QoS (default 0) and retain (default false)
   * @throws {TypeError} when the topic is not a valid topic name
   * @throws {RangeError} when the QoS is not 0, 1 or 2
   */
  publish(
    topic: string,
    payload: Uint8Array | string,
    options: { qos?: QoS; retain?: boolean } = {},
  ): void {
    this.#publishAny(topic, payload, options);
  }

  #publishAny(
    topic: string,
    payload: Uint8Array | string,
    options: { qos?: QoS; retain?: boolean },
  ): void {
    const qos = options.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new RangeError(`Cannot publish: QoS ${qos} is not 0, 1 or 2`);
    }
    const problem = validateTopicName(topic);
    if (problem !== undefined) {
      // Cut: a topic refused for its length must not fill the message.
      const shown = topic.length <= 100 ? topic : `${topic.slice(0, 100)}…`;
      throw new TypeError(`Cannot publish to "${shown}": ${problem}`);
    }
    if (exceedsTopicLevels(topic, this.#config.maxTopicLevels)) {
      throw new TypeError(
        `Cannot publish: the topic has more than ${this.#config.maxTopicLevels} levels`,
      );
    }
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    this.#core.publish(new BrokerMessage(topic, bytes, { qos, retain: options.retain ?? false }));
    this.#runSoon();
  }

  /**
   * Runs the core's actions in a microtask, for host calls (publish, disconnect) that an event
   * handler may make in the middle of a call into the core: its actions must not run (and answer
   * decisions) before that call has returned.
   */
  #runSoon(): void {
    if (this.#runQueued) return;
    this.#runQueued = true;
    queueMicrotask(() => {
      this.#runQueued = false;
      this.#runner.run();
    });
  }

  /**
   * Listens to broker events.
   *
   * @param event the event name
   * @param handler called synchronously; exceptions are logged and ignored
   * @returns a function that removes the handler
   */
  on<K extends keyof BrokerEventMap>(event: K, handler: BrokerEventHandler<K>): () => void {
    const list = (this.#handlers[event] ??= []) as BrokerEventHandler<K>[];
    list.push(handler);
    return () => {
      const i = list.indexOf(handler);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) delete this.#handlers[event];
    };
  }

  /**
   * Hands the broker a connection the host program accepted itself, for a listener of type
   * `external` (aMQTT's `external_connected`): a Unix socket, an HTTP server's WebSocket, a test
   * pipe. The connection is served like any other.
   *
   * @param conn the connection, as a byte stream
   * @param listenerName the `external` listener it belongs to (its `max-connections` applies)
   * @throws {Error} when the broker is not running
   * @throws {TypeError} when no external listener has that name
   */
  acceptConnection(conn: ByteConnection, listenerName: string): void {
    if (this.#state !== "started") {
      throw new Error(`Cannot accept a connection: the broker is ${this.#state}`);
    }
    const spec = this.#config.listeners.find((l) => l.name === listenerName);
    if (spec === undefined || spec.type !== "external") {
      throw new TypeError(`Cannot accept a connection: no external listener "${listenerName}"`);
    }
    this.#accept(conn, spec);
  }

  /** Every session, connected or offline. */
  clients(): SessionSummary[] {
    return [...this.#core.sessions.values()].map((s) => ({
      clientId: s.clientId,
      connected: s.link !== undefined,
      remoteAddress: s.link?.info.remoteAddress,
      cleanSession: s.clean,
      subscriptions: [...s.subscriptions.values()].map((x) => ({ topic: x.topic, qos: x.qos })),
      inflight: s.inflightCount,
      queued: s.queuedCount,
      outboundBytes: (s.link?.handle as BrokerConnection | undefined)?.pendingBytes ?? 0,
    }));
  }

  /**
   * Closes a client's connection, as an administrator's kick. Its will is published (the client
   * did not send DISCONNECT); a persistent session stays, so the client may come back.
   *
   * @param clientId the client
   * @returns false when no connection of that client is open
   */
  disconnect(clientId: string): boolean {
    // MQTT 3.1.1 has no DISCONNECT from the server: closing the connection is how it ends one.
    const kicked = this.#core.kick(
      clientId,
      "disconnected by an administrator",
      ReasonCode.ADMINISTRATIVE_ACTION,
    );
    this.#runSoon();
    return kicked;
  }

  /**
   * Removes the retained message of a topic, as a zero-byte retained PUBLISH would, but without
   * sending anything to subscribers.
   *
   * @param topic the topic name
   * @returns false when the topic had no retained message
   */
  deleteRetained(topic: string): boolean {
    const deleted = this.#core.deleteRetained(topic);
    if (deleted) this.#cluster?.retainedDeleted(topic);
    this.#runSoon();
    return deleted;
  }

  /** Every subscription: client id, topic filter and granted QoS. */
  subscriptions(): { clientId: string; topic: string; qos: QoS }[] {
    const out: { clientId: string; topic: string; qos: QoS }[] = [];
    for (const s of this.#core.sessions.values()) {
      for (const sub of s.subscriptions.values()) {
        out.push({ clientId: s.clientId, topic: sub.topic, qos: sub.qos });
      }
    }
    return out;
  }

  /** Every retained message. */
  retainedMessages(): { topic: string; payload: Uint8Array; qos: QoS }[] {
    return [...this.#core.retained.entries()].map(([, m]) => ({
      topic: m.topic,
      payload: m.payload,
      qos: m.qos,
    }));
  }

  async #listen(spec: ListenerConfig): Promise<ServerListener> {
    const onConnection = (conn: ByteConnection) => this.#accept(conn, spec);
    const { name, hostname, port } = spec;
    const tls = spec.ssl ? await readTls(spec) : undefined;
    if (spec.type === "http") {
      const app = new HttpApp({
        listener: name,
        tls: tls !== undefined,
        version: VERSION,
        target: this,
        figures: () => this.#figures(),
        waiting: () => this.#waiting,
        decisions: this.#decisions!,
        admins: spec.admins ?? [],
        passwordFile: spec.passwordFile ?? this.#passwordFile(),
        logger: this.#log,
      });
      const listener = await listenHttp({ name, hostname, port, tls }, app);
      this.#apps.push(app);
      return listener;
    }
    if (spec.type === "ws") {
      // A WebSocket message is buffered whole before it reaches the decoder: bound it by the
      // packet size limit (a message may carry the tail of one packet and a whole next one).
      const maxMessageSize = Math.min(2 * this.#limits.maxPacketSize, 268_435_460);
      return await listenWebSocket(
        { name, hostname, port, path: spec.path, tls, maxMessageSize },
        onConnection,
      );
    }
    if (tls === undefined) {
      return listenTcp({ name, hostname, port, reusePort: this.#reusePort }, onConnection);
    }
    // node:tls rather than Deno.listenTls: it can ask for client certificates, and a Deno.TlsConn
    // cannot turn Nagle off (two small writes waited 44 ms for each other).
    return await listenTlsClientAuth(
      {
        name,
        hostname,
        port,
        cert: tls.cert,
        key: tls.key,
        ca: tls.ca,
        clientCert: tls.clientCert,
      },
      onConnection,
    );
  }

  #accept(conn: ByteConnection, spec: ListenerConfig): void {
    if (this.#state !== "started" && this.#state !== "starting") {
      conn.close();
      return;
    }
    const open = this.#perListener.get(spec.name) ?? 0;
    const counters = this.#counters.get(spec.name);
    if (spec.maxConnections > 0 && open >= spec.maxConnections) {
      this.#refused(spec.name, "max_connections");
      this.#log.warning(
        `Listener "${spec.name}" refused ${conn.info.remoteAddress}: ` +
          `max-connections ${spec.maxConnections} reached`,
      );
      conn.close();
      return;
    }
    // Counted before it starts: it may end inside its constructor (a transport whose readThen
    // reports the end at once), and its end then takes its count off again.
    this.#perListener.set(spec.name, open + 1);
    const connection = new BrokerConnection(conn, this.#connectionOptions(spec));
    if (!connection.finished) this.#connections.add(connection);
    if (counters !== undefined) counters.accepted++;
  }

  // One options object per listener, not one per connection (a connection copies what it keeps):
  // made again when the store or the cluster it names has changed (start, stop).
  #optionsByListener = new Map<ListenerConfig, ConnectionOptions>();

  #connectionOptions(spec: ListenerConfig): ConnectionOptions {
    const store = this.#gate ?? this.#writer;
    const forwards = this.#cluster?.forwards;
    let options = this.#optionsByListener.get(spec);
    if (options === undefined || options.store !== store || options.forwards !== forwards) {
      options = {
        core: this.#core,
        runner: this.#runner,
        limits: this.#limits,
        logger: this.#log,
        policy: this.#policy,
        observer: this.#observer,
        certCnAsUsername: spec.useCertCnAsUsername,
        listener: spec.name,
        // A host's transport may do anything with what it is given to write.
        ownTransports: spec.type !== "external",
        store,
        forwards,
        receives: this.#receives,
        // A callback, not `done.then(…)`: two promises fewer per idle connection; one for all
        // connections, not a closure each.
        onEnded: this.#connectionEnded,
      };
      this.#optionsByListener.set(spec, options);
    }
    return options;
  }

  /** A connection has ended: it leaves the broker's set and its listener's count. */
  #connectionEnded = (connection: BrokerConnection): void => {
    this.#connections.delete(connection);
    const name = connection.listener;
    this.#perListener.set(name, (this.#perListener.get(name) ?? 1) - 1);
  };

  /**
   * Sends retained messages to new subscriptions in slices of a few milliseconds, each in its
   * own macrotask: the connections' reads and writes run between slices, so other clients are
   * served while a `#` subscription receives 100,000 retained messages. While every subscriber
   * waiting for some is busy (not reading, window full), it looks again every few milliseconds.
   */
  #scheduleRetained(delay = 0): void {
    this.#retainedTimer = setTimeout(() => {
      this.#retainedTimer = undefined;
      const until = performance.now() + RETAINED_SLICE_MS;
      let state = this.#core.drainRetained(RETAINED_STEP);
      this.#runner.run();
      while (state === "more" && performance.now() < until) {
        state = this.#core.drainRetained(RETAINED_STEP);
        this.#runner.run();
      }
      if (state !== "done") this.#scheduleRetained(state === "blocked" ? RETAINED_WAIT_MS : 0);
    }, delay);
  }

  #tick(): void {
    const now = Date.now();
    this.#core.tick(now);
    this.#runner.run();
    // By the writer's own clock (monotonic), not the wall clock of the sweep.
    this.#writer?.probe();
    this.#cluster?.sweep();
    this.#sys?.tick(now);
    const drainMs = this.#limits.drainTimeout * 1000;
    const size = this.#connections.size;
    const started = performance.now();
    const release = this.#release;
    if (release !== undefined) {
      // Quiet: no packet in or out since the previous sweep (the trim waits for one).
      const stats = this.#core.stats;
      const packets = stats.messagesReceived + stats.messagesSent;
      const quiet = packets === this.#packetsAtSweep;
      this.#packetsAtSweep = packets;
      // By a monotonic clock: a step back of the wall clock must not put a collection (or a trim
      // waiting for a quiet sweep) off by as long.
      const collected = release.observe(size, performance.now(), quiet);
      // The trim's share told apart: it grows with the C allocator's free memory, not the heap.
      const trimMs = release.lastTrimMs;
      if (collected) {
        const trim = trimMs !== undefined
          ? ` (${trimMs.toFixed(0)} ms of it giving the C allocator's free pages back)`
          : release.trimWaiting
          ? " (the C allocator's free pages are given back at the first quiet sweep)"
          : "";
        this.#log.info(
          `Many connections have closed: collected the garbage in ${
            (performance.now() - started).toFixed(0)
          } ms${trim}, ${size} connections left`,
        );
      } else if (trimMs !== undefined) {
        this.#log.info(
          `Many connections have closed: gave the C allocator's free pages back in ${
            trimMs.toFixed(0)
          } ms`,
        );
      }
    }
    for (const c of this.#connections) {
      c.trim();
      if (c.writePendingFor(now) > drainMs) {
        this.#log.warning(
          `Closing ${c.info.remoteAddress}: it has not read its data for ${drainMs} ms`,
        );
        c.abort("outbound data not drained in time");
      }
    }
  }

  #refused(listener: string | undefined, reason: string): void {
    const counters = this.#counters.get(listener ?? "");
    if (counters !== undefined) counters.refused[reason] = (counters.refused[reason] ?? 0) + 1;
  }

  /** The password file of the auth_file plugin, the http listeners' default. */
  #passwordFile(): string | undefined {
    const p = this.#config.plugins.find((p) => p.name === "auth_file");
    return (p?.options as { passwordFile?: string } | undefined)?.passwordFile;
  }

  #figures(): Omit<MetricsInput, "process" | "eventLoopDelay" | "decisions" | "version"> {
    let online = 0, offline = 0, inflight = 0, queued = 0, subscriptions = 0;
    const shared = new Set<string>();
    for (const session of this.#core.sessions.values()) {
      if (session.link === undefined) offline++;
      else online++;
      inflight += session.inflightCount;
      queued += session.queuedCount;
      subscriptions += session.subscriptions.size;
      for (const topic of session.subscriptions.keys()) {
        // `$share/{group}/{filter}`: one group per distinct name and filter.
        if (topic.startsWith("$share/")) shared.add(topic);
      }
    }
    let retainedBytes = 0;
    for (const [, m] of this.#core.retained.entries()) retainedBytes += m.payload.length;
    const listeners: ListenerFigures[] = [];
    for (const c of this.#counters.values()) {
      listeners.push({ ...c, open: this.#perListener.get(c.name) ?? 0, refused: { ...c.refused } });
    }
    return {
      startedAt: this.#startedAt,
      stats: this.#core.stats,
      listeners,
      sessionsOnline: online,
      sessionsOffline: offline,
      subscriptions,
      sharedGroups: shared.size,
      retainedCount: this.#core.retained.size,
      retainedBytes,
      inflight,
      queued,
      store: this.#writer === undefined
        ? undefined
        : { writable: !this.#writer.failed, writeFailures: this.#writer.failures },
      cluster: this.#cluster?.figures(),
    };
  }

  #snapshot(): SysSnapshot {
    const st = this.#core.stats;
    let disconnected = 0, inflightIn = 0, inflightOut = 0, stored = 0;
    for (const session of this.#core.sessions.values()) {
      if (session.link === undefined) disconnected++;
      inflightIn += session.inboundCount;
      inflightOut += session.inflightCount;
      stored += session.queuedCount;
    }
    return {
      bytesReceived: st.bytesReceived,
      bytesSent: st.bytesSent,
      messagesReceived: st.messagesReceived,
      messagesSent: st.messagesSent,
      publishReceived: st.publishReceived,
      publishSent: st.publishSent,
      clientsConnected: st.clientsConnected,
      clientsDisconnected: disconnected,
      clientsMaximum: st.clientsMaximum,
      clientsTotal: st.clientsTotal,
      inflightIn,
      inflightOut,
      inflightStored: stored,
      retainedCount: this.#core.retained.size,
      subscriptionsCount: this.#core.subscriptions.size,
      dropped: st.dropped,
      droppedBy: Object.fromEntries(
        Object.entries(st.droppedBy).map(([reason, n]) => [dropTopicLevel(reason), n]),
      ),
      refusedBy: refusalsByName(st),
      // A cluster node adds its own figures and the cluster-wide totals.
      // Counters keep what departed nodes counted; gauges are of the live nodes.
      extra: this.#cluster?.sysTopics(this.#clusterCounters(), {
        "clients/connected": st.clientsConnected,
        "messages/subscriptions/count": this.#core.subscriptions.size,
      }),
    };
  }

  /** This node's counters in the cluster-wide `$SYS` totals (`ClusterMember.sysTopics`). */
  #clusterCounters(): Record<string, number> {
    const st = this.#core.stats;
    return {
      "clients/total": st.clientsTotal,
      "load/bytes/received": st.bytesReceived,
      "load/bytes/sent": st.bytesSent,
      "messages/publish/received": st.publishReceived,
      "messages/publish/sent": st.publishSent,
      "publish/messages/dropped": st.dropped,
      [`publish/messages/dropped/${dropTopicLevel("queueFull")}`]: st.droppedBy.queueFull,
    };
  }

  #emit<K extends keyof BrokerEventMap>(event: K, payload: BrokerEventMap[K]): void {
    const list = this.#handlers[event] as BrokerEventHandler<K>[] | undefined;
    if (list === undefined) return;
    for (const h of list) {
      try {
        h(payload);
      } catch (err) {
        this.#log.error(`A ${event} handler threw: ${err instanceof Error ? err.message : err}`);
      }
    }
  }
}

function processMemory(): number {
  const memory = Deno.memoryUsage();
  return memory.heapUsed + memory.external;
}

function isResolved(config: unknown): config is BrokerConfig {
  const c = config as BrokerConfig | undefined;
  return c !== undefined && c !== null && Array.isArray(c.listeners) && Array.isArray(c.warnings);
}

function summary(client: ClientInfo): Omit<ClientInfo, "password"> {
  const { password: _, ...rest } = client;
  return rest;
}

/** A message for plugins: its payload copied, as the read buffer it is a view into is reused. */
function info(m: BrokerMessage): MessageInfo {
  return { topic: m.topic, payload: m.payload.slice(), qos: m.qos, retain: m.retain };
}

interface TlsMaterial {
  cert: string;
  key: string;
  ca: string[] | undefined;
  clientCert: "none" | "optional" | "required";
}

async function readTls(spec: ListenerConfig): Promise<TlsMaterial> {
  return {
    cert: await Deno.readTextFile(spec.certfile!),
    key: await Deno.readTextFile(spec.keyfile!),
    ca: await loadCaCertificates(spec),
    clientCert: spec.clientCertMode,
  };
}
