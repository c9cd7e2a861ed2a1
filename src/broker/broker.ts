/**
 * The embeddable MQTT broker: configuration, listeners, the keepalive sweep, and the public API
 * over the protocol core.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { ServerListener } from "../transport/listener.ts";
import { listenTcp } from "../transport/tcp.ts";
import type { ByteConnection } from "../transport/types.ts";
import { BrokerConnection } from "./connection.ts";
import type { ConnectionLimits } from "./connection.ts";
import { BrokerCore } from "./core.ts";
import type { BrokerStats, CoreOptions } from "./core.ts";
import { BrokerMessage } from "./message.ts";
import type { ClientInfo, Logger, PolicyHost } from "./policy.ts";
import { type BrokerSettings, type ListenerSettings, resolveSettings } from "./_settings.ts";

/** Events a host program can listen to with {@linkcode Broker.on}. */
export interface BrokerEventMap {
  clientConnected: { clientId: string; client: ClientInfo };
  clientDisconnected: { clientId: string };
  subscribed: { clientId: string; topic: string; qos: QoS };
  unsubscribed: { clientId: string; topic: string };
  message: { clientId: string; topic: string; payload: Uint8Array; qos: QoS; retain: boolean };
}

/** A connected or offline client, for inspection. */
export interface ClientSummary {
  clientId: string;
  connected: boolean;
  remoteAddress: string | undefined;
  cleanSession: boolean;
  subscriptions: { topic: string; qos: QoS }[];
  inflight: number;
  queued: number;
}

/** Options of {@linkcode Broker} beyond the configuration. */
export interface BrokerOptions {
  /** Where log lines go. Default: warnings and errors to the console. */
  logger?: Logger;
  /** Authentication and authorization; default: everyone allowed. */
  policy?: PolicyHost;
}

const CONSOLE_LOGGER: Logger = {
  debug() {},
  info() {},
  warning: (m) => console.warn(m),
  error: (m) => console.error(m),
};

const ALLOW_ALL: PolicyHost = {
  hasPublishHooks: false,
  hasSubscribeHooks: false,
  authenticate: () => Promise.resolve(true),
  authorizePublish: () => Promise.resolve(true),
  authorizeSubscribe: () => Promise.resolve(true),
};

type Handler<K extends keyof BrokerEventMap> = (event: BrokerEventMap[K]) => void;

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
  readonly #settings: BrokerSettings;
  readonly #log: Logger;
  readonly #core: BrokerCore;
  readonly #connections = new Set<BrokerConnection>();
  #listeners: ServerListener[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #state: "new" | "starting" | "started" | "stopping" | "stopped" = "new";
  #handlers: { [K in keyof BrokerEventMap]?: Handler<K>[] } = {};
  #limits: ConnectionLimits;
  #startedAt = 0;

  /**
   * Creates a broker; nothing listens until {@linkcode start}.
   *
   * @param config aMQTT-style configuration (`listeners`, `max_inflight`, …)
   * @param options logger and policy
   * @throws {ConfigError} when the configuration is invalid
   */
  constructor(config?: Record<string, unknown>, options: BrokerOptions = {}) {
    this.#settings = resolveSettings(config);
    this.#log = options.logger ?? CONSOLE_LOGGER;
    const s = this.#settings;
    const coreOptions: CoreOptions = {
      maxInflight: s.maxInflight,
      maxQueuedMessages: s.maxQueuedMessages,
      connectTimeout: s.connectTimeout,
      sessionExpiryInterval: s.sessionExpiryInterval,
      timeoutDisconnectDelay: s.timeoutDisconnectDelay,
    };
    this.#limits = {
      maxPacketSize: s.maxPacketSize,
      maxOutboundBytes: s.maxOutboundBytes,
      drainTimeout: s.drainTimeout,
    };
    this.#core = new BrokerCore(coreOptions, {
      policy: options.policy ?? ALLOW_ALL,
      logger: this.#log,
      events: {
        clientConnected: (client) =>
          this.#emit("clientConnected", { clientId: client.clientId, client }),
        clientDisconnected: (clientId) => this.#emit("clientDisconnected", { clientId }),
        subscribed: (clientId, topic, qos) => this.#emit("subscribed", { clientId, topic, qos }),
        unsubscribed: (clientId, topic) => this.#emit("unsubscribed", { clientId, topic }),
        messageReceived: (clientId, m) => {
          if (this.#handlers.message === undefined) return;
          this.#emit("message", {
            clientId,
            topic: m.topic,
            payload: m.payload,
            qos: m.qos,
            retain: m.retain,
          });
        },
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
   * Binds every configured listener and starts serving.
   *
   * @throws {Deno.errors.AddrInUse} (and other bind errors) when a listener cannot bind; listeners
   *   already bound are closed again
   */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`Cannot start broker: it is ${this.#state}`);
    this.#state = "starting";
    try {
      for (const [name, spec] of Object.entries(this.#settings.listeners)) {
        this.#listeners.push(await this.#listen(name, spec));
      }
    } catch (err) {
      for (const l of this.#listeners) await l.close();
      this.#listeners = [];
      this.#state = "stopped";
      throw err;
    }
    this.#startedAt = Date.now();
    // One sweep for every connection: keepalive, connect timeout, stuck writers, session expiry.
    this.#timer = setInterval(() => this.#tick(), 500);
    this.#state = "started";
    for (const l of this.#listeners) {
      this.#log.info(`Listener "${l.name}" bound to ${l.hostname}:${l.port} (${l.transport})`);
    }
  }

  /**
   * Stops listening, closes every connection and waits until they are gone. Idempotent.
   */
  async shutdown(): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") return;
    this.#state = "stopping";
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#listeners.map((l) => l.close()));
    for (const c of this.#connections) c.close("broker shutting down");
    const closing = [...this.#connections].map((c) => c.done);
    // A client that does not read cannot hold the shutdown: abort what is left after a moment.
    const timer = setTimeout(() => {
      for (const c of this.#connections) c.abort("broker shutting down");
    }, 1000);
    await Promise.all(closing);
    clearTimeout(timer);
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
    const qos = options.qos ?? 0;
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      throw new RangeError(`Cannot publish: QoS ${qos} is not 0, 1 or 2`);
    }
    if (topic === "" || topic.includes("+") || topic.includes("#") || topic.includes("\0")) {
      throw new TypeError(`Cannot publish: "${topic}" is not a valid topic name`);
    }
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    this.#core.publish(new BrokerMessage(topic, bytes, { qos, retain: options.retain ?? false }));
  }

  /**
   * Listens to broker events.
   *
   * @param event the event name
   * @param handler called synchronously; exceptions are logged and ignored
   * @returns a function that removes the handler
   */
  on<K extends keyof BrokerEventMap>(event: K, handler: Handler<K>): () => void {
    const list = (this.#handlers[event] ??= []) as Handler<K>[];
    list.push(handler);
    return () => {
      const i = list.indexOf(handler);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) delete this.#handlers[event];
    };
  }

  /** Every session, connected or offline. */
  clients(): ClientSummary[] {
    return [...this.#core.sessions.values()].map((s) => ({
      clientId: s.clientId,
      connected: s.link !== undefined,
      remoteAddress: (s.link as BrokerConnection | undefined)?.info.remoteAddress,
      cleanSession: s.clean,
      subscriptions: [...s.subscriptions.values()].map((x) => ({ topic: x.topic, qos: x.qos })),
      inflight: s.outbound.inflightCount,
      queued: s.outbound.queuedCount,
    }));
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

  #listen(name: string, spec: ListenerSettings): Promise<ServerListener> {
    const onConnection = (conn: ByteConnection) => this.#accept(conn, spec);
    if (spec.type === "tcp") {
      return Promise.resolve(
        listenTcp({ name, hostname: spec.hostname, port: spec.port }, onConnection),
      );
    }
    return Promise.reject(new Error(`Listener "${name}": type ${spec.type} is not supported yet`));
  }

  #accept(conn: ByteConnection, spec: ListenerSettings): void {
    if (this.#state !== "started" && this.#state !== "starting") {
      conn.close();
      return;
    }
    if (spec.maxConnections > 0) {
      let count = 0;
      for (const c of this.#connections) if (c.info.listener === conn.info.listener) count++;
      if (count >= spec.maxConnections) {
        this.#log.warning(
          `Listener "${conn.info.listener}" refused ${conn.info.remoteAddress}: ` +
            `max-connections ${spec.maxConnections} reached`,
        );
        conn.close();
        return;
      }
    }
    const connection = new BrokerConnection(conn, this.#core, {
      limits: this.#limits,
      logger: this.#log,
    });
    this.#connections.add(connection);
    connection.done.then(() => this.#connections.delete(connection));
  }

  #tick(): void {
    const now = Date.now();
    this.#core.tick(now);
    const drainMs = this.#limits.drainTimeout * 1000;
    for (const c of this.#connections) {
      const started = c.writeStarted;
      if (started > 0 && now - started > drainMs) {
        this.#log.warning(
          `Closing ${c.info.remoteAddress}: it has not read its data for ${drainMs} ms`,
        );
        c.abort("outbound data not drained in time");
      }
    }
  }

  #emit<K extends keyof BrokerEventMap>(event: K, payload: BrokerEventMap[K]): void {
    const list = this.#handlers[event] as Handler<K>[] | undefined;
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
