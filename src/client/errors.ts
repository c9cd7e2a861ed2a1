/**
 * Errors the client raises for callers to catch.
 *
 * @module
 */

import type { Properties } from "../packet/types.ts";
import { reconnectAfter } from "./_disconnect_policy.ts";

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
  /** MQTT 5.0: the refusing CONNACK's properties (reason string, server reference, …). */
  properties?: Properties;
}

/**
 * Connecting failed: the server refused in CONNACK (`returnCode` says why: 1 bad protocol version,
 * 2 identifier rejected, 3 server unavailable, 4 bad user name or password, 5 not authorized; in
 * MQTT 5.0 a reason code of 0x80 or more, with `reasonString` when the server gave one), or
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
  /** MQTT 5.0: the server's reason string, when it sent one. */
  readonly reasonString: string | undefined;
  /** MQTT 5.0: the refusing CONNACK's properties. */
  readonly properties: Properties | undefined;

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
    this.properties = options?.properties;
    this.reasonString = options?.properties?.reasonString;
  }
}

/**
 * Options of {@linkcode PublishError}.
 *
 * @example
 * ```ts
 * import { PublishError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new PublishError("Server refused the message", {
 *   reasonCode: 0x87,
 *   properties: { reasonString: "no write access" },
 * });
 * assert.equal(error.reasonString, "no write access");
 * ```
 */
export interface PublishErrorOptions extends ClientErrorOptions {
  /** The MQTT 5.0 reason code, 0x80 or more. */
  reasonCode: number;
  /** The properties of the refusing PUBACK or PUBREC (reason string, user properties). */
  properties?: Properties;
}

/**
 * MQTT 5.0: a message was not accepted. Either the server answered PUBACK (QoS 1) or PUBREC
 * (QoS 2) with a reason code of 0x80 or more — 0x87 Not authorized, 0x90 Topic Name invalid,
 * 0x97 Quota exceeded, 0x99 Payload format invalid, … — or the client did not send it because it
 * breaks a limit the server announced in CONNACK: 0x9B (QoS above its Maximum QoS), 0x9A (retain
 * when it has no retained messages), 0x95 (larger than its Maximum Packet Size).
 *
 * @example
 * ```ts
 * import { PublishError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new PublishError("Server refused the message: 0x87 Not authorized", {
 *   reasonCode: 0x87,
 * });
 * assert.equal(error.reasonCode, 0x87);
 * assert.equal(error.name, "PublishError");
 * ```
 */
export class PublishError extends ClientError {
  /** The reason code, 0x80 or more. */
  readonly reasonCode: number;
  /** The server's reason string, when it sent one. */
  readonly reasonString: string | undefined;
  /** The properties of the refusing acknowledgement; undefined when the client refused. */
  readonly properties: Properties | undefined;

  /**
   * Creates the error.
   *
   * @param message what failed and why
   * @param options reason code, properties and cause
   */
  constructor(message: string, options: PublishErrorOptions) {
    super(message, options);
    this.name = "PublishError";
    this.reasonCode = options.reasonCode;
    this.properties = options.properties;
    this.reasonString = options.properties?.reasonString;
  }
}

/**
 * Options of {@linkcode ServerDisconnectError}.
 *
 * @example
 * ```ts
 * import { ServerDisconnectError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ServerDisconnectError("Server sent DISCONNECT", { reasonCode: 0x8b });
 * assert.equal(error.reasonCode, 0x8b);
 * ```
 */
export interface ServerDisconnectErrorOptions extends ClientErrorOptions {
  /** The DISCONNECT reason code. */
  reasonCode: number;
  /** The DISCONNECT properties (reason string, server reference, user properties). */
  properties?: Properties;
}

/**
 * MQTT 5.0: the server ended the connection with DISCONNECT. `reasonCode` says why — 0x8E
 * Session taken over, 0x8B Server shutting down, 0x8D Keep Alive timeout, 0x98 Administrative
 * action, 0x9C Use another server, … — with the server's reason string when it sent one.
 *
 * The client reconnects after it (with `auto_reconnect`) unless the code says that would not help
 * or would do harm: 0x8E (another connection with this client id took over: reconnecting would
 * take the session back and start a takeover fight), 0x98, 0x9C, 0x9D, 0x87, 0x8A and 0x8C. Then
 * pending operations and `messages()` fail with this error.
 *
 * @example
 * ```ts
 * import { ServerDisconnectError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new ServerDisconnectError("Server sent DISCONNECT: 0x8E Session taken over", {
 *   reasonCode: 0x8e,
 *   properties: { reasonString: "another client connected with this id" },
 * });
 * assert.equal(error.reasonString, "another client connected with this id");
 * assert.equal(error.final, true); // reconnecting would start a takeover fight
 * ```
 */
export class ServerDisconnectError extends ClientError {
  /** The DISCONNECT reason code. */
  readonly reasonCode: number;
  /** The server's reason string, when it sent one. */
  readonly reasonString: string | undefined;
  /** Another server to use (0x9C, 0x9D), when the server named one. */
  readonly serverReference: string | undefined;
  /** The DISCONNECT properties. */
  readonly properties: Properties | undefined;
  /**
   * True when reconnecting would not help or would do harm (0x8E, 0x98, 0x9C, 0x9D, 0x87, 0x8A,
   * 0x8C): the client does not reconnect after it, and a program that reconnects itself should
   * not either.
   */
  readonly final: boolean;

  /**
   * Creates the error.
   *
   * @param message what failed and why
   * @param options reason code, properties and cause
   */
  constructor(message: string, options: ServerDisconnectErrorOptions) {
    super(message, options);
    this.name = "ServerDisconnectError";
    this.reasonCode = options.reasonCode;
    this.properties = options.properties;
    this.reasonString = options.properties?.reasonString;
    this.serverReference = options.properties?.serverReference;
    this.final = !reconnectAfter(options.reasonCode);
  }
}
