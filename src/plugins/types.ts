/**
 * The plugin contract: what the broker tells plugins, and what it asks them.
 *
 * A plugin is a plain object implementing any subset of {@linkcode BrokerPlugin}. The broker holds
 * its plugins in a `PluginHost` (src/broker/plugin_host.ts), which combines their decisions and
 * delivers events. Names follow aMQTT's, camelCased: aMQTT's `on_broker_client_connected` is
 * {@linkcode BrokerPlugin.onBrokerClientConnected} here.
 *
 * Decisions are three-valued: `true` allows, `false` denies, `undefined` (or `null`) abstains. How
 * the host combines them is documented on `PluginHost`; in short, a connection needs at least one
 * `true` and no `false`, and a topic operation is refused only by an explicit `false`.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Packet, Properties, UserProperty } from "../packet/types.ts";
import type { TransportKind } from "../transport/types.ts";

/**
 * Where the broker and its plugins write log lines. Messages are complete sentences without a
 * trailing period; the logger adds time stamps and levels.
 *
 * @example
 * ```ts
 * import type { Logger } from "./types.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const logger: Logger = {
 *   debug() {},
 *   info: (m) => lines.push(`INFO ${m}`),
 *   warning: (m) => lines.push(`WARNING ${m}`),
 *   error: (m) => lines.push(`ERROR ${m}`),
 * };
 * logger.info("Listener default bound");
 * assert.deepEqual(lines, ["INFO Listener default bound"]);
 * ```
 */
export interface Logger {
  /** Detail useful when debugging; usually off in production. */
  debug(msg: string, fields?: LogFields): void;
  /** Normal operation worth recording (start, stop, a user table loaded). */
  info(msg: string, fields?: LogFields): void;
  /** Something was wrong but the broker carried on (a malformed line skipped). */
  warning(msg: string, fields?: LogFields): void;
  /** An operation failed (a plugin threw, a file could not be read). */
  error(msg: string, fields?: LogFields): void;
  /**
   * Whether lines of `level` are written. Optional: a logger without it is taken to write every
   * level. Callers use it to skip building lines nobody reads (one per connect, for instance).
   */
  enabled?(level: "debug" | "info" | "warning" | "error"): boolean;
}

/**
 * What a log line is about, for structured (JSON) logs. The message says the same in words; a
 * logger that writes text may ignore these. Never a password.
 *
 * @example A logger that writes JSON lines
 * ```ts
 * import type { LogFields, Logger } from "./types.ts";
 *
 * const line = (level: string) => (message: string, fields?: LogFields) =>
 *   console.log(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }));
 * const logger: Logger = {
 *   debug() {},
 *   info: line("INFO"),
 *   warning: line("WARNING"),
 *   error: line("ERROR"),
 * };
 * logger.warning("Refused client", { event: "connection_refused", clientId: "c1" });
 * ```
 */
export interface LogFields {
  /** A stable name for what happened, e.g. `connection_refused`, `publish_denied`. */
  event?: string;
  /** The MQTT client id concerned. */
  clientId?: string;
  /** The user name concerned. */
  username?: string;
  /** The listener the connection came through. */
  listener?: string;
  /** `host:port` of the peer. */
  remoteAddress?: string;
  /** Why, in words or as a code name. */
  reason?: string;
  /** The topic or filter concerned. */
  topic?: string;
}

/**
 * A refusal that says why, for MQTT 5.0 clients: the reason code of the CONNACK, PUBACK/PUBREC
 * or SUBACK slot that refuses (0x80 or more, one that packet may carry, e.g. 0x85 client
 * identifier not valid, 0x87 not authorized, 0x8A banned, 0x97 quota exceeded; any other code
 * gives the broker's own), a Reason String and User Properties. They are sent only where the
 * client allows problem information and where they keep the packet within its Maximum Packet
 * Size; a 3.1/3.1.1 client gets the nearest return code it knows (CONNACK) or a plain refusal.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin } from "./types.ts";
 * const naming: BrokerPlugin = {
 *   name: "naming",
 *   authenticate: (client) =>
 *     client.clientId.startsWith("dev-")
 *       ? undefined
 *       : { refuse: 0x85, reasonString: "client ids start with dev-", userProperties: [["see", "docs"]] },
 * };
 * ```
 */
export interface Refusal {
  /** The MQTT 5.0 reason code, 0x80 or more. */
  refuse: number;
  /** A human-readable diagnostic for the client and the log. */
  reasonString?: string;
  /** Name/value pairs for the client, in order. */
  userProperties?: UserProperty[];
}

/**
 * A hook's answer: `true` allows, `false` denies, `undefined` abstains; a {@linkcode Refusal}
 * denies and says why to MQTT 5.0 clients.
 *
 * @example
 * ```ts
 * import type { ClientInfo, Decision } from "./types.ts";
 * import assert from "node:assert/strict";
 *
 * // Refuse anonymous clients; leave the others to the other plugins.
 * const noAnonymous = (client: ClientInfo): Decision => client.anonymous ? false : undefined;
 * const client: ClientInfo = {
 *   clientId: "c1",
 *   remoteAddress: "127.0.0.1:50000",
 *   transport: "tcp",
 *   protocolVersion: 4,
 *   anonymous: true,
 * };
 * assert.equal(noAnonymous(client), false);
 * ```
 */
export type Decision = boolean | undefined | Refusal;

/**
 * A value, or a promise of it: hooks may answer synchronously or asynchronously.
 *
 * @example
 * ```ts
 * import type { MaybePromise } from "./types.ts";
 * import assert from "node:assert/strict";
 *
 * const now: MaybePromise<boolean> = true;
 * const later: MaybePromise<boolean> = Promise.resolve(false);
 * assert.deepEqual([await now, await later], [true, false]);
 * ```
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * One step of an MQTT 5.0 enhanced authentication (§4.12), as the broker asks
 * {@linkcode BrokerPlugin.authenticateEnhanced}: step 0 carries the CONNECT's (or the re-authenticating
 * AUTH 0x19's) Authentication Data, each later step the data of the client's AUTH 0x18.
 *
 * @example
 * ```ts
 * import type { EnhancedAuthRequest } from "./types.ts";
 * import assert from "node:assert/strict";
 *
 * const request: EnhancedAuthRequest = {
 *   method: "x-demo",
 *   data: new TextEncoder().encode("hello"),
 *   client: { clientId: "c", remoteAddress: "127.0.0.1:1", transport: "tcp", protocolVersion: 5, anonymous: true },
 *   step: 0,
 *   reauthenticate: false,
 * };
 * assert.equal(request.step, 0);
 * ```
 */
export interface EnhancedAuthRequest {
  /** The Authentication Method, one of the plugin's {@linkcode BrokerPlugin.authenticationMethods}. */
  method: string;
  /** The client's Authentication Data, when it sent some. */
  data?: Uint8Array;
  /** The client (user name and password from CONNECT, if it sent them). */
  client: ClientInfo;
  /** 0 for the first packet of an exchange, then 1, 2, … for each AUTH 0x18 of the client. */
  step: number;
  /** True for a re-authentication (AUTH 0x19 after CONNACK), false at CONNECT. */
  reauthenticate: boolean;
  /** What the plugin's previous answer of this exchange put in `state`; undefined at step 0. */
  state?: unknown;
}

/**
 * A plugin's answer to one step of an enhanced authentication: `continue` sends the client an
 * AUTH 0x18 with the data (and keeps `state` for the next step; a `reasonString` and
 * `userProperties` go on that AUTH where the client allows problem information and they fit its
 * Maximum Packet Size), `success` ends the exchange
 * (CONNACK 0x00, or AUTH 0x00 for a re-authentication) with optional data, `refuse` ends it with
 * the reason code (CONNACK at CONNECT, DISCONNECT for a re-authentication; e.g. 0x87 not
 * authorized, 0x86 bad user name or password).
 *
 * @example
 * ```ts
 * import type { EnhancedAuthAnswer } from "./types.ts";
 * const answers: EnhancedAuthAnswer[] = [
 *   { continue: new Uint8Array([1]), state: { nonce: 1 } },
 *   { success: true },
 *   { refuse: 0x87, reasonString: "wrong answer" },
 * ];
 * ```
 */
export type EnhancedAuthAnswer =
  | {
    continue: Uint8Array;
    state?: unknown;
    reasonString?: string;
    userProperties?: UserProperty[];
  }
  | { success: true; data?: Uint8Array }
  | Refusal;

/**
 * What the broker knows about a client when it asks a plugin. The broker builds one per
 * connection, after CONNECT.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin, ClientInfo } from "./types.ts";
 *
 * // Accept clients of one listener only, and those with a client certificate.
 * const plugin: BrokerPlugin = {
 *   name: "internal_only",
 *   authenticate: (client: ClientInfo) =>
 *     client.listener === "internal" && client.peerCommonName !== undefined,
 * };
 * ```
 */
export interface ClientInfo {
  /** The client identifier, after the broker assigned one to an empty id. */
  clientId: string;
  /** The CONNECT username, when the client sent one (it may be the empty string). */
  username?: string;
  /**
   * The CONNECT password bytes, when the client sent one. The broker passes it to
   * {@linkcode BrokerPlugin.authenticate} only (and to an enhanced authentication's steps), and
   * clears it once the plugins have answered: later hooks and event payloads do not see it.
   */
  password?: Uint8Array;
  /** `host:port` of the peer. */
  remoteAddress: string;
  /** The transport the connection came over. */
  transport: TransportKind;
  /** The name of the listener that accepted the connection. */
  listener?: string;
  /** The subject common name of the client certificate, when mutual TLS provided one. */
  peerCommonName?: string;
  /** The protocol level from CONNECT: 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0). */
  protocolVersion: 3 | 4 | 5;
  /**
   * The MQTT 5.0 CONNECT's properties (its User Properties, Session Expiry Interval, Receive
   * Maximum…), without the Authentication Data (an enhanced authentication hook gets that with
   * each step); undefined for 3.1/3.1.1 and for a CONNECT without properties.
   */
  properties?: Properties;
  /**
   * True when the client sent no username or an empty one. The built-in plugins treat such a
   * client as aMQTT's "anonymous" user.
   */
  anonymous: boolean;
  /**
   * Whether the CONNECT asked for a new session (Clean Start 1 at 5.0, Clean Session 1 at 3.1 and
   * 3.1.1) rather than to resume a stored one; set by the broker at CONNECT.
   */
  cleanStart?: boolean;
}

/**
 * A client as event handlers see it: {@linkcode ClientInfo} without the password.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin, ClientSummary } from "./types.ts";
 *
 * const online = new Map<string, ClientSummary>();
 * const presence: BrokerPlugin = {
 *   name: "presence",
 *   onBrokerClientConnected: ({ clientId, client }) => void online.set(clientId, client),
 *   onBrokerClientDisconnected: ({ clientId }) => void online.delete(clientId),
 * };
 * ```
 */
export type ClientSummary = Omit<ClientInfo, "password">;

/**
 * An application message, as event handlers see it. Handlers must not modify it.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin, MessageInfo } from "./types.ts";
 *
 * const last = new Map<string, MessageInfo>();
 * const recorder: BrokerPlugin = {
 *   name: "recorder",
 *   onBrokerMessageBroadcast: ({ message }) => void last.set(message.topic, message),
 * };
 * ```
 */
export interface MessageInfo {
  /** The topic name. */
  topic: string;
  /**
   * The payload bytes: a copy made for the event (the broker reads its next bytes into the buffer
   * the message came in), shared by the plugins that get it: read, never write.
   */
  payload: Uint8Array;
  /** The QoS the message was published with. */
  qos: QoS;
  /** The RETAIN flag it was published with. */
  retain: boolean;
  /** MQTT 5.0 properties, when the publisher sent any. */
  properties?: Properties;
}

/**
 * Options for {@linkcode PluginContext.publish}.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin, PluginPublishOptions } from "./types.ts";
 *
 * const retained: PluginPublishOptions = { qos: 1, retain: true };
 * const hello: BrokerPlugin = {
 *   name: "hello",
 *   init: (context) => context.publish("status/hello", "up", retained),
 * };
 * ```
 */
export interface PluginPublishOptions {
  /** QoS of the message; default 0. */
  qos?: QoS;
  /** Whether the broker retains the message; default false. */
  retain?: boolean;
}

/**
 * What the broker gives each plugin in {@linkcode BrokerPlugin.init}: a logger whose lines name the
 * plugin, and a way to publish messages as the broker itself.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin, Logger, PluginContext } from "./types.ts";
 *
 * // Keeps the context init() gives, to log and publish later.
 * let log: Logger | undefined;
 * const plugin: BrokerPlugin = {
 *   name: "announcer",
 *   init(context: PluginContext) {
 *     log = context.logger;
 *   },
 *   onBrokerPostStart() {
 *     log?.info("Broker is up");
 *   },
 * };
 * ```
 */
export interface PluginContext {
  /** A logger that prefixes every line with the plugin's name. */
  readonly logger: Logger;
  /**
   * Publishes a message from the broker itself (no client, no ACL check), e.g. `$SYS` topics.
   *
   * @param topic A topic name (no wildcards); `$` topics are allowed here.
   * @param payload The payload; a string is sent as UTF-8.
   * @param options QoS and retain flag.
   * @returns A promise that resolves once the message has been routed to subscribers and, when
   * `retain` is set, stored.
   */
  publish(
    topic: string,
    payload: Uint8Array | string,
    options?: PluginPublishOptions,
  ): Promise<void>;
}

/**
 * Event payloads, by event name. The handler for event `brokerClientConnected` is the plugin
 * method `onBrokerClientConnected`, and so on (see {@linkcode EventHandlerName}).
 *
 * @example
 * ```ts
 * import type { PluginEventMap } from "./types.ts";
 * import assert from "node:assert/strict";
 *
 * const event: PluginEventMap["brokerClientSubscribed"] = { clientId: "c1", topic: "a/#", qos: 1 };
 * assert.equal(event.topic, "a/#");
 * ```
 */
export interface PluginEventMap {
  /** Before the listeners open. */
  brokerPreStart: undefined;
  /** After the listeners opened. */
  brokerPostStart: undefined;
  /** Before the broker starts closing connections. */
  brokerPreShutdown: undefined;
  /** After the listeners and connections closed. */
  brokerPostShutdown: undefined;
  /** A client was accepted (CONNACK with success sent). */
  brokerClientConnected: { clientId: string; client: ClientSummary };
  /** A client's connection ended, for whatever reason. */
  brokerClientDisconnected: { clientId: string; client: ClientSummary };
  /** A subscription was accepted (one event per accepted filter). */
  brokerClientSubscribed: { clientId: string; topic: string; qos: QoS };
  /** A subscription was removed by UNSUBSCRIBE. */
  brokerClientUnsubscribed: { clientId: string; topic: string };
  /** A PUBLISH arrived from a client, before the topic and ACL checks. */
  brokerMessageReceived: { clientId: string; message: MessageInfo };
  /** A message passed the checks and is being routed to subscribers. */
  brokerMessageBroadcast: { clientId: string; message: MessageInfo };
  /**
   * A message was retained (or a retained message cleared: empty payload). `clientId` is
   * `undefined` when the message was retained on its topic, and a client id when it was queued
   * for that client's offline session (aMQTT's meaning).
   */
  brokerRetainedMessage: { clientId?: string; message: MessageInfo };
  /** A packet was decoded from a client. Emitted only when some plugin listens. */
  mqttPacketReceived: { clientId?: string; packet: Packet };
  /** A packet was queued for a client. Emitted only when some plugin listens. */
  mqttPacketSent: { clientId?: string; packet: Packet };
}

/**
 * An event name.
 *
 * @example
 * ```ts
 * import type { PluginEventName } from "./types.ts";
 *
 * const lifecycle: PluginEventName[] = ["brokerPreStart", "brokerPostStart"];
 * ```
 */
export type PluginEventName = keyof PluginEventMap;

/**
 * The plugin method that handles an event: `brokerPreStart` -> `onBrokerPreStart`.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin, EventHandlerName } from "./types.ts";
 * import assert from "node:assert/strict";
 *
 * const method: EventHandlerName<"brokerClientConnected"> = "onBrokerClientConnected";
 * const plugin: BrokerPlugin = { name: "p", [method]: () => {} };
 * assert.equal(typeof plugin.onBrokerClientConnected, "function");
 * ```
 */
export type EventHandlerName<K extends PluginEventName> = `on${Capitalize<K>}`;

/**
 * A broker plugin. Every member is optional except `name`; implement only the hooks you need,
 * because the broker skips work for hooks no plugin implements (a plugin that defines
 * `authorizeReceive` puts a check on every message delivery).
 *
 * Decision hooks may be synchronous or return a promise. A hook that throws or rejects counts as
 * a denial (never as an allow), and the error is logged.
 *
 * Event handlers are fire-and-forget: the broker does not wait for them (except the four
 * lifecycle events, which it awaits), and their errors are logged and otherwise ignored. Their
 * payloads are shared between plugins and must not be modified.
 *
 * @example
 * ```ts
 * import type { BrokerPlugin } from "./types.ts";
 * const onlyLocal: BrokerPlugin = {
 *   name: "only_local",
 *   authenticate: (client) => client.remoteAddress.startsWith("127.0.0.1:") ? undefined : false,
 * };
 * ```
 */
export interface BrokerPlugin {
  /** A short name for logs, e.g. `"auth_file"`. */
  readonly name: string;

  /**
   * Called once, before any other hook or event (`onBrokerPreStart` included), with the plugin's
   * context. The broker awaits it; a throw or rejection stops the broker from starting.
   *
   * @param context Logger and publishing for this plugin.
   */
  init?(context: PluginContext): void | Promise<void>;

  /**
   * Decides whether a client may connect (aMQTT's auth plugins).
   *
   * @param client The client, including its username and password.
   * @returns `true` to accept, `false` to refuse, `undefined` to leave it to other plugins.
   */
  authenticate?(client: ClientInfo): MaybePromise<Decision>;

  /**
   * The MQTT 5.0 Authentication Methods this plugin runs with
   * {@linkcode BrokerPlugin.authenticateEnhanced}, e.g. `["SCRAM-SHA-256"]`. The first plugin
   * naming a method runs it; a CONNECT with a method no plugin names gets CONNACK 0x8C.
   */
  readonly authenticationMethods?: readonly string[];

  /**
   * Runs one step of MQTT 5.0 enhanced authentication (§4.12) for a method named in
   * {@linkcode BrokerPlugin.authenticationMethods}. A `success` at CONNECT stands for
   * {@linkcode BrokerPlugin.authenticate}: the `authenticate` hooks are not asked for that client.
   * Throwing, rejecting or answering `undefined` refuses (0x87). The connect timeout bounds the
   * whole exchange at CONNECT.
   *
   * @param request The method, the client's data, the client, the step and the state.
   * @returns Continue with a challenge, succeed, or refuse with a reason code.
   *
   * @example
   * ```ts
   * import type { BrokerPlugin } from "./types.ts";
   * const text = new TextDecoder();
   * // One challenge: the client must answer "pong" to the server's "ping".
   * const pingPong: BrokerPlugin = {
   *   name: "ping_pong",
   *   authenticationMethods: ["x-ping"],
   *   authenticateEnhanced: ({ step, data }) =>
   *     step === 0
   *       ? { continue: new TextEncoder().encode("ping") }
   *       : text.decode(data) === "pong"
   *       ? { success: true }
   *       : { refuse: 0x87, reasonString: "wrong answer" },
   * };
   * ```
   */
  authenticateEnhanced?(request: EnhancedAuthRequest): MaybePromise<EnhancedAuthAnswer | undefined>;

  /**
   * Decides whether a client may publish to a topic (aMQTT's `publish` action).
   *
   * @param client The publishing client.
   * @param topic The topic name.
   * @param qos The message QoS.
   * @param retain The message RETAIN flag.
   * @param properties The MQTT 5.0 PUBLISH's (or will's) properties, when it has any.
   * @returns `false` to refuse; `true` or `undefined` leave the message to other plugins.
   */
  authorizePublish?(
    client: ClientInfo,
    topic: string,
    qos: QoS,
    retain: boolean,
    properties?: Properties,
  ): MaybePromise<Decision>;

  /**
   * Decides whether a client may subscribe to a topic filter (aMQTT's `subscribe` action).
   *
   * @param client The subscribing client.
   * @param topic The topic filter as subscribed, wildcards and `$share/group/` prefix included.
   * @param qos The requested maximum QoS.
   * @returns `false` to refuse; `true` or `undefined` leave it to other plugins.
   */
  authorizeSubscribe?(client: ClientInfo, topic: string, qos: QoS): MaybePromise<Decision>;

  /**
   * Decides whether a message may be delivered to a subscriber (aMQTT's `receive` action). Called
   * once per delivery: keep it cheap.
   *
   * @param client The receiving client.
   * @param topic The message's topic name.
   * @returns `false` to withhold the message; `true` or `undefined` leave it to other plugins.
   */
  authorizeReceive?(client: ClientInfo, topic: string): MaybePromise<Decision>;

  /** Called before the listeners open (awaited). */
  onBrokerPreStart?(): void | Promise<void>;
  /** Called after the listeners opened (awaited). */
  onBrokerPostStart?(): void | Promise<void>;
  /** Called before shutdown starts (awaited). */
  onBrokerPreShutdown?(): void | Promise<void>;
  /** Called after shutdown completed (awaited). */
  onBrokerPostShutdown?(): void | Promise<void>;
  /**
   * A client was accepted.
   *
   * @param event The client id and client.
   */
  onBrokerClientConnected?(event: PluginEventMap["brokerClientConnected"]): void | Promise<void>;
  /**
   * A client's connection ended.
   *
   * @param event The client id and client.
   */
  onBrokerClientDisconnected?(
    event: PluginEventMap["brokerClientDisconnected"],
  ): void | Promise<void>;
  /**
   * A subscription was accepted.
   *
   * @param event The client id, the filter and the granted QoS.
   */
  onBrokerClientSubscribed?(event: PluginEventMap["brokerClientSubscribed"]): void | Promise<void>;
  /**
   * A subscription was removed.
   *
   * @param event The client id and the filter.
   */
  onBrokerClientUnsubscribed?(
    event: PluginEventMap["brokerClientUnsubscribed"],
  ): void | Promise<void>;
  /**
   * A PUBLISH arrived, before any check.
   *
   * @param event The publishing client's id and the message.
   */
  onBrokerMessageReceived?(event: PluginEventMap["brokerMessageReceived"]): void | Promise<void>;
  /**
   * A message passed the checks and is being routed.
   *
   * @param event The publishing client's id and the message.
   */
  onBrokerMessageBroadcast?(event: PluginEventMap["brokerMessageBroadcast"]): void | Promise<void>;
  /**
   * A message was retained or a retained message cleared.
   *
   * @param event See {@linkcode PluginEventMap.brokerRetainedMessage}.
   */
  onBrokerRetainedMessage?(event: PluginEventMap["brokerRetainedMessage"]): void | Promise<void>;
  /**
   * A packet was decoded from a client.
   *
   * @param event The client id (once known) and the packet.
   */
  onMqttPacketReceived?(event: PluginEventMap["mqttPacketReceived"]): void | Promise<void>;
  /**
   * A packet was queued for a client.
   *
   * @param event The client id and the packet.
   */
  onMqttPacketSent?(event: PluginEventMap["mqttPacketSent"]): void | Promise<void>;

  /**
   * Re-reads external state (a password file); the broker calls it on SIGHUP. It should keep the
   * old state when reloading fails.
   */
  reload?(): void | Promise<void>;

  /** Releases resources; called once when the broker shuts down. */
  close?(): void | Promise<void>;
}
