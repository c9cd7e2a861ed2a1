/**
 * The error an authentication hook throws when it could not check a login at all (its queue is
 * full, its backend is down), as opposed to checking it and finding it wrong.
 *
 * @module
 */

/**
 * Thrown (or rejected with) by a plugin's `authenticate` hook when it did not check the login.
 * The broker answers such a CONNECT with "server unavailable" (MQTT 3.1.1 return code 3) rather
 * than "bad user name or password", so that a client with correct credentials knows to retry,
 * and it counts the refusal in its periodic summary instead of logging it as a plugin failure.
 *
 * @example
 * ```ts
 * import { AuthUnavailableError } from "./auth_unavailable.ts";
 * import assert from "node:assert/strict";
 *
 * const busy = {
 *   name: "busy_auth",
 *   authenticate(): boolean {
 *     throw new AuthUnavailableError("the user directory is unreachable");
 *   },
 * };
 * assert.throws(() => busy.authenticate(), AuthUnavailableError);
 * ```
 */
export class AuthUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message why the login was not checked
   * @param options the underlying cause, if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthUnavailableError";
  }
}
