/**
 * The listener contract: something that accepts connections and hands each to a callback as a
 * {@linkcode ByteConnection}, until closed.
 *
 * @module
 */

import type { ByteConnection, TransportKind } from "./types.ts";

/**
 * A running listener.
 *
 * @example
 * ```ts
 * import { Broker, type ServerListener } from "../../broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * const [tcp]: readonly ServerListener[] = broker.listeners;
 * assert.equal(tcp.transport, "tcp");
 * assert.ok(tcp.port > 0); // the port the system picked
 * ```
 */
export interface ServerListener extends AsyncDisposable {
  /** The listener's name in the configuration (`default`, …). */
  readonly name: string;
  /** What it accepts: tcp, tls, ws or wss. */
  readonly transport: TransportKind;
  /** The bound host. */
  readonly hostname: string;
  /** The bound port: the real one when 0 was asked for. */
  readonly port: number;
  /** Stops accepting; connections already accepted are not touched. Idempotent. */
  close(): Promise<void>;
}

/** Called for each accepted connection. Must not throw. */
export type ConnectionHandler = (conn: ByteConnection) => void;
