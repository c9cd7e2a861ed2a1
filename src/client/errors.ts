/**
 * Errors the client raises for callers to catch.
 *
 * @module
 */

/**
 * Options of the client error classes.
 *
 * @example
 * ```ts
 * import { ClientError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const cause = new Deno.errors.ConnectionReset("reset by peer");
 * const error = new ClientError("Cannot publish: the connection was lost", { cause });
 * assert.equal(error.cause, cause);
 * ```
 */
export interface ClientErrorOptions {
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A client operation failed: the client is not connected, gave up reconnecting, was disconnected
 * while the operation waited, or its offline queue is full.
 *
 * @example
 * ```ts
 * import { ClientError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ClientError("Cannot publish: client is not connected");
 * assert.equal(error.name, "ClientError");
 * ```
 */
export class ClientError extends Error {
  /**
   * Creates the error.
   *
   * @param message what failed and why
   * @param options the cause
   */
  constructor(message: string, options?: ClientErrorOptions) {
    super(message, options);
    this.name = "ClientError";
  }
}

/**
 * Options of {@linkcode ConnectError}.
 *
 * @example
 * ```ts
 * import { ConnectError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectError("Server refused: bad user name or password", { returnCode: 4 });
 * assert.equal(error.returnCode, 4);
 * ```
 */
export interface ConnectErrorOptions extends ClientErrorOptions {
  /** The CONNACK return code (reason code in MQTT 5.0), when the server refused. */
  returnCode?: number;
}

/**
 * Connecting failed: the server refused in CONNACK (`returnCode` says why: 1 bad protocol version,
 * 2 identifier rejected, 3 server unavailable, 4 bad user name or password, 5 not authorized), or
 * the network connection could not be made or was lost before CONNACK (`returnCode` undefined,
 * `cause` set).
 *
 * @example
 * ```ts
 * import { ConnectError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectError("Server refused the connection", { returnCode: 5 });
 * assert.equal(error.returnCode, 5);
 * ```
 */
export class ConnectError extends ClientError {
  /** The CONNACK return code, when the server refused; `undefined` for network failures. */
  readonly returnCode: number | undefined;

  /**
   * Creates the error.
   *
   * @param message what failed and why
   * @param options return code and cause
   */
  constructor(message: string, options?: ConnectErrorOptions) {
    super(message, options);
    this.name = "ConnectError";
    this.returnCode = options?.returnCode;
  }
}
