/**
 * The one connection type every transport (tcp, tls, ws, wss; client or server side) turns its
 * socket into. The broker and the client see only this.
 *
 * @module
 */

/**
 * Which transport a connection came over.
 *
 * @example
 * ```ts
 * import type { TransportKind } from "./types.ts";
 *
 * const secure = (kind: TransportKind): boolean => kind === "tls" || kind === "wss";
 * ```
 */
export type TransportKind = "tcp" | "tls" | "ws" | "wss";

/**
 * What is known about a connection's peer.
 *
 * @example
 * ```ts
 * import type { ConnectionInfo } from "./types.ts";
 *
 * // A connection a program accepted on a Unix socket, for the `external` listener "unix".
 * const info: ConnectionInfo = {
 *   transport: "tcp",
 *   remoteAddress: "unix:/run/app.sock",
 *   listener: "unix",
 * };
 * ```
 */
export interface ConnectionInfo {
  /** The transport it came over. */
  transport: TransportKind;
  /** `host:port` of the peer, for logs. */
  remoteAddress: string;
  /**
   * The peer's IP address alone (no port, no brackets), when the transport has it apart (the
   * broker's TCP listener; its TLS and WebSocket listeners leave it out): what the broker keeps
   * failed-login budgets by, taken as is instead of being parsed back out of
   * {@linkcode ConnectionInfo.remoteAddress} at every login. Without it the address is parsed,
   * to the same source.
   */
  remoteHost?: string;
  /** Name of the listener that accepted it (server side). */
  listener?: string;
  /** The peer certificate's subject common name, when mutual TLS gave one. */
  peerCommonName?: string;
}

/**
 * What {@linkcode ByteConnection.readThen} hands its chunk to: an object's method, so that a
 * caller reading for the life of a connection makes no closure for it.
 *
 * @example One read of a plain socket
 * ```ts
 * import { type ReadReceiver, socketConnection } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
 * const conn = socketConnection(await server.accept(), { transport: "tcp", remoteAddress: "peer" });
 * await client.write(new Uint8Array([0xc0, 0x00]));
 * const chunk = await new Promise<Uint8Array | null>((resolve) => {
 *   const to: ReadReceiver = { readDone: resolve };
 *   conn.readThen!(undefined, to);
 * });
 * assert.deepEqual([...chunk!], [0xc0, 0x00]);
 * conn.close();
 * ```
 */
export interface ReadReceiver {
  /**
   * Called once with the chunk read, or `null` at the end.
   *
   * @param chunk the chunk, or `null`
   */
  readDone(chunk: Uint8Array | null): void;
}

/**
 * What {@linkcode ByteConnection.writeThen} tells when its write has settled: an object's method,
 * as for {@linkcode ReadReceiver}.
 *
 * @example One write to a plain socket
 * ```ts
 * import { socketConnection, type WriteReceiver } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
 * const conn = socketConnection(await server.accept(), { transport: "tcp", remoteAddress: "peer" });
 * const error = await new Promise<unknown>((resolve) => {
 *   const to: WriteReceiver = { writeSettled: resolve };
 *   conn.writeThen!(new Uint8Array([0xd0, 0x00]), to);
 * });
 * assert.equal(error, undefined);
 * const got = new Uint8Array(2);
 * assert.equal(await client.read(got), 2);
 * conn.close();
 * ```
 */
export interface WriteReceiver {
  /**
   * Called once: with nothing when all was written, with the error when the write failed.
   *
   * @param error the write's error, if it failed
   */
  writeSettled(error?: unknown): void;
}

/**
 * A bidirectional byte stream. WebSocket frames are flattened into it: a frame boundary means
 * nothing, a packet may span frames and a frame may hold several packets.
 *
 * @example
 * ```ts
 * import type { ByteConnection } from "./types.ts";
 *
 * // Counts the bytes a peer sends until it closes.
 * async function countBytes(conn: ByteConnection): Promise<number> {
 *   let total = 0;
 *   for await (const chunk of conn.readable) total += chunk.length;
 *   return total;
 * }
 * ```
 */
export interface ByteConnection {
  /** What is known about the peer. */
  readonly info: ConnectionInfo;
  /** Bytes from the peer. Ends when the peer closes or the connection is closed. */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Optional fast path to the same bytes, for transports that can read without a stream: the next
   * chunk, or `null` at the end. A caller uses either this or `readable`, never both.
   *
   * @param reuse a chunk this method returned before that the caller no longer references: the
   *   transport may read into its memory instead of allocating a new buffer
   */
  read?(reuse?: Uint8Array): Promise<Uint8Array | null>;
  /**
   * Optional fast path to {@linkcode ByteConnection.read} for a caller that needs no promise: reads
   * the next chunk and then calls `to.readDone` once with it, or with `null` at the end (at once
   * when the connection is closed already). One read at a time; an idle connection then holds no
   * promise of its own, nor an async function frame, while it waits; and the caller no callback
   * made for it (an object's method, not a closure: memory per idle connection).
   *
   * @param reuse as for {@linkcode ByteConnection.read}
   * @param to whose `readDone` is called with the chunk or `null`; it must not throw
   * @returns `true` when the read most likely waits (the last one drained the socket): the caller
   *   may let go of buffers it keeps for a busy connection (memory per idle connection)
   */
  readThen?(reuse: Uint8Array | undefined, to: ReadReceiver): boolean | void;
  /**
   * Writes all of `bytes` (looping over partial writes). Rejects once the connection is closed.
   * Callers batch: one call per flush, not per packet. The bytes are the caller's: not to be
   * changed or transferred, nor kept once the write has settled (a broker hands its own
   * transports bytes that every connection shares, see `PacketChannel.sendShared`).
   */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Optional fast path to {@linkcode ByteConnection.write} for a caller that needs no promise:
   * writes all of `bytes` and then calls `to.writeSettled` once, with nothing when all is written
   * or with the error when the write failed (at once when the connection is closed already). One
   * promise less per write on the hot path.
   *
   * @param bytes the bytes (not to be modified until `to.writeSettled` is called)
   * @param to whose `writeSettled` is called once the write has completed or failed
   */
  writeThen?(bytes: Uint8Array, to: WriteReceiver): void;
  /**
   * Optional: half-closes, sending the peer an orderly end of stream (FIN; TLS close_notify) while
   * reading goes on. Never throws; a connection closed already ignores it.
   */
  closeWrite?(): void;
  /** Closes both directions. Idempotent; never throws. */
  close(): void;
  /** Resolves when the connection has closed, whoever closed it. */
  readonly closed: Promise<void>;
  /**
   * Optional: true once the connection is closed, for a transport whose `close()` takes effect
   * at once (plain sockets); a caller then need not wait for `closed`.
   */
  readonly isClosed?: boolean;
}
