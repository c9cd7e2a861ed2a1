/**
 * The broker's Maximum QoS and Retain Available (`maximum_qos`, `retain_available`) applied to
 * what a client asks it to publish: a PUBLISH, and a will (a PUBLISH made in advance). One rule
 * for every protocol level: MQTT 5.0 says what to answer (CONNACK or DISCONNECT 0x9B / 0x9A);
 * MQTT 3.1.1 has no way to announce the limits or to refuse a PUBLISH, so a 3.1/3.1.1 client is
 * treated as Mosquitto treats it: the connection is closed (a CONNECT without CONNACK).
 * Subscriptions are not refused: they are granted at most the Maximum QoS (`grantedQos`).
 *
 * @module
 */

import { ReasonCode } from "../packet/constants.ts";
import type { QoS } from "../packet/constants.ts";

/** What the broker announced it lacks. */
export interface FeatureLimits {
  /** The broker's Maximum QoS. @default {2} */
  maximumQoS?: QoS;
  /** Whether the broker keeps retained messages. @default {true} */
  retainAvailable?: boolean;
}

/** A message the broker will not take, with the code that says so and a line for the log. */
export interface FeatureRefusal {
  /** The connect refusal it stands for (a will at CONNECT). */
  readonly refusal: "qos_not_supported" | "retain_not_supported";
  /** The MQTT 5.0 reason code, on CONNACK and on DISCONNECT alike: 0x9B or 0x9A. */
  readonly reasonCode: number;
  /** Why, for the log and the 5.0 Reason String. */
  readonly reason: string;
}

/**
 * Whether a message of this QoS and RETAIN flag is beyond what the broker supports: a QoS above
 * its Maximum QoS (a will: [MQTT-3.2.2-12]; a PUBLISH: §3.2.2.3.4, DISCONNECT 0x9B), or RETAIN 1
 * when it does not keep retained messages (a will: [MQTT-3.2.2-13]; a PUBLISH: §3.2.2.3.5,
 * DISCONNECT 0x9A).
 *
 * @param message the QoS and RETAIN flag of the PUBLISH or will
 * @param limits what the broker supports
 * @returns the refusal, or undefined when the broker takes it
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unsupportedFeature } from "./feature_limits.ts";
 *
 * assert.equal(unsupportedFeature({ qos: 2, retain: false }, {}), undefined);
 * assert.equal(unsupportedFeature({ qos: 2, retain: false }, { maximumQoS: 1 })?.reasonCode, 0x9b);
 * assert.equal(unsupportedFeature({ qos: 0, retain: true }, { retainAvailable: false })?.reasonCode, 0x9a);
 * ```
 */
export function unsupportedFeature(
  message: { readonly qos: QoS; readonly retain: boolean },
  limits: FeatureLimits,
): FeatureRefusal | undefined {
  const maxQos = limits.maximumQoS ?? 2;
  if (message.qos > maxQos) {
    return {
      refusal: "qos_not_supported",
      reasonCode: ReasonCode.QOS_NOT_SUPPORTED,
      reason: `QoS ${message.qos} is above the Maximum QoS ${maxQos}`,
    };
  }
  if (message.retain && limits.retainAvailable === false) {
    return {
      refusal: "retain_not_supported",
      reasonCode: ReasonCode.RETAIN_NOT_SUPPORTED,
      reason: "retained messages are not available",
    };
  }
  return undefined;
}
