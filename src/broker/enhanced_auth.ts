/**
 * MQTT 5.0 enhanced authentication (§4.12) as the core runs it: the state of one connection's
 * exchange, the plugin's answer as a {@linkcode Decision}, and the AUTH packets the server sends.
 * The core asks the plugin once per step (an `ask` action of kind `"enhanced"`) and answers the
 * client with AUTH 0x18 (continue), CONNACK or AUTH 0x00 (success), or a refusal.
 *
 * @module
 */

import { ReasonCode } from "../packet/constants.ts";
import { PacketType } from "../packet/constants.ts";
import type { AuthPacket, ConnectPacket, Properties } from "../packet/types.ts";
import type { ClientInfo, EnhancedAuthAnswer } from "../plugins/types.ts";
import type { Decision } from "./decision.ts";

/** One connection's enhanced authentication: its method, and the exchange in progress if any. */
export interface EnhancedAuthState {
  /** The CONNECT's Authentication Method: every AUTH must carry it [MQTT-4.12.0-5]. */
  readonly method: string;
  /** The CONNECT, kept until the exchange at CONNECT ends (then the login goes on with it). */
  connect: ConnectPacket | undefined;
  /** The client as the plugin sees it. */
  client: ClientInfo;
  /** The step the plugin gets next. */
  step: number;
  /** True while the server waits for the client's AUTH 0x18. */
  awaiting: boolean;
  /** True while a re-authentication (AUTH 0x19 after CONNACK) runs. */
  reauthenticating: boolean;
  /** What the plugin keeps between steps. */
  state: unknown;
  /** The Authentication Data of the successful end, for the CONNACK. */
  data: Uint8Array | undefined;
}

/**
 * The state of an exchange that a CONNECT with an Authentication Method starts.
 *
 * @param method the CONNECT's Authentication Method
 * @param connect the CONNECT
 * @param client the client as the plugin sees it
 * @returns the state, at step 0
 */
export function enhancedAuth(
  method: string,
  connect: ConnectPacket,
  client: ClientInfo,
): EnhancedAuthState {
  return {
    method,
    connect,
    client,
    step: 0,
    awaiting: false,
    reauthenticating: false,
    state: undefined,
    data: undefined,
  };
}

const NO_PLUGIN: Decision = {
  allowed: false,
  reasonCode: ReasonCode.NOT_AUTHORIZED,
  reasonString: "enhanced authentication refused",
};

/**
 * The {@linkcode Decision} a plugin's answer to one step stands for: `continue` and `success`
 * allow (with `authentication` saying which), `refuse` refuses with its reason code, and no
 * answer refuses with 0x87.
 *
 * @param answer the plugin's answer
 * @returns the decision
 */
export function enhancedDecision(answer: EnhancedAuthAnswer | undefined): Decision {
  if (answer === undefined || answer === null) return NO_PLUGIN;
  if ("continue" in answer) {
    return {
      allowed: true,
      authentication: { continue: true, data: answer.continue, state: answer.state },
      // A diagnostic for the AUTH 0x18 [MQTT-3.15.2-2] [MQTT-3.15.2-3].
      reasonString: answer.reasonString,
      userProperties: answer.userProperties,
    };
  }
  if ("success" in answer) {
    return { allowed: true, authentication: { continue: false, data: answer.data } };
  }
  return {
    allowed: false,
    reasonCode: answer.refuse,
    reasonString: answer.reasonString ?? "enhanced authentication refused",
    userProperties: answer.userProperties,
  };
}

/**
 * The Authentication Method and Data for a server packet of the exchange.
 *
 * @param method the method
 * @param data the data, if any
 * @returns the properties
 */
export function authProperties(method: string, data: Uint8Array | undefined): Properties {
  return data === undefined
    ? { authenticationMethod: method }
    : { authenticationMethod: method, authenticationData: data };
}

/**
 * A server AUTH: 0x18 asks for more data [MQTT-4.12.0-2], 0x00 ends a re-authentication; it
 * carries the connection's method [MQTT-4.12.0-5].
 *
 * @param code the reason code
 * @param method the method
 * @param data the plugin's data, if any
 * @returns the packet
 */
export function serverAuth(code: number, method: string, data: Uint8Array | undefined): AuthPacket {
  return { type: PacketType.AUTH, reasonCode: code, properties: authProperties(method, data) };
}
