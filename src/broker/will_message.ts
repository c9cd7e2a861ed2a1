/**
 * The will of a 5.0 client as the broker keeps and publishes it (§3.1.2.9, §3.1.3.2): its delay
 * from the Will Delay Interval, and the message it becomes, with its will properties forwarded as
 * a PUBLISH's would be.
 *
 * @module
 */

import type { Will } from "../packet/types.ts";
import { BrokerMessage } from "./message.ts";
import { expiryDeadline } from "./message_expiry.ts";

/**
 * Seconds between the connection's close and the will's publication: the Will Delay Interval, 0
 * when absent (and always for 3.1/3.1.1 wills, which have no properties). The will goes at the
 * earlier of this delay and the session's end [MQTT-3.1.2-8]; not at all when the client connects
 * again first [MQTT-3.1.3-9].
 *
 * @param will the will of the CONNECT
 * @returns seconds
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { willDelayOf } from "./will_message.ts";
 *
 * const will = { topic: "t", payload: new Uint8Array(), qos: 0 as const, retain: false };
 * assert.equal(willDelayOf({ ...will, properties: { willDelayInterval: 30 } }), 30);
 * assert.equal(willDelayOf(will), 0);
 * ```
 */
export function willDelayOf(will: Will): number {
  return will.properties?.willDelayInterval ?? 0;
}

/**
 * The message a will becomes when it is published at `now`: its topic, payload, QoS and RETAIN
 * [MQTT-3.1.2-14] [MQTT-3.1.2-15]; its Payload Format Indicator, Content Type, Response Topic,
 * Correlation Data and User Properties (in their order [MQTT-3.1.3-10]) forwarded to subscribers
 * like a PUBLISH's; its Message Expiry Interval counted from publication, not from the CONNECT.
 * The Will Delay Interval is the broker's, not forwarded.
 *
 * @param will the will, as kept since the CONNECT (payload and Correlation Data copied out of
 *   the read buffer)
 * @param clientId the client whose will it is
 * @param now when it is published, ms since the epoch
 * @returns the message to route (and retain, when its RETAIN is set)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { willMessage } from "./will_message.ts";
 *
 * const m = willMessage({
 *   topic: "status/c1",
 *   payload: new TextEncoder().encode("offline"),
 *   qos: 1,
 *   retain: true,
 *   properties: { willDelayInterval: 10, messageExpiryInterval: 60, contentType: "text/plain" },
 * }, "c1", 1_000);
 * assert.deepEqual(m.properties, { messageExpiryInterval: 60, contentType: "text/plain" });
 * assert.equal(m.expiresAt, 61_000);
 * assert.equal(m.senderId, "c1");
 * ```
 */
export function willMessage(will: Will, clientId: string, now: number): BrokerMessage {
  const p = will.properties;
  let properties = p;
  if (p?.willDelayInterval !== undefined) {
    const { willDelayInterval: _, ...rest } = p;
    properties = Object.keys(rest).length === 0 ? undefined : rest;
  }
  return new BrokerMessage(will.topic, will.payload, {
    qos: will.qos,
    retain: will.retain,
    senderId: clientId,
    properties,
    expiresAt: expiryDeadline(properties, now),
  });
}
