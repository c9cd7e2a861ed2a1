/**
 * TCP and TLS listeners (`Deno.listen` / `Deno.listenTls`).
 *
 * @module
 */

import type { ConnectionHandler, ServerListener } from "./listener.ts";
import { hostPort, socketConnection } from "./socket.ts";
import { ACCEPT_RUN, readOrTick, timerSettled } from "./_accept_turns.ts";
import { LISTEN_BACKLOG } from "./_backlog.ts";

/** Options of {@linkcode listenTcp}. */
export interface TcpListenOptions {
  /** The listener's name in the configuration. */
  name: string;
  /** The host to bind. */
  hostname: string;
  /** The port to bind; 0 picks a free one. */
  port: number;
  /** PEM certificate chain and key: listen with TLS. */
  tls?: { cert: string; key: string };
  /**
   * Plain TCP only: bind with SO_REUSEPORT, so that several processes share the port and the
   * kernel spreads connections over them (Linux; needs `--unstable-net`).
   *
   * @default {false}
   */
  reusePort?: boolean;
}

/**
 * Starts a TCP (or TLS) listener that hands each connection to `onConnection`.
 *
 * @param options where to listen
 * @param onConnection called for each accepted connection
 * @returns the running listener
 * @throws {Deno.errors.AddrInUse} and other `Deno.listen` errors when it cannot bind
 */
export function listenTcp(
  options: TcpListenOptions,
  onConnection: ConnectionHandler,
): ServerListener {
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      tcpBacklog: LISTEN_BACKLOG,
      cert: options.tls.cert,
      key: options.tls.key,
    })
    : Deno.listen({
      hostname: options.hostname,
      port: options.port,
      tcpBacklog: LISTEN_BACKLOG,
      ...(options.reusePort ? { reusePort: true } : {}),
    } as Deno.TcpListenOptions);
  const transport = options.tls ? "tls" : "tcp";
  const addr = listener.addr as Deno.NetAddr;
  let closed = false;
  let accepted = 0;
  const loop = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (closed || err instanceof Deno.errors.BadResource) return;
        // A failed handshake or a transient accept error concerns one peer, not the listener. Out
        // of file descriptors (EMFILE) fails every accept at once: pause instead of spinning.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      let remoteAddress = "unknown";
      let remoteHost: string | undefined;
      try {
        // The runtime's address object is read once per property: its reads are slow (a
        // null-prototype object, in dictionary mode: bench/RESULTS.md, branch `connrate5`).
        const peer = conn.remoteAddr as Deno.NetAddr;
        const host = peer.hostname;
        remoteAddress = hostPort(host, peer.port);
        remoteHost = host;
      } catch { /* the peer may be gone already */ }
      // The broker's sockets: their idle reads share slabs (memory per idle connection).
      onConnection(
        socketConnection(conn, { transport, remoteAddress, remoteHost, listener: options.name }, {
          sharedIdleReads: true,
        }),
      );
      // Every ACCEPT_RUN accepts, the CONNECTs that have arrived are read first (see
      // _accept_turns.ts).
      if (++accepted % ACCEPT_RUN === 0) await readOrTick();
    }
  })();
  // Every call waits for the same end: a second close() (a shutdown racing a dispose) that
  // returned at once left its caller with the accept loop's timer still running.
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      closed = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      await loop;
      // The accept loop's last wait may have left its timer running (see _accept_turns.ts).
      await timerSettled();
    })();
  return {
    name: options.name,
    transport,
    hostname: addr.hostname,
    port: addr.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}
