/**
 * The properties of the CONNACK that accepts an MQTT 5.0 client (§3.2.2.3), built from the
 * broker's limits and the client's CONNECT, plus the values the session then runs with (keep
 * alive, session expiry). Pure: the core calls it at CONNECT and sends what it returns.
 *
 * @module
 */

import { PacketType } from "../packet/constants.ts";
import type { ConnectPacket, Properties, UserProperty } from "../packet/types.ts";
import { withProblemInformation } from "./problem_information.ts";
import type { BrokerConfig } from "../config/broker_config.ts";

/** What the broker announces to 5.0 clients: its limits and the features it lacks. */
export interface ServerCapabilities {
  /** QoS 1/2 PUBLISH a client may have unacknowledged at once (`receive_maximum`), 1-65535. */
  receiveMaximum: number;
  /** The largest packet the broker accepts (`max_packet_size`), in bytes. */
  maximumPacketSize: number;
  /** Topic aliases a client may set (`topic_alias_maximum`), 0-65535. */
  topicAliasMaximum: number;
  /** Keep alive imposed on clients (`server_keep_alive`); undefined: each client's own. */
  serverKeepAlive?: number;
  /** The highest QoS the broker takes. @default {2} */
  maximumQoS?: 0 | 1 | 2;
  /** Whether the broker keeps retained messages. @default {true} */
  retainAvailable?: boolean;
  /** Whether filters may have wildcards. @default {true} */
  wildcardSubscriptionAvailable?: boolean;
  /** Whether subscriptions may have identifiers. @default {true} */
  subscriptionIdentifiersAvailable?: boolean;
  /** Whether `$share/` subscriptions are served. @default {true} */
  sharedSubscriptionAvailable?: boolean;
  /** The longest Session Expiry Interval granted, seconds; undefined: whatever the client asks. */
  maximumSessionExpiryInterval?: number;
  /** The Response Information given to clients that request it; undefined: none. */
  responseInformation?: string;
  /** Whether repeated topics go to clients as Topic Aliases (not announced). @default {false} */
  outboundTopicAliases?: boolean;
  /** Another server for clients to use (0x9C with a Server Reference); undefined: none. */
  serverReference?: string;
}

/**
 * The capabilities a broker configuration announces: its 5.0 limit keys, `max_packet_size`, and
 * `session_expiry_interval` as the longest Session Expiry Interval granted (`never`: no cap),
 * `maximum_qos` and `retain_available`.
 *
 * @param config the resolved configuration
 * @returns the capabilities for {@linkcode connackProperties}
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveBrokerConfig } from "../config/mod.ts";
 * import { serverCapabilities } from "./connack_properties.ts";
 *
 * const caps = serverCapabilities(resolveBrokerConfig({ topic_alias_maximum: 5 }));
 * assert.equal(caps.topicAliasMaximum, 5);
 * assert.equal(caps.maximumSessionExpiryInterval, 259200);
 * ```
 */
export function serverCapabilities(
  config: Pick<
    BrokerConfig,
    | "receiveMaximum"
    | "maxPacketSize"
    | "topicAliasMaximum"
    | "serverKeepAlive"
    | "sessionExpiryInterval"
    | "outboundTopicAliases"
    | "maximumQos"
    | "retainAvailable"
    | "serverReference"
    | "wildcardSubscriptionAvailable"
    | "subscriptionIdentifiersAvailable"
    | "sharedSubscriptionAvailable"
  >,
): ServerCapabilities {
  const caps: ServerCapabilities = {
    receiveMaximum: config.receiveMaximum,
    maximumPacketSize: config.maxPacketSize,
    topicAliasMaximum: config.topicAliasMaximum,
  };
  if (config.serverKeepAlive !== undefined) caps.serverKeepAlive = config.serverKeepAlive;
  if (config.outboundTopicAliases) caps.outboundTopicAliases = true;
  if (config.maximumQos < 2) caps.maximumQoS = config.maximumQos;
  if (!config.retainAvailable) caps.retainAvailable = false;
  if (config.serverReference !== undefined) caps.serverReference = config.serverReference;
  if (!config.wildcardSubscriptionAvailable) caps.wildcardSubscriptionAvailable = false;
  if (!config.subscriptionIdentifiersAvailable) caps.subscriptionIdentifiersAvailable = false;
  if (!config.sharedSubscriptionAvailable) caps.sharedSubscriptionAvailable = false;
  if (config.sessionExpiryInterval !== undefined) {
    caps.maximumSessionExpiryInterval = config.sessionExpiryInterval;
  }
  return caps;
}

/** What the broker decided for this connection, beyond its standing limits. */
export interface ConnackDetails {
  /** The identifier assigned to a client that sent an empty one [MQTT-3.2.2-16]. */
  assignedClientIdentifier?: string;
  /** A diagnostic for the client; dropped when it would make the CONNACK too large. */
  reasonString?: string;
  /** User Properties for the client; dropped when they would make the CONNACK too large. */
  userProperties?: UserProperty[];
}

/** The largest Session Expiry Interval: 0xFFFFFFFF, a session that never expires. */
export const SESSION_NEVER_EXPIRES = 0xffff_ffff;
const PACKET_SIZE_LIMIT = 268_435_460;

/**
 * The Session Expiry Interval the session runs with: the client's (0 when absent: the session
 * ends with the connection), capped by the broker's maximum.
 *
 * @param server the broker's capabilities
 * @param connect the client's CONNECT
 * @returns seconds; {@linkcode SESSION_NEVER_EXPIRES} for never
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sessionExpiryFor } from "./connack_properties.ts";
 *
 * const server = { receiveMaximum: 10, maximumPacketSize: 1024, topicAliasMaximum: 0 };
 * const connect = { properties: { sessionExpiryInterval: 7200 } };
 * assert.equal(sessionExpiryFor(server, connect), 7200);
 * assert.equal(sessionExpiryFor({ ...server, maximumSessionExpiryInterval: 3600 }, connect), 3600);
 * assert.equal(sessionExpiryFor(server, {}), 0);
 * ```
 */
export function sessionExpiryFor(
  server: ServerCapabilities,
  connect: Pick<ConnectPacket, "properties">,
): number {
  const asked = connect.properties?.sessionExpiryInterval ?? 0;
  const max = server.maximumSessionExpiryInterval;
  return max !== undefined && asked > max ? max : asked;
}

/**
 * The keep alive the connection runs with: the broker's Server Keep Alive when it sets one,
 * else the client's [MQTT-3.2.2-22].
 *
 * @param server the broker's capabilities
 * @param connect the client's CONNECT
 * @returns seconds, 0 for none
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keepAliveFor } from "./connack_properties.ts";
 *
 * const server = { receiveMaximum: 10, maximumPacketSize: 1024, topicAliasMaximum: 0 };
 * assert.equal(keepAliveFor(server, { keepAlive: 60 }), 60);
 * assert.equal(keepAliveFor({ ...server, serverKeepAlive: 30 }, { keepAlive: 60 }), 30);
 * ```
 */
export function keepAliveFor(
  server: ServerCapabilities,
  connect: Pick<ConnectPacket, "keepAlive">,
): number {
  return server.serverKeepAlive ?? connect.keepAlive;
}

/**
 * The properties of the CONNACK accepting a 5.0 client. A property whose absence already says
 * the same (Receive Maximum 65535, Maximum QoS 2, a feature available, Topic Alias Maximum 0) is
 * left out.
 *
 * @param server the broker's capabilities
 * @param connect the client's CONNECT
 * @param details the assigned client identifier, a reason string and user properties
 * @returns the properties, or undefined when there are none
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connackProperties } from "./connack_properties.ts";
 *
 * const server = { receiveMaximum: 100, maximumPacketSize: 65536, topicAliasMaximum: 10 };
 * const connect = { clientId: "", keepAlive: 60, properties: { sessionExpiryInterval: 300 } };
 * assert.deepEqual(connackProperties(server, connect, { assignedClientIdentifier: "auto-1" }), {
 *   assignedClientIdentifier: "auto-1",
 *   receiveMaximum: 100,
 *   maximumPacketSize: 65536,
 *   topicAliasMaximum: 10,
 * });
 * ```
 */
export function connackProperties(
  server: ServerCapabilities,
  connect: Pick<ConnectPacket, "clientId" | "keepAlive" | "properties">,
  details: ConnackDetails = {},
): Properties | undefined {
  const p: Properties = {};
  const asked = connect.properties?.sessionExpiryInterval ?? 0;
  const granted = sessionExpiryFor(server, connect);
  // The broker tells the client when it uses another interval than the one asked for.
  if (granted !== asked) p.sessionExpiryInterval = granted;
  // [MQTT-3.2.2-16]: an empty ClientID gets the identifier the broker assigned.
  if (details.assignedClientIdentifier !== undefined) {
    p.assignedClientIdentifier = details.assignedClientIdentifier;
  }
  // The client must use the Server Keep Alive instead of its own [MQTT-3.2.2-21].
  if (server.serverKeepAlive !== undefined) p.serverKeepAlive = server.serverKeepAlive;
  if (server.receiveMaximum !== 65535) p.receiveMaximum = server.receiveMaximum;
  // [MQTT-3.2.2-9]: a broker without QoS 2 (or 1) says so.
  const maxQos = server.maximumQoS ?? 2;
  if (maxQos < 2) p.maximumQoS = maxQos;
  if (server.retainAvailable === false) p.retainAvailable = 0;
  if (server.maximumPacketSize < PACKET_SIZE_LIMIT) p.maximumPacketSize = server.maximumPacketSize;
  if (server.topicAliasMaximum > 0) p.topicAliasMaximum = server.topicAliasMaximum;
  if (server.wildcardSubscriptionAvailable === false) p.wildcardSubscriptionAvailable = 0;
  if (server.subscriptionIdentifiersAvailable === false) p.subscriptionIdentifiersAvailable = 0;
  if (server.sharedSubscriptionAvailable === false) p.sharedSubscriptionAvailable = 0;
  // [MQTT-3.1.2-28]: Response Information only to a client that asked for it.
  if (connect.properties?.requestResponseInformation === 1 && server.responseInformation) {
    p.responseInformation = server.responseInformation;
  }
  // Reason String and User Properties may go on a CONNACK whatever Request Problem Information
  // says [MQTT-3.1.2-29], but never push it past the client's Maximum Packet Size
  // [MQTT-3.2.2-19] [MQTT-3.2.2-20].
  const connack = withProblemInformation(
    { type: PacketType.CONNACK, sessionPresent: false, reasonCode: 0, properties: p },
    details,
    { maximumPacketSize: connect.properties?.maximumPacketSize },
  );
  const properties = connack.properties!;
  return Object.keys(properties).length === 0 ? undefined : properties;
}
