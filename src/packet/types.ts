/**
 * The MQTT packet model shared by the codec, the session core, the broker and the client.
 *
 * Packets are a discriminated union on `type` (a {@linkcode PacketType} number). Fields that only
 * exist in MQTT 5.0 (`properties`, reason codes on acknowledgements, subscription options) are
 * optional; encoding at level 3 or 4 ignores them.
 *
 * @module
 */

import type { PacketType, ProtocolVersion, QoS } from "./constants.ts";

/** A user property: a name/value pair. Order is kept and names may repeat (MQTT 5.0 §3.1.2.11.8). */
export type UserProperty = [name: string, value: string];

/**
 * MQTT 5.0 properties, by name. Each packet may carry only some of them; the codec rejects the
 * others (a Malformed Packet, MQTT 5.0 §2.2.2.2).
 */
export interface Properties {
  /** 0 unspecified bytes, 1 UTF-8 payload (0x01). */
  payloadFormatIndicator?: number;
  /** Lifetime of the message in seconds (0x02). */
  messageExpiryInterval?: number;
  /** MIME type of the payload (0x03). */
  contentType?: string;
  /** Topic name for a response message (0x08). */
  responseTopic?: string;
  /** Lets a requester match a response to its request (0x09). */
  correlationData?: Uint8Array;
  /** Repeatable in PUBLISH (one per matching subscription); a single value in SUBSCRIBE. */
  subscriptionIdentifier?: number[];
  /** Seconds the session outlives the connection (0x11). */
  sessionExpiryInterval?: number;
  /** Client id the server assigned when the CONNECT had none (0x12). */
  assignedClientIdentifier?: string;
  /** Keep alive the server requires, overriding the client's (0x13). */
  serverKeepAlive?: number;
  /** Name of the enhanced authentication method (0x15). */
  authenticationMethod?: string;
  /** Data of the enhanced authentication exchange (0x16). */
  authenticationData?: Uint8Array;
  /** 0: the server may not send reason strings or user properties on failures (0x17). */
  requestProblemInformation?: number;
  /** Seconds to wait before publishing the will (0x18). */
  willDelayInterval?: number;
  /** 1: the client asks for response information in CONNACK (0x19). */
  requestResponseInformation?: number;
  /** Basis for the client's response topics (0x1A). */
  responseInformation?: string;
  /** Another server the client may use (0x1C). */
  serverReference?: string;
  /** Human-readable diagnostic text (0x1F). */
  reasonString?: string;
  /** QoS 1 and 2 messages the sender will process at once (0x21). */
  receiveMaximum?: number;
  /** Highest topic alias the sender accepts (0x22). */
  topicAliasMaximum?: number;
  /** Number standing in for the topic name (0x23). */
  topicAlias?: number;
  /** Highest QoS the server supports: 0 or 1; absent means 2 (0x24). */
  maximumQoS?: number;
  /** 0 if the server does not support retained messages (0x25). */
  retainAvailable?: number;
  /** Name/value pairs, in order; names may repeat (0x26). */
  userProperties?: UserProperty[];
  /** Largest packet the sender accepts, in bytes (0x27). */
  maximumPacketSize?: number;
  /** 0 if the server does not support wildcard subscriptions (0x28). */
  wildcardSubscriptionAvailable?: number;
  /** 0 if the server does not support subscription identifiers (0x29). */
  subscriptionIdentifiersAvailable?: number;
  /** 0 if the server does not support shared subscriptions (0x2A). */
  sharedSubscriptionAvailable?: number;
}

/** The will message carried in CONNECT. */
export interface Will {
  /** The topic name (or topic filter in a subscription). */
  topic: string;
  /** The application message. */
  payload: Uint8Array;
  /** Quality of service. */
  qos: QoS;
  /** Whether the message is retained. */
  retain: boolean;
  /** Will properties (MQTT 5.0 only). */
  properties?: Properties;
}

/** CONNECT (client to server). */
export interface ConnectPacket {
  /** The packet type number. */
  type: typeof PacketType.CONNECT;
  /** `"MQTT"` for levels 4 and 5, `"MQIsdp"` for level 3. */
  protocolName: string;
  /** Protocol level: 3, 4 or 5. */
  protocolVersion: ProtocolVersion;
  /** Clean session (3.1, 3.1.1) or clean start (5.0). */
  clean: boolean;
  /** Seconds; 0 turns keepalive off. */
  keepAlive: number;
  /** Client identifier (may be empty). */
  clientId: string;
  /** The will message, if the will flag is set. */
  will?: Will;
  /** User name, if the user name flag is set. */
  username?: string;
  /** Password, if the password flag is set. */
  password?: Uint8Array;
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** CONNACK (server to client). */
export interface ConnackPacket {
  /** The packet type number. */
  type: typeof PacketType.CONNACK;
  /** Whether the server resumed a stored session (always false at level 3). */
  sessionPresent: boolean;
  /** The return code (3.1, 3.1.1) or reason code (5.0). */
  reasonCode: number;
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** PUBLISH (both ways). */
export interface PublishPacket {
  /** The packet type number. */
  type: typeof PacketType.PUBLISH;
  /** The topic name (or topic filter in a subscription). */
  topic: string;
  /** The application message. */
  payload: Uint8Array;
  /** Quality of service. */
  qos: QoS;
  /** Whether the message is retained. */
  retain: boolean;
  /** Whether this is a redelivery (never set at QoS 0). */
  dup: boolean;
  /** Present if and only if `qos > 0` [MQTT-2.3.1-5]. */
  packetId?: number;
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** PUBACK, PUBREC, PUBREL or PUBCOMP: the QoS 1 and QoS 2 acknowledgements. */
export interface AckPacket {
  /** The packet type number. */
  type:
    | typeof PacketType.PUBACK
    | typeof PacketType.PUBREC
    | typeof PacketType.PUBREL
    | typeof PacketType.PUBCOMP;
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0 only; absent means success (0x00). */
  reasonCode?: number;
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** One topic filter in a SUBSCRIBE, with its options. */
export interface Subscription {
  /** The topic name (or topic filter in a subscription). */
  topic: string;
  /** Quality of service. */
  qos: QoS;
  /** MQTT 5.0 subscription options. */
  noLocal?: boolean;
  /** Keep the retain flag as published when forwarding. */
  retainAsPublished?: boolean;
  /** 0 send retained messages, 1 only for a new subscription, 2 never. */
  retainHandling?: 0 | 1 | 2;
}

/** SUBSCRIBE (client to server). */
export interface SubscribePacket {
  /** The packet type number. */
  type: typeof PacketType.SUBSCRIBE;
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** Topic filters with their options, at least one. */
  subscriptions: Subscription[];
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** SUBACK (server to client): one granted QoS or failure code per filter, in order. */
export interface SubackPacket {
  /** The packet type number. */
  type: typeof PacketType.SUBACK;
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** 0, 1, 2 granted; 0x80 failure (3.1.1) or a 5.0 reason code >= 0x80. */
  reasonCodes: number[];
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** UNSUBSCRIBE (client to server). */
export interface UnsubscribePacket {
  /** The packet type number. */
  type: typeof PacketType.UNSUBSCRIBE;
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** Topic filters, at least one. */
  topics: string[];
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** UNSUBACK (server to client). */
export interface UnsubackPacket {
  /** The packet type number. */
  type: typeof PacketType.UNSUBACK;
  /** Packet identifier, 1..65535. */
  packetId: number;
  /** MQTT 5.0 only: one reason code per filter. */
  reasonCodes?: number[];
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** PINGREQ or PINGRESP. */
export interface PingPacket {
  /** The packet type number. */
  type: typeof PacketType.PINGREQ | typeof PacketType.PINGRESP;
}

/** DISCONNECT (client to server; both ways in 5.0). */
export interface DisconnectPacket {
  /** The packet type number. */
  type: typeof PacketType.DISCONNECT;
  /** MQTT 5.0 only; absent means normal disconnection (0x00). */
  reasonCode?: number;
  /** MQTT 5.0 properties (absent when there are none). */
  properties?: Properties;
}

/** AUTH (MQTT 5.0 only). */
export interface AuthPacket {
  /** The packet type number. */
  type: typeof PacketType.AUTH;
  /** Absent means success (0x00). */
  reasonCode?: number;
  /**
   * Properties; they must include `authenticationMethod` unless the AUTH is empty (Success with
   * no properties), §3.15.2.2.2.
   */
  properties?: Properties;
}

/** Any MQTT control packet. */
export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | AckPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingPacket
  | DisconnectPacket
  | AuthPacket;
