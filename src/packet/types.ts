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
 * others [MQTT-2.2.2-1].
 */
export interface Properties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  /** Repeatable in PUBLISH (one per matching subscription); a single value in SUBSCRIBE. */
  subscriptionIdentifier?: number[];
  sessionExpiryInterval?: number;
  assignedClientIdentifier?: string;
  serverKeepAlive?: number;
  authenticationMethod?: string;
  authenticationData?: Uint8Array;
  requestProblemInformation?: number;
  willDelayInterval?: number;
  requestResponseInformation?: number;
  responseInformation?: string;
  serverReference?: string;
  reasonString?: string;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  topicAlias?: number;
  maximumQoS?: number;
  retainAvailable?: number;
  userProperties?: UserProperty[];
  maximumPacketSize?: number;
  wildcardSubscriptionAvailable?: number;
  subscriptionIdentifiersAvailable?: number;
  sharedSubscriptionAvailable?: number;
}

/** The will message carried in CONNECT. */
export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** Will properties (MQTT 5.0 only). */
  properties?: Properties;
}

/** CONNECT (client to server). */
export interface ConnectPacket {
  type: typeof PacketType.CONNECT;
  /** `"MQTT"` for levels 4 and 5, `"MQIsdp"` for level 3. */
  protocolName: string;
  protocolVersion: ProtocolVersion;
  /** Clean session (3.1, 3.1.1) or clean start (5.0). */
  clean: boolean;
  /** Seconds; 0 turns keepalive off. */
  keepAlive: number;
  clientId: string;
  will?: Will;
  username?: string;
  password?: Uint8Array;
  properties?: Properties;
}

/** CONNACK (server to client). */
export interface ConnackPacket {
  type: typeof PacketType.CONNACK;
  sessionPresent: boolean;
  /** The return code (3.1, 3.1.1) or reason code (5.0). */
  reasonCode: number;
  properties?: Properties;
}

/** PUBLISH (both ways). */
export interface PublishPacket {
  type: typeof PacketType.PUBLISH;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Present if and only if `qos > 0` [MQTT-2.3.1-5]. */
  packetId?: number;
  properties?: Properties;
}

/** PUBACK, PUBREC, PUBREL or PUBCOMP: the QoS 1 and QoS 2 acknowledgements. */
export interface AckPacket {
  type:
    | typeof PacketType.PUBACK
    | typeof PacketType.PUBREC
    | typeof PacketType.PUBREL
    | typeof PacketType.PUBCOMP;
  packetId: number;
  /** MQTT 5.0 only; absent means success (0x00). */
  reasonCode?: number;
  properties?: Properties;
}

/** One topic filter in a SUBSCRIBE, with its options. */
export interface Subscription {
  topic: string;
  qos: QoS;
  /** MQTT 5.0 subscription options. */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
}

/** SUBSCRIBE (client to server). */
export interface SubscribePacket {
  type: typeof PacketType.SUBSCRIBE;
  packetId: number;
  subscriptions: Subscription[];
  properties?: Properties;
}

/** SUBACK (server to client): one granted QoS or failure code per filter, in order. */
export interface SubackPacket {
  type: typeof PacketType.SUBACK;
  packetId: number;
  /** 0, 1, 2 granted; 0x80 failure (3.1.1) or a 5.0 reason code >= 0x80. */
  reasonCodes: number[];
  properties?: Properties;
}

/** UNSUBSCRIBE (client to server). */
export interface UnsubscribePacket {
  type: typeof PacketType.UNSUBSCRIBE;
  packetId: number;
  topics: string[];
  properties?: Properties;
}

/** UNSUBACK (server to client). */
export interface UnsubackPacket {
  type: typeof PacketType.UNSUBACK;
  packetId: number;
  /** MQTT 5.0 only: one reason code per filter. */
  reasonCodes?: number[];
  properties?: Properties;
}

/** PINGREQ or PINGRESP. */
export interface PingPacket {
  type: typeof PacketType.PINGREQ | typeof PacketType.PINGRESP;
}

/** DISCONNECT (client to server; both ways in 5.0). */
export interface DisconnectPacket {
  type: typeof PacketType.DISCONNECT;
  /** MQTT 5.0 only; absent means normal disconnection (0x00). */
  reasonCode?: number;
  properties?: Properties;
}

/** AUTH (MQTT 5.0 only). */
export interface AuthPacket {
  type: typeof PacketType.AUTH;
  /** Absent means success (0x00). */
  reasonCode?: number;
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
