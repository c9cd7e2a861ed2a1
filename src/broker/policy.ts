/**
 * What the broker core asks of its surroundings: authentication and authorization decisions, an
 * event sink and a logger. The plugin host implements the policy; the `Broker` class implements the
 * events.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Properties, PublishPacket, UserProperty } from "../packet/types.ts";
import type {
  ClientInfo,
  EnhancedAuthAnswer,
  EnhancedAuthRequest,
  Logger,
} from "../plugins/types.ts";
import type { ConnectionInfo } from "../transport/types.ts";
import type { BrokerMessage } from "./message.ts";

export type { ClientInfo, Logger };

/** Milliseconds a plugin hook may take before its decision is a refusal (`hookTimeout`). */
export const DEFAULT_HOOK_TIMEOUT = 10_000;

/**
 * A plugin's refusal with what to tell a 5.0 client (a plugin's `{ refuse, reasonString,
 * userProperties }`, as the core's `Decision` reads it).
 */
export interface Refused {
  /** Always false: a refusal. */
  readonly allowed: false;
  /** The MQTT 5.0 reason code the plugin gave. */
  readonly reasonCode: number;
  /** The plugin's Reason String, for the client and the log. */
  readonly reasonString?: string;
  /** The plugin's User Properties, for the client. */
  readonly userProperties?: UserProperty[];
}

/**
 * The answer to a CONNECT's credentials; `"unavailable"` when they were not checked, a
 * {@linkcode Refused} for a refusal that says why.
 */
export type AuthDecision = boolean | "unavailable" | Refused;

/** The answer about a topic: allowed or not, or a {@linkcode Refused} that says why. */
export type TopicDecision = boolean | Refused;

/** Authentication and authorization, as combined over all plugins. */
export interface PolicyHost {
  /** True when some plugin can refuse a PUBLISH; false lets the hot path skip the check. */
  readonly hasPublishHooks: boolean;
  /** True when some plugin can refuse a SUBSCRIBE. */
  readonly hasSubscribeHooks: boolean;
  /** True when some plugin can refuse a delivery (aMQTT's receive ACL). */
  readonly hasReceiveHooks: boolean;
  /** `"unavailable"`: the login was not checked (a plugin was too busy to check it). */
  authenticate(client: ClientInfo): AuthDecision | Promise<AuthDecision>;
  authorizePublish(
    client: ClientInfo,
    topic: string,
    qos: QoS,
    retain: boolean,
    properties?: Properties,
  ): TopicDecision | Promise<TopicDecision>;
  authorizeSubscribe(
    client: ClientInfo,
    topic: string,
    qos: QoS,
  ): TopicDecision | Promise<TopicDecision>;
  authorizeReceive(client: ClientInfo, topic: string): TopicDecision | Promise<TopicDecision>;
  /** Whether some plugin runs the MQTT 5.0 Authentication Method (none when absent). */
  offersAuthenticationMethod?(method: string): boolean;
  /** One step of MQTT 5.0 enhanced authentication, by the plugin that runs its method. */
  authenticateEnhanced?(
    request: EnhancedAuthRequest,
  ): EnhancedAuthAnswer | undefined | Promise<EnhancedAuthAnswer | undefined>;
  /**
   * Brings a client's session here before it logs in (a cluster node loads it and claims its
   * client id, which makes the node that had it close its connection). Asked only once the
   * client's credentials (and its will) were accepted: a takeover is part of a successful
   * CONNECT [MQTT-3.1.4-3]. Its answer is not a login failure: the login budget was settled
   * before. A refusal (e.g. 0x89 server busy) refuses the CONNECT with its code. Absent on a
   * single broker: nothing is asked then. `progress`, when given, is called as the preparation
   * moves (a part of a long session read): its bound counts again from then.
   */
  prepareLogin?(
    client: ClientInfo,
    progress?: () => void,
  ): Refused | undefined | void | Promise<Refused | undefined | void>;
}

/** Things the core reports as they happen. Handlers must not throw. */
export interface BrokerEvents {
  clientConnected?(client: ClientInfo): void;
  clientDisconnected?(clientId: string, client: ClientInfo | undefined): void;
  subscribed?(clientId: string, topic: string, qos: QoS): void;
  unsubscribed?(clientId: string, topic: string): void;
  /** A PUBLISH arrived from a client, before any check. */
  publishReceived?(clientId: string, packet: PublishPacket): void;
  /** A client's message passed the checks and is being routed. */
  messageReceived?(clientId: string, message: BrokerMessage): void;
  retainedMessage?(message: BrokerMessage): void;
  /** A message of the host program, a plugin or a will (not a client's PUBLISH) is being routed. */
  published?(message: BrokerMessage): void;
  /**
   * A CONNECT was refused with `code` (the CONNACK return code, or a 5.0 client's reason code); `clientId` is
   * the one the client sent.
   */
  connectionRefused?(info: ConnectionInfo, clientId: string, code: number, reason: string): void;
}
