/**
 * The socket factory of our Redis clients: ioredis's standalone connector, plus a listener that
 * keeps any later socket error from becoming an uncaught exception, and no stray timer after a
 * failed connection.
 *
 * ioredis listens for the first `error` of a socket only. Under Deno, a TLS socket whose client
 * certificate the server refused reports the alert and then `EPIPE` on the next write; that second
 * error, unheard, would end the process. The broker must survive a misconfigured Redis.
 *
 * @module
 */

import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { AbstractConnector } from "ioredis";

/** The options ioredis passes to a connector (the subset this one reads). */
interface ConnectorOptions {
  host: string;
  port: number;
  family?: number;
  tls?: ConnectionOptions;
  disconnectTimeout: number;
  /** Further servers to try in turn when a reconnect to the current one fails. */
  alternates?: ConnectorTarget[];
}

/** A server a connector may connect to. */
export interface ConnectorTarget {
  host: string;
  port: number;
  /** TLS settings for this server; none for plain TCP. */
  tls?: ConnectionOptions;
}

/** A connector for host/port (and TLS) connections; see the module comment. */
export class GuardedConnector extends AbstractConnector {
  readonly #options: ConnectorOptions;
  readonly #targets: ConnectorTarget[];
  #current = 0;
  /** Whether the latest attempt connected: a reconnect tries the same server first. */
  #connected = true;

  constructor(options: unknown) {
    const opts = options as ConnectorOptions;
    super(opts.disconnectTimeout);
    this.#options = opts;
    this.#targets = [
      { host: opts.host, port: opts.port, ...(opts.tls === undefined ? {} : { tls: opts.tls }) },
      ...(opts.alternates ?? []),
    ];
  }

  /**
   * Ends the socket, destroying it if it has not closed within `disconnectTimeout`. Unlike
   * ioredis's own, it sets no timer for a socket that is already closed (after a failed TLS
   * handshake), which would otherwise wait for a `close` event that never comes.
   */
  override disconnect(): void {
    this.connecting = false;
    const stream = this.stream as Socket | undefined;
    if (stream === undefined || stream.closed || stream.destroyed) return;
    const timer = setTimeout(() => stream.destroy(), this.#options.disconnectTimeout);
    stream.once("close", () => clearTimeout(timer));
    stream.end();
  }

  /** The server of the latest connection (or attempt). */
  get target(): ConnectorTarget {
    return this.#targets[this.#current]!;
  }

  /** Makes the next connection go to the next server in turn (this one is a replica, say). */
  skipCurrent(): void {
    this.#connected = false;
  }

  connect(): Promise<Socket> {
    this.connecting = true;
    // After a failed attempt, the next server in turn (a failover to an alternate URL).
    if (!this.#connected) this.#current = (this.#current + 1) % this.#targets.length;
    this.#connected = false;
    const { host, port, tls } = this.#targets[this.#current]!;
    const { family } = this.#options;
    const target = { host, port, ...(family === undefined ? {} : { family }) };
    return new Promise((resolve, reject) => {
      // On a later turn, as ioredis's own connector does, so a disconnect() right after
      // connect() is seen first.
      queueMicrotask(() => {
        if (!this.connecting) {
          reject(new Error("Connection is closed."));
          return;
        }
        let stream: Socket;
        try {
          stream = tls === undefined ? netConnect(target) : tlsConnect({ ...target, ...tls });
        } catch (error) {
          reject(error);
          return;
        }
        this.stream = stream;
        // Nagle off once connected: ioredis asks for it at once, before the socket is connected,
        // and a small command written behind another then waited for the delayed ACK (~40 ms).
        stream.once(tls === undefined ? "connect" : "secureConnect", () => {
          this.#connected = true;
          stream.setNoDelay(true);
        });
        stream.once("error", (error) => {
          this.firstError = error;
        });
        stream.on("error", () => {});
        resolve(stream);
      });
    });
  }
}
