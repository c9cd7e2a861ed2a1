/**
 * aMQTT's `EventLoggerPlugin` (short id `event_logger`).
 *
 * @module
 */

import type { BrokerPlugin, Logger, PluginContext, PluginEventMap } from "./types.ts";

/**
 * Logs every broker event: lifecycle and client connections at info level, subscriptions and
 * messages at debug level. Messages are logged by topic, QoS, retain flag and payload size, never
 * by content; passwords never reach event handlers.
 *
 * @example
 * ```ts
 * import { EventLoggerPlugin } from "./event_logger.ts";
 * import assert from "node:assert/strict";
 * const lines: string[] = [];
 * const logger = { debug: (m: string) => lines.push(m), info: (m: string) => lines.push(m),
 *   warning() {}, error() {} };
 * const plugin = new EventLoggerPlugin();
 * plugin.init({ logger, publish: () => Promise.resolve() });
 * plugin.onBrokerClientSubscribed({ clientId: "c1", topic: "a/#", qos: 1 });
 * assert.deepEqual(lines, ["Event brokerClientSubscribed: client c1 subscribed to a/# (QoS 1)"]);
 * ```
 */
export class EventLoggerPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "event_logger";
  #logger: Logger | undefined;

  /**
   * Creates the plugin.
   *
   * @param options `messages: false` leaves out the per-message events (logged at debug level):
   *   without a handler for them the broker does no work per PUBLISH for this plugin. The broker
   *   turns them on only when it logs packets (`packetEvents`, the CLI's `-d`).
   *   `connections: false` leaves out the connect and disconnect events (logged at info level):
   *   the broker turns them off when its logger does not write info lines, so that a connection
   *   costs no event for this plugin.
   */
  constructor(options: { messages?: boolean; connections?: boolean } = {}) {
    if (options.connections !== false) {
      this.onBrokerClientConnected = (e) => {
        if (!this.#on("info")) return;
        const user = e.client.username === undefined ? "" : ` as "${e.client.username}"`;
        this.#logger!.info(
          `Event brokerClientConnected: client ${e.clientId}${user} from ` +
            `${e.client.remoteAddress} (${e.client.transport}, level ${e.client.protocolVersion})`,
        );
      };
      this.onBrokerClientDisconnected = (e) => {
        if (!this.#on("info")) return;
        this.#logger!.info(`Event brokerClientDisconnected: client ${e.clientId}`);
      };
    }
    if (options.messages === false) return;
    this.onBrokerMessageReceived = (e) => {
      if (!this.#on("debug")) return;
      this.#logger!.debug(
        `Event brokerMessageReceived: from ${e.clientId}, ${describe(e.message)}`,
      );
    };
    this.onBrokerMessageBroadcast = (e) => {
      if (!this.#on("debug")) return;
      this.#logger!.debug(
        `Event brokerMessageBroadcast: from ${e.clientId}, ${describe(e.message)}`,
      );
    };
    this.onBrokerRetainedMessage = (e) => {
      if (!this.#on("debug")) return;
      const target = e.clientId === undefined ? "topic" : `offline session ${e.clientId}`;
      this.#logger!.debug(`Event brokerRetainedMessage: for ${target}, ${describe(e.message)}`);
    };
  }

  /**
   * Keeps the logger.
   *
   * @param context The plugin's context.
   */
  init(context: PluginContext): void {
    this.#logger = context.logger;
  }

  /** Whether lines of `level` are written: a line nobody reads is not even built. */
  #on(level: "debug" | "info"): boolean {
    const logger = this.#logger;
    return logger !== undefined && logger.enabled?.(level) !== false;
  }

  /** Logs the event. */
  onBrokerPreStart(): void {
    this.#logger?.info("Event brokerPreStart");
  }
  /** Logs the event. */
  onBrokerPostStart(): void {
    this.#logger?.info("Event brokerPostStart");
  }
  /** Logs the event. */
  onBrokerPreShutdown(): void {
    this.#logger?.info("Event brokerPreShutdown");
  }
  /** Logs the event. */
  onBrokerPostShutdown(): void {
    this.#logger?.info("Event brokerPostShutdown");
  }
  /** Logs each accepted connection (info level); absent with `connections: false`. */
  readonly onBrokerClientConnected?: (e: PluginEventMap["brokerClientConnected"]) => void;
  /** Logs each connection's end (info level); absent with `connections: false`. */
  readonly onBrokerClientDisconnected?: (e: PluginEventMap["brokerClientDisconnected"]) => void;
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerClientSubscribed(e: PluginEventMap["brokerClientSubscribed"]): void {
    if (!this.#on("debug")) return;
    this.#logger!.debug(
      `Event brokerClientSubscribed: client ${e.clientId} subscribed to ${e.topic} (QoS ${e.qos})`,
    );
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerClientUnsubscribed(e: PluginEventMap["brokerClientUnsubscribed"]): void {
    if (!this.#on("debug")) return;
    this.#logger!.debug(
      `Event brokerClientUnsubscribed: client ${e.clientId} unsubscribed from ${e.topic}`,
    );
  }
  /** Logs every PUBLISH received (debug level); absent with `messages: false`. */
  readonly onBrokerMessageReceived?: (e: PluginEventMap["brokerMessageReceived"]) => void;
  /** Logs every message routed (debug level); absent with `messages: false`. */
  readonly onBrokerMessageBroadcast?: (e: PluginEventMap["brokerMessageBroadcast"]) => void;
  /** Logs every retained message (debug level); absent with `messages: false`. */
  readonly onBrokerRetainedMessage?: (e: PluginEventMap["brokerRetainedMessage"]) => void;
}

function describe(m: PluginEventMap["brokerMessageReceived"]["message"]): string {
  return `topic ${m.topic}, QoS ${m.qos}, retain ${m.retain}, ${m.payload.length} bytes`;
}
