/**
 * The client's configuration input (aMQTT's `ClientConfig` keys) and the settings the client
 * derives from the resolved configuration of `src/config`.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import { type ClientConfig, resolveClientConfig } from "../config/client_config.ts";

/**
 * The `will` entry of the configuration.
 *
 * @example
 * ```ts
 * import type { ClientConfigInput } from "./_config.ts";
 *
 * const config: ClientConfigInput = {
 *   will: { topic: "status/sensor-7", message: "offline", qos: 1, retain: true },
 * };
 * ```
 */
export interface WillConfigInput {
  /** The will topic (no wildcards). */
  topic: string;
  /** The will payload, as text. */
  message: string;
  /** The will's QoS. Default 0. */
  qos?: QoS;
  /** Whether the server retains the will. Default false. */
  retain?: boolean;
}

/**
 * The `connection` entry (`broker` is its deprecated alias).
 *
 * @example
 * ```ts
 * import type { ClientConfigInput } from "./_config.ts";
 *
 * const config: ClientConfigInput = {
 *   connection: { uri: "mqtts://broker.example:8883", cafile: "/etc/amqtt/ca.pem" },
 * };
 * ```
 */
export interface ConnectionConfigInput {
  /** Default broker URL when `connect` is given none. Default `mqtt://127.0.0.1:1883`. */
  uri?: string;
  /** Path of a PEM file of CA certificates to trust. */
  cafile?: string;
  /** Directory of PEM CA certificates (`*.pem`, `*.crt`) to trust. */
  capath?: string;
  /** PEM CA certificates, inline. */
  cadata?: string;
  /** Path of the client certificate (PEM), for mutual TLS; needs `keyfile`. */
  certfile?: string;
  /** Path of the client private key (PEM), for mutual TLS; needs `certfile`. */
  keyfile?: string;
}

/**
 * The client configuration with aMQTT's keys, as written in YAML. Every key is optional; the
 * defaults are aMQTT's. Keys may also be spelled with `-` or in camelCase.
 *
 * @example
 * ```ts
 * import { MQTTClient } from "./mqtt_client.ts";
 * import type { ClientConfigInput } from "./_config.ts";
 *
 * const config: ClientConfigInput = {
 *   keep_alive: 30,
 *   default_qos: 1,
 *   reconnect_retries: -1, // retry forever
 *   topics: { "status/sensor-7": { qos: 1, retain: true } },
 * };
 * await using client = new MQTTClient({ config });
 * ```
 */
export interface ClientConfigInput {
  /** Seconds; the CONNECT keepalive is `keep_alive - ping_delay`. Default 10. */
  keep_alive?: number;
  /** Seconds before the keepalive runs out that the client pings. Default 1. */
  ping_delay?: number;
  /** QoS of `publish` when neither the call nor `topics` gives one. Default 0. */
  default_qos?: QoS;
  /** Retain flag of `publish` when neither the call nor `topics` gives one. Default false. */
  default_retain?: boolean;
  /** Reconnect by itself when the connection is lost. Default true. */
  auto_reconnect?: boolean;
  /** Reconnect attempts before giving up; below 0 means forever. Default 2. */
  reconnect_retries?: number;
  /** Cap of the reconnect back-off, in seconds. Default 10. */
  reconnect_max_interval?: number;
  /** Seconds allowed to open the connection and receive CONNACK. Default 60. */
  connection_timeout?: number;
  /** Clean session flag when `connect` gives none. Default true. */
  cleansession?: boolean;
  /** The will, sent in every CONNECT unless `connect` gives one. */
  will?: WillConfigInput;
  /** Per-topic publish defaults. */
  topics?: Record<string, { qos?: QoS; retain?: boolean }>;
  /** Where the broker is, and the TLS files. */
  connection?: ConnectionConfigInput;
  /** Deprecated alias of `connection`. */
  broker?: ConnectionConfigInput;
  /** Check the server certificate's host name. Default true. */
  check_hostname?: boolean;
  /** Verify the server certificate. Default true. Deno cannot turn this off per connection. */
  verify_cert?: boolean;
  /** Accepted for compatibility; not used (see `MQTTClient.publish`). */
  qos1_puback_timeout?: number;
  /** Client plugins (aMQTT `PacketLoggerPlugin`); accepted, not run. */
  plugins?: unknown;
}

/** Settings in the client's own units. */
export interface ClientSettings {
  /** CONNECT keepalive, seconds. */
  keepAlive: number;
  defaultQos: QoS;
  defaultRetain: boolean;
  autoReconnect: boolean;
  reconnectRetries: number;
  /** Seconds. */
  reconnectMaxInterval: number;
  /** Milliseconds. */
  connectionTimeout: number;
  cleanSession: boolean;
  will: ClientConfig["will"];
  topics: ClientConfig["topics"];
  connection: ClientConfig["connection"];
  checkHostname: boolean;
}

/**
 * Resolves the configuration (unless it already is) and derives the client's settings.
 *
 * @param config aMQTT keys, or a configuration already resolved by `src/config`
 * @returns the settings
 * @throws {ConfigError} when a key is unknown or a value is wrong
 */
export function clientSettings(
  config: ClientConfigInput | ClientConfig | undefined,
): ClientSettings {
  const c = isResolved(config) ? config : resolveClientConfig(config);
  // aMQTT sends keep_alive - ping_delay in CONNECT (10 - 1 = 9) so its ping lands in time.
  const keepAlive = c.keepAlive === 0 ? 0 : Math.max(1, Math.floor(c.keepAlive - c.pingDelay));
  return {
    keepAlive,
    defaultQos: c.defaultQos,
    defaultRetain: c.defaultRetain,
    autoReconnect: c.autoReconnect,
    reconnectRetries: c.reconnectRetries,
    reconnectMaxInterval: c.reconnectMaxInterval,
    connectionTimeout: c.connectionTimeout * 1000,
    cleanSession: c.cleanSession,
    will: c.will,
    topics: c.topics,
    connection: c.connection,
    checkHostname: c.checkHostname,
  };
}

function isResolved(config: unknown): config is ClientConfig {
  // Only a resolved configuration has `warnings`: as an input key it would be refused.
  return typeof config === "object" && config !== null &&
    Array.isArray((config as { warnings?: unknown }).warnings);
}
