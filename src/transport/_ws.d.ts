// The part of the `ws` package (8.x) the transports use, typed against Deno's own `node:` types.
// `@types/ws` would pull in `@types/node`, whose path references `deno doc` fails to resolve
// (82 "Failed resolving types" warnings before its output) and which a broker need not download.

import type { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** Options of a client {@linkcode WebSocket}: the handshake and TLS settings used here. */
export interface ClientOptions {
  perMessageDeflate?: boolean;
  headers?: Record<string, string>;
  cert?: string;
  key?: string;
  ca?: string[];
  checkServerIdentity?: (...args: unknown[]) => boolean;
}

/** One WebSocket, client side (browser-style handlers) or server side (`on` events). */
export declare class WebSocket {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly OPEN: 1;
  constructor(address: string, protocols?: string[], options?: ClientOptions);
  binaryType: "nodebuffer" | "arraybuffer" | "fragments";
  readonly bufferedAmount: number;
  readonly readyState: 0 | 1 | 2 | 3;
  readonly isPaused: boolean;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: { message: string }) => void) | null;
  onclose: (() => void) | null;
  send(data: Uint8Array, options?: { binary?: boolean }, cb?: (err?: Error) => void): void;
  close(code?: number): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): this;
  on(event: "error", listener: (error: Error) => void): this;
  on(event: "close", listener: (code: number, reason: Uint8Array) => void): this;
}

/** Options of {@linkcode WebSocketServer}, as used here. */
export interface ServerOptions {
  noServer?: boolean;
  clientTracking?: boolean;
  perMessageDeflate?: boolean;
  maxPayload?: number;
  closeTimeout?: number;
  handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false;
}

/** A WebSocket server that takes over upgrade requests of a `node:http(s)` server. */
export declare class WebSocketServer {
  constructor(options: ServerOptions);
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    callback: (ws: WebSocket, request: IncomingMessage) => void,
  ): void;
  close(callback?: (error?: Error) => void): void;
}
