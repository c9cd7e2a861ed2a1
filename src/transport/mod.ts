/**
 * Server-side transports: listeners for tcp, tls (with or without client certificates), ws and wss,
 * each handing its connections to the broker as one byte-stream type.
 *
 * @example A TCP listener on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { listenTcp } from "./mod.ts";
 *
 * await using listener = listenTcp({ name: "default", hostname: "127.0.0.1", port: 0 }, (conn) => {
 *   conn.close();
 * });
 * assert.equal(listener.transport, "tcp");
 * assert.ok(listener.port > 0);
 * ```
 *
 * @module
 */

export type {
  ByteConnection,
  ConnectionInfo,
  ReadReceiver,
  TransportKind,
  WriteReceiver,
} from "./types.ts";
export type { ConnectionHandler, ServerListener } from "./listener.ts";
export { listenTcp, type TcpListenOptions } from "./tcp.ts";
export {
  type ClientCertMode,
  listenTlsClientAuth,
  type TlsClientAuthListenOptions,
} from "./tls_node.ts";
export { listenWebSocket, type WebSocketListenOptions } from "./websocket.ts";
export { socketConnection, type SocketConnectionOptions } from "./socket.ts";
export {
  type ByteCounters,
  type ChannelDecoder,
  type ChannelSink,
  PacketChannel,
  type PacketChannelOptions,
} from "./packet_channel.ts";
