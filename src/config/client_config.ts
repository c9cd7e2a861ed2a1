/**
 * Client configuration: aMQTT's `ClientConfig` keys and defaults in, one resolved and validated
 * {@linkcode ClientConfig} out.
 *
 * @module
 */

import type { ClientPluginConfig } from "./plugin_config.ts";
import { readClientPlugins } from "./_plugin_reader.ts";
import { readConfigFile } from "./_files.ts";
import {
  describe,
  type Entry,
  readAnyMap,
  readBool,
  ReadContext,
  readExistingPath,
  readNonEmptyString,
  readNumber,
  readQos,
  readSchemaMap,
  readString,
} from "./_reader.ts";
import { lineLookupFor, parseYaml } from "./_yaml.ts";

/** Publish defaults for one topic (`topics: {name: {qos, retain}}`). */
export interface TopicPublishConfig {
  /** QoS for messages published to this topic; defaults to the client's `defaultQos`. */
  qos: 0 | 1 | 2;
  /** Retain flag for messages published to this topic; defaults to `defaultRetain`. */
  retain: boolean;
}

/** The Will message sent by the broker if the client disconnects abnormally. */
export interface WillConfig {
  /** Topic name (no wildcards). */
  topic: string;
  /** Payload text (UTF-8 encoded when sent). */
  message: string;
  /** Default 0. */
  qos: 0 | 1 | 2;
  /** Default `false`. */
  retain: boolean;
}

/** How to reach the broker. */
export interface ConnectionConfig {
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` URI. Default `mqtt://127.0.0.1:1883`. */
  uri: string;
  /** PEM file of CA certificates that verify the broker. */
  cafile: string | undefined;
  /** Directory of PEM CA certificates that verify the broker. */
  capath: string | undefined;
  /** PEM text of CA certificates that verify the broker. */
  cadata: string | undefined;
  /** Client certificate (PEM), with `keyfile`. */
  certfile: string | undefined;
  /** Client private key (PEM), with `certfile`. */
  keyfile: string | undefined;
}

/**
 * A fully resolved client configuration (aMQTT `ClientConfig`, camelCase).
 *
 * @example
 * ```ts
 * import { resolveClientConfig } from "./client_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = resolveClientConfig({ keep_alive: 30, default_qos: 1 });
 * assert.equal(config.keepAlive, 30);
 * assert.equal(config.connection.uri, "mqtt://127.0.0.1:1883");
 * ```
 */
export interface ClientConfig {
  /** Keep-alive in seconds, 0..65535. Default 10. */
  keepAlive: number;
  /** Seconds before the keep-alive deadline at which the client pings. Default 1. */
  pingDelay: number;
  /** QoS used by publish when none is given. Default 0. */
  defaultQos: 0 | 1 | 2;
  /** Retain flag used by publish when none is given. Default `false`. */
  defaultRetain: boolean;
  /** Reconnect after the connection drops. Default `true`. */
  autoReconnect: boolean;
  /** Seconds to wait for a connection to be established. Default 60. */
  connectionTimeout: number;
  /** Reconnection attempts; a negative value retries forever. Default 2. */
  reconnectRetries: number;
  /** Upper bound in seconds of the reconnect back-off (`min(max, 2 ** n)`). Default 10. */
  reconnectMaxInterval: number;
  /** Clean session on connect (aMQTT key `cleansession`). Default `true`. */
  cleanSession: boolean;
  /** Per-topic publish defaults. */
  topics: Record<string, TopicPublishConfig>;
  /** The Will message, if any. */
  will: WillConfig | undefined;
  /** Broker URI and TLS files. */
  connection: ConnectionConfig;
  /** Check the broker certificate's host name. Default `true`. */
  checkHostname: boolean;
  /** Verify the broker certificate. Default `true`; `false` needs `checkHostname: false`. */
  verifyCert: boolean;
  /** Seconds to wait for a PUBACK (aMQTT `qos1_puback_timeout`). Default 5. */
  qos1PubackTimeout: number;
  /** Client plugins; default `[packet_logger]` as in aMQTT. */
  plugins: ClientPluginConfig[];
  /** Things that were accepted but deprecated or probably not meant. */
  warnings: string[];
}

/** Options for {@linkcode resolveClientConfig}. */
export interface ResolveClientConfigOptions {
  /** Where the input came from (a file path), for error messages. */
  source?: string;
  /** The YAML text the input was parsed from, so errors can give line numbers. */
  text?: string;
}

/** Default broker URI of a client. */
export const DEFAULT_CLIENT_URI = "mqtt://127.0.0.1:1883";

const TOP_KEYS = [
  "keep_alive",
  "ping_delay",
  "default_qos",
  "default_retain",
  "auto_reconnect",
  "connection_timeout",
  "reconnect_retries",
  "reconnect_max_interval",
  "cleansession",
  "clean_session",
  "topics",
  "will",
  "broker",
  "connection",
  "plugins",
  "check_hostname",
  "verify_cert",
  "qos1_puback_timeout",
] as const;

const CONNECTION_KEYS = ["uri", "cafile", "capath", "cadata", "certfile", "keyfile"] as const;
const URI_SCHEMES = ["mqtt:", "mqtts:", "ws:", "wss:"];

function readUri(ctx: ReadContext, entry: Entry): string {
  const uri = readNonEmptyString(ctx, entry, 'a broker URI such as "mqtt://host:1883"');
  let url: URL;
  try {
    url = new URL(uri);
  } catch (error) {
    throw ctx.error(entry.path, `${JSON.stringify(uri)} is not a valid URI`, error);
  }
  if (!URI_SCHEMES.includes(url.protocol)) {
    throw ctx.error(
      entry.path,
      `unsupported scheme ${JSON.stringify(url.protocol.slice(0, -1))} in ${
        JSON.stringify(uri)
      }; ` +
        "expected mqtt, mqtts, ws or wss",
    );
  }
  if (url.hostname === "") throw ctx.error(entry.path, `${JSON.stringify(uri)} names no host`);
  return uri;
}

function readConnection(ctx: ReadContext, entry: Entry | undefined): ConnectionConfig {
  const fields = entry === undefined
    ? new Map<string, Entry>()
    : readSchemaMap(ctx, entry.value, entry.path, CONNECTION_KEYS);
  const get = (key: string, read: (e: Entry) => string) => {
    const e = fields.get(key);
    return e === undefined ? undefined : read(e);
  };
  const certfile = fields.get("certfile");
  const keyfile = fields.get("keyfile");
  if (certfile !== undefined && keyfile === undefined) {
    throw ctx.error(certfile.path, "keyfile is required with certfile");
  }
  if (keyfile !== undefined && certfile === undefined) {
    throw ctx.error(keyfile.path, "certfile is required with keyfile");
  }
  return {
    uri: get("uri", (e) => readUri(ctx, e)) ?? DEFAULT_CLIENT_URI,
    cafile: get("cafile", (e) => readExistingPath(ctx, e, "file")),
    capath: get("capath", (e) => readExistingPath(ctx, e, "directory")),
    cadata: get("cadata", (e) => readNonEmptyString(ctx, e, "PEM certificate text")),
    certfile: get("certfile", (e) => readExistingPath(ctx, e, "file")),
    keyfile: get("keyfile", (e) => readExistingPath(ctx, e, "file")),
  };
}

function readWill(ctx: ReadContext, entry: Entry): WillConfig {
  const fields = readSchemaMap(ctx, entry.value, entry.path, ["topic", "message", "qos", "retain"]);
  const topicEntry = fields.get("topic");
  if (topicEntry === undefined) throw ctx.error(entry.path, "will needs a topic");
  const topic = readNonEmptyString(ctx, topicEntry, "a topic name");
  if (topic.includes("+") || topic.includes("#")) {
    // A Will Topic is a topic name, and topic names cannot contain wildcards [MQTT-3.3.2-2].
    throw ctx.error(topicEntry.path, `will topic ${JSON.stringify(topic)} contains a wildcard`);
  }
  const messageEntry = fields.get("message");
  if (messageEntry === undefined) throw ctx.error(entry.path, "will needs a message");
  const qos = fields.get("qos");
  const retain = fields.get("retain");
  return {
    topic,
    message: readString(ctx, messageEntry, "a message string (quote it in YAML)"),
    qos: qos === undefined ? 0 : readQos(ctx, qos),
    retain: retain === undefined ? false : readBool(ctx, retain),
  };
}

function readTopics(
  ctx: ReadContext,
  entry: Entry | undefined,
  defaultQos: 0 | 1 | 2,
  defaultRetain: boolean,
): Record<string, TopicPublishConfig> {
  const topics: Record<string, TopicPublishConfig> = {};
  if (entry === undefined) return topics;
  for (const topic of readAnyMap(ctx, entry.value, entry.path)) {
    const name = topic.path[topic.path.length - 1] as string;
    const fields = readSchemaMap(ctx, topic.value, topic.path, ["qos", "retain"]);
    const qos = fields.get("qos");
    const retain = fields.get("retain");
    Object.defineProperty(topics, name, {
      value: {
        qos: qos === undefined ? defaultQos : readQos(ctx, qos),
        retain: retain === undefined ? defaultRetain : readBool(ctx, retain),
      },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return topics;
}

function resolveWith(ctx: ReadContext, input: unknown): ClientConfig {
  if (
    input !== undefined && input !== null && (typeof input !== "object" || Array.isArray(input))
  ) {
    throw ctx.error(
      [],
      `Expected a map of client settings at the top level, got ${describe(input)}`,
    );
  }
  const top = readSchemaMap(ctx, input, [], TOP_KEYS);
  const number = (
    key: string,
    fallback: number,
    options: Parameters<typeof readNumber>[2],
  ): number => {
    const entry = top.get(key);
    return entry === undefined ? fallback : readNumber(ctx, entry, options);
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const entry = top.get(key);
    return entry === undefined ? fallback : readBool(ctx, entry);
  };

  const keepAlive = number("keep_alive", 10, {
    min: 0,
    max: 65535,
    integer: true,
    unit: "seconds",
  });
  const pingDelay = number("ping_delay", 1, { min: 0, unit: "seconds" });
  if (keepAlive > 0 && pingDelay >= keepAlive) {
    throw ctx.error(
      top.get("ping_delay")?.path ?? top.get("keep_alive")!.path,
      `ping_delay (${pingDelay}) must be less than keep_alive (${keepAlive})`,
    );
  }
  const qosEntry = top.get("default_qos");
  const defaultQos = qosEntry === undefined ? 0 : readQos(ctx, qosEntry);
  const defaultRetain = bool("default_retain", false);

  const legacyClean = top.get("cleansession");
  const clean = top.get("clean_session");
  if (legacyClean !== undefined && clean !== undefined) {
    throw ctx.error(clean.path, "duplicate key: cleansession and clean_session are the same key");
  }
  const cleanEntry = legacyClean ?? clean;

  const broker = top.get("broker");
  let connectionEntry = top.get("connection");
  if (broker !== undefined) {
    // aMQTT: the deprecated `broker` replaces `connection` when both are given.
    ctx.warn(broker.path, "deprecated: use connection instead of broker");
    if (connectionEntry !== undefined) {
      ctx.warn(connectionEntry.path, "ignored: broker is given and takes precedence (as in aMQTT)");
    }
    connectionEntry = broker;
  }

  const checkHostname = bool("check_hostname", true);
  const verifyCert = bool("verify_cert", true);
  if (!verifyCert && checkHostname) {
    throw ctx.error(
      top.get("verify_cert")!.path,
      "verify_cert: false needs check_hostname: false (a host name cannot be checked on an " +
        "unverified certificate)",
    );
  }

  const pluginsEntry = top.get("plugins");
  const willEntry = top.get("will");
  return {
    keepAlive,
    pingDelay,
    defaultQos,
    defaultRetain,
    autoReconnect: bool("auto_reconnect", true),
    connectionTimeout: number("connection_timeout", 60, {
      min: 0,
      positive: true,
      unit: "seconds",
    }),
    reconnectRetries: number("reconnect_retries", 2, {
      min: -Number.MAX_SAFE_INTEGER,
      integer: true,
    }),
    reconnectMaxInterval: number("reconnect_max_interval", 10, { min: 0, unit: "seconds" }),
    cleanSession: cleanEntry === undefined ? true : readBool(ctx, cleanEntry),
    topics: readTopics(ctx, top.get("topics"), defaultQos, defaultRetain),
    will: willEntry === undefined ? undefined : readWill(ctx, willEntry),
    connection: readConnection(ctx, connectionEntry),
    checkHostname,
    verifyCert,
    qos1PubackTimeout: number("qos1_puback_timeout", 5, {
      min: 0,
      positive: true,
      unit: "seconds",
    }),
    plugins: pluginsEntry === undefined
      ? [{
        name: "packet_logger",
        className: "amqtt.plugins.logging_amqtt.PacketLoggerPlugin",
        options: {},
      }]
      : readClientPlugins(ctx, pluginsEntry),
    warnings: ctx.warnings,
  };
}

/**
 * Resolves and validates a client configuration given as a plain object (aMQTT's `ClientConfig`
 * keys, with `-`, `_` or camelCase).
 *
 * @param input The configuration object; `undefined` or `null` gives the defaults.
 * @param options Source name and YAML text, for error messages with line numbers.
 * @returns The resolved configuration.
 * @throws {ConfigError} If a key is unknown, a value has the wrong type or is out of range, a
 * certificate file does not exist, or `certfile`/`keyfile` is given without the other.
 *
 * @example
 * ```ts
 * import { resolveClientConfig } from "./client_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = resolveClientConfig({
 *   "keep-alive": 30,
 *   will: { topic: "status/me", message: "gone", qos: 1 },
 *   connection: { uri: "mqtt://broker.local" },
 * });
 * assert.equal(config.keepAlive, 30);
 * assert.equal(config.will?.qos, 1);
 * assert.equal(config.reconnectRetries, 2);
 * ```
 */
export function resolveClientConfig(
  input?: unknown,
  options: ResolveClientConfigOptions = {},
): ClientConfig {
  return resolveWith(new ReadContext(options.source, lineLookupFor(options.text)), input);
}

/**
 * Parses aMQTT client YAML (YAML 1.1) and resolves it.
 *
 * @param text The YAML text.
 * @param source The file it came from, for error messages.
 * @returns The resolved configuration.
 * @throws {ConfigError} On a YAML syntax error or any error of {@linkcode resolveClientConfig},
 * with the line number.
 *
 * @example
 * ```ts
 * import { parseClientConfigYaml } from "./client_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseClientConfigYaml("default_qos: 1\nauto_reconnect: off\n");
 * assert.equal(config.defaultQos, 1);
 * assert.equal(config.autoReconnect, false);
 * ```
 */
export function parseClientConfigYaml(text: string, source?: string): ClientConfig {
  const parsed = parseYaml(text, source);
  return resolveWith(new ReadContext(source, parsed.lineOf), parsed.value);
}

/**
 * Reads a client YAML file and resolves it.
 *
 * @param path The file to read.
 * @returns The resolved configuration.
 * @throws {ConfigError} If the file cannot be read, or on any error of
 * {@linkcode parseClientConfigYaml}.
 *
 * @example
 * ```ts
 * import { ConfigError, loadClientConfigFile } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadClientConfigFile("/no/such/client.yaml"), ConfigError);
 * ```
 */
export async function loadClientConfigFile(path: string): Promise<ClientConfig> {
  return parseClientConfigYaml(await readConfigFile(path), path);
}
