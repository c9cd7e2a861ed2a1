/**
 * Option types of the MQTT 5.0 parts of {@linkcode MQTTClient}: PUBLISH properties, subscription
 * identifiers, DISCONNECT with a reason, request/response and enhanced authentication.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Properties, UserProperty } from "../packet/types.ts";

/**
 * The PUBLISH properties an application sets (MQTT 5.0). Topic aliases are the client's business
 * (`topicAliases` option) and subscription identifiers the server's.
 *
 * @example
 * ```ts
 * import type { PublishProperties } from "./v5_options.ts";
 *
 * const properties: PublishProperties = {
 *   contentType: "application/json",
 *   payloadFormatIndicator: 1, // UTF-8 text
 *   messageExpiryInterval: 60, // seconds
 *   userProperties: [["source", "sensor-7"]],
 * };
 * ```
 */
export interface PublishProperties {
  /** 0 unspecified bytes, 1 UTF-8 text. */
  payloadFormatIndicator?: 0 | 1;
  /** Seconds the server keeps the message for subscribers that are not connected. */
  messageExpiryInterval?: number;
  /** MIME type of the payload. */
  contentType?: string;
  /** Topic the receiver should answer on (a topic name, no wildcards). */
  responseTopic?: string;
  /** Lets the requester match the answer to its request. */
  correlationData?: Uint8Array;
  /** Name/value pairs, in order; names may repeat. */
  userProperties?: UserProperty[];
}

/**
 * Options of {@linkcode MQTTClient.subscribe} (MQTT 5.0).
 *
 * @example
 * ```ts
 * import type { SubscribeOptions } from "./v5_options.ts";
 *
 * // Messages delivered for these filters carry properties.subscriptionIdentifier [7].
 * const options: SubscribeOptions = { subscriptionIdentifier: 7 };
 * ```
 */
export interface SubscribeOptions {
  /** 1-268,435,455; delivered messages list the identifiers of every subscription they match. */
  subscriptionIdentifier?: number;
  /** User properties of the SUBSCRIBE. */
  userProperties?: UserProperty[];
}

/**
 * Options of {@linkcode MQTTClient.unsubscribe} (MQTT 5.0).
 *
 * @example
 * ```ts
 * import type { UnsubscribeOptions } from "./v5_options.ts";
 *
 * const options: UnsubscribeOptions = { userProperties: [["reason", "shutdown"]] };
 * ```
 */
export interface UnsubscribeOptions {
  /** User properties of the UNSUBSCRIBE. */
  userProperties?: UserProperty[];
}

/**
 * Options of {@linkcode MQTTClient.disconnect} (MQTT 5.0).
 *
 * @example
 * ```ts
 * import type { DisconnectOptions } from "./v5_options.ts";
 *
 * // Leave, but ask the server to publish the will, and keep the session for an hour.
 * const options: DisconnectOptions = { reasonCode: 0x04, sessionExpiryInterval: 3600 };
 * ```
 */
export interface DisconnectOptions {
  /** 0x00 Normal disconnection (default), 0x04 Disconnect with Will Message, or 0x80 and up. */
  reasonCode?: number;
  /** A new session expiry interval; not allowed when the connection was made with 0. */
  sessionExpiryInterval?: number;
  /** Text for the server's log. */
  reasonString?: string;
  /** User properties of the DISCONNECT. */
  userProperties?: UserProperty[];
}

/**
 * Options of {@linkcode MQTTClient.request} (MQTT 5.0).
 *
 * @example
 * ```ts
 * import type { RequestOptions } from "./v5_options.ts";
 *
 * const options: RequestOptions = { qos: 1, timeout: 5000 };
 * ```
 */
export interface RequestOptions {
  /** QoS of the request. Default 1. */
  qos?: QoS;
  /** Milliseconds to wait for the response; then it rejects with a `TimeoutError`. */
  timeout?: number;
  /** Stops waiting when aborted, rejecting with the signal's reason. */
  signal?: AbortSignal;
  /** More PUBLISH properties (the response topic and correlation data are the client's). */
  properties?: Omit<PublishProperties, "responseTopic" | "correlationData">;
}

/**
 * Options of {@linkcode MQTTClient.respond} (MQTT 5.0).
 *
 * @example
 * ```ts
 * import type { RespondOptions } from "./v5_options.ts";
 *
 * const options: RespondOptions = { properties: { contentType: "text/plain" } };
 * ```
 */
export interface RespondOptions {
  /** QoS of the response. Default: the request's. */
  qos?: QoS;
  /** More PUBLISH properties (the correlation data is the request's). */
  properties?: Omit<PublishProperties, "correlationData">;
}

/**
 * MQTT 5.0 enhanced authentication (§4.12): the Authentication Method named in CONNECT, the data
 * it starts with, and the answers to the server's challenges (AUTH packets with Continue
 * authentication). The same hooks run for {@linkcode MQTTClient.reauthenticate}.
 *
 * @example
 * ```ts
 * import type { EnhancedAuth } from "./v5_options.ts";
 *
 * const encoder = new TextEncoder();
 * // A toy method: the server sends a nonce, the client answers with the nonce and a secret.
 * const auth: EnhancedAuth = {
 *   method: "x-nonce",
 *   initial: () => encoder.encode("sensor-7"),
 *   challenge: (nonce) => encoder.encode(`${new TextDecoder().decode(nonce)}:secret`),
 * };
 * ```
 */
export interface EnhancedAuth {
  /** The Authentication Method. */
  method: string;
  /**
   * The Authentication Data to start with, fresh for each connection attempt (`reauthenticating`
   * false) and each re-authentication (true). Default: none.
   */
  initial?(reauthenticating: boolean): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /**
   * Answers one challenge: gets the server's Authentication Data and the AUTH's properties
   * (reason string, user properties), returns the data to send back. Throwing ends the
   * connection (DISCONNECT 0x80) and fails the connect or re-authentication.
   */
  challenge(
    data: Uint8Array | undefined,
    properties: Properties,
  ): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /**
   * Checks the server's last word: the Authentication Data of the CONNACK (or of the AUTH
   * Success that ends a re-authentication), e.g. a SCRAM server signature. Throwing ends the
   * connection (DISCONNECT 0x80) and fails the connect or re-authentication. Default: accept.
   */
  done?(data: Uint8Array | undefined, properties: Properties): void | Promise<void>;
}
