/**
 * Spec tables for MQTT 3.1 (level 3), 3.1.1 (level 4) and 5.0 (level 5): packet types, property
 * identifiers with their data types and the packets that may carry them, and reason codes.
 *
 * @module
 */

/**
 * Protocol levels carried in CONNECT: 3 = MQTT 3.1 (`MQIsdp`), 4 = 3.1.1, 5 = 5.0.
 *
 * @example
 * ```ts
 * import type { ProtocolVersion } from "./constants.ts";
 * import assert from "node:assert/strict";
 *
 * const names: Record<ProtocolVersion, string> = { 3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5.0" };
 * assert.equal(names[4], "MQTT 3.1.1");
 * ```
 */
export type ProtocolVersion = 3 | 4 | 5;

/** Packet type numbers from the fixed header (MQTT 5.0 §2.1.2). */
export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const;

/** A packet type number. */
export type PacketTypeNumber = typeof PacketType[keyof typeof PacketType];

/** Packet type names by number, for messages and logs. */
export const PACKET_NAMES: readonly string[] = [
  "RESERVED",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "PUBREC",
  "PUBREL",
  "PUBCOMP",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
  "AUTH",
];

/**
 * Quality of service levels.
 *
 * @example
 * ```ts
 * import type { QoS } from "./constants.ts";
 * import assert from "node:assert/strict";
 *
 * // A subscription grants at most the QoS it asked for.
 * const granted = (published: QoS, subscribed: QoS): QoS => Math.min(published, subscribed) as QoS;
 * assert.equal(granted(2, 1), 1);
 * ```
 */
export type QoS = 0 | 1 | 2;

/**
 * CONNACK return codes of MQTT 3.1 and 3.1.1 (§3.2.2.3).
 */
export const ConnackReturnCode = {
  ACCEPTED: 0,
  UNACCEPTABLE_PROTOCOL_VERSION: 1,
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;

/** MQTT 5.0 reason codes (§2.4). Several share a value; the name says which meaning. */
export const ReasonCode = {
  SUCCESS: 0x00,
  NORMAL_DISCONNECTION: 0x00,
  GRANTED_QOS_0: 0x00,
  GRANTED_QOS_1: 0x01,
  GRANTED_QOS_2: 0x02,
  DISCONNECT_WITH_WILL_MESSAGE: 0x04,
  NO_MATCHING_SUBSCRIBERS: 0x10,
  NO_SUBSCRIPTION_EXISTED: 0x11,
  CONTINUE_AUTHENTICATION: 0x18,
  RE_AUTHENTICATE: 0x19,
  UNSPECIFIED_ERROR: 0x80,
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC_ERROR: 0x83,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  CLIENT_IDENTIFIER_NOT_VALID: 0x85,
  BAD_USER_NAME_OR_PASSWORD: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_BUSY: 0x89,
  BANNED: 0x8a,
  SERVER_SHUTTING_DOWN: 0x8b,
  BAD_AUTHENTICATION_METHOD: 0x8c,
  KEEP_ALIVE_TIMEOUT: 0x8d,
  SESSION_TAKEN_OVER: 0x8e,
  TOPIC_FILTER_INVALID: 0x8f,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_IDENTIFIER_IN_USE: 0x91,
  PACKET_IDENTIFIER_NOT_FOUND: 0x92,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  TOPIC_ALIAS_INVALID: 0x94,
  PACKET_TOO_LARGE: 0x95,
  MESSAGE_RATE_TOO_HIGH: 0x96,
  QUOTA_EXCEEDED: 0x97,
  ADMINISTRATIVE_ACTION: 0x98,
  PAYLOAD_FORMAT_INVALID: 0x99,
  RETAIN_NOT_SUPPORTED: 0x9a,
  QOS_NOT_SUPPORTED: 0x9b,
  USE_ANOTHER_SERVER: 0x9c,
  SERVER_MOVED: 0x9d,
  SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: 0x9e,
  CONNECTION_RATE_EXCEEDED: 0x9f,
  MAXIMUM_CONNECT_TIME: 0xa0,
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: 0xa1,
  WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: 0xa2,
} as const;

/** Data types of MQTT 5.0 properties (§2.2.2.2). */
export type PropertyDataType =
  | "byte"
  | "u16"
  | "u32"
  | "varint"
  | "string"
  | "binary"
  | "pair";

/** MQTT 5.0 property identifiers (§2.2.2.2). */
export const PropertyId = {
  PAYLOAD_FORMAT_INDICATOR: 0x01,
  MESSAGE_EXPIRY_INTERVAL: 0x02,
  CONTENT_TYPE: 0x03,
  RESPONSE_TOPIC: 0x08,
  CORRELATION_DATA: 0x09,
  SUBSCRIPTION_IDENTIFIER: 0x0b,
  SESSION_EXPIRY_INTERVAL: 0x11,
  ASSIGNED_CLIENT_IDENTIFIER: 0x12,
  SERVER_KEEP_ALIVE: 0x13,
  AUTHENTICATION_METHOD: 0x15,
  AUTHENTICATION_DATA: 0x16,
  REQUEST_PROBLEM_INFORMATION: 0x17,
  WILL_DELAY_INTERVAL: 0x18,
  REQUEST_RESPONSE_INFORMATION: 0x19,
  RESPONSE_INFORMATION: 0x1a,
  SERVER_REFERENCE: 0x1c,
  REASON_STRING: 0x1f,
  RECEIVE_MAXIMUM: 0x21,
  TOPIC_ALIAS_MAXIMUM: 0x22,
  TOPIC_ALIAS: 0x23,
  MAXIMUM_QOS: 0x24,
  RETAIN_AVAILABLE: 0x25,
  USER_PROPERTY: 0x26,
  MAXIMUM_PACKET_SIZE: 0x27,
  WILDCARD_SUBSCRIPTION_AVAILABLE: 0x28,
  SUBSCRIPTION_IDENTIFIERS_AVAILABLE: 0x29,
  SHARED_SUBSCRIPTION_AVAILABLE: 0x2a,
} as const;

/**
 * Where a property may appear: a packet type number, or `"will"` for the will properties inside
 * CONNECT (which are a separate property set from the CONNECT properties).
 */
export type PropertyContext = PacketTypeNumber | "will";

/** One row of the MQTT 5.0 property table (§2.2.2.2). */
export interface PropertyInfo {
  /** The identifier byte on the wire. */
  readonly id: number;
  /** The key in the `Properties` interface of types.ts. */
  readonly name: string;
  /** The wire data type of the value. */
  readonly type: PropertyDataType;
  /** Packets (and the will) that may carry it; anything else is a Malformed Packet. */
  readonly contexts: readonly PropertyContext[];
  /**
   * Whether it may appear more than once. Only User Property may everywhere, and Subscription
   * Identifier only in PUBLISH; any other duplicate is a Protocol Error.
   */
  readonly repeatable: boolean;
}

const C = PacketType;

/**
 * The MQTT 5.0 property table (§2.2.2.2): identifier, property name (its key in `Properties`), data
 * type and the packets that may carry it, in identifier order.
 */
export const PROPERTY_TABLE: readonly PropertyInfo[] = [
  {
    id: 0x01,
    name: "payloadFormatIndicator",
    type: "byte",
    contexts: [C.PUBLISH, "will"],
    repeatable: false,
  },
  {
    id: 0x02,
    name: "messageExpiryInterval",
    type: "u32",
    contexts: [C.PUBLISH, "will"],
    repeatable: false,
  },
  {
    id: 0x03,
    name: "contentType",
    type: "string",
    contexts: [C.PUBLISH, "will"],
    repeatable: false,
  },
  {
    id: 0x08,
    name: "responseTopic",
    type: "string",
    contexts: [C.PUBLISH, "will"],
    repeatable: false,
  },
  {
    id: 0x09,
    name: "correlationData",
    type: "binary",
    contexts: [C.PUBLISH, "will"],
    repeatable: false,
  },
  {
    id: 0x0b,
    name: "subscriptionIdentifier",
    type: "varint",
    contexts: [C.PUBLISH, C.SUBSCRIBE],
    // Repeatable in PUBLISH only; the decoder checks SUBSCRIBE separately.
    repeatable: true,
  },
  {
    id: 0x11,
    name: "sessionExpiryInterval",
    type: "u32",
    contexts: [C.CONNECT, C.CONNACK, C.DISCONNECT],
    repeatable: false,
  },
  {
    id: 0x12,
    name: "assignedClientIdentifier",
    type: "string",
    contexts: [C.CONNACK],
    repeatable: false,
  },
  { id: 0x13, name: "serverKeepAlive", type: "u16", contexts: [C.CONNACK], repeatable: false },
  {
    id: 0x15,
    name: "authenticationMethod",
    type: "string",
    contexts: [C.CONNECT, C.CONNACK, C.AUTH],
    repeatable: false,
  },
  {
    id: 0x16,
    name: "authenticationData",
    type: "binary",
    contexts: [C.CONNECT, C.CONNACK, C.AUTH],
    repeatable: false,
  },
  {
    id: 0x17,
    name: "requestProblemInformation",
    type: "byte",
    contexts: [C.CONNECT],
    repeatable: false,
  },
  { id: 0x18, name: "willDelayInterval", type: "u32", contexts: ["will"], repeatable: false },
  {
    id: 0x19,
    name: "requestResponseInformation",
    type: "byte",
    contexts: [C.CONNECT],
    repeatable: false,
  },
  {
    id: 0x1a,
    name: "responseInformation",
    type: "string",
    contexts: [C.CONNACK],
    repeatable: false,
  },
  {
    id: 0x1c,
    name: "serverReference",
    type: "string",
    contexts: [C.CONNACK, C.DISCONNECT],
    repeatable: false,
  },
  {
    id: 0x1f,
    name: "reasonString",
    type: "string",
    contexts: [
      C.CONNACK,
      C.PUBACK,
      C.PUBREC,
      C.PUBREL,
      C.PUBCOMP,
      C.SUBACK,
      C.UNSUBACK,
      C.DISCONNECT,
      C.AUTH,
    ],
    repeatable: false,
  },
  {
    id: 0x21,
    name: "receiveMaximum",
    type: "u16",
    contexts: [C.CONNECT, C.CONNACK],
    repeatable: false,
  },
  {
    id: 0x22,
    name: "topicAliasMaximum",
    type: "u16",
    contexts: [C.CONNECT, C.CONNACK],
    repeatable: false,
  },
  { id: 0x23, name: "topicAlias", type: "u16", contexts: [C.PUBLISH], repeatable: false },
  { id: 0x24, name: "maximumQoS", type: "byte", contexts: [C.CONNACK], repeatable: false },
  { id: 0x25, name: "retainAvailable", type: "byte", contexts: [C.CONNACK], repeatable: false },
  {
    id: 0x26,
    name: "userProperties",
    type: "pair",
    contexts: [
      C.CONNECT,
      C.CONNACK,
      C.PUBLISH,
      "will",
      C.PUBACK,
      C.PUBREC,
      C.PUBREL,
      C.PUBCOMP,
      C.SUBSCRIBE,
      C.SUBACK,
      C.UNSUBSCRIBE,
      C.UNSUBACK,
      C.DISCONNECT,
      C.AUTH,
    ],
    repeatable: true,
  },
  {
    id: 0x27,
    name: "maximumPacketSize",
    type: "u32",
    contexts: [C.CONNECT, C.CONNACK],
    repeatable: false,
  },
  {
    id: 0x28,
    name: "wildcardSubscriptionAvailable",
    type: "byte",
    contexts: [C.CONNACK],
    repeatable: false,
  },
  {
    id: 0x29,
    name: "subscriptionIdentifiersAvailable",
    type: "byte",
    contexts: [C.CONNACK],
    repeatable: false,
  },
  {
    id: 0x2a,
    name: "sharedSubscriptionAvailable",
    type: "byte",
    contexts: [C.CONNACK],
    repeatable: false,
  },
];

/**
 * Which packets may carry each MQTT 5.0 reason code (§2.4), keyed by code. A code may mean
 * different things in different packets (0x00 is Success, Normal disconnection or Granted QoS 0).
 */
export const REASON_CODE_PACKETS: Readonly<Record<number, readonly PacketTypeNumber[]>> = {
  0x00: [
    C.CONNACK,
    C.PUBACK,
    C.PUBREC,
    C.PUBREL,
    C.PUBCOMP,
    C.SUBACK,
    C.UNSUBACK,
    C.DISCONNECT,
    C.AUTH,
  ],
  0x01: [C.SUBACK],
  0x02: [C.SUBACK],
  0x04: [C.DISCONNECT],
  0x10: [C.PUBACK, C.PUBREC],
  0x11: [C.UNSUBACK],
  0x18: [C.AUTH],
  0x19: [C.AUTH],
  0x80: [C.CONNACK, C.PUBACK, C.PUBREC, C.SUBACK, C.UNSUBACK, C.DISCONNECT],
  0x81: [C.CONNACK, C.DISCONNECT],
  0x82: [C.CONNACK, C.DISCONNECT],
  0x83: [C.CONNACK, C.PUBACK, C.PUBREC, C.SUBACK, C.UNSUBACK, C.DISCONNECT],
  0x84: [C.CONNACK],
  0x85: [C.CONNACK],
  0x86: [C.CONNACK],
  0x87: [C.CONNACK, C.PUBACK, C.PUBREC, C.SUBACK, C.UNSUBACK, C.DISCONNECT],
  0x88: [C.CONNACK],
  0x89: [C.CONNACK, C.DISCONNECT],
  0x8a: [C.CONNACK],
  0x8b: [C.DISCONNECT],
  0x8c: [C.CONNACK, C.DISCONNECT],
  0x8d: [C.DISCONNECT],
  0x8e: [C.DISCONNECT],
  0x8f: [C.SUBACK, C.UNSUBACK, C.DISCONNECT],
  0x90: [C.CONNACK, C.PUBACK, C.PUBREC, C.DISCONNECT],
  0x91: [C.PUBACK, C.PUBREC, C.SUBACK, C.UNSUBACK],
  0x92: [C.PUBREL, C.PUBCOMP],
  0x93: [C.DISCONNECT],
  0x94: [C.DISCONNECT],
  0x95: [C.CONNACK, C.DISCONNECT],
  0x96: [C.DISCONNECT],
  0x97: [C.CONNACK, C.PUBACK, C.PUBREC, C.SUBACK, C.DISCONNECT],
  0x98: [C.DISCONNECT],
  0x99: [C.CONNACK, C.PUBACK, C.PUBREC, C.DISCONNECT],
  0x9a: [C.CONNACK, C.DISCONNECT],
  0x9b: [C.CONNACK, C.DISCONNECT],
  0x9c: [C.CONNACK, C.DISCONNECT],
  0x9d: [C.CONNACK, C.DISCONNECT],
  0x9e: [C.SUBACK, C.DISCONNECT],
  0x9f: [C.CONNACK, C.DISCONNECT],
  0xa0: [C.DISCONNECT],
  0xa1: [C.SUBACK, C.DISCONNECT],
  0xa2: [C.SUBACK, C.DISCONNECT],
};

/** The largest remaining length a fixed header can carry (4-byte variable byte integer, §1.5.5). */
export const MAX_REMAINING_LENGTH = 268_435_455;

/** The largest MQTT packet: 1 type byte, 4 remaining-length bytes and the largest body. */
export const MAX_PACKET_SIZE: number = 1 + 4 + MAX_REMAINING_LENGTH;
