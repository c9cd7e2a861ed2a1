/**
 * WebSocket listeners (ws and wss) for MQTT over WebSocket (MQTT 5.0 section 6). Frames are
 * flattened into a byte stream: a packet may span frames and a frame may hold several packets.
 *
 * Two engines behind one contract. `node` (`node:http`/`node:https` + the `ws` package) is the
 * default, and the only one when client certificates are requested, which
 * `Deno.upgradeWebSocket` cannot do. `deno` (`Deno.serve` + `Deno.upgradeWebSocket`) may be chosen
 * explicitly. The `node` engine is the sturdier one under hostile peers: it pauses reading a
 * client that outruns the broker (the `deno` engine can only disconnect it, at 16 MiB queued), and
 * it drops a client that stopped reading one second after close() (the `deno` engine reports such
 * a connection closed after that second, but its socket stays open until the listener closes).
 * Measured throughput on one connection is about the same for both.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
// `ws` (in deno.json imports), typed by a small local declaration: see _ws.d.ts.
// @ts-types="./_ws.d.ts"
import { type WebSocket as WsSocket, WebSocketServer } from "ws";
import { packetLength } from "../packet/packet_length.ts";
import { LISTEN_BACKLOG } from "./_backlog.ts";
import type { ConnectionHandler, ServerListener } from "./listener.ts";
import { pausableReadable, READ_HIGH_WATER } from "./_pausable_source.ts";
import { formatAddr } from "./socket.ts";
import {
  checkKeyPair,
  closeNodeServer,
  formatRemote,
  listenNodeServer,
  verifiedPeer,
} from "./tls_node.ts";
import type { ClientCertMode } from "./tls_node.ts";
import type { ByteConnection, ConnectionInfo } from "./types.ts";

/** Options of {@linkcode listenWebSocket}. */
export interface WebSocketListenOptions {
  /** The listener's name in the configuration. */
  name: string;
  /** Address to bind (`0.0.0.0` for every IPv4 interface). */
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /**
   * The only path that upgrades; other paths get 404. Left out, both `/mqtt` (the MQTT.js and
   * browser convention) and `/` (what aMQTT clients use) upgrade.
   */
  path?: string;
  /** Serve wss with this certificate chain and key (PEM). */
  tls?: {
    cert: string;
    key: string;
    /** PEM CA certificates client certificates must chain to. */
    ca?: string[];
    /** Ask for client certificates (default `none`); see `listenTlsClientAuth` for the modes. */
    clientCert?: ClientCertMode;
  };
  /** Which implementation serves (default `node`; always `node` when client certificates are asked). */
  engine?: "deno" | "node";
  /**
   * `packet` (default): each MQTT packet of a write goes out in a frame of its own, as Mosquitto
   * does, because some clients (Paho C 1.3) drop all but the first packet of a frame. `write`: one
   * frame per write, for a byte stream that is not MQTT.
   */
  framing?: "packet" | "write";
  /**
   * Largest WebSocket message accepted, in bytes; a bigger one closes the connection with 1009
   * (message too big). Default 268,435,460, the largest MQTT packet. A message is buffered whole
   * before it is handed on, so a broker should set this near its maximum packet size: otherwise one
   * peer can make it hold a quarter of a gigabyte. The `node` engine refuses the message while it
   * arrives; the `deno` engine only after Deno has read it.
   */
  maxMessageSize?: number;
}

/** Subprotocols accepted, best first: `mqttv3.1` is what old browser clients offer. */
const SUBPROTOCOLS = ["mqtt", "mqttv3.1"];
/** The deno engine cannot stop reading: a peer this far ahead of the broker is disconnected. */
const MAX_QUEUED = 16 * 1024 * 1024;
/** A write resolves once the socket holds at most this many unsent bytes. */
const WRITE_HIGH_WATER = 1024 * 1024;
/** How long a closing WebSocket waits for the peer's close frame. */
const CLOSE_GRACE_MS = 1000;
/** The largest MQTT packet (fixed header, 4-byte remaining length, 268,435,455 bytes). */
const MAX_MESSAGE = 268_435_460;

/**
 * Starts a ws or wss listener that hands each WebSocket, once open, to `onConnection` as a byte
 * stream. Accepts the `mqtt` subprotocol [MQTT-6.0.0-3] and answers with it [MQTT-6.0.0-4];
 * also `mqttv3.1` and no subprotocol at all; refuses any other offer with 400.
 *
 * @param options where to listen, the path, and TLS settings for wss
 * @param onConnection called for each open WebSocket
 * @returns the running listener; its close() also closes every WebSocket it accepted
 * @throws {TypeError} when `path` does not start with "/" or `clientCert` is unknown
 * @throws {RangeError} when `maxMessageSize` is not a positive integer
 * @throws {Error} when the certificate or key cannot be loaded, or the address cannot be bound
 * @example A ws listener on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { listenWebSocket } from "./websocket.ts";
 *
 * await using listener = await listenWebSocket(
 *   { name: "ws", hostname: "127.0.0.1", port: 0 },
 *   (conn) => conn.close(),
 * );
 * const res = await fetch(`http://127.0.0.1:${listener.port}/mqtt`);
 * assert.equal(res.status, 426);
 * await res.body?.cancel();
 * ```
 */
export async function listenWebSocket(
  options: WebSocketListenOptions,
  onConnection: ConnectionHandler,
): Promise<ServerListener> {
  const path = options.path ?? DEFAULT_PATHS;
  if (!path.startsWith("/")) {
    throw new TypeError(`Listener "${options.name}": path must start with "/", got "${path}"`);
  }
  const maxMessage = options.maxMessageSize ?? MAX_MESSAGE;
  if (!Number.isSafeInteger(maxMessage) || maxMessage < 1) {
    throw new RangeError(
      `Listener "${options.name}": maxMessageSize must be a positive integer, got ${maxMessage}`,
    );
  }
  const clientCert = options.tls?.clientCert ?? "none";
  if (!["none", "optional", "required"].includes(clientCert)) {
    throw new TypeError(
      `Listener "${options.name}": clientCert must be "none", "optional" or "required", ` +
        `got ${JSON.stringify(clientCert)}`,
    );
  }
  return clientCert !== "none" || options.engine !== "deno"
    ? await listenNode(options, path, maxMessage, onConnection)
    : listenDeno(options, path, maxMessage, onConnection);
}

// Marks "no path configured": both /mqtt and / upgrade. Starts with "/" to pass the check above.
const DEFAULT_PATHS = "/\0default";

/**
 * Where the MQTT packet starting at `at` ends, from its fixed header, so each packet goes out in a
 * frame of its own. Several packets per frame are allowed [MQTT-6.0.0-2], but some clients (Paho C
 * 1.3) drop all but the first; Mosquitto sends one packet per frame too. Bytes that do not end in a
 * whole packet (never the case for what the broker writes) go out as they are.
 */
function packetEnd(bytes: Uint8Array, at: number): number {
  let length: number | undefined;
  try {
    length = packetLength(bytes, at);
  } catch {
    // Not MQTT framing: send the rest unchanged rather than fail the write.
  }
  return length === undefined ? bytes.length : Math.min(at + length, bytes.length);
}

/** A refusal to send instead of upgrading. */
interface Refusal {
  status: number;
  text: string;
}

/** Decides whether a request may upgrade; returns the subprotocol to answer with, or a refusal. */
function judge(
  wanted: string,
  pathname: string,
  upgrade: string | null | undefined,
  offer: string | null | undefined,
): Refusal | { protocol: string | undefined } {
  const pathOk = wanted === DEFAULT_PATHS
    ? pathname === "/mqtt" || pathname === "/"
    : pathname === wanted;
  if (!pathOk) return { status: 404, text: "Not found" };
  if (upgrade?.toLowerCase() !== "websocket") {
    return { status: 426, text: "Expected a WebSocket upgrade" };
  }
  const offered = (offer ?? "").split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (offered.length === 0) return { protocol: undefined };
  const protocol = SUBPROTOCOLS.find((p) => offered.includes(p));
  if (protocol === undefined) {
    return { status: 400, text: `Unsupported WebSocket subprotocol: expected "mqtt"` };
  }
  return { protocol };
}

function refusalResponse(r: Refusal): Response {
  const headers: HeadersInit = r.status === 426 ? { upgrade: "websocket" } : {};
  return new Response(r.text, { status: r.status, headers });
}

function listenDeno(
  options: WebSocketListenOptions,
  path: string,
  maxMessage: number,
  onConnection: ConnectionHandler,
): ServerListener {
  const transport = options.tls ? "wss" : "ws";
  const open = new Set<DenoWebSocketConnection>();
  let closing: Promise<void> | undefined;
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    tcpBacklog: LISTEN_BACKLOG,
    ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
    onListen: () => {},
    onError: () => new Response("Internal error", { status: 500 }),
  }, (req, info) => {
    if (closing) return new Response("Shutting down", { status: 503 });
    const verdict = judge(
      path,
      new URL(req.url).pathname,
      req.headers.get("upgrade"),
      req.headers.get("sec-websocket-protocol"),
    );
    if ("status" in verdict) return refusalResponse(verdict);
    // The request info is gone once the request is upgraded: read the address first.
    const remoteAddress = formatAddr(info.remoteAddr);
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(req, { protocol: verdict.protocol, idleTimeout: 0 });
    } catch {
      return new Response("Invalid WebSocket upgrade request", { status: 400 });
    }
    const conn = new DenoWebSocketConnection(
      upgraded.socket,
      {
        transport,
        remoteAddress,
        listener: options.name,
      },
      onConnection,
      () => open.delete(conn),
    );
    conn.packetFrames = options.framing !== "write";
    conn.maxMessage = maxMessage;
    open.add(conn);
    return upgraded.response;
  });
  const close = () =>
    closing ??= (async () => {
      for (const conn of open) conn.close(1001);
      // Also ends WebSockets whose peer never answers the close frame.
      await server.shutdown();
    })();
  return {
    name: options.name,
    transport,
    hostname: server.addr.hostname,
    port: server.addr.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A WebSocket from `Deno.upgradeWebSocket` as a byte stream. */
class DenoWebSocketConnection implements ByteConnection {
  readonly info: ConnectionInfo;
  /** One MQTT packet per frame (see {@linkcode WebSocketListenOptions.framing}). */
  packetFrames = true;
  /** See {@linkcode WebSocketListenOptions.maxMessageSize}. */
  maxMessage = MAX_MESSAGE;
  readonly readable: ReadableStream<Uint8Array>;
  readonly closed: Promise<void>;
  #ws: WebSocket;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #ended = false;
  #isClosed = false;
  #resolveClosed: () => void;
  #grace: ReturnType<typeof setTimeout> | undefined;
  #waiters = new Set<() => void>();

  constructor(
    ws: WebSocket,
    info: ConnectionInfo,
    onOpen: ConnectionHandler,
    onGone: () => void,
  ) {
    this.#ws = ws;
    this.info = info;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => this.#controller = c,
      cancel: () => {
        this.#ended = true;
        this.close();
      },
    }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength });
    ws.binaryType = "arraybuffer";
    ws.onopen = () => onOpen(this);
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (this.#ended) return;
      // Text frames carry no MQTT: a protocol error, closed with "unsupported data".
      if (typeof e.data === "string") return this.close(1003);
      if (e.data.byteLength > this.maxMessage) return this.close(1009);
      // No way to stop reading a WebSocket: a peer far ahead of its reader is cut off.
      if (READ_HIGH_WATER - (this.#controller.desiredSize ?? 0) > MAX_QUEUED) {
        return this.close(1008);
      }
      this.#controller.enqueue(new Uint8Array(e.data));
    };
    ws.onerror = () => {}; // a close event follows
    ws.onclose = () => {
      onGone();
      this.#finish();
    };
  }

  async write(bytes: Uint8Array): Promise<void> {
    const ws = this.#ws;
    if (this.#isClosed || ws.readyState !== WebSocket.OPEN) throw closedError();
    // send() copies the bytes, so the caller may reuse them as soon as this resolves.
    for (let at = 0; at < bytes.length;) {
      const end = this.packetFrames ? packetEnd(bytes, at) : bytes.length;
      ws.send(at === 0 && end === bytes.length ? bytes : bytes.subarray(at, end));
      at = end;
    }
    // Backpressure as far as the API allows: wait, polling, while too much is unsent.
    for (let delay = 1; ws.bufferedAmount > WRITE_HIGH_WATER; delay = Math.min(delay * 2, 16)) {
      await this.#sleep(delay);
      if (this.#isClosed) throw closedError();
    }
  }

  close(code = 1000): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#endReadable();
    try {
      this.#ws.close(code);
    } catch {
      // Already closing.
    }
    // A peer that stopped reading never completes the close handshake and the WebSocket API
    // cannot drop it: report closed after a grace period; the listener's close reaps the socket.
    this.#grace = setTimeout(() => this.#finish(), CLOSE_GRACE_MS);
  }

  #finish(): void {
    clearTimeout(this.#grace);
    this.#isClosed = true;
    this.#endReadable();
    for (const wake of this.#waiters) wake();
    this.#resolveClosed();
  }

  #endReadable(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller.close();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#waiters.add(wake);
    });
  }
}

function closedError(): Error {
  return new Deno.errors.BadResource("Connection is closed");
}

async function listenNode(
  options: WebSocketListenOptions,
  path: string,
  maxMessage: number,
  onConnection: ConnectionHandler,
): Promise<ServerListener> {
  const tls = options.tls;
  const transport = tls ? "wss" : "ws";
  const clientCert = tls?.clientCert ?? "none";
  const server = tls
    ? https.createServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      requestCert: clientCert !== "none",
      rejectUnauthorized: clientCert === "required",
    })
    : http.createServer();
  const wss = new WebSocketServer({
    // Drop a peer that does not answer our close frame.
    closeTimeout: CLOSE_GRACE_MS,
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: maxMessage,
    handleProtocols: (offered: Set<string>) => SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  const sockets = new Set<Socket>();
  const open = new Set<NodeWebSocketConnection>();
  let closing: Promise<void> | undefined;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const verdict = judge(path, pathOf(req), req.headers.upgrade, undefined);
    const r = "status" in verdict ? verdict : { status: 400, text: "Invalid WebSocket upgrade" };
    res.writeHead(r.status, {
      "content-type": "text/plain; charset=utf-8",
      ...(r.status === 426 ? { upgrade: "websocket" } : {}),
    }).end(r.text);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {}); // the socket closes; nothing else to do
    const peer = tls ? verifiedPeer(req.socket as TLSSocket) : {};
    if (closing || peer === false) return void socket.destroy();
    const verdict = judge(
      path,
      pathOf(req),
      req.headers.upgrade,
      req.headers["sec-websocket-protocol"],
    );
    if ("status" in verdict) {
      const body = new TextEncoder().encode(verdict.text);
      return void socket.end(
        `HTTP/1.1 ${verdict.status} ${http.STATUS_CODES[verdict.status]}\r\n` +
          `Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `Content-Length: ${body.length}\r\n\r\n${verdict.text}`,
      );
    }
    wss.handleUpgrade(req, socket, head, (ws: WsSocket) => {
      const conn = new NodeWebSocketConnection(ws, {
        transport,
        remoteAddress: formatRemote(req.socket),
        listener: options.name,
        ...(peer.commonName !== undefined ? { peerCommonName: peer.commonName } : {}),
      });
      conn.packetFrames = options.framing !== "write";
      open.add(conn);
      conn.closed.then(() => open.delete(conn));
      onConnection(conn);
    });
  });
  // Failed handshakes and malformed requests concern that peer only.
  server.on("tlsClientError", () => {});
  server.on("clientError", (_err: Error, socket: Duplex) => socket.destroy());
  const addr = await listenNodeServer(server, options.hostname, options.port);
  const close = () =>
    closing ??= (async () => {
      await closeNodeServer(server);
      for (const conn of open) conn.close(1001);
      await Promise.all([...open].map((c) => c.closed));
      // What is left is plain HTTP (kept alive after a refusal) or an unfinished handshake.
      for (const socket of sockets) socket.destroy();
      wss.close();
    })();
  return {
    name: options.name,
    transport,
    hostname: addr.hostname,
    port: addr.port,
    close,
    ...(tls
      ? {
        setTls: (t: { cert: string; key: string; ca?: string[] }) => {
          checkKeyPair(t.cert, t.key);
          (server as https.Server).setSecureContext({ cert: t.cert, key: t.key, ca: t.ca });
        },
      }
      : {}),
    [Symbol.asyncDispose]: close,
  };
}

function pathOf(req: http.IncomingMessage): string {
  return new URL(req.url ?? "/", "http://localhost").pathname;
}

/** A WebSocket from the `ws` package as a byte stream. */
class NodeWebSocketConnection implements ByteConnection {
  readonly info: ConnectionInfo;
  /** One MQTT packet per frame (see {@linkcode WebSocketListenOptions.framing}). */
  packetFrames = true;
  readonly readable: ReadableStream<Uint8Array>;
  readonly closed: Promise<void>;
  #ws: WsSocket;
  #isClosed = false;
  #failWrites = new Set<(err: Error) => void>();

  constructor(ws: WsSocket, info: ConnectionInfo) {
    this.#ws = ws;
    this.info = info;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    const stream = pausableReadable({
      pause: () => ws.pause(),
      resume: () => ws.resume(),
      isPaused: () => ws.isPaused,
      cancel: () => this.close(),
    });
    this.readable = stream.readable;
    const end = stream.end;
    ws.on("message", (data: Uint8Array, isBinary: boolean) => {
      if (stream.ended) return;
      // Text frames carry no MQTT: a protocol error, closed with "unsupported data".
      if (!isBinary) {
        end();
        return this.close(1003);
      }
      stream.push(data);
    });
    ws.on("error", () => {}); // a close event follows
    ws.on("close", () => {
      this.#isClosed = true;
      end();
      for (const fail of this.#failWrites) fail(closedError());
      this.#failWrites.clear();
      resolve();
    });
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#isClosed || this.#ws.readyState !== this.#ws.OPEN) {
      return Promise.reject(closedError());
    }
    return new Promise((resolve, reject) => {
      this.#failWrites.add(reject);
      const ws = this.#ws;
      for (let at = 0; at < bytes.length;) {
        const end = this.packetFrames ? packetEnd(bytes, at) : bytes.length;
        const last = end >= bytes.length;
        // Callbacks fire in order once each frame is handed to the socket: after the last one,
        // `bytes` may be reused.
        ws.send(bytes.subarray(at, end), { binary: true }, (err?: Error) => {
          if (err === undefined && !last) return;
          if (!this.#failWrites.delete(reject)) return;
          if (err) reject(err);
          else resolve();
        });
        at = end;
      }
    });
  }

  close(code = 1000): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    // ws drops the socket itself when the peer does not answer within closeTimeout.
    this.#ws.close(code);
  }
}
