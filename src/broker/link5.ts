/**
 * What the core keeps for a connection at MQTT 5.0 beyond a 3.1.1 link: the client's limits from
 * its CONNECT (Maximum Packet Size, Request Problem Information), the topic aliases it set
 * ([MQTT-3.3.2-10]: they belong to this connection), the QoS 1/2 PUBLISH it has unacknowledged
 * against our Receive Maximum, and the Session Expiry Interval its CONNECT gave (a DISCONNECT may
 * not turn 0 into something else [MQTT-3.14.2-2]). A 3.1.1 link has none of this: `LinkState.v5`
 * is undefined and its paths pay nothing for 5.0.
 *
 * @module
 */

import type { ConnectPacket, UserProperty } from "../packet/types.ts";
import { InboundTopicAliases, OutboundTopicAliases } from "../session/topic_aliases.ts";
import type { ServerCapabilities } from "./connack_properties.ts";
import type { ClientReceiveLimits } from "./problem_information.ts";
import { ReceiveQuota } from "./receive_quota.ts";

/** The MQTT 5.0 state of one connection. */
export class Link5 {
  /** What the client accepts: problem information, maximum packet size. */
  readonly limits: ClientReceiveLimits;
  /** The topic aliases the client mapped on this connection. */
  readonly aliases: InboundTopicAliases;
  /** Its QoS 1/2 PUBLISH not yet acknowledged, against our Receive Maximum. */
  readonly quota: ReceiveQuota;
  /** The Session Expiry Interval of the CONNECT, seconds (0 when absent). */
  readonly connectExpiry: number;
  /**
   * The aliases the broker gave topics on this connection, when `outbound_topic_aliases` is on
   * and the client accepts some (never above its Topic Alias Maximum [MQTT-3.1.2-26], none when
   * it announced none [MQTT-3.1.2-27]).
   */
  readonly outAliases: OutboundTopicAliases | undefined;
  /**
   * Whether a delivery to this connection may differ from one to a 3.1.1 connection only by the
   * encoding: no outbound topic aliases and no Maximum Packet Size to check (see mixed_route.ts).
   */
  readonly plainDeliveries: boolean;
  /**
   * User Properties for the DISCONNECT the server closes this connection with (a plugin's, when
   * it refuses a re-authentication); the connection leaves them out where they would not fit the
   * client's Maximum Packet Size [MQTT-3.14.2-4].
   */
  closeUserProperties: UserProperty[] | undefined = undefined;

  /**
   * The state for an accepted CONNECT.
   *
   * @param server the broker's limits
   * @param connect the client's CONNECT
   */
  constructor(server: ServerCapabilities, connect: ConnectPacket) {
    const p = connect.properties;
    this.limits = {
      requestProblemInformation: p?.requestProblemInformation,
      maximumPacketSize: p?.maximumPacketSize,
    };
    this.aliases = new InboundTopicAliases(server.topicAliasMaximum, { peer: "Client" });
    this.quota = new ReceiveQuota(server.receiveMaximum);
    this.connectExpiry = p?.sessionExpiryInterval ?? 0;
    const max = p?.topicAliasMaximum ?? 0;
    this.outAliases = server.outboundTopicAliases === true && max > 0
      ? new OutboundTopicAliases(max)
      : undefined;
    this.plainDeliveries = this.outAliases === undefined &&
      this.limits.maximumPacketSize === undefined;
  }
}
