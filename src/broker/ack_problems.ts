/**
 * Why filters of one SUBSCRIBE or UNSUBSCRIBE were refused or did nothing, gathered into the one
 * Reason String (and a plugin's User Properties) that its MQTT 5.0 SUBACK or UNSUBACK may carry.
 * The packet takes them through `withProblemInformation`, so that a client that turned problem
 * information off [MQTT-3.1.2-29], or whose Maximum Packet Size they would not fit
 * [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2], gets the codes alone.
 *
 * @module
 */

import type { UserProperty } from "../packet/types.ts";
import type { ProblemInformation } from "./problem_information.ts";

/** Reasons named in one Reason String; more are counted, not listed. */
const REASONS_LISTED = 4;

/**
 * The diagnostics of one SUBACK or UNSUBACK, one per filter that has one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AckProblems } from "./ack_problems.ts";
 *
 * const problems = new AckProblems();
 * assert.deepEqual(problems.information, {});
 * problems.add(`not authorized to subscribe to "a/#"`, [["policy", "p1"]]);
 * problems.add(`invalid topic filter "b/#/c"`);
 * assert.deepEqual(problems.information, {
 *   reasonString: `not authorized to subscribe to "a/#"; invalid topic filter "b/#/c"`,
 *   userProperties: [["policy", "p1"]],
 * });
 * ```
 */
export class AckProblems {
  #reasons: string[] = [];
  #count = 0;
  #userProperties: UserProperty[] | undefined;

  /**
   * Notes the diagnostic of one filter.
   *
   * @param reason what became of the filter, in words
   * @param userProperties a plugin's User Properties for the client (the first plugin's are kept)
   */
  add(reason: string, userProperties?: UserProperty[]): void {
    if (this.#count++ < REASONS_LISTED) this.#reasons.push(reason);
    if (this.#userProperties === undefined && userProperties !== undefined) {
      this.#userProperties = userProperties;
    }
  }

  /** The Reason String and User Properties to offer the packet; empty when nothing was noted. */
  get information(): ProblemInformation {
    const info: ProblemInformation = {};
    if (this.#count > 0) {
      const more = this.#count - this.#reasons.length;
      info.reasonString = this.#reasons.join("; ") + (more > 0 ? `; and ${more} more` : "");
    }
    if (this.#userProperties !== undefined) info.userProperties = this.#userProperties;
    return info;
  }
}
