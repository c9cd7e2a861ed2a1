/**
 * What `MQTTClient.subscribe` and `MQTTClient.unsubscribe` resolve with: the
 * reason codes of the acknowledgement, one per filter, and its MQTT 5.0 properties.
 *
 * @module
 */

import type { Properties } from "../packet/types.ts";

/**
 * The reason codes of a SUBACK or UNSUBACK, one per filter in the order requested, as a plain
 * array. In MQTT 5.0 the array also carries the acknowledgement's properties: its reason string
 * (unless `requestProblemInformation: false`) and user properties.
 *
 * SUBACK: the granted QoS (0, 1, 2) or a refusal, 0x80 and up (0x87 Not authorized, 0x8F Topic
 * Filter invalid, …). UNSUBACK in MQTT 5.0: 0x00 Success, 0x11 No subscription existed, or a
 * refusal of 0x80 and up; MQTT 3.1 and 3.1.1 have no UNSUBACK codes, so every filter reads 0x00.
 *
 * @example
 * ```ts
 * import type { ReasonCodes } from "./reason_codes.ts";
 *
 * const refusals = (codes: ReasonCodes) =>
 *   codes.filter((code) => code >= 0x80).length + ` refused (${codes.properties?.reasonString})`;
 * ```
 */
export type ReasonCodes = number[] & {
  /** MQTT 5.0: the SUBACK's or UNSUBACK's properties, when it had any. */
  properties?: Properties;
};

/** The codes with the ack's properties attached (when there are any). */
export function reasonCodes(codes: number[], properties: Properties | undefined): ReasonCodes {
  const result: ReasonCodes = [...codes];
  if (properties !== undefined) result.properties = properties;
  return result;
}
