/**
 * `MQTTClient`: aMQTT's client API over the sans-IO {@linkcode ClientSession}, with the I/O around
 * it — one read loop, batched writes, one keepalive timer, and reconnects with back-off.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import { PacketDecoder } from "../packet/decoder.ts";
import { MqttPacketError } from "../packet/packet_error.ts";
import type { Packet, Properties, Subscription, UserProperty, Will } from "../packet/types.ts";
import {
  type ApplicationMessage,
  type ClientAction,
  ClientSession,
  type ConnackResult,
  type ConnectParams,
  type OutgoingMessage,
  type PublishResult,
} from "../session/client_session.ts";
import { validateTopicFilter } from "../topic/validate_topic_filter.ts";
import { validateTopicName } from "../topic/validate_topic_name.ts";
import { loadCaCertificates } from "../transport/ca_certificates.ts";
import { dial, type DialOptions, dialTarget } from "../transport/dial.ts";
import type { ByteConnection } from "../transport/types.ts";
import { PacketChannel } from "../transport/packet_channel.ts";
import type { ClientConfig } from "../config/client_config.ts";
import { type ClientConfigInput, type ClientSettings, clientSettings } from "./_config.ts";
import { reconnectDelay } from "./_backoff.ts";
import { END, Inbox } from "./_inbox.ts";
import { reconnectAfter } from "./_disconnect_policy.ts";
import { Requests } from "./_requests.ts";
import {
  checkUint32,
  checkUserProperties,
  connectProperties,
  publishProperties,
  subscribeProperties,
  subscriptionOptions,
} from "./_v5_properties.ts";
import { ClientError, ConnectError, PublishError, ServerDisconnectError } from "./errors.ts";
import { type ReasonCodes, reasonCodes } from "./reason_codes.ts";
import type {
  DisconnectOptions,
  EnhancedAuth,
  PublishProperties,
  RequestOptions,
  RespondOptions,
  SubscribeOptions,
  UnsubscribeOptions,
} from "./v5_options.ts";

/**
 * Options of {@linkcode MQTTClient}.
 *
 * @example
 * ```ts
 * import { MQTTClient, type MQTTClientOptions } from "./mqtt_client.ts";
 * import assert from "node:assert/strict";
 *
 * const options: MQTTClientOptions = {
 *   clientId: "sensor-7",
 *   config: { keep_alive: 30, default_qos: 1, auto_reconnect: true },
 *   maxReceiveQueue: 100,
 * };
 * await using client = new MQTTClient(options);
 * assert.equal(client.clientId, "sensor-7");
 * ```
 */
export interface MQTTClientOptions {
  /** The client identifier; default `amqtt/` and 16 random letters and digits. */
  clientId?: string;
  /**
   * aMQTT's client configuration keys (`keep_alive`, `default_qos`, `auto_reconnect`, …), or a
   * configuration already resolved by `loadClientConfigFile` / `resolveClientConfig`.
   */
  config?: ClientConfigInput | ClientConfig;
  /** QoS 1/2 messages in flight at once (not an aMQTT key). Default 20. */
  maxInflight?: number;
  /**
   * Messages held while offline or behind the in-flight window, per QoS class (not an aMQTT key);
   * beyond it `publish` rejects. Default 1000.
   */
  maxQueued?: number;
  /**
   * Received messages held for {@linkcode MQTTClient.deliverMessage} and
   * {@linkcode MQTTClient.messages} (not an aMQTT key). Past it, a QoS 0 message pushes out the
   * oldest QoS 0 message held (counted in {@linkcode MQTTClient.droppedMessages}); a QoS 1/2
   * message is kept, but its PUBACK/PUBREC waits until the application takes a message, so the
   * broker's in-flight window bounds how many more arrive. 0 holds no QoS 0 message for a
   * reader that is not waiting, and acknowledges QoS 1/2 only as they are taken. Default 1000.
   */
  maxReceiveQueue?: number;
  /**
   * Largest packet accepted from the server, in bytes; a larger one closes the connection before
   * it is buffered. Default: the protocol maximum (268,435,460).
   */
  maxPacketSize?: number;
  /**
   * MQTT 5.0: send repeated topics as topic aliases, within the Topic Alias Maximum the server
   * announced in CONNACK (none when it announced 0). The first PUBLISH to a topic sets up the
   * alias; later ones carry the alias and an empty topic name. Aliases are given first come,
   * first served and last for one connection. Default false.
   */
  topicAliases?: boolean;
  /**
   * MQTT 5.0: called when the server ends the connection with DISCONNECT, before the client
   * reconnects (or, for a final reason code such as 0x8E Session taken over, stays down).
   */
  onServerDisconnect?: (error: ServerDisconnectError) => void;
}

/**
 * The will message, published by the server if the client vanishes without DISCONNECT.
 *
 * @example
 * ```ts
 * import type { WillOptions } from "./mqtt_client.ts";
 *
 * // Tells subscribers of status/sensor-7 that the sensor went away without saying goodbye.
 * const will: WillOptions = { topic: "status/sensor-7", payload: "offline", qos: 1, retain: true };
 * ```
 */
export interface WillOptions {
  /** The will topic (a topic name: no wildcards). */
  topic: string;
  /** The payload; `message` is accepted as aMQTT's name for it. */
  payload?: string | Uint8Array;
  /** aMQTT's name for `payload`. */
  message?: string | Uint8Array;
  /** The will's QoS. Default 0. */
  qos?: QoS;
  /** Whether the server retains the will. Default false. */
  retain?: boolean;
  /**
   * MQTT 5.0 will properties: will delay interval, message expiry interval, payload format
   * indicator, content type, response topic, correlation data, user properties.
   */
  properties?: Properties;
}

/**
 * Options of {@linkcode MQTTClient.connect}.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "./mqtt_client.ts";
 *
 * // A persistent session over TLS with a private CA, logging in with a user name.
 * const options: ConnectOptions = {
 *   protocolVersion: 5,
 *   sessionExpiryInterval: 3600, // MQTT 5.0: the broker keeps the session for an hour
 *   cleanSession: false,
 *   ca: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
 *   username: "sensor-7",
 *   password: "secret",
 *   will: { topic: "status/sensor-7", payload: "offline", retain: true },
 * };
 * ```
 */
export interface ConnectOptions {
  /** Clean session; default the config's `cleansession` (true). */
  cleanSession?: boolean;
  /** CA certificates (PEM) to trust for `mqtts`/`wss`, besides the system roots. */
  ca?: string | string[];
  /** Client certificate chain (PEM) for mutual TLS. */
  cert?: string;
  /** Client private key (PEM) for mutual TLS. */
  key?: string;
  /** Extra HTTP headers for the WebSocket handshake (aMQTT `additional_headers`). */
  headers?: HeadersInit;
  /** The will; default the config's `will`. */
  will?: WillOptions;
  /** User name; overrides one in the URL. */
  username?: string;
  /** Password; overrides one in the URL. */
  password?: string | Uint8Array;
  /** 3 (MQTT 3.1), 4 (3.1.1, default) or 5 (MQTT 5.0). The options below are 5.0 only. */
  protocolVersion?: ProtocolVersion;
  /**
   * MQTT 5.0: seconds the server keeps the session after the connection ends; 0xFFFFFFFF for
   * ever. Default 0: the session ends with the connection, even with `cleanSession: false`.
   */
  sessionExpiryInterval?: number;
  /**
   * MQTT 5.0: QoS 1/2 messages the server may have unacknowledged with this client at once
   * (1-65535). A server that sends more is disconnected with 0x93. Default 65535.
   */
  receiveMaximum?: number;
  /**
   * MQTT 5.0: highest topic alias the server may use toward this client (0-65535). Aliases are
   * resolved before messages are delivered; one above it disconnects with 0x94. Default 0.
   */
  topicAliasMaximum?: number;
  /** MQTT 5.0: ask for Response Information in CONNACK (used by `request`). Default false. */
  requestResponseInformation?: boolean;
  /** MQTT 5.0: false asks the server to leave reason strings out. Default true. */
  requestProblemInformation?: boolean;
  /** MQTT 5.0: user properties of the CONNECT. */
  userProperties?: UserProperty[];
  /** MQTT 5.0 enhanced authentication (AUTH exchanges). */
  auth?: EnhancedAuth;
}

/**
 * Options of {@linkcode MQTTClient.publish}.
 *
 * @example
 * ```ts
 * import type { PublishOptions } from "./mqtt_client.ts";
 *
 * // A retained QoS 1 message: `publish` resolves once the broker sent PUBACK.
 * const lastValue: PublishOptions = { qos: 1, retain: true };
 * ```
 */
export interface PublishOptions {
  /** Default: the topic's entry in the config's `topics`, else `default_qos`. */
  qos?: QoS;
  /** Default: the topic's entry in the config's `topics`, else `default_retain`. */
  retain?: boolean;
  /** MQTT 5.0 PUBLISH properties; ignored at 3.1.1. */
  properties?: PublishProperties;
}

/**
 * One filter to subscribe to: an object, or aMQTT's `[filter, qos]` pair.
 *
 * @example
 * ```ts
 * import type { SubscribeRequest } from "./mqtt_client.ts";
 *
 * const requests: SubscribeRequest[] = [
 *   { topic: "sensors/#", qos: 1 },
 *   ["alerts/+", 2], // aMQTT's (filter, qos) pair
 * ];
 * ```
 */
export type SubscribeRequest =
  | {
    topic: string;
    qos?: QoS;
    /** MQTT 5.0: do not send this client's own messages back to it. */
    noLocal?: boolean;
    /** MQTT 5.0: keep the RETAIN flag of forwarded messages as published. */
    retainAsPublished?: boolean;
    /** MQTT 5.0: retained messages on subscribe: 0 always, 1 only when new, 2 never. */
    retainHandling?: 0 | 1 | 2;
  }
  | [topic: string, qos: QoS];

/**
 * Options of {@linkcode MQTTClient.deliverMessage}.
 *
 * @example
 * ```ts
 * import type { DeliverOptions } from "./mqtt_client.ts";
 *
 * // For `client.deliverMessage(options)`: wait at most 5 s, or until the program shuts down.
 * const shutdown = new AbortController();
 * const options: DeliverOptions = { timeout: 5000, signal: shutdown.signal };
 * ```
 */
export interface DeliverOptions {
  /** Milliseconds to wait; then the promise rejects with a `TimeoutError` `DOMException`. */
  timeout?: number;
  /** Rejects with the signal's reason when aborted. */
  signal?: AbortSignal;
}

type Phase = "idle" | "connecting" | "connected" | "reconnecting" | "failed";
type Kind =
  | "connect"
  | "publish0"
  | "publish"
  | "subscribe"
  | "unsubscribe"
  | "ping"
  | "reauth";

interface PendingRequest {
  kind: Kind;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Target {
  url: URL;
  host: string;
  dial: DialOptions;
  params: ConnectParams;
  auth: EnhancedAuth | undefined;
}

const encoder = new TextEncoder();
const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** How long `disconnect` waits for DISCONNECT to be written before closing anyway. */
const DISCONNECT_FLUSH_MS = 1000;
/** How long `disconnect` waits for the transport to report it closed. */
const CLOSE_WAIT_MS = 2000;

/**
 * An MQTT client with aMQTT's API: connect over `mqtt://`, `mqtts://`, `ws://` or `wss://`, publish
 * and wait for the QoS flow to complete, subscribe, and read messages with
 * {@linkcode deliverMessage} or `for await` over {@linkcode messages}.
 *
 * It reconnects by itself when the link drops (`auto_reconnect`), with exponential back-off and
 * jitter capped at `reconnect_max_interval` seconds, giving up after `reconnect_retries` attempts.
 * After a reconnect it resubscribes when the server kept no session, resends unacknowledged QoS 1/2
 * messages (DUP set) and PUBREL in their original order, then sends what was published offline.
 * A dead link is found by keepalive: no PINGRESP within half the keepalive after a PINGREQ.
 *
 * With `protocolVersion: 5` it speaks MQTT 5.0: properties on every request, reason codes in
 * typed errors ({@linkcode PublishError}, {@linkcode ServerDisconnectError}, `ConnectError`), the
 * server's CONNACK limits honoured, topic aliases, subscription options and identifiers,
 * {@linkcode request}/{@linkcode respond}, and enhanced authentication.
 *
 * Received messages wait in a bounded queue (`maxReceiveQueue`): a reader that falls behind loses
 * QoS 0 messages (oldest first, counted in {@linkcode droppedMessages}) and slows QoS 1/2 ones
 * down at the broker by acknowledging them only as it catches up. The socket is read all along,
 * so keepalive keeps working.
 *
 * @example
 * ```ts ignore
 * import { MQTTClient } from "./mqtt_client.ts";
 *
 * await using client = new MQTTClient({ config: { default_qos: 1 } });
 * await client.connect("mqtt://127.0.0.1:1883");
 * await client.subscribe([{ topic: "sensors/#", qos: 1 }]);
 * await client.publish("sensors/t1", "21.5");
 * const message = await client.deliverMessage({ timeout: 5000 });
 * console.log(message.topic, new TextDecoder().decode(message.payload));
 * ```
 */
export class MQTTClient implements AsyncDisposable {
  readonly #settings: ClientSettings;
  readonly #core: ClientSession;
  readonly #inbox: Inbox<ApplicationMessage>;
  readonly #pending = new Map<number, PendingRequest>();
  readonly #maxPacketSize: number | undefined;
  readonly #onServerDisconnect: ((error: ServerDisconnectError) => void) | undefined;
  #serverDisconnect: ServerDisconnectError | undefined;
  // request(): the subscribed response topic, and the requests waiting on it.
  #requests: Promise<Requests> | undefined;
  #responder: Requests | undefined;
  // The CONNACK's Response Information, the base of the response topic when the server gave one.
  #responseInformation: string | undefined;

  #phase: Phase = "idle";
  #failure: ClientError | undefined;
  #target: Target | undefined;
  #lifecycle = new AbortController();
  #reconnecting: Promise<void> = Promise.resolve();

  #conn: ByteConnection | undefined;
  #gen = 0;
  #readDone: Promise<void> = Promise.resolve();
  #lastError: unknown;

  // The current connection's packet channel: read loop, decoder and batched output.
  #channel: PacketChannel<Packet> | undefined;

  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #draining = false;

  /**
   * Creates a client; it does not connect until {@linkcode connect}.
   *
   * @param options client id, aMQTT configuration and queue bounds
   * @throws {ConfigError} when a configuration key is unknown or its value is wrong
   * @throws {RangeError} when `maxInflight`, `maxQueued`, `maxReceiveQueue` or `maxPacketSize`
   *   is out of range
   */
  constructor(options: MQTTClientOptions = {}) {
    this.#settings = clientSettings(options.config);
    this.#maxPacketSize = options.maxPacketSize;
    if (this.#maxPacketSize !== undefined && !(this.#maxPacketSize >= 2)) {
      throw new RangeError(`Cannot create client: maxPacketSize ${this.#maxPacketSize} is below 2`);
    }
    this.#onServerDisconnect = options.onServerDisconnect;
    this.#core = new ClientSession({
      clientId: options.clientId ?? randomClientId(),
      maxInflight: options.maxInflight ?? 20,
      maxQueued: options.maxQueued ?? 1000,
      manualAcks: true,
      topicAliases: options.topicAliases ?? false,
    });
    const maxReceiveQueue = options.maxReceiveQueue ?? 1000;
    if (!(Number.isInteger(maxReceiveQueue) && maxReceiveQueue >= 0)) {
      throw new RangeError(
        `Cannot create client: maxReceiveQueue ${maxReceiveQueue} is not a whole number >= 0`,
      );
    }
    this.#inbox = new Inbox({
      limit: maxReceiveQueue,
      droppable: (m) => m.qos === 0,
      accept: (m) => {
        this.#core.accept(m, performance.now());
        // From a reader's take: send the acknowledgement now. From a delivery inside #drain:
        // that loop sends it.
        if (!this.#draining) this.#drain();
      },
    });
  }

  /**
   * The client identifier sent in CONNECT. In MQTT 5.0, after connecting with an empty one, the
   * identifier the server assigned (reconnects use it, so the session is found again).
   */
  get clientId(): string {
    return this.#core.clientId;
  }

  /** Whether a connection is up and has been accepted by CONNACK. */
  get connected(): boolean {
    return this.#phase === "connected";
  }

  /** Received messages waiting for {@linkcode deliverMessage} or {@linkcode messages}. */
  get receiveQueueSize(): number {
    return this.#inbox.size;
  }

  /**
   * QoS 0 messages dropped, since the client was created, because `maxReceiveQueue` messages
   * were already waiting to be read.
   */
  get droppedMessages(): number {
    return this.#inbox.dropped;
  }

  /**
   * Connects to a broker and resolves with its CONNACK.
   *
   * With `auto_reconnect`, a failed attempt is retried `reconnect_retries` times with back-off
   * (not when the server refused in CONNACK).
   *
   * @param url `mqtt://`, `mqtts://`, `ws://` or `wss://`, with optional `user:password@`; the
   *   ports default to 1883, 8883, 80 and 443 and a WebSocket path to `/mqtt`. Default: the
   *   config's `connection.uri`, else `mqtt://127.0.0.1:1883`.
   * @param options session, TLS, will and credential options
   * @returns whether the server kept a session, the return code (0), and in MQTT 5.0 the
   *   CONNACK properties
   * @throws {ConnectError} when the server refused (`returnCode` set) or could not be reached
   * @throws {ClientError} when already connected, or when `disconnect` interrupted the attempt
   * @throws {TypeError} for an unusable URL or option
   */
  async connect(url?: string | URL, options: ConnectOptions = {}): Promise<ConnackResult> {
    if (
      this.#phase === "connecting" || this.#phase === "connected" || this.#phase === "reconnecting"
    ) {
      throw new ClientError(`Cannot connect: client is already ${this.#phase}`);
    }
    const before = this.#phase;
    // Claimed before the first await, so a second connect() meanwhile is refused.
    this.#phase = "connecting";
    let target: Target;
    try {
      target = await this.#resolveTarget(url, options);
    } catch (error) {
      this.#phase = before;
      throw error;
    }
    this.#target = target;
    this.#failure = undefined;
    this.#serverDisconnect = undefined;
    this.#requests = undefined;
    this.#lifecycle = new AbortController();
    this.#inbox.open();
    const s = this.#settings;
    const retries = s.autoReconnect ? s.reconnectRetries : 0;
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#open(target.params);
      } catch (error) {
        const interrupted = this.#phase !== "connecting";
        const refused = error instanceof ConnectError && error.returnCode !== undefined;
        if (interrupted) {
          throw new ClientError("Cannot connect: disconnect() interrupted the attempt", {
            cause: error,
          });
        }
        if (refused || (retries >= 0 && attempt >= retries)) {
          const failure = error instanceof ConnectError
            ? error
            : new ConnectError(`Cannot connect to ${target.host}: ${message(error)}`, {
              cause: error,
            });
          this.#phase = "idle";
          this.#failAll(failure);
          this.#inbox.close();
          throw failure;
        }
      }
      if (!await this.#sleep(reconnectDelay(attempt, s.reconnectMaxInterval))) {
        throw new ClientError("Cannot connect: disconnect() interrupted the attempt");
      }
    }
  }

  /**
   * Publishes a message and resolves when its QoS flow completes: when written (QoS 0), on
   * PUBACK (QoS 1), on PUBCOMP (QoS 2). While reconnecting, the message is held and sent after
   * the reconnect, up to `maxQueued` held messages.
   *
   * @param topic the topic name; wildcards are not allowed [MQTT-3.3.2-2]
   * @param payload bytes, or a string sent as UTF-8
   * @param options QoS and retain; explicit values win over `topics` and the defaults; MQTT 5.0
   *   properties
   * @returns when the flow is complete: in MQTT 5.0 at QoS 1 and 2, how the server took the message
   *   (the PUBACK's or PUBREC's reason code, 0x00 Success or 0x10 No matching subscribers, with
   *   its reason string and user properties); `undefined` at QoS 0 and in MQTT 3.1/3.1.1, where
   *   the acknowledgement has no reason code
   * @throws {TypeError} for an invalid topic name, payload or property
   * @throws {RangeError} for a QoS other than 0, 1 or 2
   * @throws {PublishError} MQTT 5.0: the server refused the message (PUBACK or PUBREC reason code
   *   0x80 or more), or it breaks a limit of the server's CONNACK
   * @throws {ClientError} when not connected, given up, disconnected meanwhile, or the offline
   *   queue is full
   */
  async publish(
    topic: string,
    payload: Uint8Array | string,
    options: PublishOptions = {},
  ): Promise<PublishResult | undefined> {
    if (typeof topic !== "string") throw new TypeError("Cannot publish: topic must be a string");
    const problem = validateTopicName(topic);
    if (problem !== undefined) {
      throw new TypeError(`Cannot publish to "${shown(topic)}": ${problem}`);
    }
    const defaults = this.#settings.topics[topic];
    const qos = options.qos ?? defaults?.qos ?? this.#settings.defaultQos;
    checkQos(qos, "publish");
    const retain = options.retain ?? defaults?.retain ?? this.#settings.defaultRetain;
    const bytes = toBytes(payload, "publish");
    const properties = publishProperties(options.properties);
    this.#checkUsable("publish");
    const message: OutgoingMessage = { topic, payload: bytes, qos, retain: retain === true };
    if (properties !== undefined && this.#version === 5) message.properties = properties;
    const token = this.#core.publish(message, performance.now());
    const done = this.#request<PublishResult | undefined>(
      token,
      qos === 0 ? "publish0" : "publish",
    );
    this.#drain();
    return await done;
  }

  /**
   * Subscribes to topic filters.
   *
   * @param subscriptions filters with their QoS (default 0), as objects or `[filter, qos]`;
   *   MQTT 5.0 subscription options (no local, retain as published, retain handling)
   * @param options MQTT 5.0: a subscription identifier, which every message delivered because of
   *   these filters carries in `properties.subscriptionIdentifier`, and user properties
   * @returns the granted QoS per filter, in order; `0x80` (128) for a refused filter, or in MQTT
   *   5.0 the SUBACK reason code (0x87 Not authorized, 0x8F Topic Filter invalid, 0xA1, …); in
   *   MQTT 5.0 with the SUBACK's reason string and user properties in `properties`
   * @throws {TypeError} for an empty list or an invalid filter [MQTT-4.7.1-1]
   * @throws {RangeError} for a QoS other than 0, 1 or 2, a retain handling other than 0, 1 or 2,
   *   or a subscription identifier outside 1-268,435,455
   * @throws {ClientError} when not connected, given up or disconnected meanwhile
   */
  async subscribe(
    subscriptions: SubscribeRequest[],
    options: SubscribeOptions = {},
  ): Promise<ReasonCodes> {
    if (!Array.isArray(subscriptions) || subscriptions.length === 0) {
      throw new TypeError("Cannot subscribe: give at least one topic filter [MQTT-3.8.3-3]");
    }
    const subs: Subscription[] = subscriptions.map((s) => {
      const [topic, qos] = Array.isArray(s) ? s : [s.topic, s.qos ?? 0];
      if (typeof topic !== "string") {
        throw new TypeError("Cannot subscribe: filter is not a string");
      }
      const problem = validateTopicFilter(topic);
      if (problem !== undefined) {
        throw new TypeError(`Cannot subscribe to "${shown(topic)}": ${problem}`);
      }
      checkQos(qos, "subscribe");
      const sub: Subscription = { topic, qos };
      if (!Array.isArray(s)) subscriptionOptions(s, sub);
      return sub;
    });
    const properties = subscribeProperties(options);
    this.#checkUsable("subscribe");
    const token = this.#core.subscribe(subs, performance.now(), properties);
    const done = this.#request<ReasonCodes>(token, "subscribe");
    this.#drain();
    return await done;
  }

  /**
   * Unsubscribes from topic filters.
   *
   * @param topics the filters, as given to {@linkcode subscribe}
   * @param options MQTT 5.0 user properties
   * @returns when UNSUBACK arrives, its reason codes, one per filter: in MQTT 5.0 0x00 Success,
   *   0x11 No subscription existed or a refusal (0x80 and up; it does not reject), with the
   *   UNSUBACK's reason string and user properties in `properties`; in MQTT 3.1/3.1.1, which
   *   have no UNSUBACK codes, 0x00 for every filter
   * @throws {TypeError} for an empty list [MQTT-3.10.3-2]
   * @throws {ClientError} when not connected, given up or disconnected meanwhile
   */
  async unsubscribe(topics: string[], options: UnsubscribeOptions = {}): Promise<ReasonCodes> {
    if (!Array.isArray(topics) || topics.length === 0) {
      throw new TypeError("Cannot unsubscribe: give at least one topic filter [MQTT-3.10.3-2]");
    }
    for (const t of topics) {
      if (typeof t !== "string" || t === "") {
        throw new TypeError("Cannot unsubscribe: a topic filter is empty or not a string");
      }
    }
    this.#checkUsable("unsubscribe");
    const properties: Properties | undefined = options.userProperties !== undefined
      ? { userProperties: checkUserProperties(options.userProperties, "unsubscribe") }
      : undefined;
    const token = this.#core.unsubscribe(topics, performance.now(), properties);
    const done = this.#request<ReasonCodes>(token, "unsubscribe");
    this.#drain();
    const codes = await done;
    // MQTT 3.1.1's UNSUBACK has no payload: it acknowledges every filter.
    return this.#version === 5 ? codes : reasonCodes(topics.map(() => 0x00), undefined);
  }

  /**
   * MQTT 5.0 request/response: publishes a request whose Response Topic is this client's own
   * response topic and whose Correlation Data is new, and resolves with the message that answers
   * it. The client subscribes to its response topic (at QoS 1) on the first request; responses
   * never reach {@linkcode deliverMessage}. A responder answers with {@linkcode respond}.
   *
   * The response topic is the server's Response Information (when `requestResponseInformation`
   * asked for it) or `amqtt/responses/`, followed by the client id and a random part.
   *
   * @example
   * ```ts ignore
   * const reply = await client.request("services/time", "now?", { timeout: 5000 });
   * console.log(new TextDecoder().decode(reply.payload));
   * ```
   *
   * @param topic where the responder listens
   * @param payload the request
   * @param options QoS (default 1), timeout, abort signal, more PUBLISH properties
   * @returns the response message
   * @throws {DOMException} named `TimeoutError` when no response came within `timeout`
   * @throws {ClientError} when the connection is not MQTT 5.0, the response topic could not be
   *   subscribed, or the client disconnected meanwhile
   * @throws {PublishError} when the server refused the request
   */
  async request(
    topic: string,
    payload: Uint8Array | string,
    options: RequestOptions = {},
  ): Promise<ApplicationMessage> {
    this.#checkUsable("request");
    if (this.#version !== 5) {
      throw new ClientError("Cannot request: request/response needs MQTT 5.0 (protocolVersion 5)");
    }
    const requests = await this.#responseTopic();
    const { correlationData, response } = requests.open();
    const signal = options.signal;
    const onAbort = () => requests.cancel(correlationData, signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = options.timeout === undefined ? undefined : setTimeout(() => {
      requests.cancel(
        correlationData,
        new DOMException(`No response on "${topic}" within ${options.timeout} ms`, "TimeoutError"),
      );
    }, options.timeout);
    try {
      if (signal?.aborted) throw signal.reason;
      await this.publish(topic, payload, {
        qos: options.qos ?? 1,
        properties: { ...options.properties, responseTopic: requests.topic, correlationData },
      });
      return await response;
    } catch (error) {
      requests.cancel(correlationData, error);
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      response.catch(() => {});
    }
  }

  /**
   * MQTT 5.0: answers a request made with {@linkcode request} (or any message with a Response
   * Topic): publishes to its Response Topic with its Correlation Data.
   *
   * @example
   * ```ts ignore
   * for await (const m of client.messages()) await client.respond(m, "pong");
   * ```
   *
   * @param request the received request
   * @param payload the response
   * @param options QoS (default the request's), more PUBLISH properties
   * @returns when the response is published
   * @throws {TypeError} when the request has no Response Topic
   * @throws {ClientError} as {@linkcode publish}
   */
  async respond(
    request: ApplicationMessage,
    payload: Uint8Array | string,
    options: RespondOptions = {},
  ): Promise<void> {
    const responseTopic = request.properties?.responseTopic;
    if (responseTopic === undefined) {
      throw new TypeError(
        `Cannot respond to a message on "${request.topic}": it has no response topic`,
      );
    }
    const properties: PublishProperties = { ...options.properties };
    const correlationData = request.properties?.correlationData;
    if (correlationData !== undefined) properties.correlationData = correlationData;
    await this.publish(responseTopic, payload, {
      qos: options.qos ?? request.qos,
      properties,
    });
  }

  /**
   * MQTT 5.0: re-authenticates with the method of the connection's `auth` option: sends AUTH
   * (Re-authenticate) with `auth.initial(true)`'s data, answers the server's challenges through
   * `auth.challenge`, and resolves on AUTH Success [MQTT-4.12.1-1]. A server that refuses
   * disconnects the client.
   *
   * @returns when the server accepted the re-authentication
   * @throws {ClientError} when not connected, connected without `auth`, already
   *   re-authenticating, or the connection ended first
   */
  async reauthenticate(): Promise<void> {
    this.#checkUsable("re-authenticate");
    const auth = this.#target?.auth;
    if (auth === undefined) {
      throw new ClientError("Cannot re-authenticate: the client connected without the auth option");
    }
    const data = await auth.initial?.(true);
    const token = this.#core.reauthenticate(data, performance.now());
    const done = this.#request<void>(token, "reauth");
    this.#drain();
    await done;
  }

  /**
   * The next message received, waiting for one if none is queued.
   *
   * @param options timeout (milliseconds) and abort signal
   * @returns the message
   * @throws {DOMException} named `TimeoutError` when the timeout passes first
   * @throws {ClientError} when the client is disconnected (and no message is queued) or gave up
   */
  async deliverMessage(options: DeliverOptions = {}): Promise<ApplicationMessage> {
    const item = await this.#inbox.take(options.timeout, options.signal);
    if (item === END) {
      // The server's DISCONNECT (MQTT 5.0), when it was one, says why.
      const kicked = this.#serverDisconnect;
      throw new ClientError(
        "Cannot deliver a message: client is not connected",
        kicked === undefined ? undefined : { cause: kicked },
      );
    }
    return item;
  }

  /**
   * Every message received, in order, until {@linkcode disconnect}.
   *
   * @example
   * ```ts ignore
   * for await (const message of client.messages()) console.log(message.topic);
   * ```
   *
   * @returns an async iterator that ends on disconnect, and throws a {@linkcode ClientError}
   *   when the client gives up reconnecting
   */
  async *messages(): AsyncGenerator<ApplicationMessage, void, undefined> {
    for (;;) {
      const item = await this.#inbox.take();
      if (item === END) return;
      yield item;
    }
  }

  /**
   * Sends PINGREQ and waits for PINGRESP.
   *
   * @returns when PINGRESP arrives
   * @throws {ClientError} when not connected, or the connection drops first
   */
  async ping(): Promise<void> {
    this.#checkUsable("ping");
    const token = this.#core.ping(performance.now());
    const done = this.#request<void>(token, "ping");
    this.#drain();
    await done;
  }

  /**
   * Sends DISCONNECT (so the server drops the will), closes the connection and stops
   * reconnecting. Every pending operation is rejected with a {@linkcode ClientError}; messages
   * already received stay readable. Safe to call in any state.
   *
   * @param options MQTT 5.0: reason code (0x04 asks the server to send the will), a new session
   *   expiry interval, reason string, user properties
   * @returns when the connection is closed
   * @throws {RangeError} when `sessionExpiryInterval` is set but the connection was made with 0:
   *   a client may not turn session expiry on at DISCONNECT [MQTT-3.14.2-2]
   */
  async disconnect(options: DisconnectOptions = {}): Promise<void> {
    const disconnectPacket = this.#disconnectPacket(options);
    const phase = this.#phase;
    this.#lifecycle.abort();
    this.#phase = "idle";
    const conn = this.#conn;
    if (conn !== undefined && this.#core.state === "connected") {
      this.#core.disconnect(performance.now(), disconnectPacket);
      this.#drain();
      await this.#flushed(DISCONNECT_FLUSH_MS);
    } else {
      this.#core.disconnect(performance.now());
      this.#drain();
    }
    this.#gen++;
    this.#conn = undefined;
    this.#dropOutput();
    conn?.close();
    this.#clearTimer();
    this.#failAll(new ClientError("Client disconnected before the operation completed"));
    this.#requests = undefined;
    if (phase !== "failed") this.#inbox.close();
    await this.#reconnecting;
    await this.#readDone;
    // A WebSocket closes with a handshake; a peer that never answers must not hold us forever.
    if (conn !== undefined) await settleWithin(conn.closed, CLOSE_WAIT_MS);
  }

  /** Same as {@linkcode disconnect}; for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.disconnect();
  }

  /** The protocol level of the current (or last) connection. */
  get #version(): ProtocolVersion {
    return this.#core.protocolVersion;
  }

  #disconnectPacket(options: DisconnectOptions): { reasonCode?: number; properties?: Properties } {
    const out: { reasonCode?: number; properties?: Properties } = {};
    if (options.reasonCode !== undefined) {
      if (options.reasonCode !== 0 && options.reasonCode !== 0x04 && options.reasonCode < 0x80) {
        throw new RangeError(
          `Cannot disconnect: reason code 0x${
            options.reasonCode.toString(16)
          } is not a DISCONNECT code`,
        );
      }
      out.reasonCode = options.reasonCode;
    }
    const properties: Properties = {};
    const expiry = options.sessionExpiryInterval;
    if (expiry !== undefined) {
      checkUint32(expiry, "disconnect", "sessionExpiryInterval");
      const connected = this.#target?.params.properties?.sessionExpiryInterval ?? 0;
      if (connected === 0 && expiry !== 0) {
        throw new RangeError(
          "Cannot disconnect: the connection was made with session expiry 0, which DISCONNECT " +
            "may not change [MQTT-3.14.2-2]",
        );
      }
      properties.sessionExpiryInterval = expiry;
    }
    if (options.reasonString !== undefined) properties.reasonString = options.reasonString;
    if (options.userProperties !== undefined) {
      properties.userProperties = checkUserProperties(options.userProperties, "disconnect");
    }
    if (Object.keys(properties).length > 0) out.properties = properties;
    return out;
  }

  /** Subscribes to this client's response topic once; the requests that wait on it. */
  #responseTopic(): Promise<Requests> {
    if (this.#requests !== undefined) return this.#requests;
    const base = this.#responseInformation ?? "amqtt/responses";
    const id = this.clientId.replace(/[+#]/g, "_");
    const random = [...crypto.getRandomValues(new Uint8Array(6))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    const requests = new Requests(`${base}/${id}/${random}`);
    this.#responder = requests;
    const ready = this.subscribe([{ topic: requests.topic, qos: 1 }]).then((codes) => {
      if (codes[0] === undefined || codes[0] >= 0x80) {
        throw new ClientError(
          `Cannot request: the server refused the response topic "${requests.topic}" ` +
            `(0x${(codes[0] ?? 0x80).toString(16)})`,
        );
      }
      return requests;
    });
    this.#requests = ready;
    ready.catch(() => {
      if (this.#requests === ready) this.#requests = undefined;
    });
    return ready;
  }

  // ---- connection lifecycle ----

  async #resolveTarget(url: string | URL | undefined, options: ConnectOptions): Promise<Target> {
    const s = this.#settings;
    const raw = url ?? s.connection.uri;
    let u: URL;
    try {
      u = new URL(String(raw));
    } catch (cause) {
      throw new TypeError(`Cannot connect: "${raw}" is not a valid URL`, { cause });
    }
    const where = dialTarget(u);
    const version = options.protocolVersion ?? 4;
    if (version !== 3 && version !== 4 && version !== 5) {
      throw new RangeError(`Cannot connect: protocol version ${version} is not 3, 4 or 5`);
    }
    const username = options.username ??
      (u.username !== "" ? decodeURIComponent(u.username) : undefined);
    const password = options.password ??
      (u.password !== "" ? decodeURIComponent(u.password) : undefined);
    const params: ConnectParams = {
      protocolVersion: version,
      clean: options.cleanSession ?? s.cleanSession,
      keepAlive: s.keepAlive,
      connectTimeout: s.connectionTimeout,
    };
    if (username !== undefined) params.username = username;
    if (password !== undefined) params.password = toBytes(password, "connect");
    const will = options.will ?? s.will;
    if (will !== undefined) params.will = toWill(will);
    if (version === 5) {
      const properties = connectProperties(options, this.#maxPacketSize);
      if (Object.keys(properties).length > 0) params.properties = properties;
    }
    const dialOptions: DialOptions = { checkHostname: s.checkHostname };
    const ca = options.ca !== undefined
      ? (Array.isArray(options.ca) ? options.ca : [options.ca])
      : await loadCaCertificates(s.connection);
    if (ca !== undefined && ca.length > 0) dialOptions.caCerts = ca;
    const cert = options.cert ??
      (s.connection.certfile !== undefined
        ? await Deno.readTextFile(s.connection.certfile)
        : undefined);
    const key = options.key ??
      (s.connection.keyfile !== undefined
        ? await Deno.readTextFile(s.connection.keyfile)
        : undefined);
    if (cert !== undefined) dialOptions.cert = cert;
    if (key !== undefined) dialOptions.key = key;
    if (options.headers !== undefined) dialOptions.headers = options.headers;
    return {
      url: u,
      host: `${where.hostname}:${where.port}`,
      dial: dialOptions,
      params,
      auth: version === 5 ? options.auth : undefined,
    };
  }

  /** Opens one connection and runs CONNECT/CONNACK on it. */
  async #open(params: ConnectParams | undefined): Promise<ConnackResult> {
    const target = this.#target!;
    const lifecycle = this.#lifecycle.signal;
    const controller = new AbortController();
    const onStop = () => controller.abort(lifecycle.reason);
    lifecycle.addEventListener("abort", onStop, { once: true });
    const timer = setTimeout(() => {
      const ms = this.#settings.connectionTimeout;
      controller.abort(new ConnectError(`Cannot connect to ${target.host}: timed out (${ms} ms)`));
    }, this.#settings.connectionTimeout);
    let conn: ByteConnection;
    try {
      conn = await dial(target.url, { ...target.dial, signal: controller.signal });
    } finally {
      clearTimeout(timer);
      lifecycle.removeEventListener("abort", onStop);
    }
    if (lifecycle.aborted) {
      conn.close();
      await conn.closed;
      throw new ClientError("Cannot connect: disconnect() interrupted the attempt");
    }
    let authData: Uint8Array | undefined;
    try {
      authData = await target.auth?.initial?.(false);
    } catch (error) {
      conn.close();
      await conn.closed;
      throw new ConnectError(`Cannot connect: the auth option failed: ${message(error)}`, {
        cause: error,
      });
    }
    const gen = ++this.#gen;
    this.#conn = conn;
    this.#lastError = undefined;
    this.#serverDisconnect = undefined;
    const token = this.#core.connect(performance.now(), params, authData);
    const connack = this.#request<ConnackResult>(token, "connect");
    this.#readDone = this.#readLoop(conn, gen);
    this.#drain();
    const result = await connack;
    this.#responseInformation = result.properties?.responseInformation;
    return result;
  }

  async #readLoop(conn: ByteConnection, gen: number): Promise<void> {
    const decoder = new PacketDecoder({
      protocolVersion: this.#core.protocolVersion,
      side: "client",
      maxPacketSize: this.#maxPacketSize,
    });
    const channel = new PacketChannel(conn, decoder);
    this.#channel = channel;
    let now = 0;
    try {
      await channel.run({
        begin: () => now = performance.now(),
        receive: (packet) => {
          if (gen === this.#gen) this.#core.handlePacket(packet, now);
        },
        end: () => {
          if (gen === this.#gen) this.#drain();
        },
        writeFailed: (error) => this.#lastError ??= error,
      });
    } catch (error) {
      // A malformed packet from the server ends this connection; in MQTT 5.0 DISCONNECT says
      // why first [MQTT-4.13.1-1].
      this.#lastError = error;
      if (error instanceof MqttPacketError && gen === this.#gen) {
        this.#core.abort(error.reasonCode, error.message, performance.now());
        this.#drain();
        await this.#flushed(DISCONNECT_FLUSH_MS);
      }
    }
    conn.close();
    this.#lost(gen);
  }

  #lost(gen: number): void {
    if (gen !== this.#gen || this.#conn === undefined) return;
    this.#conn = undefined;
    this.#gen++;
    this.#dropOutput();
    this.#core.connectionLost();
    this.#drain();
    if (this.#phase !== "connected") return; // a connect attempt in progress handles it
    const kicked = this.#serverDisconnect;
    if (kicked !== undefined && !reconnectAfter(kicked.reasonCode)) {
      // Reconnecting would not help or would fight another client: stay down and say why.
      this.#phase = "failed";
      this.#clearTimer();
      this.#failure = kicked;
      this.#failAll(kicked);
      this.#inbox.close(kicked);
      return;
    }
    if (this.#settings.autoReconnect) {
      this.#phase = "reconnecting";
      this.#reconnecting = this.#reconnect();
      return;
    }
    this.#phase = "idle";
    this.#clearTimer();
    this.#failAll(kicked ?? new ClientError("Connection lost", { cause: this.#lastError }));
    this.#inbox.close();
  }

  async #reconnect(): Promise<void> {
    const s = this.#settings;
    let lastError: unknown = this.#lastError;
    for (let attempt = 0; s.reconnectRetries < 0 || attempt < s.reconnectRetries; attempt++) {
      if (!await this.#sleep(reconnectDelay(attempt, s.reconnectMaxInterval))) return;
      if (this.#phase !== "reconnecting") return;
      try {
        await this.#open(undefined);
        return;
      } catch (error) {
        lastError = error;
        if (this.#phase !== "reconnecting") return;
      }
    }
    this.#phase = "failed";
    this.#clearTimer();
    const failure = new ClientError(
      `Will not reconnect: ${s.reconnectRetries} attempts to reach ${this.#target?.host} failed`,
      { cause: lastError },
    );
    this.#failure = failure;
    this.#failAll(failure);
    this.#inbox.close(failure);
  }

  /** Waits, unless `disconnect` is called meanwhile. @returns false when interrupted */
  #sleep(ms: number): Promise<boolean> {
    const signal = this.#lifecycle.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #checkUsable(operation: string): void {
    if (this.#phase === "failed") throw this.#failure!;
    if (this.#phase === "idle") {
      throw new ClientError(`Cannot ${operation}: client is not connected`);
    }
  }

  // ---- actions from the core ----

  #request<T>(token: number, kind: Kind): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(token, { kind, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      // Applying a delivery may accept it, which adds an acknowledgement: loop until none is left.
      for (let actions = this.#core.takeActions(); actions.length > 0;) {
        for (const action of actions) this.#apply(action);
        actions = this.#core.takeActions();
      }
    } finally {
      this.#draining = false;
    }
    this.#armTimer();
  }

  #apply(action: ClientAction): void {
    switch (action.type) {
      case "send":
        this.#queue(action.packet);
        return;
      case "deliver":
        if (this.#responder?.match(action.message)) {
          // A response to request(): consumed here, acknowledged at once.
          this.#core.accept(action.message, performance.now());
          return;
        }
        this.#inbox.push(action.message);
        return;
      case "resolve": {
        const pending = this.#pending.get(action.token);
        if (pending === undefined) return;
        this.#pending.delete(action.token);
        const done = this.#target?.auth?.done;
        if ((pending.kind === "connect" || pending.kind === "reauth") && done !== undefined) {
          void this.#verifyServer(pending, action.value as ConnackResult | Properties, done);
          return;
        }
        if (pending.kind === "connect") this.#phase = "connected";
        const channel = this.#channel;
        if (pending.kind === "publish0" && channel !== undefined && channel.pendingBytes > 0) {
          // QoS 0 is done once written: settle with the batch that carries it.
          void channel.written().then(() => pending.resolve(undefined));
          return;
        }
        if (pending.kind === "subscribe" || pending.kind === "unsubscribe") {
          pending.resolve(reasonCodes(action.value as number[], action.properties));
          return;
        }
        pending.resolve(action.value);
        return;
      }
      case "reject": {
        const pending = this.#pending.get(action.token);
        if (pending === undefined) return;
        this.#pending.delete(action.token);
        if (pending.kind === "connect") {
          pending.reject(
            new ConnectError(`Cannot connect to ${this.#target?.host}: ${action.message}`, {
              returnCode: action.returnCode,
              properties: action.properties,
              cause: this.#lastError,
            }),
          );
        } else if (
          (pending.kind === "publish" || pending.kind === "publish0") &&
          (action.reason === "refused" || action.reason === "not_allowed") &&
          action.returnCode !== undefined
        ) {
          pending.reject(
            new PublishError(action.message, {
              reasonCode: action.returnCode,
              properties: action.properties,
            }),
          );
        } else {
          pending.reject(new ClientError(action.message, { cause: this.#lastError }));
        }
        return;
      }
      case "close": {
        if (action.reason === "server_disconnect") {
          const error = new ServerDisconnectError(action.message, {
            reasonCode: action.reasonCode ?? 0,
            properties: action.properties,
          });
          this.#serverDisconnect = error;
          this.#lastError = error;
          try {
            this.#onServerDisconnect?.(error);
          } catch { /* the application's callback must not break the client */ }
        }
        this.#lastError ??= new ClientError(action.message);
        const conn = this.#conn;
        if (conn === undefined) return;
        if (action.reasonCode !== undefined && action.reason !== "server_disconnect") {
          // Our DISCONNECT is queued: write it before closing.
          void this.#flushed(DISCONNECT_FLUSH_MS).then(() => conn.close());
        } else {
          conn.close();
        }
        return;
      }
      case "auth":
        void this.#answerAuth(action.properties);
        return;
      case "unsolicited":
        // Harmless, and the client has no logger to report it to.
        return;
    }
  }

  /**
   * Runs the `auth.done` hook on the server's final Authentication Data before a connect or
   * re-authentication counts as done; a failure ends the connection with DISCONNECT 0x80.
   */
  async #verifyServer(
    pending: PendingRequest,
    value: ConnackResult | Properties,
    done: NonNullable<EnhancedAuth["done"]>,
  ): Promise<void> {
    const gen = this.#gen;
    const properties: Properties = pending.kind === "connect"
      ? (value as ConnackResult).properties ?? {}
      : value as Properties;
    try {
      await done(properties.authenticationData, properties);
    } catch (error) {
      const why = `the server's authentication data did not verify: ${message(error)}`;
      if (gen === this.#gen && this.#core.state === "connected") {
        this.#lastError = error;
        this.#core.abort(0x80, why, performance.now());
        this.#drain();
      }
      pending.reject(
        pending.kind === "connect"
          ? new ConnectError(`Cannot connect to ${this.#target?.host}: ${why}`, { cause: error })
          : new ClientError(`Cannot re-authenticate: ${why}`, { cause: error }),
      );
      return;
    }
    if (gen !== this.#gen || this.#core.state !== "connected") {
      pending.reject(new ClientError("Connection lost while checking the server's authentication"));
      return;
    }
    if (pending.kind === "connect") this.#phase = "connected";
    pending.resolve(value);
  }

  /** Runs the `auth.challenge` hook for a server AUTH and sends its answer. */
  async #answerAuth(properties: Properties | undefined): Promise<void> {
    const auth = this.#target?.auth;
    const gen = this.#gen;
    let data: Uint8Array | undefined;
    try {
      if (auth === undefined) throw new Error("no auth option");
      data = await auth.challenge(properties?.authenticationData, properties ?? {});
    } catch (error) {
      if (gen !== this.#gen) return;
      // The method cannot go on: end the connection; connect() rejects with this cause.
      this.#lastError = error;
      this.#core.abort(
        0x80,
        `The auth challenge hook failed: ${message(error)}`,
        performance.now(),
      );
      this.#drain();
      return;
    }
    if (gen !== this.#gen) return; // the connection it was for is gone
    this.#core.authContinue(data, performance.now());
    this.#drain();
  }

  #failAll(error: ClientError): void {
    this.#responder?.failAll(error);
    this.#core.abandon();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(error);
  }

  // ---- output ----

  #queue(packet: Packet): void {
    const channel = this.#channel;
    if (this.#conn === undefined || channel === undefined) return; // resent on the next connection
    try {
      // Everything queued in this turn goes out in one write.
      channel.sendPacket(packet, this.#core.protocolVersion);
    } catch (error) {
      // Inputs are checked before they reach the core, so this is a bug or an oversized field.
      this.#lastError = error;
      this.#conn.close();
    }
  }

  /** Resolves once everything queued is written, or after `ms`. */
  #flushed(ms: number): Promise<void> {
    const channel = this.#channel;
    if (channel === undefined || channel.pendingBytes === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      void channel.written().then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Forgets output meant for a connection that is gone; QoS 0 publishes in it still settle. */
  #dropOutput(): void {
    this.#channel?.abort();
    this.#channel = undefined;
  }

  // ---- the one keepalive timer ----

  #armTimer(): void {
    const deadline = this.#core.nextDeadline();
    if (deadline === undefined) {
      this.#clearTimer();
      return;
    }
    // A timer due no later than the deadline stays: when it fires, tick() re-arms for the rest.
    // Deadlines mostly move later (every packet pushes the ping back), so this rarely re-arms.
    if (this.#timer !== undefined && this.#timerAt <= deadline) return;
    this.#clearTimer();
    this.#timerAt = deadline;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#core.tick(performance.now());
      this.#drain();
    }, Math.max(0, Math.ceil(deadline - performance.now())));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}

function randomClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let id = "amqtt/";
  for (const b of bytes) id += ALPHANUMERIC[b % ALPHANUMERIC.length];
  return id;
}

function checkQos(qos: unknown, operation: string): asserts qos is QoS {
  if (qos !== 0 && qos !== 1 && qos !== 2) {
    throw new RangeError(`Cannot ${operation}: QoS ${String(qos)} is not 0, 1 or 2`);
  }
}

function toBytes(value: unknown, operation: string): Uint8Array {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`Cannot ${operation}: payload must be a Uint8Array or a string`);
}

/** A topic as an error message shows it: cut, as one refused for its length may be 16 K long. */
function shown(topic: string): string {
  return topic.length <= 100 ? topic : `${topic.slice(0, 100)}…`;
}

function toWill(will: WillOptions): Will {
  if (typeof will.topic !== "string") throw new TypeError("Cannot connect: will topic is missing");
  const problem = validateTopicName(will.topic);
  if (problem !== undefined) {
    throw new TypeError(`Cannot connect: will topic "${shown(will.topic)}": ${problem}`);
  }
  const qos = will.qos ?? 0;
  checkQos(qos, "connect with a will");
  const out: Will = {
    topic: will.topic,
    payload: toBytes(will.payload ?? will.message ?? new Uint8Array(), "connect with a will"),
    qos,
    retain: will.retain ?? false,
  };
  if (will.properties !== undefined) out.properties = will.properties;
  return out;
}

/** Waits for `promise`, but no longer than `ms`. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  try {
    await Promise.race([promise.catch(() => {}), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
