/**
 * Where the broker names another server (`server_reference`): an MQTT 5.0 client refused for a
 * spent quota (CONNACK) or closed by a shutdown (DISCONNECT) is told 0x9C Use another server with
 * the Server Reference, instead of 0x97 Quota exceeded or 0x8B Server shutting down (MQTT 5.0
 * §4.11: the client should use that server for now). Other codes are left as they are.
 *
 * @module
 */

import { ReasonCode } from "../packet/constants.ts";

/** The code to send and the Server Reference to send with it. */
export interface Redirect {
  /** The reason code: 0x9C when redirected, else the code given. */
  readonly code: number;
  /** The Server Reference property; undefined when not redirected. */
  readonly serverReference?: string;
}

/**
 * Whether a refusal or close sends the client to another server.
 *
 * @param code the reason code the broker would send (0x97 on CONNACK, 0x8B on DISCONNECT redirect)
 * @param serverReference the configured other server, if any
 * @returns the code to send, with the Server Reference when it is 0x9C
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redirect } from "./server_reference.ts";
 *
 * assert.deepEqual(redirect(0x8b, "standby:1883"), { code: 0x9c, serverReference: "standby:1883" });
 * assert.deepEqual(redirect(0x8b, undefined), { code: 0x8b });
 * assert.deepEqual(redirect(0x87, "standby:1883"), { code: 0x87 });
 * ```
 */
export function redirect(code: number, serverReference: string | undefined): Redirect {
  if (
    serverReference === undefined ||
    (code !== ReasonCode.QUOTA_EXCEEDED && code !== ReasonCode.SERVER_SHUTTING_DOWN)
  ) {
    return { code };
  }
  return { code: ReasonCode.USE_ANOTHER_SERVER, serverReference };
}
