/**
 * Broker configuration: aMQTT-compatible keys in, one fully resolved and validated
 * {@linkcode BrokerConfig} out.
 *
 * @module
 */

import { _parseBind } from "./bind.ts";
import { ConfigError } from "./config_error.ts";
import { DEFAULT_BROKER_CONFIG_YAML } from "./default_broker_yaml.ts";
import type { BrokerPluginConfig } from "./plugin_config.ts";
import {
  DEFAULT_SYS_INTERVAL,
  defaultBrokerPlugins,
  legacyBrokerPlugins,
  readBrokerPlugins,
} from "./_plugin_reader.ts";
import { readConfigFile } from "./_files.ts";
import type { PersistenceConfig } from "./persistence_config.ts";
import { isSessionDbPlugin, readPersistence } from "./_persistence_reader.ts";
import type { ClusterConfig } from "./cluster_config.ts";
import { readCluster } from "./_cluster_reader.ts";
import { MQTT5_KEYS, readMqtt5Limits } from "./_mqtt5_reader.ts";
import {
  FLOW_CONTROL_KEYS,
  type FlowControlConfig,
  readFlowControl,
} from "./_flow_control_reader.ts";
import {
  describe,
  type Entry,
  type Path,
  readAnyMap,
  readBool,
  ReadContext,
  readEnum,
  readExistingPath,
  readNonEmptyString,
  readNumber,
  readSchemaMap,
  readString,
} from "./_reader.ts";
import { lineLookupFor, parseYaml } from "./_yaml.ts";

/**
 * Listener transport. `external`: the host application hands connections to the broker. `http`:
 * the operator's endpoints (`/metrics`, `/healthz`, `/readyz`, the admin API and the dashboard),
 * not MQTT.
 */
export type ListenerType = "tcp" | "ws" | "external" | "http";

/**
 * Whether a TLS listener asks clients for a certificate: `none` (do not ask), `optional` (ask
 * and verify one if sent, as aMQTT does) or `required` (refuse the handshake without one).
 */
export type ClientCertMode = "none" | "optional" | "required";

/** One resolved listener, with every field inherited from `default` or defaulted. */
export interface ListenerConfig {
  /** The listener's name in the `listeners` map. */
  name: string;
  /** Transport. Default `tcp`. */
  type: ListenerType;
  /** Canonical `host:port` (`[v6]:port`), after defaults. Informational for `external`. */
  bind: string;
  /** Address to listen on (IPv6 without brackets); `0.0.0.0` when the bind names no host. */
  hostname: string;
  /**
   * Port, 0 = let the system pick. When `bind` has none: 1883 for tcp, 8883 for tcp with ssl,
   * 8883 for ws with or without ssl (aMQTT's ws default).
   */
  port: number;
  /** Maximum simultaneous connections on this listener; 0 = unlimited. Default 0. */
  maxConnections: number;
  /** TLS on this listener. Default `false`. */
  ssl: boolean;
  /** PEM file of CA certificates used to verify client certificates. */
  cafile: string | undefined;
  /** Directory of PEM CA certificates used to verify client certificates. */
  capath: string | undefined;
  /** PEM text of CA certificates used to verify client certificates. */
  cadata: string | undefined;
  /** Server certificate chain (PEM). Required with `keyfile` when `ssl` is on. */
  certfile: string | undefined;
  /** Server private key (PEM). Required with `certfile` when `ssl` is on. */
  keyfile: string | undefined;
  /**
   * Client certificate policy (our addition, key `client_cert_mode`). Default: `optional` when
   * ssl is on and a CA (`cafile`, `capath` or `cadata`) is given (`required` when
   * `use_cert_cn_as_username` is on), else `none`.
   */
  clientCertMode: ClientCertMode;
  /**
   * Use the client certificate's subject CN as the username, instead of the CONNECT user name
   * (our addition, like Mosquitto's `use_identity_as_username`). Default `false`. Needs
   * `client_cert_mode: required`: with `optional`, a client without a certificate could claim
   * any user name.
   */
  useCertCnAsUsername: boolean;
  /**
   * WebSocket URL path to accept (our addition), e.g. `/mqtt` or `/`. `undefined` (the default)
   * accepts any path, as aMQTT does.
   */
  path: string | undefined;
  /**
   * `http` listeners only (our addition): the users of the password file who may use the admin
   * API, `/metrics` and the dashboard. Empty (the default): nothing but `/healthz` is served.
   */
  admins?: string[];
  /**
   * `http` listeners only (our addition): the password file the admins log in with. Default: the
   * `auth_file` plugin's `password_file`.
   */
  passwordFile?: string;
}

/**
 * A fully resolved broker configuration.
 *
 * @example
 * ```ts
 * import { parseBrokerConfigYaml } from "./broker_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseBrokerConfigYaml("listeners:\n  default: {bind: 127.0.0.1:1883}\nmax_inflight: 10\n");
 * assert.equal(config.listeners[0]?.port, 1883);
 * assert.equal(config.maxInflight, 10);
 * ```
 */
export interface BrokerConfig {
  /**
   * Listeners to start, in file order. `default` is a template only (not started) when other
   * listeners exist and it has no `bind` of its own.
   */
  listeners: ListenerConfig[];
  /** Seconds added to a client's keep-alive before it is dropped. Default 0. */
  timeoutDisconnectDelay: number;
  /**
   * Seconds a disconnected persistent session is kept; `undefined` = forever (written `never`).
   * Default {@linkcode DEFAULT_SESSION_EXPIRY_INTERVAL} (3 days): an abandoned session must not
   * be kept forever.
   */
  sessionExpiryInterval: number | undefined;
  /** The normalized plugin list (auth, topic checks, $SYS, loggers) with validated options. */
  plugins: BrokerPluginConfig[];
  /** Outgoing QoS 1/2 messages in flight per client (our addition). Default 20. */
  maxInflight: number;
  /**
   * Messages queued per client beyond the in-flight window, oldest dropped first (our addition).
   * 0 = unlimited. Default 1000.
   */
  maxQueuedMessages: number;
  /**
   * Largest accepted packet in bytes, fixed header included (our addition). Default 2 MiB
   * (2097152); at most 268435460, the largest packet MQTT can encode.
   */
  maxPacketSize: number;
  /**
   * Seconds a new connection has to send CONNECT and have it checked (authentication, will) (our
   * addition). Default 10. A cluster node's wait for the session's previous owner is bounded by
   * the cluster's settings instead (see `ClusterConfig.nodeTimeout`).
   */
  connectTimeout: number;
  /** Bytes of unsent output one connection may hold (our addition). Default 8 MiB. */
  maxOutboundBytes: number;
  /**
   * Seconds one write to a connection may stay unfinished (the peer is not reading) before the
   * connection is closed (our addition). Default 30.
   */
  drainTimeout: number;
  /**
   * Flow control (our addition): messages queued behind a connected subscriber's in-flight window
   * at which the publishers of what is routed to it stop being read, so that a burst waits in TCP
   * buffers instead of being dropped. 0 turns it off. Default: half of `max_queued_messages` (500
   * with its default, and when it is unlimited); never above it.
   */
  flowControlHighWater: number;
  /** Queued messages at or below which paused publishers are read again. Default: half the high water. */
  flowControlLowWater: number;
  /**
   * Seconds a publisher stays paused at most; then the queues it waited for drop their oldest
   * messages (counted as queue full) until they drain to the low water. Default 1.
   */
  flowControlTimeout: number;
  /**
   * Where broker state lives: the `persistence` section or aMQTT's `SessionDBPlugin`. Default:
   * off (state in memory only).
   */
  persistence: PersistenceConfig;
  // Under attack: failed-login throttling and periodic summaries instead of a line per event.
  /**
   * Failed (or still unchecked) logins one source address may have in a burst before its logins
   * are answered "server unavailable" without being checked (our addition). Successful logins
   * give their unit back; logins over it wait while the address has logins being checked. 0 turns
   * the throttle off. Default 20.
   */
  maxLoginFailures: number;
  /** Seconds for a source's whole `max_login_failures` budget to come back (our addition). Default 60. */
  loginFailureWindow: number;
  /**
   * Seconds between the summary lines of refused logins and dropped messages, logged instead of
   * one line per event (our addition). Default 60.
   */
  logSummaryInterval: number;
  // Limits on the state clients can make the broker hold (our additions); 0 turns one off.
  /** Levels of a topic name or filter (Mosquitto's limit). Default 200. */
  maxTopicLevels: number;
  /** Subscriptions one client may hold; more get SUBACK 0x80. Default 1000. */
  maxSubscriptionsPerClient: number;
  /**
   * Sessions in total, connected or offline: past it a new session replaces the offline one that
   * waited longest, or gets CONNACK 3 when all are connected. Default 100000.
   */
  maxSessions: number;
  /** Retained messages stored; more are forwarded but not stored. Default 1000000. */
  maxRetainedMessages: number;
  /** Bytes of retained topics and payloads stored. Default 512 MiB (536870912). */
  maxRetainedBytes: number;
  /**
   * Memory budget in bytes past which new sessions, subscriptions, retained and queued messages
   * are refused. `undefined` (the default): half of the JavaScript heap limit.
   */
  maxMemory: number | undefined;
  /** Whether and how this broker is a node of a cluster on Redis. Default: off. */
  cluster: ClusterConfig;
  // MQTT 5.0 limits, announced in CONNACK to 5.0 clients (shared subscriptions serve 3.1.1 too).
  /**
   * Unacknowledged QoS 1/2 PUBLISH one 5.0 client may send before the broker has answered them
   * (CONNACK Receive Maximum), 1 to 65535. Default 1024.
   */
  receiveMaximum: number;
  /** Topic aliases one 5.0 client may set per connection (CONNACK Topic Alias Maximum). Default 10. */
  topicAliasMaximum: number;
  /**
   * Seconds of keep alive the broker imposes on 5.0 clients instead of theirs (CONNACK Server
   * Keep Alive); `undefined` (the default): each client's own.
   */
  serverKeepAlive: number | undefined;
  /**
   * Whether the broker sends repeated topics to 5.0 clients as Topic Aliases, within each
   * client's Topic Alias Maximum. Default false.
   */
  outboundTopicAliases: boolean;
  /** How a shared subscription's group picks the member that gets a message. Default `round_robin`. */
  sharedSubscriptionStrategy: "round_robin" | "random";
  /**
   * The highest QoS the broker takes (`maximum_qos`, CONNACK Maximum QoS): a PUBLISH or a will
   * above it closes the connection, subscriptions are granted at most it. Default 2.
   */
  maximumQos: 0 | 1 | 2;
  /**
   * Whether the broker keeps retained messages (`retain_available`, CONNACK Retain Available):
   * when false, a PUBLISH or a will with RETAIN 1 closes the connection, and retained messages
   * held anyway (a store's, the host program's) are not sent to new subscriptions. Default true.
   */
  retainAvailable: boolean;
  /**
   * Another server for 5.0 clients to use (`server_reference`, the Server Reference property):
   * named with 0x9C Use another server on the DISCONNECT of a shutdown and on a CONNACK refused
   * for a spent quota. Default: none.
   */
  serverReference: string | undefined;
  /**
   * Whether filters may have `+` or `#` (`wildcard_subscription_available`). Default true.
   */
  wildcardSubscriptionAvailable: boolean;
  /**
   * Whether a SUBSCRIBE may carry a Subscription Identifier (`subscription_identifiers_available`).
   * Default true.
   */
  subscriptionIdentifiersAvailable: boolean;
  /** Whether `$share/` filters are served (`shared_subscription_available`). Default true. */
  sharedSubscriptionAvailable: boolean;
  /** Things that were accepted but are probably not what was meant; print them at start-up. */
  warnings: string[];
}

/** Options for {@linkcode resolveBrokerConfig}. */
export interface ResolveBrokerConfigOptions {
  /** Where the input came from (a file path), for error messages. */
  source?: string;
  /** The YAML text the input was parsed from, so errors can give line numbers. */
  text?: string;
}

/** Default of {@linkcode BrokerConfig.maxPacketSize}: 2 MiB. */
export const DEFAULT_MAX_PACKET_SIZE = 2 * 1024 * 1024;
/** The largest packet MQTT can encode: 1 type byte, 4 length bytes, 268435455 remaining. */
export const MAX_PACKET_SIZE_LIMIT = 268_435_460;
/** Default of {@linkcode BrokerConfig.sessionExpiryInterval}: 3 days, in seconds. */
export const DEFAULT_SESSION_EXPIRY_INTERVAL = 3 * 24 * 3600;

const TOP_KEYS = [
  "listeners",
  "timeout_disconnect_delay",
  "sys_interval",
  "session_expiry_interval",
  "auth",
  "topic_check",
  "plugins",
  "max_inflight",
  "max_queued_messages",
  "max_packet_size",
  "connect_timeout",
  "max_outbound_bytes",
  "drain_timeout",
  "qos1_puback_timeout",
  "persistence",
  "max_login_failures",
  "login_failure_window",
  "log_summary_interval",
  "max_topic_levels",
  "max_subscriptions_per_client",
  "max_sessions",
  "max_retained_messages",
  "max_retained_bytes",
  "max_memory",
  "cluster",
  ...MQTT5_KEYS,
  ...FLOW_CONTROL_KEYS,
] as const;

const LISTENER_KEYS = [
  "type",
  "bind",
  "max_connections",
  "ssl",
  "cafile",
  "capath",
  "cadata",
  "certfile",
  "keyfile",
  "client_cert_mode",
  "use_cert_cn_as_username",
  "path",
  "admins",
  "password_file",
] as const;

const LISTENER_TYPES: readonly ListenerType[] = ["tcp", "ws", "external", "http"];
const CLIENT_CERT_MODES: readonly ClientCertMode[] = ["none", "optional", "required"];

/** A field value and the key path where it was written (maybe in `default`). */
interface Field<T> {
  value: T;
  path: Path;
}

interface ListenerFields {
  type?: Field<ListenerType>;
  bind?: Field<string>;
  maxConnections?: Field<number>;
  ssl?: Field<boolean>;
  cafile?: Field<string>;
  capath?: Field<string>;
  cadata?: Field<string>;
  certfile?: Field<string>;
  keyfile?: Field<string>;
  clientCertMode?: Field<ClientCertMode>;
  useCertCnAsUsername?: Field<boolean>;
  path?: Field<string>;
  admins?: Field<string[]>;
  passwordFile?: Field<string>;
}

/** Reads one listener block as written, checking each value's type where it is written. */
function readListenerFields(ctx: ReadContext, entry: Entry): ListenerFields {
  const map = readSchemaMap(ctx, entry.value, entry.path, LISTENER_KEYS);
  const out: ListenerFields = {};
  const field = <T>(key: string, read: (e: Entry) => T): Field<T> | undefined => {
    const e = map.get(key);
    return e === undefined ? undefined : { value: read(e), path: e.path };
  };
  out.type = field("type", (e) => readEnum(ctx, e, LISTENER_TYPES));
  out.bind = field("bind", (e) => {
    let bind: string;
    if (typeof e.value === "number" && Number.isInteger(e.value)) bind = String(e.value);
    else bind = readString(ctx, e, 'a bind address such as "0.0.0.0:1883"');
    const parsed = _parseBind(bind, 0);
    if ("error" in parsed) throw ctx.error(e.path, parsed.error);
    return bind;
  });
  out.maxConnections = field("max_connections", (e) => {
    // aMQTT 0.10 used -1 for "unlimited"; any negative value means the same as 0.
    const n = readNumber(ctx, e, { min: -Number.MAX_SAFE_INTEGER, integer: true });
    return Math.max(0, n);
  });
  out.ssl = field("ssl", (e) => readBool(ctx, e));
  out.cafile = field("cafile", (e) => readExistingPath(ctx, e, "file"));
  out.capath = field("capath", (e) => readExistingPath(ctx, e, "directory"));
  out.cadata = field("cadata", (e) => readNonEmptyString(ctx, e, "PEM certificate text"));
  out.certfile = field("certfile", (e) => readExistingPath(ctx, e, "file"));
  out.keyfile = field("keyfile", (e) => readExistingPath(ctx, e, "file"));
  out.clientCertMode = field("client_cert_mode", (e) => readEnum(ctx, e, CLIENT_CERT_MODES));
  out.useCertCnAsUsername = field("use_cert_cn_as_username", (e) => readBool(ctx, e));
  out.path = field("path", (e) => {
    const path = readString(ctx, e, "a URL path");
    if (!path.startsWith("/")) {
      throw ctx.error(e.path, `URL path ${JSON.stringify(path)} must start with "/"`);
    }
    return path;
  });
  out.admins = field("admins", (e) => {
    if (!Array.isArray(e.value)) {
      throw ctx.error(e.path, `expected a list of user names, got ${describe(e.value)}`);
    }
    return e.value.map((v, i) =>
      readNonEmptyString(ctx, { value: v, path: [...e.path, i] }, "a user name")
    );
  });
  out.passwordFile = field("password_file", (e) => readExistingPath(ctx, e, "file"));
  return out;
}

function defaultPortFor(type: ListenerType, ssl: boolean): number {
  if (type === "tcp") return ssl ? 8883 : 1883;
  if (type === "http") return ssl ? 8443 : 8080;
  // aMQTT's default for ws is 8883, with or without TLS.
  return 8883;
}

function formatBind(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** Applies inheritance and cross-field rules to one listener. */
function resolveListener(
  ctx: ReadContext,
  name: string,
  listenerPath: Path,
  own: ListenerFields,
  inherited: ListenerFields,
): ListenerConfig {
  const merged: ListenerFields = { ...inherited };
  for (const [key, value] of Object.entries(own)) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  const isOwn = (field: Field<unknown> | undefined) =>
    field !== undefined && Object.values(own).includes(field);
  const type = merged.type?.value ?? "tcp";
  const ssl = merged.ssl?.value ?? false;

  for (const key of ["admins", "passwordFile"] as const) {
    const f = merged[key];
    if (f !== undefined && type !== "http" && (isOwn(f) || name === "default")) {
      throw ctx.error(f.path, `${f.path[f.path.length - 1]} applies to http listeners only`);
    }
  }

  const bindText = merged.bind?.value ?? "";
  const parsed = _parseBind(bindText, defaultPortFor(type, ssl));
  if ("error" in parsed) throw ctx.error(merged.bind?.path ?? listenerPath, parsed.error);

  if (merged.certfile !== undefined && merged.keyfile === undefined) {
    throw ctx.error(merged.certfile.path, `keyfile is required with certfile (listener "${name}")`);
  }
  if (merged.keyfile !== undefined && merged.certfile === undefined) {
    throw ctx.error(merged.keyfile.path, `certfile is required with keyfile (listener "${name}")`);
  }
  if (ssl && type !== "external" && merged.certfile === undefined) {
    throw ctx.error(listenerPath, "ssl is on but certfile and keyfile are not set");
  }

  const hasCa = merged.cafile !== undefined || merged.capath !== undefined ||
    merged.cadata !== undefined;
  const cnField = merged.useCertCnAsUsername;
  const wantsCn = cnField !== undefined && cnField.value;
  // The CN names the user only if every client must show a certificate: see below.
  let clientCertMode: ClientCertMode = ssl && hasCa ? (wantsCn ? "required" : "optional") : "none";
  const modeField = merged.clientCertMode;
  if (modeField !== undefined) {
    if (ssl) {
      clientCertMode = modeField.value;
      if (clientCertMode !== "none" && !hasCa) {
        throw ctx.error(
          modeField.path,
          `client_cert_mode "${clientCertMode}" needs cafile, capath or cadata to verify ` +
            `client certificates (listener "${name}")`,
        );
      }
    } else if (modeField.value !== "none" && (isOwn(modeField) || name === "default")) {
      throw ctx.error(modeField.path, `client_cert_mode "${modeField.value}" needs ssl: on`);
    }
    // Inherited by a listener without TLS: it cannot apply there, so it is "none".
  }
  let useCertCnAsUsername = false;
  if (wantsCn) {
    if (clientCertMode === "required") useCertCnAsUsername = true;
    else if (clientCertMode === "optional") {
      // A client that shows no certificate would keep the user name it sent in CONNECT, and so
      // could take the identity (and ACL entries) of any certificate holder. Mosquitto's
      // use_identity_as_username likewise needs require_certificate.
      throw ctx.error(
        isOwn(modeField) ? modeField!.path : cnField!.path,
        `use_cert_cn_as_username needs client_cert_mode "required", not "optional": a client ` +
          `without a certificate could claim any user name (listener "${name}")`,
      );
    } else if (isOwn(cnField) || name === "default" || ssl) {
      throw ctx.error(
        cnField!.path,
        `use_cert_cn_as_username needs ssl: on, cafile, capath or cadata, and client_cert_mode ` +
          `"required" (listener "${name}")`,
      );
    }
  }

  return {
    name,
    type,
    bind: formatBind(parsed.hostname, parsed.port),
    hostname: parsed.hostname,
    port: parsed.port,
    maxConnections: merged.maxConnections?.value ?? 0,
    ssl,
    cafile: merged.cafile?.value,
    capath: merged.capath?.value,
    cadata: merged.cadata?.value,
    certfile: merged.certfile?.value,
    keyfile: merged.keyfile?.value,
    clientCertMode,
    useCertCnAsUsername,
    path: merged.path?.value,
    // Only http listeners have these, so other listeners keep their shape.
    ...(type === "http"
      ? { admins: merged.admins?.value ?? [], passwordFile: merged.passwordFile?.value }
      : {}),
  };
}

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "0:0:0:0:0:0:0:0"]);

function checkBindConflicts(
  ctx: ReadContext,
  listeners: ListenerConfig[],
  paths: Map<string, Path>,
): void {
  const bound = listeners.filter((l) => l.type !== "external" && l.port !== 0);
  for (let i = 0; i < bound.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = bound[j]!;
      const b = bound[i]!;
      if (a.port !== b.port) continue;
      if (
        a.hostname === b.hostname || WILDCARD_HOSTS.has(a.hostname) ||
        WILDCARD_HOSTS.has(b.hostname)
      ) {
        throw ctx.error(
          paths.get(b.name) ?? ["listeners", b.name],
          `listeners "${a.name}" (${a.bind}) and "${b.name}" (${b.bind}) use the same port`,
        );
      }
    }
  }
}

function readListeners(ctx: ReadContext, entry: Entry | undefined): ListenerConfig[] {
  if (entry === undefined) {
    return [resolveListener(ctx, "default", ["listeners", "default"], {}, {})];
  }
  const blocks = readAnyMap(ctx, entry.value, entry.path);
  const defaultBlock = blocks.find((b) => b.path[b.path.length - 1] === "default");
  if (defaultBlock === undefined) {
    throw ctx.error(entry.path, 'a "default" listener is required');
  }
  const defaults = readListenerFields(ctx, defaultBlock);
  const listeners: ListenerConfig[] = [];
  const paths = new Map<string, Path>();
  for (const block of blocks) {
    const name = block.path[block.path.length - 1] as string;
    paths.set(name, block.path);
    if (block === defaultBlock) {
      // Template only when other listeners exist and it does not bind itself (aMQTT docs).
      if (defaults.bind === undefined && blocks.length > 1) continue;
      listeners.push(resolveListener(ctx, name, block.path, defaults, {}));
    } else {
      const own = readListenerFields(ctx, block);
      listeners.push(resolveListener(ctx, name, block.path, own, defaults));
    }
  }
  checkBindConflicts(ctx, listeners, paths);
  return listeners;
}

function optionalNumber(
  ctx: ReadContext,
  entry: Entry | undefined,
  fallback: number,
  options: Parameters<typeof readNumber>[2],
): number {
  return entry === undefined ? fallback : readNumber(ctx, entry, options);
}

/** The flow control keys, with defaults from `max_queued_messages` (read again: cheap). */
function flowControl(ctx: ReadContext, top: Map<string, Entry>): FlowControlConfig {
  const maxQueued = optionalNumber(ctx, top.get("max_queued_messages"), 1000, {
    min: 0,
    integer: true,
  });
  return readFlowControl(ctx, top, maxQueued);
}

/** The limits on client state; each counts from 0 (off). */
function readStateLimits(ctx: ReadContext, top: Map<string, Entry>) {
  const count = (key: string, fallback: number, unit?: string) =>
    optionalNumber(ctx, top.get(key), fallback, { min: 0, integer: true, unit });
  const memory = top.get("max_memory");
  return {
    maxTopicLevels: count("max_topic_levels", 200),
    maxSubscriptionsPerClient: count("max_subscriptions_per_client", 1000),
    maxSessions: count("max_sessions", 100_000),
    maxRetainedMessages: count("max_retained_messages", 1_000_000),
    maxRetainedBytes: count("max_retained_bytes", 512 * 1024 * 1024, "bytes"),
    maxMemory: memory === undefined
      ? undefined
      : readNumber(ctx, memory, { min: 0, integer: true, unit: "bytes" }),
  };
}

function resolveWith(ctx: ReadContext, input: unknown): BrokerConfig {
  if (
    input !== undefined && input !== null && (typeof input !== "object" || Array.isArray(input))
  ) {
    throw ctx.error(
      [],
      `Expected a map of broker settings at the top level, got ${describe(input)}`,
    );
  }
  const top = readSchemaMap(ctx, input, [], TOP_KEYS);
  const listeners = readListeners(ctx, top.get("listeners"));

  const pluginsEntry = top.get("plugins");
  const auth = top.get("auth");
  const topicCheck = top.get("topic_check");
  const sysInterval = top.get("sys_interval");
  let plugins: BrokerPluginConfig[];
  let sessionDb: Entry | undefined;
  if (pluginsEntry !== undefined) {
    plugins = readBrokerPlugins(ctx, pluginsEntry, sysInterval, (name, options) => {
      if (!isSessionDbPlugin(name)) return false;
      if (sessionDb !== undefined) throw ctx.error(options.path, `${name} is listed twice`);
      sessionDb = options;
      return true;
    });
    for (const ignored of [auth, topicCheck]) {
      if (ignored !== undefined) {
        ctx.warn(ignored.path, "ignored: the plugins section takes precedence (as in aMQTT)");
      }
    }
  } else if (auth !== undefined || topicCheck !== undefined) {
    plugins = legacyBrokerPlugins(ctx, auth, topicCheck, sysInterval);
  } else {
    const interval = sysInterval === undefined
      ? DEFAULT_SYS_INTERVAL
      : readNumber(ctx, sysInterval, { min: 0, unit: "seconds" });
    plugins = defaultBrokerPlugins(interval);
  }

  const puback = top.get("qos1_puback_timeout");
  if (puback !== undefined) {
    readNumber(ctx, puback, { min: 0, positive: true, unit: "seconds" });
    ctx.warn(
      puback.path,
      "ignored: the broker does not time out QoS 1 deliveries; unacknowledged messages are " +
        "resent when the client reconnects, as MQTT requires",
    );
  }

  const expiry = top.get("session_expiry_interval");
  return {
    listeners,
    timeoutDisconnectDelay: optionalNumber(ctx, top.get("timeout_disconnect_delay"), 0, {
      min: 0,
      unit: "seconds",
    }),
    sessionExpiryInterval: expiry === undefined
      ? DEFAULT_SESSION_EXPIRY_INTERVAL
      : expiry.value === "never"
      ? undefined
      : readNumber(ctx, expiry, { min: 0, unit: "seconds" }),
    plugins,
    maxInflight: optionalNumber(ctx, top.get("max_inflight"), 20, {
      min: 1,
      max: 65535,
      integer: true,
    }),
    maxQueuedMessages: optionalNumber(ctx, top.get("max_queued_messages"), 1000, {
      min: 0,
      integer: true,
    }),
    maxPacketSize: optionalNumber(ctx, top.get("max_packet_size"), DEFAULT_MAX_PACKET_SIZE, {
      min: 64,
      max: MAX_PACKET_SIZE_LIMIT,
      integer: true,
      unit: "bytes",
    }),
    connectTimeout: optionalNumber(ctx, top.get("connect_timeout"), 10, {
      min: 0,
      positive: true,
      unit: "seconds",
    }),
    maxOutboundBytes: optionalNumber(ctx, top.get("max_outbound_bytes"), 8 * 1024 * 1024, {
      min: 1024,
      integer: true,
      unit: "bytes",
    }),
    drainTimeout: optionalNumber(ctx, top.get("drain_timeout"), 30, {
      min: 0,
      positive: true,
      unit: "seconds",
    }),
    persistence: readPersistence(ctx, top.get("persistence"), sessionDb),
    maxLoginFailures: optionalNumber(ctx, top.get("max_login_failures"), 20, {
      min: 0,
      integer: true,
    }),
    loginFailureWindow: optionalNumber(ctx, top.get("login_failure_window"), 60, {
      min: 0,
      positive: true,
      unit: "seconds",
    }),
    logSummaryInterval: optionalNumber(ctx, top.get("log_summary_interval"), 60, {
      min: 0,
      positive: true,
      unit: "seconds",
    }),
    ...readStateLimits(ctx, top),
    cluster: readCluster(ctx, top.get("cluster")),
    ...readMqtt5Limits(ctx, top),
    ...flowControl(ctx, top),
    warnings: ctx.warnings,
  };
}

/**
 * Resolves and validates a broker configuration given as a plain object, as embedded users pass
 * it or as parsed from aMQTT YAML.
 *
 * Keys may be written with `-`, `_` or in camelCase; unknown keys and wrong types are errors.
 * Listeners inherit every field they leave out from `default`. The `plugins` map (or legacy
 * list), or else the legacy `auth` / `topic-check` sections, become one normalized plugin list;
 * with none of them, aMQTT's default set applies (anonymous allowed, `$SYS` every 20 s).
 *
 * @param input The configuration object; `undefined` or `null` gives the defaults.
 * @param options Source name and YAML text, for error messages with line numbers.
 * @returns The resolved configuration.
 * @throws {ConfigError} If a key is unknown, a value has the wrong type or is out of range, a
 * certificate or password file does not exist, or required keys are missing.
 *
 * @example Resolving an embedded configuration
 * ```ts
 * import { resolveBrokerConfig } from "./broker_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = resolveBrokerConfig({
 *   listeners: {
 *     default: { "max-connections": 100 },
 *     local: { bind: "127.0.0.1:1883" },
 *     web: { type: "ws", bind: ":8080", path: "/mqtt" },
 *   },
 * });
 * assert.deepEqual(config.listeners.map((l) => [l.name, l.port, l.maxConnections]), [
 *   ["local", 1883, 100],
 *   ["web", 8080, 100],
 * ]);
 * assert.equal(config.plugins.find((p) => p.name === "auth_anonymous")?.options.allowAnonymous, true);
 * ```
 */
export function resolveBrokerConfig(
  input?: unknown,
  options: ResolveBrokerConfigOptions = {},
): BrokerConfig {
  return resolveWith(new ReadContext(options.source, lineLookupFor(options.text)), input);
}

/**
 * Parses aMQTT broker YAML (YAML 1.1: `ssl: on` works) and resolves it.
 *
 * @param text The YAML text.
 * @param source The file it came from, for error messages.
 * @returns The resolved configuration.
 * @throws {ConfigError} On a YAML syntax error or any error of {@linkcode resolveBrokerConfig},
 * with the line number.
 *
 * @example
 * ```ts
 * import { parseBrokerConfigYaml } from "./broker_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseBrokerConfigYaml("listeners:\n  default:\n    bind: 127.0.0.1:0\n");
 * assert.equal(config.listeners[0]?.hostname, "127.0.0.1");
 * ```
 */
export function parseBrokerConfigYaml(text: string, source?: string): BrokerConfig {
  const parsed = parseYaml(text, source);
  return resolveWith(new ReadContext(source, parsed.lineOf), parsed.value);
}

/**
 * Reads a broker YAML file and resolves it.
 *
 * @param path The file to read.
 * @returns The resolved configuration.
 * @throws {ConfigError} If the file cannot be read, or on any error of
 * {@linkcode parseBrokerConfigYaml}.
 *
 * @example
 * ```ts
 * import { ConfigError, loadBrokerConfigFile } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadBrokerConfigFile("/no/such/broker.yaml"), ConfigError);
 * ```
 */
export async function loadBrokerConfigFile(path: string): Promise<BrokerConfig> {
  return parseBrokerConfigYaml(await readConfigFile(path), path);
}

/**
 * The embedded default configuration ({@linkcode DEFAULT_BROKER_CONFIG_YAML}), resolved: tcp on
 * 0.0.0.0:1883, anonymous clients allowed, `$SYS` every 20 seconds.
 *
 * @returns A fresh resolved configuration.
 *
 * @example
 * ```ts
 * import { defaultBrokerConfig } from "./broker_config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(defaultBrokerConfig().listeners[0]?.bind, "0.0.0.0:1883");
 * ```
 */
export function defaultBrokerConfig(): BrokerConfig {
  try {
    return parseBrokerConfigYaml(DEFAULT_BROKER_CONFIG_YAML, "<default broker config>");
  } catch (error) {
    // The embedded YAML is parsed without env permission problems only when the yaml package
    // can read LOG_TOKENS; fall back to the same configuration built from code.
    if (error instanceof ConfigError && error.reason.includes("LOG_TOKENS")) {
      return resolveBrokerConfig(undefined);
    }
    throw error;
  }
}
