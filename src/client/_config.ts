/**
 * The client's configuration: aMQTT's `ClientConfig` keys and defaults, resolved into the settings
 * the client uses. Stand-in until `src/config` provides `resolveClientConfig`.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";

/** The `will` entry of the configuration (aMQTT keys). */
export interface WillConfig {
  topic: string;
  /** The will payload (aMQTT `message`). */
  message?: string | Uint8Array;
  qos?: QoS;
  retain?: boolean;
}

/** The `connection` entry (aMQTT keys; `broker` is its deprecated alias). */
export interface ConnectionConfig {
  /** Default broker URL when `connect` is given none. */
  uri?: string;
  /** Path of a PEM file of CA certificates to trust. */
  cafile?: string;
  /** Directory of PEM CA certificates (`*.pem`, `*.crt`) to trust. */
  capath?: string;
  /** PEM CA certificates, inline. */
  cadata?: string;
  /** Path of the client certificate (PEM), for mutual TLS. */
  certfile?: string;
  /** Path of the client private key (PEM), for mutual TLS. */
  keyfile?: string;
}

/** Per-topic publish defaults (aMQTT `topics`). */
export interface TopicConfig {
  qos?: QoS;
  retain?: boolean;
}

/**
 * The client configuration, with aMQTT's keys. Every key is optional; defaults are aMQTT's.
 */
export interface ClientConfig {
  /** Seconds; with `ping_delay` gives the CONNECT keepalive `keep_alive - ping_delay`. Default 10. */
  keep_alive?: number;
  /** Seconds before the keepalive that the client pings. Default 1. */
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
  will?: WillConfig;
  topics?: Record<string, TopicConfig>;
  connection?: ConnectionConfig;
  /** Deprecated alias of `connection`. */
  broker?: ConnectionConfig;
  /** Check the server certificate's name. Default true. */
  check_hostname?: boolean;
  /** Extension: QoS 1/2 messages in flight at once. Default 20. */
  max_inflight?: number;
  /** Extension: messages held while offline (per QoS class); beyond, publish rejects. Default 1000. */
  max_queued?: number;
}

/** Resolved settings, in the client's own units. */
export interface ClientSettings {
  /** CONNECT keepalive, seconds. */
  keepAlive: number;
  defaultQos: QoS;
  defaultRetain: boolean;
  autoReconnect: boolean;
  reconnectRetries: number;
  reconnectMaxInterval: number;
  /** Milliseconds. */
  connectionTimeout: number;
  cleanSession: boolean;
  will: WillConfig | undefined;
  topics: Record<string, TopicConfig>;
  connection: ConnectionConfig;
  checkHostname: boolean;
  maxInflight: number;
  maxQueued: number;
}

/**
 * Applies aMQTT's defaults and checks the values.
 *
 * @param config the configuration
 * @returns the settings
 * @throws {TypeError} when a value has the wrong type
 * @throws {RangeError} when a number is out of range
 */
export function resolveClientSettings(config: ClientConfig = {}): ClientSettings {
  const keepAlive = num(config.keep_alive, 10, "keep_alive", 0);
  const pingDelay = num(config.ping_delay, 1, "ping_delay", 0);
  // aMQTT sends keep_alive - ping_delay in CONNECT (10 - 1 = 9) and pings before it runs out.
  const connectKeepAlive = keepAlive === 0 ? 0 : Math.max(1, Math.round(keepAlive - pingDelay));
  if (connectKeepAlive > 65535) {
    throw new RangeError(`Invalid client config: keep_alive ${keepAlive} is above 65535 seconds`);
  }
  const defaultQos = qos(config.default_qos, "default_qos");
  const topics = config.topics ?? {};
  for (const [name, t] of Object.entries(topics)) {
    if (t.qos !== undefined) qos(t.qos, `topics.${name}.qos`);
    if (t.retain !== undefined) bool(t.retain, false, `topics.${name}.retain`);
  }
  const will = config.will;
  if (will !== undefined) {
    if (typeof will.topic !== "string" || will.topic === "") {
      throw new TypeError("Invalid client config: will.topic must be a non-empty string");
    }
    if (will.qos !== undefined) qos(will.qos, "will.qos");
  }
  return {
    keepAlive: connectKeepAlive,
    defaultQos,
    defaultRetain: bool(config.default_retain, false, "default_retain"),
    autoReconnect: bool(config.auto_reconnect, true, "auto_reconnect"),
    reconnectRetries: num(config.reconnect_retries, 2, "reconnect_retries"),
    reconnectMaxInterval: num(config.reconnect_max_interval, 10, "reconnect_max_interval", 0),
    connectionTimeout: num(config.connection_timeout, 60, "connection_timeout", 0) * 1000,
    cleanSession: bool(config.cleansession, true, "cleansession"),
    will,
    topics,
    connection: { ...config.broker, ...config.connection },
    checkHostname: bool(config.check_hostname, true, "check_hostname"),
    maxInflight: num(config.max_inflight, 20, "max_inflight", 1),
    maxQueued: num(config.max_queued, 1000, "max_queued", 0),
  };
}

function num(value: unknown, fallback: number, key: string, min = -Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`Invalid client config: ${key} must be a number`);
  }
  if (value < min) throw new RangeError(`Invalid client config: ${key} ${value} is below ${min}`);
  return value;
}

function bool(value: unknown, fallback: boolean, key: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`Invalid client config: ${key} must be true or false`);
  }
  return value;
}

function qos(value: unknown, key: string): QoS {
  if (value === undefined) return 0;
  if (value !== 0 && value !== 1 && value !== 2) {
    throw new RangeError(`Invalid client config: ${key} ${String(value)} is not 0, 1 or 2`);
  }
  return value;
}
