/**
 * A TLS listener that can ask for client certificates (mutual TLS), on `node:tls`:
 * `Deno.listenTls` cannot request them. Also the helpers the WebSocket listener shares for its
 * `node:https` variant.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import type { Server as NetServer, Socket } from "node:net";
import tls from "node:tls";
import { LISTEN_BACKLOG } from "./_backlog.ts";
import type { ConnectionHandler, ServerListener } from "./listener.ts";
import { pausableReadable } from "./_pausable_source.ts";
import type { ByteConnection, ConnectionInfo } from "./types.ts";

/**
 * Whether a TLS listener asks for client certificates (`optional`, `required`) or not (`none`).
 * `none` still has a use: unlike `Deno.listenTls`, whose sockets cannot turn Nagle off, these do.
 */
export type ClientCertMode = "none" | "optional" | "required";

/** Options of {@linkcode listenTlsClientAuth}. */
export interface TlsClientAuthListenOptions {
  /** The listener's name in the configuration. */
  name: string;
  /** Address to bind (`0.0.0.0` for every IPv4 interface). */
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM certificate chain of the server. */
  cert: string;
  /** PEM private key of the server. */
  key: string;
  /** PEM CA certificates client certificates must chain to (default: the system roots). */
  ca?: string[];
  /**
   * `required`: a client without a valid certificate fails the handshake. `optional`: a client
   * may come without a certificate (no `peerCommonName` then), but one that presents a certificate
   * that does not verify is refused, as Mosquitto does with `require_certificate false`. `none`:
   * no certificate is asked for.
   */
  clientCert: ClientCertMode;
}

/**
 * Starts a TLS listener that can request client certificates and hands each connection to
 * `onConnection`, with the verified certificate's subject CN in `info.peerCommonName`.
 *
 * @param options where to listen, the server's certificate and key, the client CA and the mode
 * @param onConnection called for each accepted connection
 * @returns the running listener
 * @throws {TypeError} when `clientCert` is not "none", "optional" or "required"
 * @throws {Error} when the certificate or key cannot be loaded, or the address cannot be bound
 * @example Mutual TLS on a free port
 * ```ts ignore
 * const cert = Deno.readTextFileSync("server.pem");
 * const key = Deno.readTextFileSync("server.key");
 * const ca = [Deno.readTextFileSync("ca.pem")];
 * await using listener = await listenTlsClientAuth(
 *   { name: "mtls", hostname: "127.0.0.1", port: 0, cert, key, ca, clientCert: "required" },
 *   (conn) => console.log(conn.info.peerCommonName),
 * );
 * ```
 */
export async function listenTlsClientAuth(
  options: TlsClientAuthListenOptions,
  onConnection: ConnectionHandler,
): Promise<ServerListener> {
  if (!["none", "optional", "required"].includes(options.clientCert)) {
    throw new TypeError(
      `Listener "${options.name}": clientCert must be "none", "optional" or "required", ` +
        `got ${JSON.stringify(options.clientCert)}`,
    );
  }
  const server = tls.createServer({
    cert: options.cert,
    key: options.key,
    ca: options.ca,
    requestCert: options.clientCert !== "none",
    rejectUnauthorized: options.clientCert === "required",
  });
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const verified = options.clientCert === "none" ? {} : verifiedPeer(socket);
    if (verified === false) {
      // Presented a certificate that does not verify: refuse even in "optional" mode.
      socket.destroy();
      return;
    }
    onConnection(
      nodeSocketConnection(socket, {
        transport: "tls",
        remoteAddress: formatRemote(socket),
        listener: options.name,
        ...(verified.commonName !== undefined ? { peerCommonName: verified.commonName } : {}),
      }),
    );
  });
  // A failed handshake concerns that peer only; node has already destroyed its socket.
  server.on("tlsClientError", () => {});
  const addr = await listenNodeServer(server, options.hostname, options.port);
  let closing: Promise<void> | undefined;
  const close = () => closing ??= closeNodeServer(server);
  return {
    name: options.name,
    transport: "tls",
    hostname: addr.hostname,
    port: addr.port,
    close,
    setTls: (tls) => {
      checkKeyPair(tls.cert, tls.key);
      server.setSecureContext({ cert: tls.cert, key: tls.key, ca: tls.ca });
    },
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Checks that `cert` holds a PEM certificate and `key` its private key, so that a certificate
 * reload never swaps a working certificate for a broken one. Internal; shared with the WebSocket
 * listener.
 *
 * @param cert PEM certificate chain (the first certificate is the server's)
 * @param key PEM private key
 * @throws {TypeError} saying which of the two is wrong
 */
export function checkKeyPair(cert: string, key: string): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new TypeError("the certificate file holds no PEM certificate");
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TypeError("the key file holds no PEM private key");
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TypeError("the key file does not hold the certificate's private key");
  }
}

/**
 * What the TLS handshake proved about the peer: `false` when it presented a certificate that did
 * not verify, otherwise the verified certificate's subject CN (undefined without a certificate).
 * Internal: shared with the WebSocket listener; not re-exported by `mod.ts`.
 *
 * @param socket a TLS socket after its handshake
 * @returns false, or the verified CN if any
 */
export function verifiedPeer(socket: tls.TLSSocket): false | { commonName?: string } {
  const cert = socket.getPeerCertificate();
  const presented = cert !== undefined && cert !== null && Object.keys(cert).length > 0;
  if (!presented) return {};
  if (!socket.authorized) return false;
  const cn = cert.subject?.CN;
  // A subject may carry several CNs; node then gives an array. Use the first.
  const commonName = Array.isArray(cn) ? cn[0] : cn;
  return typeof commonName === "string" ? { commonName } : {};
}

/**
 * Binds a node server and waits until it listens. Internal; not re-exported by `mod.ts`.
 *
 * @param server a `node:net`, `node:tls`, `node:http` or `node:https` server
 * @param hostname address to bind
 * @param port port to bind, 0 for a free one
 * @returns the bound address
 * @throws {Error} the bind error (address in use, permission denied, …)
 */
export function listenNodeServer(
  server: NetServer,
  hostname: string,
  port: number,
): Promise<{ hostname: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: hostname, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      // Errors after binding (an accept failing for lack of file descriptors) concern one
      // connection attempt; without a listener node would throw them at the top level.
      server.on("error", () => {});
      const addr = server.address();
      if (addr === null || typeof addr === "string") resolve({ hostname, port });
      else resolve({ hostname: addr.address, port: addr.port });
    });
  });
}

/**
 * Stops a node server from accepting. Resolves once its listening socket is closed, without
 * waiting for accepted connections (node's own close callback would wait for all of them).
 * Internal; not re-exported by `mod.ts`.
 *
 * @param server a listening node server
 * @returns resolves when the listening socket is closed
 */
export function closeNodeServer(server: NetServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {});
    // The listening handle closes at once; its pending accept settles on the next turn.
    setTimeout(resolve, 0);
  });
}

/**
 * `host:port` of a node socket's peer, for logs. Internal; not re-exported by `mod.ts`.
 *
 * @param socket a connected node socket
 * @returns the peer address, or "unknown" once the socket is gone
 */
export function formatRemote(socket: Socket): string {
  const host = socket.remoteAddress;
  if (host === undefined) return "unknown";
  return host.includes(":") ? `[${host}]:${socket.remotePort}` : `${host}:${socket.remotePort}`;
}

/**
 * Wraps a connected node socket. Turns Nagle off; reads pause while the consumer lags more than
 * 64 KiB behind; a write resolves once node has handed the bytes to the socket.
 *
 * @param socket the socket; this object owns it from now on
 * @param info what is known about the peer
 * @returns the connection
 */
export function nodeSocketConnection(socket: Socket, info: ConnectionInfo): ByteConnection {
  return new NodeSocketConnection(socket, info);
}

class NodeSocketConnection implements ByteConnection {
  readonly info: ConnectionInfo;
  readonly readable: ReadableStream<Uint8Array>;
  readonly closed: Promise<void>;
  #socket: Socket;
  #isClosed = false;
  #failWrites = new Set<(err: Error) => void>();

  constructor(socket: Socket, info: ConnectionInfo) {
    this.#socket = socket;
    this.info = info;
    socket.setNoDelay(true);
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    const stream = pausableReadable({
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      isPaused: () => socket.isPaused(),
      cancel: () => this.close(),
    });
    this.readable = stream.readable;
    const end = stream.end;
    socket.on("data", (chunk: Uint8Array) => stream.push(chunk));
    socket.on("end", end);
    // 'close' always follows 'error'; the error itself only means the connection is gone.
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#isClosed = true;
      end();
      const err = new Deno.errors.BadResource("Connection is closed");
      for (const fail of this.#failWrites) fail(err);
      this.#failWrites.clear();
      resolve();
    });
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#isClosed || this.#socket.destroyed) {
      return Promise.reject(new Deno.errors.BadResource("Connection is closed"));
    }
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      this.#failWrites.add(fail);
      // The callback fires once node no longer needs `bytes`: the caller may then reuse them.
      this.#socket.write(bytes, (err) => {
        if (!this.#failWrites.delete(fail)) return;
        if (err) reject(err);
        else resolve();
      });
    });
  }

  closeWrite(): void {
    if (this.#isClosed || this.#socket.destroyed) return;
    // close_notify and FIN; reading goes on until the peer ends its side ('end', then 'close').
    this.#socket.end();
  }

  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#socket.destroy();
    // Settle pending writes now rather than on the 'close' event: under load that event was seen
    // to come late enough to hold a caller that awaits its writes.
    const err = new Deno.errors.BadResource("Connection is closed");
    for (const fail of this.#failWrites) fail(err);
    this.#failWrites.clear();
  }
}
