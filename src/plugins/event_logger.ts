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
   * Keeps the logger.
   *
   * @param context The plugin's context.
   */
  init(context: PluginContext): void {
    this.#logger = context.logger;
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
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerClientConnected(e: PluginEventMap["brokerClientConnected"]): void {
    const user = e.client.username === undefined ? "" : ` as "${e.client.username}"`;
    this.#logger?.info(
      `Event brokerClientConnected: client ${e.clientId}${user} from ${e.client.remoteAddress} ` +
        `(${e.client.transport}, level ${e.client.protocolVersion})`,
    );
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerClientDisconnected(e: PluginEventMap["brokerClientDisconnected"]): void {
    this.#logger?.info(`Event brokerClientDisconnected: client ${e.clientId}`);
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerClientSubscribed(e: PluginEventMap["brokerClientSubscribed"]): void {
    this.#logger?.debug(
      `Event brokerClientSubscribed: client ${e.clientId} subscribed to ${e.topic} (QoS ${e.qos})`,
    );
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerClientUnsubscribed(e: PluginEventMap["brokerClientUnsubscribed"]): void {
    this.#logger?.debug(
      `Event brokerClientUnsubscribed: client ${e.clientId} unsubscribed from ${e.topic}`,
    );
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerMessageReceived(e: PluginEventMap["brokerMessageReceived"]): void {
    this.#logger?.debug(`Event brokerMessageReceived: from ${e.clientId}, ${describe(e.message)}`);
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerMessageBroadcast(e: PluginEventMap["brokerMessageBroadcast"]): void {
    this.#logger?.debug(`Event brokerMessageBroadcast: from ${e.clientId}, ${describe(e.message)}`);
  }
  /**
   * Logs the event.
   *
   * @param e The event.
   */
  onBrokerRetainedMessage(e: PluginEventMap["brokerRetainedMessage"]): void {
    const target = e.clientId === undefined ? "topic" : `offline session ${e.clientId}`;
    this.#logger?.debug(`Event brokerRetainedMessage: for ${target}, ${describe(e.message)}`);
  }
}

function describe(m: PluginEventMap["brokerMessageReceived"]["message"]): string {
  return `topic ${m.topic}, QoS ${m.qos}, retain ${m.retain}, ${m.payload.length} bytes`;
}
