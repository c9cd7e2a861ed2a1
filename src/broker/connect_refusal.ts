/**
 * Why the broker refuses a CONNECT, and the code each protocol level answers it with: the 3.1.1
 * CONNACK return code (§3.2.2.3) or the MQTT 5.0 CONNACK reason code (§3.2.2.2). One table, so
 * that the core names the refusal and never picks a number per level itself.
 *
 * @module
 */

import { ConnackReturnCode, type ProtocolVersion, ReasonCode } from "../packet/constants.ts";

/** Why a CONNECT is refused. */
export type ConnectRefusal =
  /** The protocol level is not served (MQTT 3.1.1 return code 1, 5.0 0x84) [MQTT-3.1.2-2]. */
  | "unsupported_protocol_version"
  /** The client identifier is not allowed (empty without clean start under 3.1.1, too long). */
  | "client_id_invalid"
  /** The credentials were checked and are wrong. */
  | "bad_credentials"
  /** The client may not connect (no credentials where some are needed, a will topic denied…). */
  | "not_authorized"
  /**
   * The credentials were never checked: the source's failed-login budget is spent, or the
   * authentication backend is unavailable or timed out. "Server unavailable", never "bad user name
   * or password": the broker does not know.
   */
  | "login_unchecked"
  /** The broker is busy (shutting down, a resource it needs is exhausted for a while). */
  | "server_busy"
  /** A plugin banned this client. */
  | "banned"
  /** A quota is spent: `max_sessions` with every session connected, the memory budget. */
  | "quota_exceeded"
  /** MQTT 5.0 enhanced authentication with a method the broker does not offer. */
  | "bad_authentication_method"
  /** The CONNECT is larger than the broker accepts. */
  | "packet_too_large"
  /** The will says its payload is UTF-8 (Payload Format Indicator 1) and it is not. */
  | "payload_format_invalid"
  /** A retained will while the broker does not retain messages [MQTT-3.2.2-13]. */
  | "retain_not_supported"
  /** A will QoS above the broker's Maximum QoS [MQTT-3.2.2-12]. */
  | "qos_not_supported"
  /** The will topic is well formed but not taken (over 16383 characters). */
  | "topic_name_invalid"
  /** The CONNECT breaks the protocol (a property twice, Receive Maximum 0…). */
  | "protocol_error"
  /** The CONNECT cannot be decoded. */
  | "malformed";

/** The answer to one refusal at each level. */
interface Codes {
  /** The 3.1/3.1.1 return code; undefined: close the connection without CONNACK. */
  readonly v311: number | undefined;
  /** The MQTT 5.0 reason code. */
  readonly v5: number;
}

const CODES: Readonly<Record<ConnectRefusal, Codes>> = {
  unsupported_protocol_version: {
    v311: ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
    v5: ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
  },
  client_id_invalid: {
    v311: ConnackReturnCode.IDENTIFIER_REJECTED,
    v5: ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
  },
  bad_credentials: {
    v311: ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
    v5: ReasonCode.BAD_USER_NAME_OR_PASSWORD,
  },
  not_authorized: { v311: ConnackReturnCode.NOT_AUTHORIZED, v5: ReasonCode.NOT_AUTHORIZED },
  login_unchecked: {
    v311: ConnackReturnCode.SERVER_UNAVAILABLE,
    v5: ReasonCode.SERVER_UNAVAILABLE,
  },
  server_busy: { v311: ConnackReturnCode.SERVER_UNAVAILABLE, v5: ReasonCode.SERVER_BUSY },
  // 3.1.1 has no "banned": "not authorized" is the nearest it can say.
  banned: { v311: ConnackReturnCode.NOT_AUTHORIZED, v5: ReasonCode.BANNED },
  quota_exceeded: { v311: ConnackReturnCode.SERVER_UNAVAILABLE, v5: ReasonCode.QUOTA_EXCEEDED },
  bad_authentication_method: {
    v311: ConnackReturnCode.NOT_AUTHORIZED,
    v5: ReasonCode.BAD_AUTHENTICATION_METHOD,
  },
  // 3.1.1 answers a CONNECT it cannot take by closing the connection [MQTT-3.1.4-1].
  packet_too_large: { v311: undefined, v5: ReasonCode.PACKET_TOO_LARGE },
  payload_format_invalid: { v311: undefined, v5: ReasonCode.PAYLOAD_FORMAT_INVALID },
  retain_not_supported: { v311: undefined, v5: ReasonCode.RETAIN_NOT_SUPPORTED },
  qos_not_supported: { v311: undefined, v5: ReasonCode.QOS_NOT_SUPPORTED },
  // 3.1.1 has no return code for a will topic it does not take: the connection is closed.
  topic_name_invalid: { v311: undefined, v5: ReasonCode.TOPIC_NAME_INVALID },
  protocol_error: { v311: undefined, v5: ReasonCode.PROTOCOL_ERROR },
  malformed: { v311: undefined, v5: ReasonCode.MALFORMED_PACKET },
};

/**
 * The CONNACK code that refuses a CONNECT at a protocol level. Every MQTT 5.0 code is 0x80 or
 * above (a refusal) and one of the Connect Reason Codes [MQTT-3.2.2-8]; the connection is closed
 * after it [MQTT-3.2.2-7], and its Session Present is 0 [MQTT-3.2.2-6].
 *
 * @param refusal why the CONNECT is refused
 * @param protocolVersion the level of the CONNECT (3, 4 or 5)
 * @returns the return code or reason code, or undefined when a 3.1/3.1.1 client gets no CONNACK
 *   (the connection is closed)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectRefusalCode } from "./connect_refusal.ts";
 *
 * assert.equal(connectRefusalCode("login_unchecked", 4), 3);
 * assert.equal(connectRefusalCode("login_unchecked", 5), 0x88);
 * assert.equal(connectRefusalCode("quota_exceeded", 5), 0x97);
 * assert.equal(connectRefusalCode("malformed", 4), undefined);
 * ```
 */
export function connectRefusalCode(
  refusal: ConnectRefusal,
  protocolVersion: ProtocolVersion,
): number | undefined {
  const codes = CODES[refusal];
  return protocolVersion === 5 ? codes.v5 : codes.v311;
}

/** Every refusal, for tests and documentation. */
export const CONNECT_REFUSALS: readonly ConnectRefusal[] = Object.keys(CODES) as ConnectRefusal[];
