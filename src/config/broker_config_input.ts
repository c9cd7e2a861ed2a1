/**
 * The broker configuration as a program writes it: aMQTT's keys, typed, so an editor completes
 * them. `resolveBrokerConfig` turns it into a `BrokerConfig`.
 *
 * @module
 */

import type { ClientCertMode, ListenerType } from "./broker_config.ts";
import type { TopicAcl } from "./plugin_config.ts";

/**
 * One listener of {@linkcode BrokerConfigInput.listeners}. Every key is optional: a listener
 * takes what it leaves out from the `default` listener.
 *
 * @example A TLS listener that asks for client certificates
 * ```ts
 * import type { ListenerConfigInput } from "./broker_config_input.ts";
 *
 * const secure: ListenerConfigInput = {
 *   bind: "0.0.0.0:8883",
 *   ssl: true,
 *   certfile: "server.crt",
 *   keyfile: "server.key",
 *   cafile: "ca.crt",
 *   client_cert_mode: "required",
 * };
 * ```
 */
export interface ListenerConfigInput {
  /**
   * `tcp`, `ws` (WebSocket), `external` (the program hands connections over with
   * `Broker.acceptConnection`), or `http` (metrics, health, admin API and dashboard; our
   * addition).
   *
   * @default {"tcp"}
   */
  type?: ListenerType;
  /**
   * Where to listen: `1883`, `:1883`, `host:port` or `[::]:1883`. Port 0 picks a free one. A
   * missing port is 1883 for tcp, 8883 for tcp with ssl and for ws.
   *
   * @default {"0.0.0.0:1883"}
   */
  bind?: string | number;
  /**
   * Simultaneous connections on this listener; 0 means unlimited.
   *
   * @default {0}
   */
  max_connections?: number;
  /**
   * TLS on this listener (needs `certfile` and `keyfile`).
   *
   * @default {false}
   */
  ssl?: boolean;
  /** PEM file of CA certificates client certificates are checked against. */
  cafile?: string;
  /** Directory of PEM CA certificates (`*.pem`, `*.crt`) client certificates are checked with. */
  capath?: string;
  /** PEM CA certificates, inline, client certificates are checked against. */
  cadata?: string;
  /** Server certificate chain (PEM file); needs `keyfile`. */
  certfile?: string;
  /** Server private key (PEM file); needs `certfile`. */
  keyfile?: string;
  /**
   * Whether TLS clients must show a certificate (our addition). Default `optional` with ssl and a
   * CA, `required` when `use_cert_cn_as_username` is on, else `none`.
   */
  client_cert_mode?: ClientCertMode;
  /**
   * The client certificate's subject CN is the user name (our addition); needs
   * `client_cert_mode: required`.
   *
   * @default {false}
   */
  use_cert_cn_as_username?: boolean;
  /** The one WebSocket URL path that upgrades (our addition); left out, `/mqtt` and `/` do. */
  path?: string;
  /**
   * `http` listeners only (our addition): users of the password file who may use `/metrics`, the
   * admin API and the dashboard. Left out, only `/healthz` is served.
   */
  admins?: string[];
  /**
   * `http` listeners only (our addition): the password file the admins log in with; default the
   * `auth_file` plugin's.
   */
  password_file?: string;
}

/** `allow_anonymous` of aMQTT's `AnonymousAuthPlugin`. */
export interface AnonymousAuthInput {
  /**
   * Accept clients that send no user name.
   *
   * @default {true}
   */
  allow_anonymous?: boolean;
}

/** `password_file` of aMQTT's `FileAuthPlugin`. */
export interface FileAuthInput {
  /** The `user:hash` password file (made with `amqtt passwd`). */
  password_file: string;
}

/** Options of `auth_scram` (MQTT 5.0 enhanced authentication `SCRAM-SHA-256`). */
export interface ScramAuthInput {
  /**
   * The password file with `user:SCRAM-SHA-256$…` lines (`amqtt passwd -H scram-sha-256`); the
   * same file may serve `auth_file`.
   */
  password_file: string;
}

/** Options of `auth_challenge` (MQTT 5.0 enhanced authentication by HMAC-SHA-256 challenge). */
export interface ChallengeAuthInput {
  /** The file of `user:secret` lines. */
  secrets_file: string;
  /**
   * The Authentication Method name.
   *
   * @default {"x-hmac-sha256"}
   */
  method?: string;
}

/**
 * The maps of aMQTT's `TopicAccessControlListPlugin`: user name (`anonymous` for clients without
 * one) to the topic filters allowed.
 */
export interface TopicAclInput {
  /** Filters each user may subscribe to (aMQTT's legacy name of `subscribe_acl`). */
  acl?: TopicAcl;
  /** Filters each user may subscribe to. */
  subscribe_acl?: TopicAcl;
  /** Topics each user may publish to; left out, every publish is allowed. */
  publish_acl?: TopicAcl;
  /** Topics each user may be sent messages on. */
  receive_acl?: TopicAcl;
}

/** `sys_interval` of aMQTT's `BrokerSysPlugin`. */
export interface BrokerSysInput {
  /**
   * Seconds between `$SYS` updates; 0 publishes only the version, once.
   *
   * @default {20}
   */
  sys_interval?: number;
}

/** Options of aMQTT's `SessionDBPlugin`. */
export interface SessionDbInput {
  /**
   * An SQLite URL (`sqlite+aiosqlite:///amqtt.db`).
   *
   * @default {"sqlite+aiosqlite:///amqtt.db"}
   */
  connection?: string;
  /** The store file, instead of `connection`. */
  file?: string;
  /**
   * Delete everything stored at a normal shutdown.
   *
   * @default {true}
   */
  clear_on_shutdown?: boolean;
}

/** A plugin without options: `null` or an empty map. */
export type NoOptionsInput = Record<string, never> | null;

/**
 * The `plugins` map: aMQTT plugin class name (or our short id) to its options. Names not listed
 * here are refused when the configuration is resolved.
 */
export interface BrokerPluginsInput {
  /** Anonymous clients (short id `auth_anonymous`). */
  "amqtt.plugins.authentication.AnonymousAuthPlugin"?: AnonymousAuthInput | null;
  /** Password-file authentication (short id `auth_file`). */
  "amqtt.plugins.authentication.FileAuthPlugin"?: FileAuthInput;
  /** MQTT 5.0 enhanced authentication `SCRAM-SHA-256` (ours; short id `auth_scram`). */
  "amqtt.plugins.authentication.ScramAuthPlugin"?: ScramAuthInput;
  /** MQTT 5.0 enhanced authentication by HMAC challenge (ours; short id `auth_challenge`). */
  "amqtt.plugins.authentication.ChallengeAuthPlugin"?: ChallengeAuthInput;
  /** Denies a few reserved topics to all but `admin` (short id `topic_taboo`). */
  "amqtt.plugins.topic_checking.TopicTabooPlugin"?: NoOptionsInput;
  /** Topic access control lists (short id `topic_acl`). */
  "amqtt.plugins.topic_checking.TopicAccessControlListPlugin"?: TopicAclInput | null;
  /** `$SYS` topics (short id `broker_sys`). */
  "amqtt.plugins.sys.broker.BrokerSysPlugin"?: BrokerSysInput | null;
  /** Logs broker events (short id `event_logger`). */
  "amqtt.plugins.logging_amqtt.EventLoggerPlugin"?: NoOptionsInput;
  /** Logs packets at debug level (short id `packet_logger`). */
  "amqtt.plugins.logging_amqtt.PacketLoggerPlugin"?: NoOptionsInput;
  /** aMQTT's session persistence (the `persistence` section's other spelling). */
  "amqtt.contrib.persistence.SessionDBPlugin"?: SessionDbInput;
  /** aMQTT 0.11's name of `amqtt.contrib.persistence.SessionDBPlugin`. */
  "amqtt.plugins.persistence.SessionDBPlugin"?: SessionDbInput;
  /** Same as `amqtt.plugins.authentication.AnonymousAuthPlugin`. */
  auth_anonymous?: AnonymousAuthInput | null;
  /** Same as `amqtt.plugins.authentication.FileAuthPlugin`. */
  auth_file?: FileAuthInput;
  /** Same as `amqtt.plugins.authentication.ScramAuthPlugin`. */
  auth_scram?: ScramAuthInput;
  /** Same as `amqtt.plugins.authentication.ChallengeAuthPlugin`. */
  auth_challenge?: ChallengeAuthInput;
  /** Same as `amqtt.plugins.topic_checking.TopicTabooPlugin`. */
  topic_taboo?: NoOptionsInput;
  /** Same as `amqtt.plugins.topic_checking.TopicAccessControlListPlugin`. */
  topic_acl?: TopicAclInput | null;
  /** Same as `amqtt.plugins.sys.broker.BrokerSysPlugin`. */
  broker_sys?: BrokerSysInput | null;
  /** Same as `amqtt.plugins.logging_amqtt.EventLoggerPlugin`. */
  event_logger?: NoOptionsInput;
  /** Same as `amqtt.plugins.logging_amqtt.PacketLoggerPlugin`. */
  packet_logger?: NoOptionsInput;
  /** Other spellings aMQTT accepted (`amqtt.plugins.logging.…`, `module:Class`). */
  [className: string]: object | null | undefined;
}

/** hbmqtt's deprecated `auth` section, used when there is no `plugins` section. */
export interface AuthSectionInput {
  /** Which of `auth_anonymous` and `auth_file` run; default both that are configured. */
  plugins?: string[];
  /**
   * Accept clients that send no user name.
   *
   * @default {true}
   */
  allow_anonymous?: boolean;
  /** The `user:hash` password file. */
  password_file?: string;
}

/** hbmqtt's deprecated `topic-check` section, used when there is no `plugins` section. */
export interface TopicCheckSectionInput extends TopicAclInput {
  /**
   * Topic checking on.
   *
   * @default {false}
   */
  enabled?: boolean;
  /** Which of `topic_taboo` and `topic_acl` run; default both. */
  plugins?: string[];
}

/**
 * The `persistence` section (our addition).
 *
 * @example
 * ```ts
 * import type { PersistenceInput } from "./broker_config_input.ts";
 *
 * const persistence: PersistenceInput = { path: "state/amqtt.db", sync: "normal" };
 * ```
 */
export interface PersistenceInput {
  /** Keep state in the store file; `true` when the section is given. */
  enabled?: boolean;
  /**
   * The SQLite store file.
   *
   * @default {"amqtt.db"}
   */
  path?: string;
  /** Another name for `path`. */
  file?: string;
  /**
   * `full`: every commit is fsynced; `normal`: survives a crash of the broker, not of the machine.
   *
   * @default {"full"}
   */
  sync?: "full" | "normal";
  /**
   * Delete everything stored at a normal shutdown.
   *
   * @default {false}
   */
  clear_on_shutdown?: boolean;
}

/**
 * The `cluster` section (our addition): this broker as one node of a cluster on Redis.
 *
 * @example
 * ```ts
 * import type { ClusterInput } from "./broker_config_input.ts";
 *
 * const cluster: ClusterInput = { node_id: "node-1", redis: "redis://10.0.0.5:6379" };
 * ```
 */
export interface ClusterInput {
  /** Run as a cluster node; `true` when the section is given. */
  enabled?: boolean;
  /** This node's id, unique in the cluster; left out, the host name and process id. */
  node_id?: string;
  /**
   * Redis URL(s), `redis://` or `rediss://` (TLS), tried in order at start.
   *
   * @default {"redis://127.0.0.1:6379"}
   */
  redis?: string | string[];
  /** Redis ACL user name, when not in the URL. */
  username?: string;
  /** Redis password, when not in the URL. */
  password?: string;
  /** TLS to Redis: `true` for the system's CAs, or files and verification. */
  tls?: boolean | { cafile?: string; certfile?: string; keyfile?: string; verify?: boolean };
  /**
   * Prefix of the cluster's Redis keys and channels.
   *
   * @default {"amqtt:"}
   */
  key_prefix?: string;
  /**
   * Seconds between heartbeats.
   *
   * @default {1}
   */
  heartbeat_interval?: number;
  /**
   * Seconds without heartbeat before a node counts as dead.
   *
   * @default {3}
   */
  node_timeout?: number;
  /**
   * Seconds a login's session preparation may go without progress (each part of a long session
   * read counts it again) before the login is refused as server busy. Our addition.
   *
   * @default node_timeout + heartbeat_interval + 8
   */
  login_timeout?: number;
}

/**
 * The broker configuration with aMQTT's keys, as written in YAML. Every key is optional; the
 * defaults are aMQTT's, and keys marked as our addition are amqtt's own. Keys are written here in
 * snake_case; the broker also accepts them spelled with `-` (as aMQTT's documentation does, e.g.
 * `max-connections`) or in camelCase, untyped.
 *
 * @example An embedded broker on two listeners
 * ```ts
 * import type { BrokerConfigInput } from "./broker_config_input.ts";
 * import { resolveBrokerConfig } from "./broker_config.ts";
 * import assert from "node:assert/strict";
 *
 * const input: BrokerConfigInput = {
 *   listeners: {
 *     default: { max_connections: 100 },
 *     local: { bind: "127.0.0.1:1883" },
 *     web: { type: "ws", bind: "127.0.0.1:8080", path: "/mqtt" },
 *   },
 *   plugins: {
 *     "amqtt.plugins.authentication.AnonymousAuthPlugin": { allow_anonymous: true },
 *     "amqtt.plugins.sys.broker.BrokerSysPlugin": { sys_interval: 10 },
 *   },
 *   max_inflight: 20,
 * };
 * const config = resolveBrokerConfig(input);
 * assert.deepEqual(config.listeners.map((l) => l.name), ["local", "web"]);
 * ```
 */
export interface BrokerConfigInput {
  /**
   * Listeners by name. `default` is required; the others inherit what they leave out from it,
   * and it is a template only (not started) when others exist and it has no `bind` of its own.
   * Default: one tcp listener on 0.0.0.0:1883.
   */
  listeners?: { default: ListenerConfigInput; [name: string]: ListenerConfigInput };
  /**
   * Plugins: a map of aMQTT class name to options, or (legacy) a list of class names and such
   * maps. Left out, aMQTT's default set (anonymous clients allowed, `$SYS` every 20 s), unless
   * the deprecated `auth` or `topic_check` section is given.
   */
  plugins?: BrokerPluginsInput | (string | BrokerPluginsInput)[];
  /**
   * Seconds added to a client's keep-alive before it is dropped.
   *
   * @default {0}
   */
  timeout_disconnect_delay?: number;
  /**
   * Seconds a disconnected persistent session is kept; `"never"` keeps it forever.
   *
   * @default {259200}
   */
  session_expiry_interval?: number | "never";
  /**
   * Outgoing QoS 1/2 messages in flight per client (our addition), 1 to 65535.
   *
   * @default {20}
   */
  max_inflight?: number;
  /**
   * Messages queued per client behind the in-flight window, oldest dropped first; 0 means
   * unlimited (our addition).
   *
   * @default {1000}
   */
  max_queued_messages?: number;
  /**
   * Largest accepted packet in bytes, fixed header included, 64 to 268435460 (our addition).
   *
   * @default {2097152}
   */
  max_packet_size?: number;
  /**
   * Seconds a new connection has to send CONNECT and have it checked (authentication, will) (our
   * addition). A cluster node's wait for the session's previous owner is bounded by the cluster's
   * settings instead (see `cluster.node_timeout`).
   *
   * @default {10}
   */
  connect_timeout?: number;
  /**
   * Bytes of unsent output one connection may hold, at least 1024 (our addition).
   *
   * @default {8388608}
   */
  max_outbound_bytes?: number;
  /**
   * Seconds one write may stay unfinished before the connection is closed (our addition).
   *
   * @default {30}
   */
  drain_timeout?: number;
  /**
   * Flow control: messages queued behind a connected subscriber's in-flight window at which the
   * publishers of what is routed to it stop being read (a burst waits in TCP buffers instead of
   * being dropped); 0 turns it off (our addition).
   *
   * @default {500} (half of `max_queued_messages`, never above it)
   */
  flow_control_high_water?: number;
  /**
   * Queued messages at or below which paused publishers are read again (our addition).
   *
   * @default {250} (half of `flow_control_high_water`)
   */
  flow_control_low_water?: number;
  /**
   * Seconds a publisher stays paused at most; then the queues it waited for drop their oldest
   * messages, counted as queue full (our addition).
   *
   * @default {1}
   */
  flow_control_timeout?: number;
  // Limits on the state clients can make the broker hold (our additions); 0 turns one off.
  /**
   * Levels of a topic name or filter: a deeper PUBLISH or will topic closes the connection, a
   * deeper SUBSCRIBE filter gets 0x80.
   *
   * @default {200}
   */
  max_topic_levels?: number;
  /**
   * Subscriptions one client may hold; new filters past it get 0x80.
   *
   * @default {1000}
   */
  max_subscriptions_per_client?: number;
  /**
   * Sessions in total, connected or offline: a new one replaces the offline session that waited
   * longest, or gets CONNACK 3 when all are connected.
   *
   * @default {100000}
   */
  max_sessions?: number;
  /**
   * Retained messages stored; more are forwarded but not stored.
   *
   * @default {1000000}
   */
  max_retained_messages?: number;
  /**
   * Bytes of retained topics and payloads stored.
   *
   * @default {536870912}
   */
  max_retained_bytes?: number;
  /**
   * Memory budget in bytes past which new sessions, subscriptions, retained and queued messages
   * are refused. Left out: half of the JavaScript heap limit.
   */
  max_memory?: number;
  /** Deprecated (hbmqtt): `$SYS` interval in seconds when `BrokerSysPlugin` sets none. */
  sys_interval?: number;
  /** Deprecated (hbmqtt): authentication settings, used when `plugins` is left out. */
  auth?: AuthSectionInput;
  /** Deprecated (hbmqtt): topic checking settings, used when `plugins` is left out. */
  topic_check?: TopicCheckSectionInput;
  /** Accepted for aMQTT compatibility and ignored, with a warning. */
  qos1_puback_timeout?: number;
  /**
   * Failed (or still unchecked) logins one source address may have in a burst before its logins
   * are answered "server unavailable" unchecked; logins over it wait while the address has logins
   * being checked (clients behind one NAT); 0 turns the throttle off (our addition).
   *
   * @default {20}
   */
  max_login_failures?: number;
  /**
   * Seconds for a source's whole `max_login_failures` budget to come back (our addition).
   *
   * @default {60}
   */
  login_failure_window?: number;
  /**
   * Seconds between summary lines of refused logins and dropped messages (our addition).
   *
   * @default {60}
   */
  log_summary_interval?: number;
  /** Where broker state is kept (our addition); `on`/`off` or a section. Left out, off. */
  persistence?: boolean | PersistenceInput;
  /** This broker as a node of a cluster on Redis (our addition); left out, off. */
  cluster?: boolean | ClusterInput;
  // MQTT 5.0 limits, announced to 5.0 clients in CONNACK.
  /**
   * Unacknowledged QoS 1/2 PUBLISH one 5.0 client may send before the broker has answered them
   * (CONNACK Receive Maximum), 1 to 65535.
   *
   * @default {1024}
   */
  receive_maximum?: number;
  /**
   * Topic aliases one 5.0 client may set per connection (CONNACK Topic Alias Maximum), 0 to
   * 65535; 0 turns inbound topic aliases off.
   *
   * @default {10}
   */
  topic_alias_maximum?: number;
  /**
   * Seconds of keep alive imposed on 5.0 clients instead of their own (CONNACK Server Keep
   * Alive), 0 to 65535. Left out, each client's own keep alive applies.
   */
  server_keep_alive?: number;
  /**
   * Send repeated topics to MQTT 5.0 clients as Topic Aliases (within each client's Topic Alias
   * Maximum; clients that announce none get none): saves the topic's bytes on every message
   * after the first on a topic.
   *
   * @default {false}
   */
  outbound_topic_aliases?: boolean;
  /**
   * How a shared subscription's group (`$share/{group}/{filter}`, 3.1.1 and 5.0 clients alike)
   * picks the member that gets each message: in turn or at random.
   *
   * @default {"round_robin"}
   */
  shared_subscription_strategy?: "round_robin" | "random";
  /**
   * The highest QoS the broker takes, 0 to 2 (CONNACK Maximum QoS; Mosquitto's
   * `maximum_qos`). Subscriptions are granted at most this QoS; a PUBLISH above it closes the
   * connection (a 5.0 client gets DISCONNECT 0x9B), and so does a CONNECT whose will is above it
   * (5.0: CONNACK 0x9B; 3.1.1 has no code for it: closed without CONNACK), for every protocol
   * level, as Mosquitto does.
   *
   * @default {2}
   */
  maximum_qos?: number;
  /**
   * Whether the broker keeps retained messages (CONNACK Retain Available). When false, a
   * PUBLISH with RETAIN 1 closes the connection (a 5.0 client gets DISCONNECT 0x9A), and so does
   * a CONNECT with a retained will (5.0: CONNACK 0x9A; 3.1.1: closed without CONNACK), for every
   * protocol level, as Mosquitto does. Retained messages of the host program and plugins (the
   * `$SYS` version) are still kept.
   *
   * @default {true}
   */
  retain_available?: boolean;
  /**
   * Another server for MQTT 5.0 clients to use meanwhile, e.g. `standby.example.com:1883` (the
   * Server Reference property, whose format MQTT leaves to the operator). When set, a shutdown
   * closes 5.0 connections with DISCONNECT 0x9C Use another server naming it (instead of 0x8B
   * Server shutting down), and a CONNECT refused for a spent quota (`max_sessions`, the memory
   * budget) gets CONNACK 0x9C naming it (instead of 0x97). 3.1/3.1.1 clients see no difference.
   * Left out: none.
   */
  server_reference?: string;
  /**
   * Whether filters may have the wildcards `+` and `#` (CONNACK Wildcard Subscription Available).
   * When false, a 5.0 SUBSCRIBE with one is closed with DISCONNECT 0xA2 (MQTT 5.0 makes it a
   * Protocol Error); a 3.1/3.1.1 client gets SUBACK 0x80 for that filter.
   *
   * @default {true}
   */
  wildcard_subscription_available?: boolean;
  /**
   * Whether a SUBSCRIBE may carry a Subscription Identifier (CONNACK Subscription Identifiers
   * Available). When false, a 5.0 SUBSCRIBE with one is closed with DISCONNECT 0xA1.
   *
   * @default {true}
   */
  subscription_identifiers_available?: boolean;
  /**
   * Whether `$share/{group}/{filter}` subscriptions are served (CONNACK Shared Subscription
   * Available). When false, a 5.0 SUBSCRIBE with one is closed with DISCONNECT 0x9E; a 3.1/3.1.1
   * client gets SUBACK 0x80 for that filter.
   *
   * @default {true}
   */
  shared_subscription_available?: boolean;
}
