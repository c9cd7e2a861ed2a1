/**
 * Client-side connect for every transport: `mqtt://` (TCP), `mqtts://` (TLS), `ws://` and `wss://`
 * (MQTT over WebSocket), each returned as the one {@linkcode ByteConnection} type.
 *
 * @module
 */

import { isIP } from "node:net";
import tls from "node:tls";
// @ts-types="./_ws.d.ts"
import { type ClientOptions as WsClientOptions, WebSocket as WsWebSocket } from "ws";
import { formatAddr, socketConnection } from "./socket.ts";
import { nodeSocketConnection } from "./tls_node.ts";
import type { ByteConnection, ConnectionInfo, TransportKind } from "./types.ts";

/** Options of {@linkcode dial}. */
export interface DialOptions {
  /** Extra CA certificates (PEM) to trust, besides the system roots. */
  caCerts?: string[];
  /** Client certificate chain (PEM), for mutual TLS; needs `key`. */
  cert?: string;
  /** Client private key (PEM), for mutual TLS; needs `cert`. */
  key?: string;
  /** Check the server certificate's name against the host name (aMQTT `check_hostname`). */
  checkHostname?: boolean;
  /** Extra HTTP headers for the WebSocket handshake. */
  headers?: HeadersInit;
  /** Aborts the dial; a connection that opens after the abort is closed. */
  signal?: AbortSignal;
}

/** Where a URL leads, with the defaults of its scheme filled in. */
export interface DialTarget {
  transport: TransportKind;
  /** Host name or IP literal, without IPv6 brackets. */
  hostname: string;
  port: number;
  /** For WebSocket: the URL to open, without credentials. */
  url?: string;
}

const SCHEMES: Record<string, { transport: TransportKind; port: number }> = {
  "mqtt:": { transport: "tcp", port: 1883 },
  "tcp:": { transport: "tcp", port: 1883 },
  "mqtts:": { transport: "tls", port: 8883 },
  "ssl:": { transport: "tls", port: 8883 },
  "tls:": { transport: "tls", port: 8883 },
  "ws:": { transport: "ws", port: 80 },
  "wss:": { transport: "wss", port: 443 },
};

/** Bytes waiting in a WebSocket's send buffer before `write` waits for it to drain. */
const WS_HIGH_WATER = 4 * 1024 * 1024;
/** How long `close` lets the WebSocket closing handshake run before dropping the socket. */
const CLOSE_HANDSHAKE_MS = 1000;

/**
 * Resolves a broker URL to a transport, host and port: default ports 1883 (`mqtt`), 8883
 * (`mqtts`), 80 (`ws`) and 443 (`wss`), and the path `/mqtt` for WebSocket when the URL has none.
 *
 * @param url the broker URL
 * @returns the target
 * @throws {TypeError} when the URL is not valid or its scheme is not one of the above
 */
export function dialTarget(url: URL | string): DialTarget {
  let u: URL;
  try {
    u = typeof url === "string" ? new URL(url) : url;
  } catch (cause) {
    throw new TypeError(`Cannot connect: "${url}" is not a valid URL`, { cause });
  }
  const scheme = SCHEMES[u.protocol];
  if (scheme === undefined) {
    throw new TypeError(
      `Cannot connect: scheme "${u.protocol}" is not mqtt:, mqtts:, ws: or wss:`,
    );
  }
  const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
  if (hostname === "") throw new TypeError(`Cannot connect: "${u.href}" has no host`);
  const port = u.port === "" ? scheme.port : Number(u.port);
  const target: DialTarget = { transport: scheme.transport, hostname, port };
  if (scheme.transport === "ws" || scheme.transport === "wss") {
    // Credentials travel in CONNECT, not in the HTTP upgrade.
    const ws = new URL(u.href);
    ws.username = "";
    ws.password = "";
    if (ws.pathname === "" || ws.pathname === "/") ws.pathname = "/mqtt";
    target.url = ws.href;
  }
  return target;
}

/**
 * Opens a connection to a broker.
 *
 * Every TCP socket gets `setNoDelay(true)`. TLS without a client certificate is started on such a
 * socket with `Deno.startTls`. With a client certificate (mutual TLS) it goes through `node:tls`:
 * in Deno 2.9 `Deno.startTls` cannot present one (its options have no `cert`/`key`) and the
 * sockets of `Deno.connectTls`, which can, have no `setNoDelay`, so Nagle's algorithm would delay
 * a small write that follows an unacknowledged one by ~40 ms. WebSocket goes through the `ws`
 * package, whose sockets have Nagle off (Deno's own WebSocket client showed the same 44 ms
 * stalls); it offers the `mqtt` subprotocol [MQTT-6.0.0-3] and turns binary frames into one byte
 * stream.
 *
 * @example
 * ```ts ignore
 * import { dial } from "./dial.ts";
 *
 * const conn = await dial("mqtt://127.0.0.1:1883");
 * conn.close();
 * ```
 *
 * @param url `mqtt://`, `mqtts://`, `ws://` or `wss://` URL
 * @param options TLS material, handshake headers, abort signal
 * @returns the open connection
 * @throws {TypeError} for an unusable URL or a certificate without its key
 * @throws {Error} whatever the network layer throws when the connection fails
 */
export async function dial(url: URL | string, options: DialOptions = {}): Promise<ByteConnection> {
  const target = dialTarget(url);
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError("Cannot connect: a client certificate needs both cert and key");
  }
  options.signal?.throwIfAborted();
  switch (target.transport) {
    case "tcp":
    case "tls":
      if (target.transport === "tls" && options.cert !== undefined) {
        return await dialClientCertTls(target, options);
      }
      return await withAbort(dialSocket(target, options), options.signal, (c) => c.close());
    default:
      return await dialWebSocket(target, options);
  }
}

async function dialSocket(target: DialTarget, options: DialOptions): Promise<ByteConnection> {
  const { hostname, port } = target;
  const unsafelyDisableHostnameVerification = options.checkHostname === false;
  let conn: Deno.Conn;
  const tcp = await Deno.connect({ hostname, port, signal: options.signal });
  // Nagle off before TLS starts: the option stays on the socket under the TLS layer.
  tcp.setNoDelay(true);
  if (target.transport === "tcp") {
    conn = tcp;
  } else {
    let tlsConn: Deno.TlsConn | undefined;
    try {
      tlsConn = await Deno.startTls(tcp, {
        hostname,
        caCerts: options.caCerts,
        unsafelyDisableHostnameVerification,
      });
      // The handshake would otherwise run at the first read or write, and a trust failure
      // ("invalid peer certificate: UnknownIssuer") would only show as a closed connection.
      // Aborting closes the connection, which ends a handshake the server never answers.
      const conn = tlsConn;
      const abort = () => conn.close();
      options.signal?.addEventListener("abort", abort, { once: true });
      try {
        await tlsConn.handshake();
      } finally {
        options.signal?.removeEventListener("abort", abort);
      }
      options.signal?.throwIfAborted();
    } catch (error) {
      try {
        (tlsConn ?? tcp).close();
      } catch { /* startTls may have closed it already */ }
      // A handshake ended by the abort fails as "operation canceled": say why it was aborted.
      options.signal?.throwIfAborted();
      throw error;
    }
    conn = tlsConn;
  }
  let remoteAddress = `${hostname}:${port}`;
  try {
    remoteAddress = formatAddr(conn.remoteAddr);
  } catch { /* keep the name we dialled */ }
  return socketConnection(conn, { transport: target.transport, remoteAddress });
}

/** Mutual TLS on `node:tls`, whose socket can present a client certificate and turn Nagle off. */
async function dialClientCertTls(
  target: DialTarget,
  options: DialOptions,
): Promise<ByteConnection> {
  const { hostname, port } = target;
  const connectOptions: tls.ConnectionOptions = {
    host: hostname,
    port,
    cert: options.cert,
    key: options.key,
    // node:tls replaces its roots with `ca`, Deno adds to them: keep Deno's meaning.
    ca: options.caCerts === undefined ? undefined : [...tls.rootCertificates, ...options.caCerts],
  };
  // SNI carries a host name, never an IP literal; the certificate is checked against either.
  if (isIP(hostname) === 0) connectOptions.servername = hostname;
  if (options.checkHostname === false) connectOptions.checkServerIdentity = () => undefined;
  const signal = options.signal;
  const socket = tls.connect(connectOptions);
  const info: ConnectionInfo = { transport: "tls", remoteAddress: `${hostname}:${port}` };
  const conn = await new Promise<ByteConnection>((resolve, reject) => {
    const settle = () => {
      socket.off("secureConnect", onConnect);
      socket.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    // Wrapped in the same turn as the handshake ends: an alert right after it (a server refusing
    // our certificate under TLS 1.3) must find the connection's own error and close handlers.
    const onConnect = () => {
      settle();
      resolve(nodeSocketConnection(socket, info));
    };
    const onError = (error: unknown) => {
      settle();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => onError(signal!.reason);
    socket.once("secureConnect", onConnect);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });
  if (signal?.aborted) {
    conn.close();
    await conn.closed;
    signal.throwIfAborted();
  }
  return conn;
}

async function dialWebSocket(target: DialTarget, options: DialOptions): Promise<ByteConnection> {
  const wsOptions: WsClientOptions = {
    // MQTT packets are mostly small and binary: compression costs more than it saves.
    perMessageDeflate: false,
    headers: options.headers === undefined
      ? undefined
      : Object.fromEntries(new Headers(options.headers)),
    cert: options.cert,
    key: options.key,
    // Like node:tls, ws replaces its roots with `ca`; Deno adds to them: keep Deno's meaning.
    ca: options.caCerts === undefined ? undefined : [...tls.rootCertificates, ...options.caCerts],
  };
  if (options.checkHostname === false) {
    // ws hands this to tls.connect, where "no error" is undefined; its types say boolean.
    wsOptions.checkServerIdentity = (() => undefined) as unknown as (
      ...args: unknown[]
    ) => boolean;
  }
  const ws = new WsWebSocket(target.url!, ["mqtt"], wsOptions);
  ws.binaryType = "arraybuffer";
  const info: ConnectionInfo = {
    transport: target.transport,
    remoteAddress: `${target.hostname}:${target.port}`,
  };
  const conn = new WebSocketConnection(ws, info);
  const signal = options.signal;
  const onAbort = () => conn.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await conn.opened;
  } catch (error) {
    // A handshake ended by the abort fails as "closed before established": say why it was.
    signal?.throwIfAborted();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (signal?.aborted) {
    conn.close();
    await conn.closed;
    signal.throwIfAborted();
  }
  return conn;
}

/** MQTT over one WebSocket: frames in, bytes out, and the other way round. */
class WebSocketConnection implements ByteConnection {
  readonly info: ConnectionInfo;
  readonly readable: ReadableStream<Uint8Array>;
  readonly closed: Promise<void>;
  /** Settles when the handshake completes (or fails: it rejects after the socket closed). */
  readonly opened: Promise<void>;
  #ws: WsWebSocket;
  #isClosed = false;
  #error = "";
  #end: () => void = () => {};
  #killTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(ws: WsWebSocket, info: ConnectionInfo) {
    this.#ws = ws;
    this.info = info;
    let opened = false;
    let resolveOpened!: () => void;
    let rejectOpened!: (error: Error) => void;
    this.opened = new Promise((resolve, reject) => {
      resolveOpened = resolve;
      rejectOpened = reject;
    });
    let resolveClosed!: () => void;
    this.closed = new Promise((resolve) => resolveClosed = resolve);
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      try {
        controller.close();
      } catch { /* already closed or cancelled */ }
    };
    this.#end = end;
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
      },
      cancel: () => {
        ended = true;
        this.close();
      },
    });
    ws.onopen = () => {
      opened = true;
      resolveOpened();
    };
    ws.onmessage = (event) => {
      if (ended) return;
      if (!(event.data instanceof ArrayBuffer)) {
        // MQTT travels in binary frames only; anything else closes the connection [MQTT-6.0.0-1].
        this.#error = "Received a text frame, which MQTT over WebSocket does not allow";
        end();
        this.close();
        return;
      }
      controller.enqueue(new Uint8Array(event.data));
    };
    ws.onerror = (event) => {
      if (this.#error === "") this.#error = event.message || "WebSocket error";
    };
    ws.onclose = () => {
      this.#isClosed = true;
      clearTimeout(this.#killTimer);
      end();
      if (!opened) {
        rejectOpened(
          new Error(`Cannot open WebSocket to ${info.remoteAddress}: ${this.#error || "closed"}`),
        );
      }
      resolveClosed();
    };
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#isClosed || this.#ws.readyState !== WsWebSocket.OPEN) {
      throw new Deno.errors.BadResource("Connection is closed");
    }
    this.#ws.send(bytes);
    // send() queues without limit: wait while too much is buffered.
    while (this.#ws.bufferedAmount > WS_HIGH_WATER && this.#ws.readyState === WsWebSocket.OPEN) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    // End the byte stream now: the closing handshake may take a while (or never finish), and the
    // reader must not wait for it.
    this.#end();
    const state = this.#ws.readyState;
    if (state === WsWebSocket.CONNECTING) {
      this.#ws.terminate();
    } else if (state === WsWebSocket.OPEN) {
      this.#ws.close();
      // ws waits 30 s for a peer that never answers the closing handshake; MQTT needs none.
      this.#killTimer = setTimeout(() => this.#ws.terminate(), CLOSE_HANDSHAKE_MS);
    }
  }
}

async function withAbort<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  dispose: (value: T) => void,
): Promise<T> {
  const value = await work;
  if (signal?.aborted) {
    dispose(value);
    signal.throwIfAborted();
  }
  return value;
}
